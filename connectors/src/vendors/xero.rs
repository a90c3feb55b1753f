//! Xero Accounting: contacts, invoices, their line items and payments of one
//! organisation (tenant), read incrementally with `If-Modified-Since`.
//!
//! - Auth: `POST https://identity.xero.com/connect/token` with Basic
//!   `client_id:client_secret`; `grant_type=refresh_token` (30-minute
//!   access tokens; the refresh token rotates on every refresh and the
//!   toolkit stores the new one before the access token is used), or
//!   `client_credentials` for a custom connection (no refresh token
//!   configured).
//! - Every call sends `xero-tenant-id` and `Accept: application/json`:
//!   without the latter Xero answers XML (the toolkit's reader then says
//!   so instead of a bare parse error).
//! - Paging: `page=1,2,…&pageSize=1000` (the largest Xero takes); the read
//!   ends at a short page or past `pagination.pageCount`. Invoices carry
//!   their `LineItems` only when `page` is sent, which it always is here.
//! - Incremental: `If-Modified-Since: <cursor>` (UTC, whole seconds) is a
//!   filter — records with `UpdatedDateUTC` at or after it — not a cache
//!   validator. The header has no milliseconds, so the cursor is the
//!   second of the newest `UpdatedDateUTC` seen; the records within that
//!   second come again, and unchanged ones are not emitted twice
//!   (`read::Boundary`, which judges records by their second). `order=UpdatedDateUTC ASC` keeps pages in cursor
//!   order.
//! - Deletions: a deleted or voided invoice keeps its row with `status`
//!   DELETED / VOIDED (Xero lists them, and they are modifications, so
//!   the incremental read sees them); payments likewise with DELETED.
//!   Archived contacts need `includeArchived=true`, which is sent.
//! - Dates are MS-JSON, `"/Date(1539993600000+0000)/"`: milliseconds since
//!   the epoch in UTC, with the organisation's offset appended. Instants are
//!   stored as UTC; date-only fields (`Date`, `DueDate`) as the calendar
//!   date in that offset (Xero sends midnight `+0000`, so the date is the
//!   one shown in Xero).
//! - Rate limits: 60 calls a minute per tenant; a 429 carries `Retry-After`,
//!   which the toolkit waits out (its 60 a minute are kept to by default).
//! - Errors: `{"ErrorNumber":10,"Type":"ValidationException","Message":…,
//!   "Elements":[{"ValidationErrors":[{"Message":…}]}]}` and, for 401/403,
//!   `{"Title":"Unauthorized","Status":401,"Detail":…}`.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{Map, Value};

use super::read::{iso_millis, object, saved_instant, Boundary, Emitter, Pages};
use super::table::{Col, Table, MONEY};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;

/// The largest `pageSize` Xero takes.
const PAGE_SIZE: u64 = 1000;
/// Quantities and unit prices: Xero keeps up to four decimals (`unitdp=4`).
const FOUR_DP: Col = Col::Decimal(18, 4);

