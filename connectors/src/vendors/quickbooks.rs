//! QuickBooks Online: customers, invoices and payments through the query
//! endpoint, deletions through change data capture.
//!
//! - Auth: refresh-token grant (Basic client auth); the refresh token
//!   rotates on every refresh and the toolkit stores the new one before the
//!   access token is used.
//! - Query: `select * from Invoice where MetaData.LastUpdatedTime >= '…'
//!   ORDER BY MetaData.LastUpdatedTime STARTPOSITION n MAXRESULTS 1000`
//!   (1-based, stop on a short page; an empty result is `QueryResponse:{}`).
//!   Customers need `Active IN (true,false)` or inactive ones are hidden.
//! - Deletes: on incremental runs, `GET /cdc?entities=…&changedSince=…`
//!   lists `status: "Deleted"` records; they become tombstone rows with
//!   `deleted = true`. CDC looks back at most 30 days *on Intuit's clock*,
//!   so `changedSince` is anchored on the server's `time` of the last CDC
//!   answer (kept in the stream state as `server_time`; on a first sync the
//!   `time` of its first query answer), minus a small overlap, and capped
//!   at 30 days before the server's `time` of this run. Only when that cap
//!   bites (the last sync really is more than 30 days old on the server's
//!   clock) is a warning logged.
//! - Inclusive cursor: the query asks `>=` the newest `LastUpdatedTime`
//!   seen, so the records at that instant come again; unchanged ones are
//!   not emitted twice (their fingerprints travel in the state), nor are
//!   tombstones a previous run already emitted inside the CDC overlap.
//!   The cursor follows query records only: a deletion's time says nothing
//!   about which modifications were read.
//! - Errors: a `Fault` object, which may arrive in a 200.
//! - Timestamps carry the company's offset (`-07:00`); they are stored as
//!   UTC instants.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use conveyor_config::{PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{Map, Value};

use super::read::{
    fingerprint, get_json, iso_millis, object, saved_instant, Boundary, Emitter, Pages,
};
use super::table::{Col, Table, MONEY};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::json_arrow::parse_timestamp;
use crate::rest::pager::Pager;

/// Since August 2025 lower minor versions are ignored.
const MINOR_VERSION: &str = "75";
/// The largest `MAXRESULTS` the query endpoint takes.
const MAX_RESULTS: u64 = 1000;
/// How far back change data capture can look.
const CDC_DAYS: i64 = 30;
/// Objects one CDC response holds at most.
const CDC_CAP: usize = 1000;
/// How far before the last CDC answer's server time the next one starts:
/// changes committed while that answer was being built.
const CDC_OVERLAP: Duration = Duration::minutes(5);
/// Kept inside the 30 days so that latency never puts a request past them.
const CDC_MARGIN: Duration = Duration::minutes(5);
/// State key: the server's `time` the next CDC look-back starts from.
const SERVER_TIME: &str = "server_time";
/// State key: fingerprints of tombstones inside the next CDC overlap.
const DELETED_SEEN: &str = "deleted_seen";

const COMMON: [(&str, Col); 5] = [
    ("id", Col::Str),
    ("sync_token", Col::Str),
    ("created_at", Col::Instant),
    ("updated_at", Col::Instant),
    ("deleted", Col::Bool),
];

pub const TABLES: &[Table] = &[
    Table {
        name: "customers",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
            ("display_name", Col::Str),
            ("company_name", Col::Str),
            ("given_name", Col::Str),
            ("family_name", Col::Str),
            ("email", Col::Str),
            ("balance", MONEY),
            ("active", Col::Bool),
            ("parent_id", Col::Str),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "invoices",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
            ("doc_number", Col::Str),
            ("txn_date", Col::Date),
            ("due_date", Col::Date),
            ("customer_id", Col::Str),
            ("customer_name", Col::Str),
            ("total_amt", MONEY),
            ("balance", MONEY),
            ("currency", Col::Str),
            ("email_status", Col::Str),
            ("lines", Col::Json),
            ("linked_txn", Col::Json),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "payments",
        primary_key: &["id"],
        cursor: Some("updated_at"),
        columns: &[
            COMMON[0],
            COMMON[1],
            COMMON[2],
            COMMON[3],
            COMMON[4],
            ("txn_date", Col::Date),
            ("customer_id", Col::Str),
            ("customer_name", Col::Str),
            ("total_amt", MONEY),
            ("unapplied_amt", MONEY),
            ("payment_method_id", Col::Str),
            ("deposit_account_id", Col::Str),
            // The invoices this payment settles (`LinkedTxn` of type Invoice).
            ("invoice_ids", Col::Json),
            ("lines", Col::Json),
            ("other", Col::Json),
        ],
    },
];

/// The tables as a closed set, so each `match` over them is exhaustive: a
/// table added to [`TABLES`] must be given its own branch everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Customers,
    Invoices,
    Payments,
}

