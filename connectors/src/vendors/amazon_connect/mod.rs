//! Amazon Connect: per-agent daily metrics (GetMetricDataV2) and contact
//! summaries (SearchContacts) of one instance, every request signed with
//! AWS Signature Version 4 (service `connect`, the instance's region).
//!
//! - Auth: SigV4 by smithy-rs's `aws-sigv4` through the toolkit's client
//!   (`http/sigv4.rs`), signed anew on every attempt; a session token goes
//!   along as `X-Amz-Security-Token`. The endpoint is
//!   `https://connect.<region>.amazonaws.com` unless `base_url` is set.
//! - `agent_metrics`: `POST /metrics/data` with `Groupings: ["AGENT"]`,
//!   `Interval: {IntervalPeriod: "DAY", TimeZone: "UTC"}`, the configured
//!   queues as the `QUEUE` filter (the API refuses a query without one),
//!   and CONTACTS_HANDLED, AVG_HANDLE_TIME, AVG_AFTER_CONTACT_WORK_TIME,
//!   AVG_HOLD_TIME, AVG_TALK_TIME and SERVICE_LEVEL (answered within 60 s).
//!   The reference names CONTACTS_HANDLED, AVG_HANDLE_TIME and
//!   SERVICE_LEVEL with its threshold; the other three are AWS metric names
//!   it does not list [?], and whether SERVICE_LEVEL may be grouped by
//!   agent is not confirmed [?]. One row per agent per day, keyed by
//!   (agent_id, interval_start); timestamps arrive as epoch seconds, a
//!   metric that would divide by zero arrives null and stays NULL.
//! - Windows: DAY queries must span less than 35 days and the API keeps 3
//!   months, so a read starts no earlier than that (a start date before it
//!   is moved up) at a UTC midnight, and a longer window is cut into
//!   chunks of 34 days. Incremental: each run starts `lookback_days`
//!   (default 3) before the last run's end, since Connect revises recent
//!   days as contacts close; re-read rows replace theirs by key.
//! - `contacts`: `POST /search-contacts` with `{InstanceId, TimeRange:
//!   {Type: "INITIATION_TIMESTAMP", StartTime, EndTime}, MaxResults,
//!   NextToken}` — marked [?] in the reference; AWS's API reference page
//!   for SearchContacts shows this shape and the summary fields read here.
//!   Keyed by `contact_id`, incremental by initiation time with the same
//!   look-back, so a contact that disconnected since is read again. Its
//!   first read starts like the metrics' (no earlier than 3 months back):
//!   how far back SearchContacts reaches is not in the reference [?].
//! - Paging: `NextToken` in the response, sent back in the body, with
//!   `MaxResults` 100 (the API takes 1–100).
//! - Errors: the type in `x-amzn-ErrorType` (a `:…` suffix trimmed) and
//!   `{"Message": …}`. 429 `ThrottlingException` is retried with backoff
//!   (AWS sends no `Retry-After`). A 403 for a refused signature or key is
//!   an auth error saying what to check; `AccessDeniedException` (the IAM
//!   policy lacks the action) makes the stream unavailable, saying to
//!   leave it out.

mod contacts;
mod errors;
mod metrics;
mod windows;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use conveyor_config::{AmazonConnectSettings, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{json, Map, Value};

use super::read::{iso_millis, object, Emitter, Pages};
use super::table::{Col, Table};
use super::{endpoint, Base, ClientSpec};
use crate::http::body_pager::BodyPager;
use crate::http::TokenBody;

pub const TABLES: &[Table] = &[
    Table {
        name: "agent_metrics",
        primary_key: &["agent_id", "interval_start"],
        cursor: Some("interval_start"),
        columns: &[
            ("agent_id", Col::Str),
            ("agent_arn", Col::Str),
            ("interval_start", Col::Instant),
            ("interval_end", Col::Instant),
            // DAY.
            ("interval", Col::Str),
            ("contacts_handled", Col::Float),
            ("avg_handle_time_secs", Col::Float),
            ("avg_after_contact_work_time_secs", Col::Float),
            ("avg_hold_time_secs", Col::Float),
            ("avg_talk_time_secs", Col::Float),
            // Percent of contacts answered within 60 seconds.
            ("service_level_60s_pct", Col::Float),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "contacts",
        primary_key: &["contact_id"],
        cursor: Some("initiation_at"),
        columns: &[
            ("contact_id", Col::Str),
            ("contact_arn", Col::Str),
            // VOICE, CHAT, TASK, EMAIL.
            ("channel", Col::Str),
            // INBOUND, OUTBOUND, TRANSFER, CALLBACK, API, …
            ("initiation_method", Col::Str),
            ("initiation_at", Col::Instant),
            ("disconnect_at", Col::Instant),
            ("scheduled_at", Col::Instant),
            ("agent_id", Col::Str),
            ("connected_to_agent_at", Col::Instant),
            ("queue_id", Col::Str),
            ("enqueue_at", Col::Instant),
            ("initial_contact_id", Col::Str),
            ("previous_contact_id", Col::Str),
            ("name", Col::Str),
            ("tags", Col::Json),
            ("other", Col::Json),
        ],
    },
];

/// The tables as a closed set, so each `match` over them is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AgentMetrics,
    Contacts,
}

impl Kind {
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        match table {
            "agent_metrics" => Ok(Kind::AgentMetrics),
            "contacts" => Ok(Kind::Contacts),
            other => Err(ConnectorError::new(
                ErrorKind::Config,
                format!("amazon_connect has no table `{other}`"),
            )),
        }
    }