pub const TABLES: &[Table] = &[
    Table {
        name: "contacts",
        primary_key: &["contact_id"],
        cursor: Some("updated_at"),
        columns: &[
            ("contact_id", Col::Str),
            ("contact_number", Col::Str),
            ("account_number", Col::Str),
            // ACTIVE, ARCHIVED or GDPRREQUEST.
            ("status", Col::Str),
            ("name", Col::Str),
            ("first_name", Col::Str),
            ("last_name", Col::Str),
            ("email", Col::Str),
            ("is_customer", Col::Bool),
            ("is_supplier", Col::Bool),
            ("default_currency", Col::Str),
            ("tax_number", Col::Str),
            ("updated_at", Col::Instant),
            ("addresses", Col::Json),
            ("phones", Col::Json),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "invoices",
        primary_key: &["invoice_id"],
        cursor: Some("updated_at"),
        columns: &[
            ("invoice_id", Col::Str),
            ("invoice_number", Col::Str),
            ("reference", Col::Str),
            // ACCREC (a sales invoice) or ACCPAY (a bill).
            ("type", Col::Str),
            // DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED or DELETED.
            ("status", Col::Str),
            ("contact_id", Col::Str),
            ("contact_name", Col::Str),
            ("date", Col::Date),
            ("due_date", Col::Date),
            ("fully_paid_on_date", Col::Date),
            ("line_amount_types", Col::Str),
            ("sub_total", MONEY),
            ("total_tax", MONEY),
            ("total", MONEY),
            ("amount_due", MONEY),
            ("amount_paid", MONEY),
            ("amount_credited", MONEY),
            ("currency_code", Col::Str),
            ("currency_rate", Col::Float),
            ("updated_at", Col::Instant),
            // `{PaymentID, Date, Amount}` of the payments applied.
            ("payments", Col::Json),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "invoice_line_items",
        primary_key: &["line_item_id"],
        cursor: Some("invoice_updated_at"),
        columns: &[
            ("line_item_id", Col::Str),
            ("invoice_id", Col::Str),
            ("invoice_number", Col::Str),
            ("invoice_type", Col::Str),
            ("invoice_status", Col::Str),
            // The line's position on the invoice, from 1.
            ("line_number", Col::Int),
            ("description", Col::Str),
            ("quantity", FOUR_DP),
            ("unit_amount", FOUR_DP),
            ("line_amount", MONEY),
            ("tax_amount", MONEY),
            ("discount_rate", Col::Float),
            ("account_code", Col::Str),
            ("item_code", Col::Str),
            ("tax_type", Col::Str),
            ("tracking", Col::Json),
            ("invoice_updated_at", Col::Instant),
            ("other", Col::Json),
        ],
    },
    Table {
        name: "payments",
        primary_key: &["payment_id"],
        cursor: Some("updated_at"),
        columns: &[
            ("payment_id", Col::Str),
            // The invoice it pays (NULL for a credit note, prepayment or
            // overpayment, which stay in `other`).
            ("invoice_id", Col::Str),
            ("invoice_number", Col::Str),
            ("invoice_type", Col::Str),
            ("contact_id", Col::Str),
            ("contact_name", Col::Str),
            ("date", Col::Date),
            ("amount", MONEY),
            ("bank_amount", MONEY),
            ("currency_rate", Col::Float),
            ("reference", Col::Str),
            // ACCRECPAYMENT, ACCPAYPAYMENT, …
            ("payment_type", Col::Str),
            // AUTHORISED or DELETED.
            ("status", Col::Str),
            ("is_reconciled", Col::Bool),
            ("account_id", Col::Str),
            ("account_code", Col::Str),
            ("updated_at", Col::Instant),
            ("other", Col::Json),
        ],
    },
];

/// The tables as a closed set, so each `match` over them is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contacts,
    Invoices,
    LineItems,
    Payments,
}

impl Kind {
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        match table {
            "contacts" => Ok(Kind::Contacts),
            "invoices" => Ok(Kind::Invoices),
            "invoice_line_items" => Ok(Kind::LineItems),
            "payments" => Ok(Kind::Payments),
            other => Err(ConnectorError::new(
                ErrorKind::Config,
                format!("xero has no table `{other}`"),
            )),
        }
    }

    /// The endpoint, and the key its records come under.
    fn endpoint(self) -> &'static str {
        match self {
            Kind::Contacts => "Contacts",
            Kind::Invoices | Kind::LineItems => "Invoices",
            Kind::Payments => "Payments",
        }
    }
}

pub struct Xero {
    base: Base,
}

