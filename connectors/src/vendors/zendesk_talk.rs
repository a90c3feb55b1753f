//! Zendesk Talk: the incremental calls export, one row per call, and the
//! agents and admins those calls name (`agent_id` joins `users.id`).
//!
//! - Auth: HTTP Basic `{email}/token:{api_token}`.
//! - `GET /api/v2/channels/voice/stats/incremental/calls?start_time=<unix>`
//!   returns `{calls, next_page, count, end_time}`. `next_page` is never
//!   null, not even on the last page, so paging stops when `count` drops to
//!   one or none (the boundary record the inclusive `start_time` repeats).
//! - Incremental: `start_time` = the newest `updated_at` seen (inclusive).
//!   The calls at that second come again, on the next page and on the next
//!   run; unchanged ones are emitted once (see `read::Boundary`).
//! - Call legs: `GET …/stats/incremental/legs?start_time=<unix>`, the same
//!   export shape (`{legs, next_page, count, end_time}`, reference §4c: "works
//!   the same way"); one row per leg — the agent's, the customer's, a
//!   transfer's — so time is measured per agent even on transferred calls.
//!   The leg fields follow Zendesk's public docs (guessed beyond `id`,
//!   `call_id`, `agent_id`, `type`, times and `created_at`/`updated_at`).
//! - Agent activity: `GET …/stats/agents_activity`, a snapshot of today per
//!   agent (`{agents_activity, next_page, count}`); each read is stored as the
//!   day's row (`day` = the read's UTC date), so history accumulates a row
//!   per agent per day.
//! - Users: `GET /api/v2/users?role[]=agent&role[]=admin&page[size]=100`,
//!   cursor paging (`meta.has_more`, `links.next`; Zendesk's public docs —
//!   the reference describes only the calls export). A full refresh merged
//!   by `id`. End users are left out: calls never name them as agents.
//! - The incremental endpoints allow 10 requests a minute; a 429 carries
//!   `Retry-After`, which the toolkit waits out.
//! - Errors: `{"error": "…", "description": "…"}` (or an error object).

use std::sync::Arc;

use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
    StreamDescriptor,
};
use serde_json::{json, Value};

use super::read::{fetch_json, iso_millis, object, saved_instant, Boundary, Emitter, Pages};
use super::table::{Col, Table};
use super::{endpoint, Base, ClientSpec};
use crate::http::client::HttpRequest;
use crate::http::{PageGuard, PageScope, TokenBody};
use crate::rest::pager::Pager;

const CALLS_PATH: &str = "api/v2/channels/voice/stats/incremental/calls";
const LEGS_PATH: &str = "api/v2/channels/voice/stats/incremental/legs";
const AGENTS_ACTIVITY_PATH: &str = "api/v2/channels/voice/stats/agents_activity";
const USERS_PATH: &str = "api/v2/users";
/// The largest cursor page Zendesk serves.
const USERS_PAGE: &str = "100";

