//! Lever: opportunities, postings, users, offers and deleted opportunities.
//!
//! - Auth: HTTP Basic with the API key as the user and an empty password
//!   (`api_key:`), or an OAuth bearer token from the refresh-token grant at
//!   `auth.lever.co/oauth/token` (client id and secret in the form; access
//!   tokens last about an hour and refresh tokens rotate [?], so a rotated
//!   one is stored before it is used).
//! - Lists are `{"data": [...], "hasNext": bool, "next": "<opaque>"}`: the
//!   next page is the same request plus `offset=<next>`, `limit` at most
//!   100; paging stops when `hasNext` is false, whatever `next` says.
//! - Every timestamp is an epoch-millisecond integer; the tables hold UTC
//!   instants (`createdAt` → `created_at`, every key in snake_case).
//! - Incremental: `updated_at_start` (epoch ms, inclusive) on opportunities
//!   and postings, a look-back before the saved cursor with the records
//!   already emitted in it recognised (see `lever/window.rs`). Users have
//!   no such filter and are read whole (active users only, Lever's default
//!   as far as known [?]: deactivated ones are not asked for).
//! - Offers are per opportunity (`/opportunities/{id}/offers`, no cursor of
//!   their own): each run reads the offers of the opportunities changed
//!   since the last, assuming a new or changed offer touches its
//!   opportunity's `updatedAt` [?]. An opportunity gone by then (404) has
//!   no offers to read; its deletion shows in `deleted_opportunities`.
//! - Deletions: `/opportunities/deleted` lists deleted opportunities with
//!   `deletedAt`, filtered by `deleted_at_start` [?: the reference names the
//!   endpoint only], so the warehouse keeps the rows and says which are gone.
//! - Rate limit: a token bucket of 10 requests a second per key (burst 20);
//!   a 429 is retried by the toolkit (its `Retry-After` honoured when sent,
//!   otherwise backoff). Its documented limit (10 in any second) is kept to by default.
//! - Errors: `{"code": "…", "message": "…"}` [?]; a 403 on a stream fails
//!   it as unavailable, saying to leave it out.

mod project;
pub(crate) mod window;

use std::sync::Arc;

use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{json, Map, Value};

use super::read::{iso_millis, saved_instant, Emitter, Pages};
use super::table::{Col, Table};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;
use window::Window;

/// The largest page Lever serves.
const LIMIT: u32 = 100;

pub const TABLES: &[Table] = &[
    Table {
        name: "opportunities",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("headline", Col::Str),
            // The person (one contact, many opportunities).
            ("contact", Col::Str),
            ("primary_email", Col::Str),
            ("primary_phone", Col::Str),
            ("emails", Col::Json),
            ("phones", Col::Json),
            ("location", Col::Str),
            // A stage id; `stage_changes` is the history.
            ("stage", Col::Str),
            ("stage_changes", Col::Json),
            ("origin", Col::Str),
            ("sources", Col::Json),
            ("owner", Col::Str),
            ("applications", Col::Json),
            ("tags", Col::Json),
            ("confidentiality", Col::Str),
            ("archived_at", Col::Instant),
            // An archive-reason id (its type, hired or not, is Lever's
            // `/archive_reasons`, not read here).
            ("archive_reason", Col::Str),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
            ("last_interaction_at", Col::Instant),
            ("last_advanced_at", Col::Instant),
            ("snoozed_until", Col::Instant),
        ],
    },
    Table {
        name: "postings",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            ("id", Col::Str),
            ("text", Col::Str),
            ("state", Col::Str),
            ("confidentiality", Col::Str),
            // From `categories`, which is kept whole too.
            ("team", Col::Str),
            ("department", Col::Str),
            ("location", Col::Str),
            ("commitment", Col::Str),
            ("level", Col::Str),
            ("categories", Col::Json),
            ("creator", Col::Str),
            ("owner", Col::Str),
            ("hiring_manager", Col::Str),
            ("tags", Col::Json),
            ("distribution_channels", Col::Json),
            ("req_code", Col::Str),
            ("requisition_codes", Col::Json),
            ("country", Col::Str),
            ("workplace_type", Col::Str),
            ("salary_range", Col::Json),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
    Table {
        name: "users",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("username", Col::Str),
            ("email", Col::Str),
            ("access_role", Col::Str),
            ("job_title", Col::Str),
            ("manager_id", Col::Str),
            ("external_directory_id", Col::Str),
            ("linked_contact_ids", Col::Json),
            ("created_at", Col::Instant),
            ("deactivated_at", Col::Instant),
        ],
    },
    Table {
        name: "offers",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Str),
            ("opportunity_id", Col::Str),
            // The posting the offer is for [?: not in every description].
            ("posting", Col::Str),
            // draft, approval-sent, approved, sent, sent-manually, opened,
            // denied, signed.
            ("status", Col::Str),
            ("creator", Col::Str),
            ("created_at", Col::Instant),
            ("signed_at", Col::Instant),
            ("start_date", Col::Date),
            // The company's offer form: `[{text, identifier, value}]`.
            ("fields", Col::Json),
            ("sent_document", Col::Json),
            ("signed_document", Col::Json),
        ],
    },
    Table {
        name: "deleted_opportunities",
        primary_key: &["id"],
        cursor: Some("deleted_at"),
        columns: &[("id", Col::Str), ("deleted_at", Col::Instant)],
    },
];