impl Xero {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let tenant = cfg.account.clone().unwrap_or_default();
        let spec = ClientSpec {
            headers: vec![
                // Xero's default is XML.
                ("Accept".into(), "application/json".into()),
                ("xero-tenant-id".into(), tenant),
            ],
            token_fields: Vec::new(),
            token_body: TokenBody::FormWithBasic,
            error_message,
            error_reader: None,
        };
        Ok(Xero {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }
}

super::connector_over_base!(Xero);

impl Xero {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let kind = Kind::of(t.name)?;
        let since = saved_instant(state.as_ref(), self.base.cfg.start_date);
        let mut params = vec![("order".to_string(), "UpdatedDateUTC ASC".to_string())];
        if kind == Kind::Contacts {
            // Otherwise archived contacts are left out.
            params.push(("includeArchived".into(), "true".into()));
        }
        let pager = Pager::new(
            PaginationConfig::PageNumber {
                page_param: "page".into(),
                size_param: "pageSize".into(),
                size: PAGE_SIZE,
                start_page: 1,
                total_pages_header: None,
            },
            endpoint(
                &self.base.cfg.base_url,
                &format!("api.xro/2.0/{}", kind.endpoint()),
            )?,
            params,
            Vec::new(),
        )
        .with_total_pages_at(JsonPath::parse("pagination.pageCount"));
        let mut pages = Pages::new(&self.base, t.name, pager, kind.endpoint());
        if let Some(s) = since {
            pages = pages.header("If-Modified-Since", if_modified_since(s));
        }
        let resume = match &state {
            Some(s) if !s["cursor"].is_null() => s.clone(),
            _ => serde_json::json!({ "cursor": since.map(iso_millis) }),
        };
        // Invoices keep their lines themselves when the lines table is not read.
        let keep_lines = !self
            .base
            .tables
            .iter()
            .any(|t| t.name == "invoice_line_items");
        let cursor = t.cursor.expect("every Xero table has a cursor");
        let mut out = Emitter::new(sink, t, resume);
        let mut boundary = Boundary::resume(state.as_ref(), since);
        while let Some(page) = pages.next(cancel).await? {
            let mut rows = Vec::with_capacity(page.records.len());
            for r in page.records {
                let r = object(r, kind.endpoint())?;
                let projected = match kind {
                    Kind::Contacts => vec![contact(r)],
                    Kind::Invoices => vec![invoice(r, keep_lines)],
                    Kind::LineItems => line_items(r),
                    Kind::Payments => vec![payment(r)],
                };
                for row in projected {
                    // Judged by the second: all the header can ask from.
                    let at = row.get(cursor).and_then(whole_second);
                    if boundary.fresh(&row, at.as_ref()) {
                        rows.push(row);
                    }
                }
            }
            out.emit(&rows).await?;
        }
        out.finish(boundary.state(), cancel).await
    }
}

/// An instant with its fraction of a second dropped.
fn whole_second(v: &Value) -> Option<Value> {
    let t = crate::json_arrow::parse_timestamp(v.as_str()?)?;
    let t = DateTime::from_timestamp(t.timestamp(), 0)?;
    Some(Value::String(iso_millis(t)))
}

/// `2024-06-01T00:00:00`: the form Xero documents (UTC, whole seconds).
fn if_modified_since(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `"/Date(1539993600000+0000)/"` → (the instant, the offset it was shown in);
/// `"/Date(1552326816230)/"` has none (UTC).
fn ms_json(v: &Value) -> Option<(DateTime<Utc>, FixedOffset)> {
    let inner = v.as_str()?.strip_prefix("/Date(")?.strip_suffix(")/")?;
    // The sign of the offset is the first `+`/`-` after the digits (the
    // milliseconds themselves may be negative, before 1970).
    let digits_end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let (ms, offset) = inner.split_at(digits_end);
    let at = DateTime::from_timestamp_millis(ms.parse().ok()?)?;
    let offset = if offset.is_empty() {
        FixedOffset::east_opt(0)?
    } else {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let hhmm = &offset[1..];
        if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m): (i32, i32) = (hhmm[..2].parse().ok()?, hhmm[2..].parse().ok()?);
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))?
    };
    Some((at, offset))
}

/// An MS-JSON instant as RFC 3339 UTC; anything else as sent (the table
/// keeps a value that does not parse by widening the column).
fn instant(v: Value) -> Value {
    match ms_json(&v) {
        Some((at, _)) => Value::String(iso_millis(at)),
        None => v,
    }
}

