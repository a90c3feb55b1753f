//! Salesforce REST query: opportunities, accounts and users, read by SOQL.
//!
//! - Auth: OAuth at `<My Domain or login host>/services/oauth2/token`,
//!   client id and secret in the form; the refresh-token grant, or client
//!   credentials without a refresh token. The answer has no `expires_in`:
//!   the token is kept until a 401 (`INVALID_SESSION_ID`), then the toolkit
//!   fetches a new one once and repeats the request. Its `instance_url` is the API host; `base_url` only issues
//!   tokens (when the answer names no host, `base_url` is the API too).
//! - Query: `GET /services/data/<api_version>/queryAll?q=<SOQL>`; `queryAll`
//!   rather than `query` so deleted (recycle-bin) records arrive too, with
//!   `IsDeleted = true`, and the warehouse row is upserted, never removed.
//!   Users cannot be deleted (no `IsDeleted` field) [?].
//! - Incremental on `SystemModstamp`: `WHERE SystemModstamp >= <literal>
//!   ORDER BY SystemModstamp, Id`, the literal **unquoted** (a quoted one is
//!   a `MALFORMED_QUERY`), a look-back before the saved cursor with the
//!   records already emitted in it recognised (`lever/window.rs`, shared).
//! - Paging: follow `nextRecordsUrl` (a path on the API host) until
//!   `done: true`; batches of up to 2000.
//! - Datetimes are `2024-06-28T17:01:02.000+0000` (no colon in the offset),
//!   stored as UTC instants; `Amount` is a double, stored as DECIMAL(18,2);
//!   `CloseDate` a date. Columns are the field names in snake_case
//!   (`StageName` → `stage_name`), like the other vendors' tables.
//! - Errors are a JSON array `[{"message", "errorCode"}]`. Going over the
//!   org's rolling 24-hour request allocation is a **403**
//!   `REQUEST_LIMIT_EXCEEDED` (not a 429): retrying within the run cannot
//!   help, so it fails the run as transient, saying so. Another 403 on a
//!   stream fails it as unavailable, saying to leave it out.
//! - Guessed beyond the reference: the account and user field lists, and
//!   that `queryAll` serves `User` (it has no `IsDeleted`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig, SALESFORCE_API_VERSION};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
    StreamDescriptor,
};
use serde_json::{Map, Value};

use super::lever::window::Window;
use super::read::{object, Emitter, Pages};
use super::table::{Col, Table, MONEY};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;

/// The field every incremental query filters and sorts on.
const CURSOR_FIELD: &str = "SystemModstamp";

/// The error code of an exhausted request allocation.
const LIMIT_EXCEEDED: &str = "REQUEST_LIMIT_EXCEEDED";

/// One stream: its table, the sObject it queries and the SOQL fields
/// (the table's columns are these in snake_case).
struct SObject {
    table: &'static Table,
    object: &'static str,
    fields: &'static [&'static str],
}

pub const TABLES: &[Table] = &[
    Table {
        name: "opportunities",
        primary_key: &["id"],
        cursor: Some("system_modstamp"),
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("account_id", Col::Str),
            ("owner_id", Col::Str),
            ("stage_name", Col::Str),
            ("amount", MONEY),
            ("close_date", Col::Date),
            ("probability", Col::Float),
            ("is_closed", Col::Bool),
            ("is_won", Col::Bool),
            ("forecast_category_name", Col::Str),
            ("created_date", Col::Instant),
            ("last_modified_date", Col::Instant),
            ("system_modstamp", Col::Instant),
            ("is_deleted", Col::Bool),
        ],
    },
    // Fields guessed beyond the reference (standard Account fields).
    Table {
        name: "accounts",
        primary_key: &["id"],
        cursor: Some("system_modstamp"),
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("owner_id", Col::Str),
            ("type", Col::Str),
            ("industry", Col::Str),
            ("created_date", Col::Instant),
            ("system_modstamp", Col::Instant),
            ("is_deleted", Col::Bool),
        ],
    },
    // Fields guessed beyond the reference (standard User fields).
    Table {
        name: "users",
        primary_key: &["id"],
        cursor: Some("system_modstamp"),
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("email", Col::Str),
            ("is_active", Col::Bool),
            ("system_modstamp", Col::Instant),
        ],
    },
];

const OBJECTS: &[SObject] = &[
    SObject {
        table: &TABLES[0],
        object: "Opportunity",
        fields: &[
            "Id",
            "Name",
            "AccountId",
            "OwnerId",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "IsClosed",
            "IsWon",
            "ForecastCategoryName",
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "IsDeleted",
        ],
    },
    SObject {
        table: &TABLES[1],
        object: "Account",
        fields: &[
            "Id",
            "Name",
            "OwnerId",
            "Type",
            "Industry",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
        ],
    },
    SObject {
        table: &TABLES[2],
        object: "User",
        fields: &["Id", "Name", "Email", "IsActive", "SystemModstamp"],
    },
];

pub struct Salesforce {
    base: Base,
    api_version: String,
}