pub const TABLES: &[Table] = &[
    Table {
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
    },
    Table {
        name: "legs",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Int),
            ("call_id", Col::Int),
            ("agent_id", Col::Int),
            ("user_id", Col::Int),
            // `agent`, `customer` or `external`.
            ("type", Col::Str),
            ("available_via", Col::Str),
            ("forwarded_to", Col::Str),
            ("completion_status", Col::Str),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
            // Seconds.
            ("duration", Col::Int),
            ("talk_time", Col::Int),
            ("hold_time", Col::Int),
            ("wrap_up_time", Col::Int),
            ("conference_time", Col::Int),
            ("consultation_time", Col::Int),
            ("minutes_billed", Col::Int),
            ("quality_issues", Col::Json),
        ],
    },
    Table {
        name: "agents_activity",
        primary_key: &["agent_id", "day"],
        cursor: None,
        columns: &[
            ("agent_id", Col::Int),
            // The UTC date of the read: the snapshot is "today so far".
            ("day", Col::Date),
            ("read_at", Col::Instant),
            ("name", Col::Str),
            ("status", Col::Str),
            ("via", Col::Str),
            ("calls_accepted", Col::Int),
            ("calls_denied", Col::Int),
            ("calls_missed", Col::Int),
            ("calls_put_on_hold", Col::Int),
            ("accepted_transfers", Col::Int),
            ("started_transfers", Col::Int),
            // Seconds.
            ("total_talk_time", Col::Int),
            ("average_talk_time", Col::Int),
            ("total_hold_time", Col::Int),
            ("average_hold_time", Col::Int),
            ("total_wrap_up_time", Col::Int),
            ("average_wrap_up_time", Col::Int),
            ("total_call_duration", Col::Int),
            ("online_time", Col::Int),
            ("available_time", Col::Int),
            ("away_time", Col::Int),
            ("transfers_only_time", Col::Int),
        ],
    },
    Table {
        name: "users",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Int),
            ("name", Col::Str),
            ("email", Col::Str),
            // `agent` or `admin`.
            ("role", Col::Str),
            ("role_type", Col::Int),
            ("custom_role_id", Col::Int),
            ("active", Col::Bool),
            ("suspended", Col::Bool),
            ("organization_id", Col::Int),
            ("default_group_id", Col::Int),
            ("time_zone", Col::Str),
            ("phone", Col::Str),
            ("external_id", Col::Str),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
            ("last_login_at", Col::Instant),
        ],
    },
];

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
            error_reader: None,
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
        let r = match t.name {
            "users" => self.users(t, sink, cancel).await,
            "agents_activity" => self.agents_activity(t, sink, cancel).await,
            "legs" => self.export(t, LEGS_PATH, "legs", state, sink, cancel).await,
            _ => {
                self.export(t, CALLS_PATH, "calls", state, sink, cancel)
                    .await
            }
        };
        r.map_err(|e| self.base.explain(stream, e))
    }
}