/// An MS-JSON date as `YYYY-MM-DD` in the offset it was given in.
fn date(v: Value) -> Value {
    match ms_json(&v) {
        Some((at, offset)) => Value::String(at.with_timezone(&offset).date_naive().to_string()),
        None => v,
    }
}

fn take(r: &mut Map<String, Value>, k: &str) -> Value {
    r.remove(k).unwrap_or(Value::Null)
}

/// What is left of a record, or NULL when nothing is.
fn rest(r: Map<String, Value>) -> Value {
    if r.is_empty() {
        Value::Null
    } else {
        Value::Object(r)
    }
}

fn contact(mut r: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    for (col, field) in [
        ("contact_id", "ContactID"),
        ("contact_number", "ContactNumber"),
        ("account_number", "AccountNumber"),
        ("status", "ContactStatus"),
        ("name", "Name"),
        ("first_name", "FirstName"),
        ("last_name", "LastName"),
        ("email", "EmailAddress"),
        ("is_customer", "IsCustomer"),
        ("is_supplier", "IsSupplier"),
        ("default_currency", "DefaultCurrency"),
        ("tax_number", "TaxNumber"),
        ("addresses", "Addresses"),
        ("phones", "Phones"),
    ] {
        row.insert(col.into(), take(&mut r, field));
    }
    row.insert("updated_at".into(), instant(take(&mut r, "UpdatedDateUTC")));
    row.insert("other".into(), rest(r));
    row
}

fn invoice(mut r: Map<String, Value>, keep_lines: bool) -> Map<String, Value> {
    let mut row = Map::new();
    for (col, field) in [
        ("invoice_id", "InvoiceID"),
        ("invoice_number", "InvoiceNumber"),
        ("reference", "Reference"),
        ("type", "Type"),
        ("status", "Status"),
        ("line_amount_types", "LineAmountTypes"),
        ("sub_total", "SubTotal"),
        ("total_tax", "TotalTax"),
        ("total", "Total"),
        ("amount_due", "AmountDue"),
        ("amount_paid", "AmountPaid"),
        ("amount_credited", "AmountCredited"),
        ("currency_code", "CurrencyCode"),
        ("currency_rate", "CurrencyRate"),
    ] {
        row.insert(col.into(), take(&mut r, field));
    }
    let c = take(&mut r, "Contact");
    row.insert("contact_id".into(), c["ContactID"].clone());
    row.insert("contact_name".into(), c["Name"].clone());
    for (col, field) in [
        ("date", "Date"),
        ("due_date", "DueDate"),
        ("fully_paid_on_date", "FullyPaidOnDate"),
    ] {
        row.insert(col.into(), date(take(&mut r, field)));
    }
    row.insert("updated_at".into(), instant(take(&mut r, "UpdatedDateUTC")));
    let payments: Vec<Value> = take(&mut r, "Payments")
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            serde_json::json!({
                "PaymentID": p["PaymentID"],
                "Date": date(p["Date"].clone()),
                "Amount": p["Amount"],
            })
        })
        .collect();
    row.insert(
        "payments".into(),
        if payments.is_empty() {
            Value::Null
        } else {
            Value::Array(payments)
        },
    );
    // The ISO companions repeat `Date` / `DueDate` in local time.
    r.remove("DateString");
    r.remove("DueDateString");
    if !keep_lines {
        // They are rows of `invoice_line_items`.
        r.remove("LineItems");
    }
    row.insert("other".into(), rest(r));
    row
}

