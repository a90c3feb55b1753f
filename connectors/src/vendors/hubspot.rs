//! HubSpot CRM v3: owners, contacts and deals.
//!
//! - Auth: OAuth refresh-token grant, client id and secret in the form body.
//! - Contacts and deals come from the search API
//!   (`POST /crm/v3/objects/{type}/search`): filtered on the last-modified
//!   property `GTE` the cursor (epoch milliseconds, as a string), sorted
//!   ascending, 200 a page, the `after` cursor in the body. Search stops at
//!   10,000 results per query (a 400 beyond), so the read re-anchors the
//!   filter on the last modification time seen and skips records already
//!   emitted at the same time. It re-anchors before paging past 10,000,
//!   and also when a later page is refused with a 400 (a smaller cap than
//!   documented, or results ending early): the cap is HubSpot's, not ours.
//!   The unchanged records at the cursor a previous run ended on are not
//!   emitted again (`read::Boundary`).
//! - A 403 (the app lacks the object's scope, `MISSING_SCOPES`) fails the
//!   stream as unavailable, saying to leave it out.
//! - Deletions are soft: HubSpot archives a deleted contact or deal (its
//!   recycling bin), and search never returns archived records. After the
//!   search, each run pages the archived list
//!   (`GET /crm/v3/objects/{type}?archived=true`) and emits the records
//!   archived since the last run with `archived = true` and `archived_at`,
//!   so the warehouse row is upserted, never removed.
//! - Owners are listed (`GET /crm/v3/owners`, `after` in the URL) in full.
//! - Every property value is a string; the table types them (DECIMAL
//!   amounts, UTC instants, booleans).
//! - Errors: `{"status":"error","message","category","correlationId",…}`.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{json, Map, Value};

use super::read::{iso_millis, object, saved_instant, Boundary, Emitter, Newest, Pages};
use super::table::{Col, Table};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::body_pager::BodyPager;
use crate::http::TokenBody;
use crate::json_arrow::parse_timestamp;
use crate::rest::pager::Pager;

/// The largest search page.
const SEARCH_LIMIT: u64 = 200;
/// Results one search query can page through.
const RESULT_CAP: u64 = 10_000;
/// The largest list page.
const LIST_LIMIT: &str = "100";
/// HubSpot amounts carry whatever precision was typed in.
const AMOUNT: Col = Col::Decimal(20, 6);
/// How late an archived record may show in the archived list after its
/// `archivedAt`, beyond the listing's own duration (index lag, clock noise).
const ARCHIVE_VISIBILITY_MARGIN: Duration = Duration::hours(1);
/// The state key of the archived list's lower bound.
const ARCHIVED_SINCE: &str = "archived_since";

pub const TABLES: &[Table] = &[
    Table {
        name: "owners",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Str),
            ("email", Col::Str),
            ("first_name", Col::Str),
            ("last_name", Col::Str),
            ("user_id", Col::Int),
            ("archived", Col::Bool),
            ("teams", Col::Json),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
    Table {
        name: "contacts",
        primary_key: &["id"],
        cursor: Some("lastmodifieddate"),
        columns: &[
            ("id", Col::Str),
            ("email", Col::Str),
            ("firstname", Col::Str),
            ("lastname", Col::Str),
            ("lifecyclestage", Col::Str),
            ("hs_lead_status", Col::Str),
            ("hubspot_owner_id", Col::Str),
            ("createdate", Col::Instant),
            ("lastmodifieddate", Col::Instant),
            ("archived", Col::Bool),
            ("archived_at", Col::Instant),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
    Table {
        name: "deals",
        primary_key: &["id"],
        cursor: Some("hs_lastmodifieddate"),
        columns: &[
            ("id", Col::Str),
            ("dealname", Col::Str),
            ("amount", AMOUNT),
            ("dealstage", Col::Str),
            ("pipeline", Col::Str),
            ("closedate", Col::Instant),
            ("createdate", Col::Instant),
            ("hs_lastmodifieddate", Col::Instant),
            ("hubspot_owner_id", Col::Str),
            ("hs_is_closed_won", Col::Bool),
            ("archived", Col::Bool),
            ("archived_at", Col::Instant),
            ("created_at", Col::Instant),
            ("updated_at", Col::Instant),
        ],
    },
];

/// The properties a search asks for: the table's columns that are properties.
fn properties(t: &Table) -> Vec<&'static str> {
    t.columns
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            !matches!(
                *n,
                "id" | "archived" | "archived_at" | "created_at" | "updated_at"
            )
        })
        .collect()
}

pub struct HubSpot {
    base: Base,
}