/// The tables as a closed set, so each `match` over them is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Opportunities,
    Postings,
    Users,
    Offers,
    DeletedOpportunities,
}

impl Kind {
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        match table {
            "opportunities" => Ok(Kind::Opportunities),
            "postings" => Ok(Kind::Postings),
            "users" => Ok(Kind::Users),
            "offers" => Ok(Kind::Offers),
            "deleted_opportunities" => Ok(Kind::DeletedOpportunities),
            other => Err(ConnectorError::new(
                ErrorKind::Config,
                format!("lever has no table `{other}`"),
            )),
        }
    }

    /// The list endpoint under the base URL.
    fn path(self) -> &'static str {
        match self {
            Kind::Opportunities | Kind::Offers => "opportunities",
            Kind::Postings => "postings",
            Kind::Users => "users",
            Kind::DeletedOpportunities => "opportunities/deleted",
        }
    }

    /// The parameter that filters the list from an instant (epoch ms).
    fn filter(self) -> &'static str {
        match self {
            Kind::DeletedOpportunities => "deleted_at_start",
            _ => "updated_at_start",
        }
    }
}

/// `{data, hasNext, next}` paging: `next` goes back as `offset`.
fn paging() -> PaginationConfig {
    PaginationConfig::CursorToken {
        cursor_path: JsonPath::parse("next"),
        cursor_param: "offset".into(),
    }
}

/// Lever says the last page by `hasNext: false`.
fn last_page(body: &Value) -> bool {
    body.get("hasNext").and_then(Value::as_bool) == Some(false)
}

/// A page saying there is more without saying where: stopping there would
/// drop the rest silently, so the read fails instead.
fn more_without_next(body: &Value) -> Option<String> {
    let more = body.get("hasNext").and_then(Value::as_bool) == Some(true);
    let next = body
        .get("next")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    (more && !next).then(|| "hasNext is true but the page has no `next` offset".to_string())
}

pub struct Lever {
    base: Base,
}