/// One row per line of an invoice, with the invoice's keys and cursor.
fn line_items(mut inv: Map<String, Value>) -> Vec<Map<String, Value>> {
    let updated = instant(take(&mut inv, "UpdatedDateUTC"));
    let lines = take(&mut inv, "LineItems");
    let Value::Array(lines) = lines else {
        return Vec::new();
    };
    lines
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            Value::Object(l) => Some((i, l)),
            _ => None,
        })
        .map(|(i, mut l)| {
            let mut row = Map::new();
            row.insert("line_item_id".into(), take(&mut l, "LineItemID"));
            for (col, field) in [
                ("invoice_id", "InvoiceID"),
                ("invoice_number", "InvoiceNumber"),
                ("invoice_type", "Type"),
                ("invoice_status", "Status"),
            ] {
                row.insert(col.into(), inv.get(field).cloned().unwrap_or(Value::Null));
            }
            row.insert("line_number".into(), Value::from(i as u64 + 1));
            for (col, field) in [
                ("description", "Description"),
                ("quantity", "Quantity"),
                ("unit_amount", "UnitAmount"),
                ("line_amount", "LineAmount"),
                ("tax_amount", "TaxAmount"),
                ("discount_rate", "DiscountRate"),
                ("account_code", "AccountCode"),
                ("item_code", "ItemCode"),
                ("tax_type", "TaxType"),
                ("tracking", "Tracking"),
            ] {
                row.insert(col.into(), take(&mut l, field));
            }
            row.insert("invoice_updated_at".into(), updated.clone());
            row.insert("other".into(), rest(l));
            row
        })
        .collect()
}

fn payment(mut r: Map<String, Value>) -> Map<String, Value> {
    let mut row = Map::new();
    for (col, field) in [
        ("payment_id", "PaymentID"),
        ("amount", "Amount"),
        ("bank_amount", "BankAmount"),
        ("currency_rate", "CurrencyRate"),
        ("reference", "Reference"),
        ("payment_type", "PaymentType"),
        ("status", "Status"),
        ("is_reconciled", "IsReconciled"),
    ] {
        row.insert(col.into(), take(&mut r, field));
    }
    row.insert("date".into(), date(take(&mut r, "Date")));
    row.insert("updated_at".into(), instant(take(&mut r, "UpdatedDateUTC")));
    let account = take(&mut r, "Account");
    row.insert("account_id".into(), account["AccountID"].clone());
    row.insert("account_code".into(), account["Code"].clone());
    // A payment of a credit note or prepayment names that instead; it is
    // left in `other`.
    match r.remove("Invoice") {
        Some(inv) => {
            row.insert("invoice_id".into(), inv["InvoiceID"].clone());
            row.insert("invoice_number".into(), inv["InvoiceNumber"].clone());
            row.insert("invoice_type".into(), inv["Type"].clone());
            row.insert("contact_id".into(), inv["Contact"]["ContactID"].clone());
            row.insert("contact_name".into(), inv["Contact"]["Name"].clone());
        }
        None => {
            for col in [
                "invoice_id",
                "invoice_number",
                "invoice_type",
                "contact_id",
                "contact_name",
            ] {
                row.insert(col.into(), Value::Null);
            }
        }
    }
    r.remove("DateString");
    row.insert("other".into(), rest(r));
    row
}