impl Kind {
    /// The table named `table`; an unknown name is an error, never another
    /// table's branch.
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        match table {
            "customers" => Ok(Kind::Customers),
            "invoices" => Ok(Kind::Invoices),
            "payments" => Ok(Kind::Payments),
            other => Err(ConnectorError::new(
                ErrorKind::Config,
                format!("quickbooks has no table `{other}`"),
            )),
        }
    }

    /// The QuickBooks entity behind the table.
    fn entity(self) -> &'static str {
        match self {
            Kind::Customers => "Customer",
            Kind::Invoices => "Invoice",
            Kind::Payments => "Payment",
        }
    }
}

pub struct QuickBooks {
    base: Base,
}

impl QuickBooks {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![("Accept".into(), "application/json".into())],
            token_fields: Vec::new(),
            token_body: TokenBody::FormWithBasic,
            error_message,
            error_reader: None,
        };
        Ok(QuickBooks {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    fn company_url(&self, path: &str) -> Result<url::Url, ConnectorError> {
        let realm = self.base.cfg.account.as_deref().unwrap_or_default();
        endpoint(
            &self.base.cfg.base_url,
            &format!("v3/company/{realm}/{path}"),
        )
    }

    /// Tombstones for records deleted since the last sync, the server's
    /// `time` of this CDC answer, and the fingerprints to carry over.
    ///
    /// `cursor` is the saved query cursor, `server_now` the server's `time`
    /// of this run's first query answer.
    async fn deletions(
        &self,
        entity: &str,
        state: Option<&Json>,
        cursor: DateTime<Utc>,
        server_now: Option<DateTime<Utc>>,
    ) -> Result<Deletions, ConnectorError> {
        // The window is the server's: 30 days before *its* now.
        let floor = server_now.unwrap_or_else(Utc::now) - Duration::days(CDC_DAYS) + CDC_MARGIN;
        let last_sync = state
            .and_then(|s| s.get(SERVER_TIME))
            .and_then(Value::as_str)
            .and_then(parse_timestamp);
        let from = match last_sync {
            Some(t) if t - CDC_OVERLAP < floor => {
                tracing::warn!(source = %self.base.source, entity, last_sync = %iso_millis(t), "last sync is older than the {CDC_DAYS}-day CDC window (on QuickBooks' clock); deletions before {} cannot be seen", iso_millis(floor));
                floor
            }
            Some(t) => t - CDC_OVERLAP,
            // A state saved before server times were kept: the cursor is
            // older than that sync, so starting there misses nothing CDC
            // still holds (whether the sync was too long ago is unknown).
            None => cursor.max(floor),
        };
        let mut url = self.company_url("cdc")?;
        url.query_pairs_mut()
            .append_pair("entities", entity)
            .append_pair(
                "changedSince",
                &from.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            )
            .append_pair("minorversion", MINOR_VERSION);
        let body = get_json(&self.base.client, url, Some(fault)).await?;
        let answered = server_time(&body);
        let seen_before: std::collections::HashSet<&str> = state
            .and_then(|s| s.get(DELETED_SEEN))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // The next run starts one overlap before this answer's time.
        let next_from = answered.map(|t| t - CDC_OVERLAP);
        let (mut rows, mut carry) = (Vec::new(), Vec::new());
        for resp in body["CDCResponse"].as_array().into_iter().flatten() {
            for qr in resp["QueryResponse"].as_array().into_iter().flatten() {
                let listed = qr[entity].as_array().map_or(0, Vec::len);
                if listed >= CDC_CAP {
                    // CDC has no end bound to shorten the window with: say
                    // that deletions beyond the cap went unseen this run.
                    tracing::warn!(source = %self.base.source, entity, listed, "CDC returned its cap of {CDC_CAP} objects; some deletions may be missed until a later run");
                }
                for r in qr[entity].as_array().into_iter().flatten() {
                    if r["status"] != "Deleted" {
                        continue;
                    }
                    let mut row = Map::new();
                    row.insert("id".into(), r["Id"].clone());
                    row.insert(
                        "updated_at".into(),
                        r["MetaData"]["LastUpdatedTime"].clone(),
                    );
                    row.insert("deleted".into(), Value::Bool(true));
                    let fp = fingerprint(&row);
                    let at = r["MetaData"]["LastUpdatedTime"]
                        .as_str()
                        .and_then(parse_timestamp);
                    if next_from.is_some_and(|n| at.is_none_or(|a| a >= n)) {
                        carry.push(fp.clone());
                    }
                    if !seen_before.contains(fp.as_str()) {
                        rows.push(row);
                    }
                }
            }
        }
        carry.sort();
        carry.dedup();
        Ok(Deletions {
            rows,
            server_time: answered,
            seen: carry,
        })
    }
}

/// What one CDC call found.
struct Deletions {
    rows: Vec<Map<String, Value>>,
    server_time: Option<DateTime<Utc>>,
    seen: Vec<String>,
}

/// The server's clock in an answer (`"time"`, in the company's offset).
fn server_time(body: &Value) -> Option<DateTime<Utc>> {
    body.get("time")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
}

super::connector_over_base!(QuickBooks);

impl QuickBooks {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let kind = Kind::of(t.name)?;
        let entity = kind.entity();
        let saved = state
            .as_ref()
            .and_then(|s| s.get("cursor"))
            .is_some_and(|c| !c.is_null());
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let query = query_text(entity, since);
        let pager = Pager::new(
            PaginationConfig::OffsetLimit {
                offset_param: String::new(),
                limit_param: String::new(),
                limit: MAX_RESULTS,
                start_offset: 1,
            },
            self.company_url("query")?,
            vec![
                ("query".into(), query),
                ("minorversion".into(), MINOR_VERSION.into()),
            ],
            Vec::new(),
        );
        let mut pages = Pages::new(
            &self.base,
            t.name,
            pager,
            &format!("QueryResponse.{entity}"),
        )
        .check_body(fault);
        // Until the read ends, the state it started from (all of it) is safe.
        let resume = match (&state, saved) {
            (Some(s), true) => s.clone(),
            _ => serde_json::json!({ "cursor": since.map(iso_millis) }),
        };
        let mut out = Emitter::new(sink, t, resume);
        let mut boundary = Boundary::resume(state.as_ref(), since);
        // The server's clock when this read began: deletions after it are
        // the next run's to find.
        let mut server_now = None;
        while let Some(page) = pages.next(cancel).await? {
            server_now = server_now.or_else(|| server_time(&page.body));
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let row = project(kind, object(r, entity)?);
                if boundary.fresh(&row, row.get("updated_at")) {
                    rows.push(row);
                }
            }
            out.emit(&rows).await?;
        }
        let mut next = boundary.state();
        let mut next_server_time = server_now;
        // Deletions only matter against rows an earlier run loaded.
        if let (true, Some(since)) = (saved && !cancel.is_cancelled(), since) {
            let gone = self
                .deletions(entity, state.as_ref(), since, server_now)
                .await?;
            out.emit(&gone.rows).await?;
            next_server_time = gone.server_time.or(server_now);
            next[DELETED_SEEN] = serde_json::json!(gone.seen);
        }
        next[SERVER_TIME] = serde_json::json!(next_server_time.map(iso_millis));
        out.finish(next, cancel).await
    }
}