impl Lever {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![("Accept".into(), "application/json".into())],
            token_fields: Vec::new(),
            token_body: TokenBody::FormWithCredentials,
            error_message,
            error_reader: None,
        };
        Ok(Lever {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    /// Pages of `url` for `stream` (named in errors), `limit` and `query`
    /// repeated on every page with the `offset` Lever handed back.
    fn pages(&self, stream: &str, url: url::Url, query: Vec<(String, String)>) -> Pages<'_> {
        let pager = Pager::new(paging(), url, query, Vec::new());
        Pages::new(&self.base, stream, pager, "data")
            .last_page_when(last_page)
            .check_body(more_without_next)
    }

    /// The resume state of an incremental read: the saved one, or the start.
    fn resume(&self, state: Option<&Json>) -> Json {
        match state {
            Some(s) if !s["cursor"].is_null() => s.clone(),
            _ => json!({ "cursor": self.start().map(iso_millis) }),
        }
    }

    fn start(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        saved_instant(None, self.base.cfg.start_date)
    }

    /// A whole list (users), no cursor.
    async fn full(
        &self,
        t: &'static Table,
        kind: Kind,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let url = endpoint(&self.base.cfg.base_url, kind.path())?;
        let mut pages = self.pages(t.name, url, vec![("limit".into(), LIMIT.to_string())]);
        let mut out = Emitter::new(sink, t, json!({ "cursor": null }));
        while let Some(page) = pages.next(cancel).await? {
            let rows = page
                .records
                .into_iter()
                .map(|r| project::row(t, kind, r, None))
                .collect::<Result<Vec<_>, _>>()?;
            out.emit(&rows).await?;
        }
        out.finish(json!({ "cursor": null }), cancel).await
    }

    /// A list filtered by its `…_start` parameter from the window before
    /// the saved cursor on `t.cursor`.
    async fn incremental(
        &self,
        t: &'static Table,
        kind: Kind,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let column = t.cursor.unwrap_or("updated_at");
        let mut window = Window::resume(state.as_ref(), self.start());
        let url = endpoint(&self.base.cfg.base_url, kind.path())?;
        let mut query = vec![("limit".to_string(), LIMIT.to_string())];
        query.extend(
            window
                .start_ms()
                .map(|ms| (kind.filter().to_string(), ms.to_string())),
        );
        let mut pages = self.pages(t.name, url, query);
        let mut out = Emitter::new(sink, t, self.resume(state.as_ref()));
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let row = project::row(t, kind, r, None)?;
                if window.fresh(&row, row.get(column)) {
                    rows.push(row);
                }
            }
            out.emit(&rows).await?;
        }
        out.finish(window.state(), cancel).await
    }

    /// The offers of every opportunity changed since the last run.
    async fn offers(
        &self,
        t: &'static Table,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let parent = &TABLES[0];
        let mut window = Window::resume(state.as_ref(), self.start());
        // The opportunities changed since the last run, by their own filter.
        let url = endpoint(&self.base.cfg.base_url, Kind::Offers.path())?;
        let mut query = vec![("limit".to_string(), LIMIT.to_string())];
        query.extend(
            window
                .start_ms()
                .map(|ms| (Kind::Offers.filter().to_string(), ms.to_string())),
        );
        let mut pages = self.pages(t.name, url, query);
        let mut out = Emitter::new(sink, t, self.resume(state.as_ref()));
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::new();
            for r in page.records {
                let opp = project::row(parent, Kind::Opportunities, r, None)?;
                if !window.fresh(&opp, opp.get("updated_at")) {
                    continue;
                }
                if let Some(id) = opp.get("id").and_then(Value::as_str) {
                    rows.extend(self.offers_of(t, id, cancel).await?);
                }
            }
            out.emit(&rows).await?;
        }
        out.finish(window.state(), cancel).await
    }

    /// `/opportunities/{id}/offers`, the id as one path segment.
    async fn offers_of(
        &self,
        t: &'static Table,
        id: &str,
        cancel: &CancelFlag,
    ) -> Result<Vec<Map<String, Value>>, ConnectorError> {
        let mut url = endpoint(&self.base.cfg.base_url, "opportunities")?;
        url.path_segments_mut()
            .map_err(|_| ConnectorError::new(ErrorKind::Config, "base_url cannot take a path"))?
            .push(id)
            .push("offers");
        // A 403 is the stream's (no offer permission); a 404 is this
        // opportunity's (deleted since it was listed).
        let mut pages = self
            .pages(t.name, url, Vec::new())
            .unavailable_on(&[403])
            .stop_on(404, true);
        let mut rows = Vec::new();
        while let Some(page) = pages.next(cancel).await? {
            for r in page.records {
                rows.push(project::row(t, Kind::Offers, r, Some(id))?);
            }
        }
        if pages.stopped().is_some() {
            tracing::debug!(
                opportunity = id,
                "opportunity gone before its offers were read"
            );
        }
        Ok(rows)
    }
}

super::connector_over_base!(Lever);

impl Lever {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let kind = Kind::of(t.name)?;
        match kind {
            Kind::Opportunities | Kind::Postings | Kind::DeletedOpportunities => {
                self.incremental(t, kind, state, sink, cancel).await
            }
            Kind::Users => self.full(t, kind, sink, cancel).await,
            Kind::Offers => self.offers(t, state, sink, cancel).await,
        }
    }
}

/// Lever's error body: `{"code": "BadRequestError", "message": "…"}`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let Some(message) = v.get("message").and_then(Value::as_str) else {
        return oauth_error(&v);
    };
    Some(match v.get("code").and_then(Value::as_str) {
        Some(code) => format!("{code}: {message}"),
        None => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_name_code_and_message() {
        assert_eq!(
            error_message(br#"{"code":"ResourceNotFound","message":"Opportunity not found"}"#)
                .unwrap(),
            "ResourceNotFound: Opportunity not found"
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}"#)
                .unwrap(),
            "invalid_grant: Unknown or invalid refresh token."
        );
        assert!(error_message(b"<html>").is_none());
    }

    #[test]
    fn paging_ends_on_has_next_false_whatever_next_says() {
        assert!(last_page(&json!({"hasNext": false, "next": "abc"})));
        assert!(!last_page(&json!({"hasNext": true, "next": "abc"})));
        assert!(
            !last_page(&json!({})),
            "no word either way: the pager decides"
        );
        assert!(more_without_next(&json!({"hasNext": true})).is_some());
        assert!(more_without_next(&json!({"hasNext": true, "next": ""})).is_some());
        assert!(more_without_next(&json!({"hasNext": true, "next": "abc"})).is_none());
        assert!(more_without_next(&json!({"hasNext": false})).is_none());
    }
}