impl HubSpot {
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
        Ok(HubSpot {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    /// Pages of a list endpoint (`after` cursor in the URL, 100 a page).
    fn list_pages(
        &self,
        stream: &str,
        path: &str,
        params: Vec<(String, String)>,
    ) -> Result<Pages<'_>, ConnectorError> {
        let paging = PaginationConfig::CursorToken {
            cursor_path: JsonPath::parse("paging.next.after"),
            cursor_param: "after".into(),
        };
        let url = endpoint(&self.base.cfg.base_url, path)?;
        let mut query = vec![("limit".to_string(), LIST_LIMIT.to_string())];
        query.extend(params);
        let pager = Pager::new(paging, url, query, Vec::new());
        Ok(Pages::new(&self.base, stream, pager, "results"))
    }

    async fn owners(
        &self,
        t: &'static Table,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let mut pages = self.list_pages(
            t.name,
            "crm/v3/owners",
            vec![("archived".into(), "false".into())],
        )?;
        let mut out = Emitter::new(sink, t, json!({ "cursor": null }));
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let mut o = object(r, "owner")?;
                for (col, field) in [
                    ("first_name", "firstName"),
                    ("last_name", "lastName"),
                    ("user_id", "userId"),
                    ("created_at", "createdAt"),
                    ("updated_at", "updatedAt"),
                ] {
                    let v = o.remove(field).unwrap_or(Value::Null);
                    o.insert(col.into(), v);
                }
                rows.push(o);
            }
            out.emit(&rows).await?;
        }
        out.finish(json!({ "cursor": null }), cancel).await
    }

    /// Live records modified since `since`, through the search API; returns
    /// the newest modification time seen and the records at it.
    async fn search(
        &self,
        t: &'static Table,
        state: Option<&Json>,
        since: Option<DateTime<Utc>>,
        out: &mut Emitter<'_>,
        cancel: &CancelFlag,
    ) -> Result<Boundary, ConnectorError> {
        let modified = t.cursor.ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("hubspot table `{}` has no cursor to search by", t.name),
            )
        })?;
        let url = endpoint(
            &self.base.cfg.base_url,
            &format!("crm/v3/objects/{}/search", t.name),
        )?;
        // The records at the newest time already emitted (by the last run,
        // or by this one before a re-anchored query starts with them again).
        let mut boundary = Boundary::resume(state, since);
        let mut anchor = since.map_or(0, |s| s.timestamp_millis());
        loop {
            let body = json!({
                "filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE", "value": anchor.to_string()}]}],
                "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                "properties": properties(t),
                "limit": SEARCH_LIMIT,
            });
            // A 400 on a later page is the result cap (a 400 on the first
            // page is an ordinary error).
            let mut pages = Pages::body(
                &self.base,
                t.name,
                BodyPager::new(url.clone(), body, "paging.next.after", "after"),
                "results",
            )
            .stop_on(400, false);
            let (mut capped, mut last) = (false, anchor);
            while let Some(page) = pages.next(cancel).await? {
                let mut rows = Vec::with_capacity(page.records.len());
                for r in page.records {
                    let row = flatten(object(r, t.name)?);
                    let at = row
                        .get(modified)
                        .and_then(Value::as_str)
                        .and_then(parse_timestamp)
                        .map_or(0, |d: DateTime<Utc>| d.timestamp_millis());
                    last = last.max(at);
                    if boundary.fresh(&row, row.get(modified)) {
                        rows.push(row);
                    }
                }
                out.emit(&rows).await?;
                // Paging on would pass the search cap (a 400): re-anchor instead.
                if pages
                    .body_cursor()
                    .and_then(|a| a.parse::<u64>().ok())
                    .is_some_and(|a| a >= RESULT_CAP)
                {
                    capped = true;
                    break;
                }
            }
            let refused = pages.stopped().map(|s| s.error.clone());
            if refused.is_some() {
                tracing::debug!(
                    table = t.name,
                    "search refused a later page; taking it for the result cap"
                );
                capped = true;
            }
            if !capped || cancel.is_cancelled() {
                return Ok(boundary);
            }
            if last <= anchor {
                // No progress: re-anchoring would ask the same again.
                return Err(refused.unwrap_or_else(|| ConnectorError::new(
                    ErrorKind::Data,
                    format!("{}: more than {RESULT_CAP} records share the modification time {anchor} ms; HubSpot search cannot page past them", t.name),
                )));
            }
            tracing::debug!(
                table = t.name,
                anchor = last,
                "search cap reached; re-anchoring"
            );
            anchor = last;
        }
    }

    /// Archived (deleted) records, which search never returns: emits those
    /// archived at or after `since` (all of them without one) and returns
    /// the bound for the next run.
    ///
    /// The archived list cannot be filtered by time (no filter parameters,
    /// and search ignores archived records), so every run pages all of it;
    /// HubSpot purges archived records after 90 days, which bounds it.
    /// Only emitting is narrowed. A record archived while the list is being
    /// paged may land behind the pages already read while a later one is
    /// seen; such a record's `archivedAt` is at most one listing
    /// duration (measured here, on HubSpot's clock rate) before the newest
    /// `archivedAt` seen, so the next bound is that newest instant minus the
    /// listing's duration and a margin — it never skips a record. Records
    /// archived within that window of the newest archive are emitted again
    /// on later runs (unchanged; the merge by id absorbs them), older ones
    /// are not.
    async fn archived(
        &self,
        t: &'static Table,
        since: Option<DateTime<Utc>>,
        out: &mut Emitter<'_>,
        cancel: &CancelFlag,
    ) -> Result<Option<DateTime<Utc>>, ConnectorError> {
        let started = Instant::now();
        let params = vec![
            ("archived".to_string(), "true".to_string()),
            ("properties".to_string(), properties(t).join(",")),
        ];
        let mut pages = self.list_pages(t.name, &format!("crm/v3/objects/{}", t.name), params)?;
        let mut newest = Newest::default();
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let row = flatten(object(r, t.name)?);
                let at = row
                    .get("archived_at")
                    .and_then(Value::as_str)
                    .and_then(parse_timestamp);
                newest.see(row.get("archived_at"));
                // A record without `archivedAt` cannot be placed in time: keep it.
                let recent = match (since, at) {
                    (Some(since), Some(at)) => at >= since,
                    _ => true,
                };
                if recent {
                    rows.push(row);
                }
            }
            out.emit(&rows).await?;
        }
        let window = Duration::from_std(started.elapsed()).unwrap_or(Duration::days(1))
            + ARCHIVE_VISIBILITY_MARGIN;
        Ok(newest
            .0
            .and_then(|n| n.checked_sub_signed(window))
            .max(since))
    }
}