/// The query for one entity from `since` on; `{offset}`/`{limit}` are the pager's.
fn query_text(entity: &str, since: Option<DateTime<Utc>>) -> String {
    let mut conds = Vec::new();
    if let Some(s) = since {
        conds.push(format!(
            "MetaData.LastUpdatedTime >= '{}'",
            s.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        ));
    }
    if entity == "Customer" {
        // Otherwise inactive customers are left out.
        conds.push("Active IN (true,false)".into());
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" where {}", conds.join(" AND "))
    };
    format!("select * from {entity}{filter} ORDER BY MetaData.LastUpdatedTime ASC STARTPOSITION {{offset}} MAXRESULTS {{limit}}")
}

/// Flattens a QuickBooks record into the table's columns; what is not
/// projected is kept in `other`.
fn project(table: Kind, mut r: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    let mut put = |k: &str, v: Value| {
        row.insert(k.to_string(), v);
    };
    let take = |r: &mut Map<String, Value>, k: &str| r.remove(k).unwrap_or(Value::Null);
    let reference = |v: &Value| {
        (
            v.get("value").cloned().unwrap_or(Value::Null),
            v.get("name").cloned().unwrap_or(Value::Null),
        )
    };
    put("id", take(&mut r, "Id"));
    put("sync_token", take(&mut r, "SyncToken"));
    let meta = take(&mut r, "MetaData");
    put(
        "created_at",
        meta.get("CreateTime").cloned().unwrap_or(Value::Null),
    );
    put(
        "updated_at",
        meta.get("LastUpdatedTime").cloned().unwrap_or(Value::Null),
    );
    put("deleted", Value::Bool(false));
    match table {
        Kind::Customers => {
            for (col, field) in [
                ("display_name", "DisplayName"),
                ("company_name", "CompanyName"),
                ("given_name", "GivenName"),
                ("family_name", "FamilyName"),
                ("balance", "Balance"),
                ("active", "Active"),
            ] {
                put(col, take(&mut r, field));
            }
            put(
                "email",
                take(&mut r, "PrimaryEmailAddr")
                    .get("Address")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            put("parent_id", reference(&take(&mut r, "ParentRef")).0);
        }
        Kind::Invoices => {
            for (col, field) in [
                ("doc_number", "DocNumber"),
                ("txn_date", "TxnDate"),
                ("due_date", "DueDate"),
                ("total_amt", "TotalAmt"),
                ("balance", "Balance"),
                ("email_status", "EmailStatus"),
                ("lines", "Line"),
                ("linked_txn", "LinkedTxn"),
            ] {
                put(col, take(&mut r, field));
            }
            let (id, name) = reference(&take(&mut r, "CustomerRef"));
            put("customer_id", id);
            put("customer_name", name);
            put("currency", reference(&take(&mut r, "CurrencyRef")).0);
        }
        Kind::Payments => {
            for (col, field) in [
                ("txn_date", "TxnDate"),
                ("total_amt", "TotalAmt"),
                ("unapplied_amt", "UnappliedAmt"),
            ] {
                put(col, take(&mut r, field));
            }
            let (id, name) = reference(&take(&mut r, "CustomerRef"));
            put("customer_id", id);
            put("customer_name", name);
            put(
                "payment_method_id",
                reference(&take(&mut r, "PaymentMethodRef")).0,
            );
            put(
                "deposit_account_id",
                reference(&take(&mut r, "DepositToAccountRef")).0,
            );
            let lines = take(&mut r, "Line");
            let invoices: Vec<Value> = lines
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|l| l["LinkedTxn"].as_array().cloned().unwrap_or_default())
                .filter(|t| t["TxnType"] == "Invoice")
                .map(|t| t["TxnId"].clone())
                .collect();
            put("invoice_ids", Value::Array(invoices));
            put("lines", lines);
        }
    }
    r.remove("domain");
    r.remove("sparse");
    put(
        "other",
        if r.is_empty() {
            Value::Null
        } else {
            Value::Object(r)
        },
    );
    row
}