    /// The API path, and the key its records come under.
    fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Kind::AgentMetrics => ("metrics/data", "MetricResults"),
            Kind::Contacts => ("search-contacts", "Contacts"),
        }
    }
}

pub struct AmazonConnect {
    base: Base,
    settings: AmazonConnectSettings,
}

impl AmazonConnect {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let settings = cfg.amazon_connect.clone().ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("source {source}: type = \"amazon_connect\" without its instance settings"),
            )
        })?;
        let spec = ClientSpec {
            headers: Vec::new(),
            token_fields: Vec::new(),
            token_body: TokenBody::default(),
            error_message: body_message,
            error_reader: Some(errors::message),
        };
        Ok(AmazonConnect {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
            settings,
        })
    }
}

super::connector_over_base!(AmazonConnect);

impl AmazonConnect {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let kind = Kind::of(t.name)?;
        let now = Utc::now();
        let start = windows::read_start(
            state.as_ref(),
            self.base.cfg.start_date,
            self.settings.lookback_days,
            now,
        );
        // Until the read ends, a crash restarts it where this one started.
        let resume = state.clone().unwrap_or_else(|| json!({ "cursor": null }));
        let mut out = Emitter::new(sink, t, resume);
        match kind {
            Kind::AgentMetrics => {
                if self.settings.queues.is_empty() {
                    return Err(ConnectorError::new(
                        ErrorKind::Config,
                        format!(
                            "source {}: agent_metrics needs queues = [...] (the API refuses a metrics query without a filter)",
                            self.base.source
                        ),
                    ));
                }
                for (from, to) in windows::chunks(start, now, windows::MAX_DAY_CHUNK_DAYS) {
                    if cancel.is_cancelled() {
                        break;
                    }
                    let query = metrics::query(
                        &self.settings.instance_arn,
                        &self.settings.queues,
                        from,
                        to,
                    );
                    self.read_pages(kind, query, metrics::row, &mut out, cancel)
                        .await?;
                }
            }
            Kind::Contacts => {
                let query = contacts::query(&self.settings.instance_id, start, now);
                self.read_pages(kind, query, contacts::row, &mut out, cancel)
                    .await?;
            }
        }
        out.finish(json!({ "cursor": iso_millis(now) }), cancel)
            .await
    }

    /// Every page of one query, `NextToken` to `NextToken`, as rows.
    async fn read_pages(
        &self,
        kind: Kind,
        query: Value,
        project: fn(Map<String, Value>) -> Map<String, Value>,
        out: &mut Emitter<'_>,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let (path, records) = kind.endpoint();
        let pager = BodyPager::new(
            endpoint(&self.base.cfg.base_url, path)?,
            query,
            "NextToken",
            "NextToken",
        );
        let mut pages = Pages::body(&self.base, out.table_name(), pager, records)
            .refusal_kind(errors::refusal_kind);
        while let Some(page) = pages.next(cancel).await? {
            let rows = page
                .records
                .into_iter()
                .map(|r| object(r, records).map(project))
                .collect::<Result<Vec<_>, _>>()?;
            out.emit(&rows).await?;
        }
        Ok(())
    }
}

/// Epoch seconds (whole or fractional, as AWS's JSON timestamps are) as
/// RFC 3339 UTC; null stays null, anything else is kept as sent (the table
/// then widens the column rather than lose it).
pub(crate) fn epoch_instant(v: &Value) -> Value {
    let Some(secs) = v.as_f64() else {
        return v.clone();
    };
    match DateTime::<Utc>::from_timestamp_micros((secs * 1e6).round() as i64) {
        Some(t) => Value::String(iso_millis(t)),
        None => v.clone(),
    }
}

/// The body alone, when a response carries no `x-amzn-ErrorType`.
fn body_message(body: &[u8]) -> Option<String> {
    errors::message(&reqwest::header::HeaderMap::new(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_a_kind_and_an_unknown_name_is_an_error() {
        for t in TABLES {
            assert!(Kind::of(t.name).is_ok(), "{}", t.name);
        }
        assert_eq!(Kind::of("queues").unwrap_err().kind, ErrorKind::Config);
    }

    #[test]
    fn epoch_seconds_become_utc_instants() {
        assert_eq!(
            epoch_instant(&json!(1717200000)),
            json!("2024-06-01T00:00:00.000Z")
        );
        assert_eq!(
            epoch_instant(&json!(1717200000.25)),
            json!("2024-06-01T00:00:00.250Z")
        );
        assert_eq!(epoch_instant(&Value::Null), Value::Null);
        assert_eq!(epoch_instant(&json!("soon")), json!("soon"));
    }
}