super::connector_over_base!(HubSpot);

impl HubSpot {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        if t.name == "owners" {
            return self.owners(t, sink, cancel).await;
        }
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let archived_since = saved_archived_since(state.as_ref());
        let resume = match &state {
            Some(s) if !s["cursor"].is_null() => s.clone(),
            _ => with_archived_since(json!({ "cursor": since.map(iso_millis) }), archived_since),
        };
        let mut out = Emitter::new(sink, t, resume);
        // Search first, archived list last: a record archived during the
        // run ends up archived (the last occurrence wins in the merge).
        let boundary = self
            .search(t, state.as_ref(), since, &mut out, cancel)
            .await?;
        let next_archived_since = self.archived(t, archived_since, &mut out, cancel).await?;
        let state = with_archived_since(boundary.state(), next_archived_since);
        out.finish(state, cancel).await
    }
}

/// The archived list's lower bound saved in a stream state.
fn saved_archived_since(state: Option<&Json>) -> Option<DateTime<Utc>> {
    state
        .and_then(|s| s.get(ARCHIVED_SINCE))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
}

/// `state` with the archived list's lower bound added.
fn with_archived_since(mut state: Json, since: Option<DateTime<Utc>>) -> Json {
    state[ARCHIVED_SINCE] = json!(since.map(iso_millis));
    state
}

/// `{id, properties{…}, createdAt, updatedAt, archived, archivedAt}` → one flat row;
/// empty-string properties are absent values.
fn flatten(mut r: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    if let Some(Value::Object(props)) = r.remove("properties") {
        for (k, v) in props {
            row.insert(k, if v == "" { Value::Null } else { v });
        }
    }
    row.insert(
        "id".into(),
        r.remove("id")
            .map(|v| {
                if let Value::Number(n) = v {
                    Value::String(n.to_string())
                } else {
                    v
                }
            })
            .unwrap_or(Value::Null),
    );
    row.insert(
        "created_at".into(),
        r.remove("createdAt").unwrap_or(Value::Null),
    );
    row.insert(
        "updated_at".into(),
        r.remove("updatedAt").unwrap_or(Value::Null),
    );
    row.insert(
        "archived".into(),
        r.remove("archived").unwrap_or(Value::Null),
    );
    row.insert(
        "archived_at".into(),
        r.remove("archivedAt").unwrap_or(Value::Null),
    );
    row
}

/// `CATEGORY: message (detail; …)`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let Some(message) = v.get("message").and_then(Value::as_str) else {
        return oauth_error(&v);
    };
    let category = v
        .get("category")
        .or(v.get("errorType"))
        .and_then(Value::as_str);
    let details: Vec<&str> = v
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .filter(|m| *m != message)
        .collect();
    let mut s = match category {
        Some(c) => format!("{c}: {message}"),
        None => message.to_string(),
    };
    if !details.is_empty() {
        s = format!("{s} ({})", details.join("; "));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_flatten_and_empty_strings_are_absent() {
        let r = json!({"id": "512", "properties": {"dealname": "Acme renewal", "amount": "1500.00", "closedate": ""}, "createdAt": "2024-05-01T14:03:11.321Z", "updatedAt": "2024-06-30T09:12:44.001Z", "archived": false});
        let row = flatten(r.as_object().unwrap().clone());
        assert_eq!(row["amount"], json!("1500.00"));
        assert_eq!(row["closedate"], Value::Null);
        assert_eq!(row["created_at"], json!("2024-05-01T14:03:11.321Z"));
    }

    #[test]
    fn errors_name_category_and_message() {
        let body = br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c-1","policyName":"SECONDLY"}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "RATE_LIMIT: You have reached your secondly limit."
        );
    }
}
