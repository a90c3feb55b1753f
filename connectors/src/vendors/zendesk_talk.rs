//! Zendesk Talk: the incremental calls export, one row per call.
//!
//! - Auth: HTTP Basic `{email}/token:{api_token}`.
//! - `GET /api/v2/channels/voice/stats/incremental/calls?start_time=<unix>`
//!   returns `{calls, next_page, count, end_time}`. `next_page` is never
//!   null, not even on the last page, so paging stops when `count` drops to
//!   one or none (the boundary record the inclusive `start_time` repeats).
//! - Incremental: `start_time` = the newest `updated_at` seen (inclusive).
//! - The incremental endpoints allow 10 requests a minute; a 429 carries
//!   `Retry-After`, which the toolkit waits out.
//! - Errors: `{"error": "…", "description": "…"}` (or an error object).

use std::sync::Arc;

use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, Json, RecordSink, StreamDescriptor,
};
use serde_json::Value;

use super::read::{iso_millis, object, saved_instant, Emitter, Newest, Pages};
use super::table::{Col, Table};
use super::{endpoint, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;

const CALLS_PATH: &str = "api/v2/channels/voice/stats/incremental/calls";

pub const TABLES: &[Table] = &[Table {
    name: "calls",
    primary_key: &["id"],
    cursor: Some("updated_at"),
    columns: &[
        ("id", Col::Int),
        ("agent_id", Col::Int),
        ("ticket_id", Col::Int),
        ("direction", Col::Str),
        ("completion_status", Col::Str),
        ("created_at", Col::Instant),
        ("updated_at", Col::Instant),
        // Seconds.
        ("duration", Col::Int),
        ("talk_time", Col::Int),
        ("hold_time", Col::Int),
        ("wait_time", Col::Int),
        ("wrap_up_time", Col::Int),
        ("time_to_answer", Col::Int),
        ("exceeded_queue_wait_time", Col::Bool),
        ("voicemail", Col::Bool),
        ("minutes_billed", Col::Int),
    ],
}];

pub struct ZendeskTalk {
    base: Base,
}

impl ZendeskTalk {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![("Accept".into(), "application/json".into())],
            token_fields: Vec::new(),
            token_body: TokenBody::default(),
            error_message,
        };
        Ok(ZendeskTalk {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }
}

#[async_trait::async_trait]
impl Connector for ZendeskTalk {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.base.streams()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let start_time = since.map(|s| s.timestamp()).unwrap_or(0).max(0);
        let pager = Pager::new(
            // `next_page` is always there; `count` ≤ 1 is the end.
            PaginationConfig::NextUrl {
                next_path: JsonPath::parse("next_page"),
                count_path: Some(JsonPath::parse("count")),
                min_count: 2,
            },
            endpoint(&self.base.cfg.base_url, CALLS_PATH)?,
            Vec::new(),
            vec![("start_time".into(), start_time.to_string())],
        );
        let mut pages = Pages::new(&self.base.client, pager, "calls");
        let mut out = Emitter::new(
            sink,
            t,
            serde_json::json!({ "cursor": since.map(iso_millis) }),
        );
        let mut newest = Newest::default();
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let row = object(r, "call")?;
                newest.see(row.get("updated_at"));
                rows.push(row);
            }
            out.emit(&rows).await?;
        }
        out.finish(newest.state(since), cancel).await
    }
}

/// `{"error":"…","description":"…"}` or `{"error":{"title","message"}}`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let head = match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("title")
            .or(o.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string(),
        other => other.to_string(),
    };
    let detail = v
        .get("description")
        .or_else(|| e.get("message"))
        .and_then(Value::as_str);
    Some(match detail {
        Some(d) if d != head => format!("{head}: {d}"),
        _ => head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zendesk_errors_read_as_error_and_description() {
        assert_eq!(
            error_message(br#"{"error":"InvalidValue","description":"start_time is too recent"}"#)
                .unwrap(),
            "InvalidValue: start_time is too recent"
        );
        assert_eq!(
            error_message(br#"{"error":"Couldn't authenticate you"}"#).unwrap(),
            "Couldn't authenticate you"
        );
        assert_eq!(
            error_message(br#"{"error":{"title":"Forbidden","message":"You do not have access"}}"#)
                .unwrap(),
            "Forbidden: You do not have access"
        );
    }
}