impl Salesforce {
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
        let api_version = cfg
            .api_version
            .clone()
            .unwrap_or_else(|| SALESFORCE_API_VERSION.to_string());
        let base = Base::new(source, cfg, credentials, spec, TABLES)?;
        // No `expires_in`: a session lasts until refused (org-configured).
        base.client.keep_tokens_until_refused();
        Ok(Salesforce { base, api_version })
    }

    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let o = OBJECTS
            .iter()
            .find(|o| std::ptr::eq(o.table, t))
            .expect("every table has its sObject");
        let start = self
            .base
            .cfg
            .start_date
            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        let mut window = Window::resume(state.as_ref(), start);
        let soql = soql(
            o,
            window.start_ms().and_then(DateTime::from_timestamp_millis),
        );
        // The token names the API host; fetch it before the first query.
        let host = match self.base.client.instance_url().await? {
            Some(u) => u,
            None => self.base.cfg.base_url.clone(),
        };
        let url = endpoint(
            &host,
            &format!("services/data/{}/queryAll", self.api_version),
        )?;
        let paging = PaginationConfig::NextUrl {
            next_path: JsonPath::parse("nextRecordsUrl"),
            count_path: None,
            min_count: 1,
        };
        let pager = Pager::new(paging, url, vec![("q".into(), soql)], Vec::new());
        let mut pages = Pages::new(&self.base, t.name, pager, "records")
            .last_page_when(|b| b.get("done").and_then(Value::as_bool) == Some(true));
        let resume = state.unwrap_or_else(|| window.state());
        let mut out = Emitter::new(sink, t, resume);
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let row = project(object(r, o.object)?);
                if window.fresh(&row, row.get("system_modstamp")) {
                    rows.push(row);
                }
            }
            out.emit(&rows).await?;
        }
        out.finish(window.state(), cancel).await
    }
}

#[async_trait::async_trait]
impl Connector for Salesforce {
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
        self.read_stream(stream, state, sink, cancel)
            .await
            .map_err(|e| {
                self.base
                    .explain(stream, limit_exceeded(&self.base.source, e))
            })
    }
}

/// An exhausted allocation says so (it arrives as a 403, which would
/// otherwise read as a missing permission).
fn limit_exceeded(source: &str, e: ConnectorError) -> ConnectorError {
    if !e.message.contains(LIMIT_EXCEEDED) {
        return e;
    }
    ConnectorError::new(
        ErrorKind::Transient,
        format!(
            "source {source}: the Salesforce org has used up its API request allocation \
             (a rolling 24 hours, shared by every integration of the org), so it refuses \
             requests until usage falls: {}. Not retried now, since minutes do not help; \
             the next scheduled sync tries again (usage: Setup → Company Information, or \
             /limits; a larger allocation comes from Salesforce).",
            e.message
        ),
    )
}

/// `SELECT … FROM <object> [WHERE SystemModstamp >= <literal>] ORDER BY
/// SystemModstamp, Id`: the literal unquoted, to the second (floored: the
/// look-back makes an earlier start harmless).
fn soql(o: &SObject, since: Option<DateTime<Utc>>) -> String {
    let filter = since
        .map(|s| {
            format!(
                " WHERE {CURSOR_FIELD} >= {}",
                s.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .unwrap_or_default();
    format!(
        "SELECT {} FROM {}{filter} ORDER BY {CURSOR_FIELD}, Id",
        o.fields.join(", "),
        o.object
    )
}

/// A record without its `attributes`, every field in snake_case.
fn project(mut r: Map<String, Value>) -> Map<String, Value> {
    r.remove("attributes");
    r.into_iter().map(|(k, v)| (snake(&k), v)).collect()
}

/// `StageName` → `stage_name`, `SystemModstamp` → `system_modstamp`,
/// `Custom_Field__c` → `custom_field__c`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    for c in name.chars() {
        if c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        prev = Some(c);
    }
    out
}

/// `ERROR_CODE: message` for each entry of Salesforce's error array; the
/// token endpoint's OAuth fields otherwise.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let Some(list) = v.as_array() else {
        return oauth_error(&v);
    };
    let parts: Vec<String> = list
        .iter()
        .filter_map(|e| {
            let message = e.get("message").and_then(Value::as_str)?;
            Some(match e.get("errorCode").and_then(Value::as_str) {
                Some(code) => format!("{code}: {message}"),
                None => message.to_string(),
            })
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_become_snake_case() {
        assert_eq!(snake("StageName"), "stage_name");
        assert_eq!(snake("SystemModstamp"), "system_modstamp");
        assert_eq!(snake("ForecastCategoryName"), "forecast_category_name");
        assert_eq!(snake("Id"), "id");
        assert_eq!(snake("Custom_Field__c"), "custom_field__c");
        // Every declared column is a queried field's name.
        for o in OBJECTS {
            let cols: Vec<String> = o.fields.iter().map(|f| snake(f)).collect();
            let declared: Vec<&str> = o.table.columns.iter().map(|(n, _)| *n).collect();
            assert_eq!(cols, declared, "{}", o.object);
        }
    }

    #[test]
    fn the_query_filters_on_an_unquoted_literal_and_sorts() {
        let since = DateTime::parse_from_rfc3339("2024-06-01T08:55:30.250Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            soql(&OBJECTS[2], Some(since)),
            "SELECT Id, Name, Email, IsActive, SystemModstamp FROM User WHERE SystemModstamp >= 2024-06-01T08:55:30Z ORDER BY SystemModstamp, Id"
        );
        assert!(!soql(&OBJECTS[0], None).contains("WHERE"));
    }

    #[test]
    fn errors_are_an_array_of_codes_and_messages() {
        let body = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(
            error_message(body).unwrap(),
            "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."
        );
        let token =
            br#"{"error":"invalid_client","error_description":"invalid client credentials"}"#;
        assert_eq!(
            error_message(token).unwrap(),
            "invalid_client: invalid client credentials"
        );
        let row = project(
            json!({"attributes": {"type": "User"}, "IsActive": true})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(Value::Object(row), json!({"is_active": true}));
    }
}