/// Xero's error bodies: a validation exception with its messages, the
/// problem-details shape of 401/403, or an OAuth error from the token
/// endpoint.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if let Some(kind) = v.get("Type").and_then(Value::as_str) {
        let mut s = format!(
            "{kind}: {}",
            v.get("Message").and_then(Value::as_str).unwrap_or("")
        );
        let details: Vec<&str> = v
            .get("Elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("ValidationErrors").and_then(Value::as_array))
            .flatten()
            .filter_map(|e| e.get("Message").and_then(Value::as_str))
            .collect();
        if !details.is_empty() {
            s = format!("{s} ({})", details.join("; "));
        }
        if let Some(n) = v.get("ErrorNumber").and_then(Value::as_i64) {
            s = format!("{s} [error {n}]");
        }
        return Some(s);
    }
    if let Some(title) = v.get("Title").and_then(Value::as_str) {
        let detail = v.get("Detail").and_then(Value::as_str).unwrap_or("");
        return Some(format!("{title}: {detail}"));
    }
    oauth_error(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_table_is_a_kind_and_an_unknown_name_is_an_error() {
        for t in TABLES {
            assert!(Kind::of(t.name).is_ok(), "{}", t.name);
        }
        let e = Kind::of("bills").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.to_string().contains("no table `bills`"), "{e}");
    }

    #[test]
    fn ms_json_dates_become_utc_instants_and_local_dates() {
        // The reference's sample: 2018-10-20 midnight UTC.
        assert_eq!(
            date(json!("/Date(1539993600000+0000)/")),
            json!("2018-10-20")
        );
        assert_eq!(
            instant(json!("/Date(1541176290160+0000)/")),
            json!("2018-11-02T16:31:30.160Z")
        );
        // No offset at all (`DateTimeUTC`), and a +13:00 one: the instant is
        // the same milliseconds, the date the one in that offset.
        assert_eq!(
            instant(json!("/Date(1552326816230)/")),
            json!("2019-03-11T17:53:36.230Z")
        );
        assert_eq!(
            date(json!("/Date(1539946800000+1300)/")),
            json!("2018-10-20")
        );
        assert_eq!(date(json!("/Date(-86400000+0000)/")), json!("1969-12-31"));
        // Not MS-JSON: kept as sent.
        assert_eq!(date(json!("2018-10-20")), json!("2018-10-20"));
        assert_eq!(instant(json!("/Date(x)/")), json!("/Date(x)/"));
        assert_eq!(date(json!("/Date(0+00)/")), json!("/Date(0+00)/"));
    }

    #[test]
    fn payments_name_the_invoice_they_pay_and_keep_the_rest() {
        let r = json!({"PaymentID": "p1", "Date": "/Date(1539993600000+0000)/", "Amount": 40.0,
            "Invoice": {"InvoiceID": "i1", "InvoiceNumber": "INV-1", "Type": "ACCREC", "Contact": {"ContactID": "c1", "Name": "Barney"}},
            "Account": {"AccountID": "a1", "Code": "090"}, "Status": "AUTHORISED", "HasAccount": true,
            "UpdatedDateUTC": "/Date(1541176290160+0000)/"});
        let row = payment(r.as_object().unwrap().clone());
        assert_eq!(row["invoice_id"], json!("i1"));
        assert_eq!(row["contact_name"], json!("Barney"));
        assert_eq!(row["date"], json!("2018-10-20"));
        assert_eq!(row["account_code"], json!("090"));
        assert_eq!(row["other"], json!({"HasAccount": true}));
    }

    #[test]
    fn invoices_keep_their_lines_only_when_the_lines_table_is_not_read() {
        let r = json!({"InvoiceID": "i1", "Contact": {"ContactID": "c1", "Name": "Barney"},
            "DateString": "2018-10-20T00:00:00", "LineItems": [{"LineItemID": "l1"}, {"LineItemID": "l2"}],
            "UpdatedDateUTC": "/Date(1541176290160+0000)/"});
        let o = r.as_object().unwrap().clone();
        assert_eq!(invoice(o.clone(), false)["other"], Value::Null);
        assert_eq!(
            invoice(o.clone(), true)["other"]["LineItems"][1]["LineItemID"],
            "l2"
        );
        let lines = line_items(o);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["line_number"], json!(2));
        assert_eq!(lines[1]["invoice_id"], json!("i1"));
        assert_eq!(
            lines[1]["invoice_updated_at"],
            json!("2018-11-02T16:31:30.160Z")
        );
    }

    #[test]
    fn error_bodies_read_as_their_messages() {
        let v = br#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{"ValidationErrors":[{"Message":"Invalid page size"}]}]}"#;
        assert_eq!(
            error_message(v).unwrap(),
            "ValidationException: A validation exception occurred (Invalid page size) [error 10]"
        );
        let v = br#"{"Type":null,"Title":"Unauthorized","Status":401,"Detail":"AuthenticationUnsuccessful"}"#;
        assert_eq!(
            error_message(v).unwrap(),
            "Unauthorized: AuthenticationUnsuccessful"
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_grant"}"#).unwrap(),
            "invalid_grant"
        );
    }
}