impl ZendeskTalk {
    /// An incremental export (`calls` or `legs`) from the saved cursor.
    async fn export(
        &self,
        t: &'static Table,
        path: &str,
        key: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let start_time = since.map(|s| s.timestamp()).unwrap_or(0).max(0);
        let pager = Pager::new(
            // `next_page` is always there; `count` ≤ 1 is the end.
            PaginationConfig::NextUrl {
                next_path: JsonPath::parse("next_page"),
                count_path: Some(JsonPath::parse("count")),
                min_count: 2,
            },
            endpoint(&self.base.cfg.base_url, path)?,
            Vec::new(),
            vec![("start_time".into(), start_time.to_string())],
        );
        let mut pages = Pages::new(&self.base, t.name, pager, key);
        let resume = match &state {
            Some(s) if !s["cursor"].is_null() => s.clone(),
            _ => serde_json::json!({ "cursor": since.map(iso_millis) }),
        };
        let mut out = Emitter::new(sink, t, resume);
        let mut boundary = Boundary::resume(state.as_ref(), since);
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            let seen = page.records.len();
            for r in page.records {
                let row = object(r, key.trim_end_matches('s'))?;
                if boundary.fresh(&row, row.get("updated_at")) {
                    rows.push(row);
                }
            }
            // A page of nothing but records already emitted at the boundary
            // second ends the export: its `end_time` is the `start_time` it
            // was asked for, so the next page would be this one again. (Legs
            // share their call's second, so a last page of two or three is
            // common; `count` ≤ 1 alone would not end it.)
            let only_repeats = seen > 0 && rows.is_empty();
            out.emit(&rows).await?;
            if only_repeats {
                break;
            }
        }
        out.finish(boundary.state(), cancel).await
    }

    /// Today's activity per agent, stamped with the read's date and time.
    async fn agents_activity(
        &self,
        t: &'static Table,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let now = chrono::Utc::now();
        let mut out = Emitter::new(sink, t, serde_json::json!({ "cursor": null }));
        let mut guard = PageGuard::new(
            PageScope::vendor(&self.base.source, t.name),
            self.base.cfg.page_limits,
            self.base.client.redactor().clone(),
        );
        let mut next = Some(endpoint(&self.base.cfg.base_url, AGENTS_ACTIVITY_PATH)?);
        while let Some(at) = next.take() {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let req = HttpRequest::get(at.clone());
            guard.check(&req)?;
            let (resp, mut body) = fetch_json(&self.base.client, &req, None).await?;
            let rows = match body.get_mut("agents_activity").map(Value::take) {
                Some(Value::Array(agents)) => agents
                    .into_iter()
                    .map(|a| {
                        let mut row = object(a, "agent activity")?;
                        row.insert("day".into(), json!(now.date_naive().to_string()));
                        row.insert("read_at".into(), json!(iso_millis(now)));
                        Ok(row)
                    })
                    .collect::<Result<Vec<_>, ConnectorError>>()?,
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(ConnectorError::new(
                        ErrorKind::Data,
                        format!(
                            "GET {}: `agents_activity` holds {other}, not a list",
                            self.base.client.redactor().url(&resp.url)
                        ),
                    ))
                }
            };
            guard.page(&req, rows.len(), &resp.body)?;
            out.emit(&rows).await?;
            next = body["next_page"].as_str().and_then(|n| at.join(n).ok());
            if next.as_ref() == Some(&at) {
                next = None;
            }
        }
        out.finish(serde_json::json!({ "cursor": null }), cancel)
            .await
    }

    /// Agents and admins, by cursor pages until `meta.has_more` is false
    /// (`links.next` alone is no end signal).
    async fn users(
        &self,
        t: &'static Table,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let mut url = endpoint(&self.base.cfg.base_url, USERS_PATH)?;
        url.query_pairs_mut()
            .append_pair("role[]", "agent")
            .append_pair("role[]", "admin")
            .append_pair("page[size]", USERS_PAGE);
        let mut out = Emitter::new(sink, t, serde_json::json!({ "cursor": null }));
        let mut guard = PageGuard::new(
            PageScope::vendor(&self.base.source, t.name),
            self.base.cfg.page_limits,
            self.base.client.redactor().clone(),
        );
        let mut next = Some(url);
        while let Some(at) = next.take() {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let req = HttpRequest::get(at.clone());
            guard.check(&req)?;
            let (resp, mut body) = fetch_json(&self.base.client, &req, None).await?;
            let rows: Result<Vec<_>, _> = match body.get_mut("users").map(Value::take) {
                Some(Value::Array(users)) => users.into_iter().map(|u| object(u, "user")).collect(),
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(other) => Err(ConnectorError::new(
                    ErrorKind::Data,
                    format!(
                        "GET {}: `users` holds {other}, not a list",
                        self.base.client.redactor().url(&resp.url)
                    ),
                )),
            };
            let rows = rows?;
            guard.page(&req, rows.len(), &resp.body)?;
            out.emit(&rows).await?;
            if body["meta"]["has_more"] == true {
                next = match body["links"]["next"].as_str() {
                    Some(n) => at.join(n).ok(),
                    // No link: build it from the cursor.
                    None => body["meta"]["after_cursor"].as_str().map(|c| {
                        let mut u = at.clone();
                        let kept: Vec<(String, String)> = u
                            .query_pairs()
                            .filter(|(k, _)| k != "page[after]")
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        u.query_pairs_mut()
                            .clear()
                            .extend_pairs(kept)
                            .append_pair("page[after]", c);
                        u
                    }),
                };
                // A next page equal to this one would loop forever.
                if next.as_ref() == Some(&at) {
                    next = None;
                }
            }
        }
        out.finish(serde_json::json!({ "cursor": null }), cancel)
            .await
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
