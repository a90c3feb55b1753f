//! HubSpot CRM v3: owners, contacts and deals.
//!
//! - Auth: OAuth refresh-token grant, client id and secret in the form body.
//! - Contacts and deals come from the search API
//!   (`POST /crm/v3/objects/{type}/search`): filtered on the last-modified
//!   property `GTE` the cursor (epoch milliseconds, as a string), sorted
//!   ascending, 200 a page, the `after` cursor in the body. Search stops at
//!   10,000 results per query (a 400 beyond), so the read re-anchors the
//!   filter on the last modification time seen and skips records already
//!   emitted at the same time.
//! - Owners are listed (`GET /crm/v3/owners`, `after` in the URL) in full.
//! - Every property value is a string; the table types them (DECIMAL
//!   amounts, UTC instants, booleans).
//! - Errors: `{"status":"error","message","category","correlationId",…}`.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
    StreamDescriptor,
};
use serde_json::{json, Map, Value};

use super::read::{iso_millis, object, saved_instant, Emitter, Newest, Pages};
use super::table::{Col, Table};
use super::{client, endpoint, oauth_error, selected, table, ClientSpec};
use crate::http::body_pager::BodyPager;
use crate::http::{HttpClient, TokenBody};
use crate::json_arrow::parse_timestamp;
use crate::rest::pager::Pager;

/// The largest search page.
const SEARCH_LIMIT: u64 = 200;
/// Results one search query can page through.
const RESULT_CAP: u64 = 10_000;
/// HubSpot amounts carry whatever precision was typed in.
const AMOUNT: Col = Col::Decimal(20, 6);

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
        .filter(|n| !matches!(*n, "id" | "archived" | "created_at" | "updated_at"))
        .collect()
}

pub struct HubSpot {
    source: String,
    cfg: VendorSourceConfig,
    tables: Vec<&'static Table>,
    client: Arc<HttpClient>,
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
        };
        let client = client(source, &cfg, credentials, spec)?;
        Ok(HubSpot {
            source: source.to_string(),
            tables: selected(&cfg, TABLES),
            cfg,
            client,
        })
    }

    async fn owners(
        &self,
        t: &'static Table,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let paging = PaginationConfig::CursorToken {
            cursor_path: JsonPath::parse("paging.next.after"),
            cursor_param: "after".into(),
        };
        let url = endpoint(&self.cfg.base_url, "crm/v3/owners")?;
        let pager = Pager::new(
            paging,
            url,
            vec![
                ("limit".into(), "100".into()),
                ("archived".into(), "false".into()),
            ],
            Vec::new(),
        );
        let mut pages = Pages::new(&self.client, pager, "results");
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
}

#[async_trait::async_trait]
impl Connector for HubSpot {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.tables.iter().map(|t| t.descriptor()).collect()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = table(&self.source, &self.tables, stream)?;
        if t.name == "owners" {
            return self.owners(t, sink, cancel).await;
        }
        let modified = t.cursor.expect("searched tables have a cursor");
        let since = saved_instant(state.as_ref(), self.cfg.start_date);
        let url = endpoint(
            &self.cfg.base_url,
            &format!("crm/v3/objects/{}/search", t.name),
        )?;
        let mut out = Emitter::new(sink, t, json!({ "cursor": since.map(iso_millis) }));
        let mut newest = Newest::default();
        // (id, modified) already emitted: a re-anchored query starts with them again.
        let mut emitted: HashSet<(String, i64)> = HashSet::new();
        let mut anchor = since.map_or(0, |s| s.timestamp_millis());
        loop {
            let body = json!({
                "filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE", "value": anchor.to_string()}]}],
                "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
                "properties": properties(t),
                "limit": SEARCH_LIMIT,
            });
            let mut pages = Pages::body(
                &self.client,
                BodyPager::new(url.clone(), body, "paging.next.after", "after"),
                "results",
            );
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
                    let id = row
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    last = last.max(at);
                    if emitted.insert((id, at)) {
                        newest.see(row.get(modified));
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
            if !capped || cancel.is_cancelled() {
                break;
            }
            if last <= anchor {
                return Err(ConnectorError::new(
                    ErrorKind::Data,
                    format!("{}: more than {RESULT_CAP} records share the modification time {anchor} ms; HubSpot search cannot page past them", t.name),
                ));
            }
            tracing::debug!(
                table = t.name,
                anchor = last,
                "search cap reached; re-anchoring"
            );
            anchor = last;
        }
        out.finish(newest.state(since), cancel).await
    }
}

/// `{id, properties{…}, createdAt, updatedAt, archived}` → one flat row;
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