/// A `Fault` in a response body, as `type: message; detail (code N)`.
fn fault(body: &Value) -> Option<String> {
    let f = body.get("Fault")?;
    let kind = f.get("type").and_then(Value::as_str).unwrap_or("Fault");
    let errors: Vec<String> = f
        .get("Error")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut s = text("Message");
            let detail = text("Detail");
            if !detail.is_empty() {
                s = format!("{s}; {detail}");
            }
            let code = text("code");
            if !code.is_empty() {
                s = format!("{s} (code {code})");
            }
            s
        })
        .collect();
    Some(format!("{kind}: {}", errors.join(" | ")))
}

fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    fault(&v).or_else(|| oauth_error(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_a_kind_and_an_unknown_name_is_an_error() {
        for t in TABLES {
            assert!(Kind::of(t.name).is_ok(), "{}", t.name);
        }
        let e = Kind::of("bills").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.to_string().contains("no table `bills`"), "{e}");
    }
    use serde_json::json;

    #[test]
    fn queries_use_only_and_and_include_inactive_customers() {
        let since = DateTime::parse_from_rfc3339("2024-06-01T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let q = query_text("Customer", Some(since));
        assert_eq!(q, "select * from Customer where MetaData.LastUpdatedTime >= '2024-06-01T07:00:00+00:00' AND Active IN (true,false) ORDER BY MetaData.LastUpdatedTime ASC STARTPOSITION {offset} MAXRESULTS {limit}");
        assert!(!query_text("Invoice", None).contains(" where "));
    }

    #[test]
    fn faults_read_as_type_message_detail_code() {
        let body = json!({"Fault":{"Error":[{"Message":"Invalid Reference Id","Detail":"Something you're trying to use has been made inactive.","code":"2500","element":""}],"type":"ValidationFault"},"time":"x"});
        assert_eq!(fault(&body).unwrap(), "ValidationFault: Invalid Reference Id; Something you're trying to use has been made inactive. (code 2500)");
        assert!(fault(&json!({"QueryResponse": {}})).is_none());
    }

    #[test]
    fn payments_list_the_invoices_they_settle_and_keep_unknown_fields() {
        let r = json!({"Id":"9","SyncToken":"0","MetaData":{"CreateTime":"2024-06-03T07:15:22-07:00","LastUpdatedTime":"2024-06-04T09:01:10-07:00"},
            "TotalAmt":100.0,"CustomerRef":{"value":"24","name":"Acme"},"PrivateNote":"hi",
            "Line":[{"Amount":100.0,"LinkedTxn":[{"TxnId":"130","TxnType":"Invoice"},{"TxnId":"7","TxnType":"CreditMemo"}]}]});
        let row = project(Kind::Payments, r.as_object().unwrap().clone());
        assert_eq!(row["invoice_ids"], json!(["130"]));
        assert_eq!(row["customer_id"], json!("24"));
        assert_eq!(row["other"], json!({"PrivateNote": "hi"}));
        assert_eq!(row["deleted"], json!(false));
    }
}
