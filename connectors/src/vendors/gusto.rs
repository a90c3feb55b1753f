//! Gusto: employees, payrolls (processed and unprocessed), and
//! per-employee compensations of each processed payroll (hours and amounts
//! as DECIMAL).
//!
//! - Auth: refresh-token grant posted as JSON with the client id and
//!   secret; the refresh token rotates (the old one dies when the new access
//!   token is first used), so the toolkit stores the new one first.
//! - Every call sends `X-Gusto-API-Version`.
//! - Paging: `page` and `per`, bounded by `X-Total-Pages`; the payroll
//!   detail pages its `employee_compensations` the same way.
//! - Incremental: there is no `updated_since`. Payrolls are read in
//!   `start_date`/`end_date` windows of at most a year, ending at most three
//!   months ahead; each run starts a look-back before the last processed
//!   pay period seen, so payrolls processed late are picked up.
//! - Unprocessed payrolls (`processing_statuses=processed,unprocessed`) are
//!   read too, with `processed = false`: the reference says to re-pull them
//!   until they are processed, so the state lists them (`unprocessed`) and
//!   the next run's windows reach back to the earliest, however old. One
//!   that is no longer listed was deleted in Gusto and drops off the list
//!   (its warehouse row stays, unprocessed). Compensations are read for
//!   processed payrolls only: a draft's amounts are not pay.
//! - The API refuses a window ending more than three months after *its*
//!   today (422, `error_key: end_date`). Windows end 60 days after the local
//!   today; should the server's today be far enough behind, the window is
//!   shrunk a month at a time until it is accepted (one warning per read),
//!   and the error is returned, once, only if no shrinking helps.
//! - Employees are a full refresh (merged by `uuid`).
//! - Money and hours arrive as decimal strings (`"3076.92"`, `"80.000"`).
//! - Errors: `{"errors":[{"error_key","category","message"}]}`, possibly nested.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use conveyor_config::{PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{CancelFlag, ConnectorError, CredentialStore, Json, RecordSink};
use serde_json::{Map, Value};

use super::read::{object, Emitter, Pages};
use super::table::{parse_decimal, Col, Table, MONEY};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::TokenBody;
use crate::rest::pager::Pager;

pub const API_VERSION: &str = "2025-06-15";
const PER_PAGE: u64 = 100;
/// Hours: three decimals, as Gusto sends them.
const HOURS: Col = Col::Decimal(12, 3);
/// Re-read this far before the last pay period seen: payrolls can be
/// processed (or corrected by an off-cycle run) after their period ends.
const LOOKBACK_DAYS: i64 = 31;
/// Gusto's own default when no dates are sent.
const DEFAULT_HISTORY_DAYS: i64 = 183;
/// Windows must be at most a year long.
const WINDOW_DAYS: i64 = 364;
/// The longest pay period (monthly).
const PERIOD_DAYS: i64 = 31;
/// How far a refused window's end moves back per try.
const SHRINK_DAYS: i64 = 31;
/// How far ahead of the local today windows end.
const HORIZON_DAYS: i64 = 60;
/// State key: the unprocessed payrolls seen, to re-pull until processed.
const UNPROCESSED: &str = "unprocessed";

pub const TABLES: &[Table] = &[
    Table {
        name: "employees",
        primary_key: &["uuid"],
        cursor: None,
        columns: &[
            ("uuid", Col::Str),
            ("first_name", Col::Str),
            ("last_name", Col::Str),
            ("email", Col::Str),
            ("department", Col::Str),
            ("manager_uuid", Col::Str),
            ("terminated", Col::Bool),
            ("onboarded", Col::Bool),
            ("current_employment_status", Col::Str),
            // From the primary (first) job.
            ("job_title", Col::Str),
            ("hire_date", Col::Date),
            ("rate", MONEY),
            ("payment_unit", Col::Str),
            ("jobs", Col::Json),
            ("version", Col::Str),
        ],
    },
    Table {
        name: "payrolls",
        primary_key: &["payroll_uuid"],
        cursor: Some("pay_period_end"),
        columns: &[
            ("payroll_uuid", Col::Str),
            ("company_uuid", Col::Str),
            ("processed", Col::Bool),
            ("processed_date", Col::Date),
            ("check_date", Col::Date),
            ("off_cycle", Col::Bool),
            ("pay_period_start", Col::Date),
            ("pay_period_end", Col::Date),
            ("pay_schedule_uuid", Col::Str),
            ("gross_pay", MONEY),
            ("net_pay", MONEY),
            ("employer_taxes", MONEY),
            ("employee_taxes", MONEY),
            ("company_debit", MONEY),
            ("totals", Col::Json),
        ],
    },
    Table {
        name: "employee_compensations",
        primary_key: &["payroll_uuid", "employee_uuid"],
        cursor: Some("pay_period_end"),
        columns: &[
            ("payroll_uuid", Col::Str),
            ("employee_uuid", Col::Str),
            ("check_date", Col::Date),
            ("pay_period_start", Col::Date),
            ("pay_period_end", Col::Date),
            ("gross_pay", MONEY),
            ("net_pay", MONEY),
            ("check_amount", MONEY),
            ("payment_method", Col::Str),
            // Sums over `hourly_compensations`, exact.
            ("hours", HOURS),
            ("hourly_amount", MONEY),
            ("fixed_amount", MONEY),
            ("hourly_compensations", Col::Json),
            ("fixed_compensations", Col::Json),
            ("paid_time_off", Col::Json),
            ("deductions", Col::Json),
        ],
    },
];

pub struct Gusto {
    base: Base,
}

impl Gusto {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![
                ("Accept".into(), "application/json".into()),
                ("X-Gusto-API-Version".into(), API_VERSION.into()),
            ],
            token_fields: Vec::new(),
            token_body: TokenBody::JsonWithCredentials,
            error_message,
            error_reader: None,
        };
        Ok(Gusto {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    fn company_url(&self, path: &str) -> Result<url::Url, ConnectorError> {
        let company = self.base.cfg.account.as_deref().unwrap_or_default();
        endpoint(
            &self.base.cfg.base_url,
            &format!("v1/companies/{company}/{path}"),
        )
    }

    fn pager(&self, url: url::Url, params: Vec<(String, String)>) -> Pager {
        let paging = PaginationConfig::PageNumber {
            page_param: "page".into(),
            size_param: "per".into(),
            size: PER_PAGE,
            start_page: 1,
            total_pages_header: Some("X-Total-Pages".into()),
        };
        Pager::new(paging, url, params, Vec::new())
    }

    /// `[start, end]` windows from the saved state to the API's horizon:
    /// from a look-back before the cursor, or from the earliest payroll
    /// still unprocessed when that is older.
    fn windows(&self, state: Option<&Json>) -> Vec<(NaiveDate, NaiveDate)> {
        let today = Utc::now().date_naive();
        let saved = state
            .and_then(|s| s["cursor"].as_str())
            .and_then(|c| NaiveDate::parse_from_str(c, "%Y-%m-%d").ok());
        let start = match (saved, self.base.cfg.start_date) {
            (Some(c), _) => c - Duration::days(LOOKBACK_DAYS),
            (None, Some(d)) => d,
            (None, None) => today - Duration::days(DEFAULT_HISTORY_DAYS),
        };
        let pending = unprocessed(state)
            .into_iter()
            .filter_map(|(_, start)| start)
            .min();
        let start = pending.map_or(start, |p| p.min(start));
        // Processed payrolls can have a check date a little ahead; the API
        // refuses an end more than three months out.
        let horizon = today + Duration::days(HORIZON_DAYS);
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let to = (from + Duration::days(WINDOW_DAYS)).min(horizon);
            out.push((from, to));
            if to >= horizon {
                break out;
            }
            // A payroll is listed only when its whole pay period lies in
            // the window: overlap windows by the longest period.
            from = to - Duration::days(PERIOD_DAYS);
        }
    }

    /// Every payroll in the windows (processed or not), as listed, each once.
    async fn payroll_list(
        &self,
        stream: &str,
        windows: &[(NaiveDate, NaiveDate)],
        cancel: &CancelFlag,
    ) -> Result<Vec<Map<String, Value>>, ConnectorError> {
        let mut out: Vec<Map<String, Value>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // The end the server accepted after a shrink: later windows stop there.
        let mut limit: Option<NaiveDate> = None;
        let mut shrunk: Option<(NaiveDate, NaiveDate)> = None;
        for (from, to) in windows {
            let mut to = limit.map_or(*to, |l| l.min(*to));
            if to < *from {
                break;
            }
            loop {
                let params = vec![
                    (
                        "processing_statuses".to_string(),
                        "processed,unprocessed".to_string(),
                    ),
                    ("payroll_types".into(), "regular,off_cycle".into()),
                    ("start_date".into(), from.to_string()),
                    ("end_date".into(), to.to_string()),
                    ("include".into(), "totals".into()),
                ];
                let mut pages = Pages::new(
                    &self.base,
                    stream,
                    self.pager(self.company_url("payrolls")?, params),
                    "",
                )
                .stop_on(422, true);
                let mut listed = Vec::new();
                while let Some(page) = pages.next(cancel).await? {
                    for r in page.records {
                        listed.push(object(r, "payroll")?);
                    }
                }
                match pages.stopped() {
                    None => {
                        for p in listed {
                            // Overlapping windows list some payrolls twice.
                            let id = p.get("payroll_uuid").cloned().unwrap_or(Value::Null);
                            if seen.insert(id.to_string()) {
                                out.push(p);
                            }
                        }
                        break;
                    }
                    // Past the server's horizon: ask for less, a month at a time.
                    Some(stop) if refuses_end_date(&stop.body) => {
                        let shorter = to - Duration::days(SHRINK_DAYS);
                        if shorter < *from {
                            return Err(stop.error.clone());
                        }
                        shrunk.get_or_insert((to, shorter)).1 = shorter;
                        to = shorter;
                        limit = Some(shorter);
                    }
                    Some(stop) => return Err(stop.error.clone()),
                }
            }
        }
        if let Some((asked, accepted)) = shrunk {
            // Once per read, and only once the shorter window was accepted:
            // a failure is reported by the error alone.
            tracing::warn!(source = %self.base.source, %asked, %accepted, "Gusto refused payroll windows ending {asked} (more than three months past its today); read up to {accepted} instead");
        }
        Ok(out)
    }
}

/// Whether a 422 body is Gusto's "end date too far in the future".
fn refuses_end_date(body: &[u8]) -> bool {
    fn walk(list: &Value) -> bool {
        list.as_array().into_iter().flatten().any(|e| {
            e.get("error_key").and_then(Value::as_str) == Some("end_date") || walk(&e["errors"])
        })
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| walk(&v["errors"]))
}

/// The unprocessed payrolls a state lists: uuid and pay-period start.
fn unprocessed(state: Option<&Json>) -> Vec<(String, Option<NaiveDate>)> {
    state
        .and_then(|s| s.get(UNPROCESSED))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let id = p["payroll_uuid"].as_str()?.to_string();
            let start = p["start_date"].as_str().and_then(|d| d.parse().ok());
            Some((id, start))
        })
        .collect()
}

fn is_processed(p: &Map<String, Value>) -> bool {
    p.get("processed") == Some(&Value::Bool(true))
}

super::connector_over_base!(Gusto);

impl Gusto {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let resume = state
            .clone()
            .unwrap_or_else(|| serde_json::json!({ "cursor": null }));
        let mut out = Emitter::new(sink, t, resume.clone());
        if t.name == "employees" {
            let mut pages = Pages::new(
                &self.base,
                t.name,
                self.pager(self.company_url("employees")?, Vec::new()),
                "",
            );
            while let Some(page) = pages.next(cancel).await? {
                let rows: Result<Vec<_>, _> = page
                    .records
                    .into_iter()
                    .map(|r| object(r, "employee").map(employee))
                    .collect();
                out.emit(&rows?).await?;
            }
            return out
                .finish(serde_json::json!({ "cursor": null }), cancel)
                .await;
        }

        let payrolls = self
            .payroll_list(t.name, &self.windows(state.as_ref()), cancel)
            .await?;
        // The cursor follows processed payrolls only: an unprocessed one
        // (often a future period) must not move the look-back past the
        // payrolls still to be processed.
        let newest = payrolls
            .iter()
            .filter(|p| is_processed(p))
            .filter_map(|p| p["pay_period"]["end_date"].as_str())
            .max()
            .map(str::to_string);
        let cursor = match (newest, resume["cursor"].as_str()) {
            (Some(n), Some(old)) => Some(n.max(old.to_string())),
            (n, old) => n.or(old.map(str::to_string)),
        };
        // Re-pulled by the next run until processed (or gone).
        let pending: Vec<Value> = payrolls
            .iter()
            .filter(|p| !is_processed(p))
            .map(|p| {
                serde_json::json!({
                    "payroll_uuid": p.get("payroll_uuid").cloned().unwrap_or(Value::Null),
                    "start_date": p["pay_period"]["start_date"].clone(),
                })
            })
            .collect();
        if t.name == "payrolls" {
            let rows: Vec<_> = payrolls.into_iter().map(payroll).collect();
            for chunk in rows.chunks(500) {
                out.emit(chunk).await?;
            }
        } else {
            for p in payrolls.iter().filter(|p| is_processed(p)) {
                let Some(id) = p["payroll_uuid"].as_str() else {
                    continue;
                };
                let url = self.company_url(&format!("payrolls/{id}"))?;
                // A payroll deleted since it was listed is a 404 here, not a
                // missing feature.
                let mut pages = Pages::new(
                    &self.base,
                    t.name,
                    self.pager(url, Vec::new()),
                    "employee_compensations",
                )
                .unavailable_on(&[403]);
                while let Some(page) = pages.next(cancel).await? {
                    let rows: Result<Vec<_>, _> = page
                        .records
                        .into_iter()
                        .map(|r| {
                            object(r, "employee compensation").map(|c| compensation(&page.body, c))
                        })
                        .collect();
                    out.emit(&rows?).await?;
                }
            }
        }
        out.finish(
            serde_json::json!({ "cursor": cursor, UNPROCESSED: pending }),
            cancel,
        )
        .await
    }
}

fn employee(mut e: Map<String, Value>) -> Map<String, Value> {
    let job = e
        .get("jobs")
        .and_then(|j| j.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    for (col, field) in [
        ("job_title", "title"),
        ("hire_date", "hire_date"),
        ("rate", "rate"),
        ("payment_unit", "payment_unit"),
    ] {
        e.insert(col.into(), job.get(field).cloned().unwrap_or(Value::Null));
    }
    // `version` is an opaque change token.
    if let Some(v) = e.get("version").filter(|v| !v.is_string()).cloned() {
        e.insert("version".into(), Value::String(v.to_string()));
    }
    e
}

fn payroll(mut p: Map<String, Value>) -> Map<String, Value> {
    let period = p.remove("pay_period").unwrap_or(Value::Null);
    for (col, field) in [
        ("pay_period_start", "start_date"),
        ("pay_period_end", "end_date"),
        ("pay_schedule_uuid", "pay_schedule_uuid"),
    ] {
        p.insert(
            col.into(),
            period.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    let totals = p.get("totals").cloned().unwrap_or(Value::Null);
    for col in [
        "gross_pay",
        "net_pay",
        "employer_taxes",
        "employee_taxes",
        "company_debit",
    ] {
        p.insert(col.into(), totals.get(col).cloned().unwrap_or(Value::Null));
    }
    p
}

/// One employee's compensation in one payroll, with exact hour and amount sums.
fn compensation(payroll: &Value, mut c: Map<String, Value>) -> Map<String, Value> {
    c.insert("payroll_uuid".into(), payroll["payroll_uuid"].clone());
    c.insert("check_date".into(), payroll["check_date"].clone());
    c.insert(
        "pay_period_start".into(),
        payroll["pay_period"]["start_date"].clone(),
    );
    c.insert(
        "pay_period_end".into(),
        payroll["pay_period"]["end_date"].clone(),
    );
    let hourly = c
        .get("hourly_compensations")
        .cloned()
        .unwrap_or(Value::Null);
    let fixed = c.get("fixed_compensations").cloned().unwrap_or(Value::Null);
    c.insert("hours".into(), sum(&hourly, "hours", 3));
    c.insert("hourly_amount".into(), sum(&hourly, "amount", 2));
    c.insert("fixed_amount".into(), sum(&fixed, "amount", 2));
    c
}

/// The exact sum of a decimal-string field over a list, as a decimal
/// string; the original text if any entry is not a decimal (the column
/// then widens and the values are kept).
fn sum(list: &Value, field: &str, scale: i8) -> Value {
    let mut total: i128 = 0;
    for item in list.as_array().into_iter().flatten() {
        let text = match &item[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            other => return Value::String(other.to_string()),
        };
        match parse_decimal(&text, 30, scale) {
            Some(v) => total += v,
            None => return Value::String(text),
        }
    }
    let unit = 10i128.pow(scale as u32);
    let sign = if total < 0 { "-" } else { "" };
    Value::String(format!(
        "{sign}{}.{:0width$}",
        total.abs() / unit,
        total.abs() % unit,
        width = scale as usize
    ))
}

/// `{"errors":[{"error_key","category","message","errors":[…]}]}` → `key: message (category)`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    fn walk(list: &Value, out: &mut Vec<String>) {
        for e in list.as_array().into_iter().flatten() {
            if let Some(m) = e.get("message").and_then(Value::as_str) {
                let key = e.get("error_key").and_then(Value::as_str).unwrap_or("");
                let cat = e.get("category").and_then(Value::as_str).unwrap_or("");
                out.push(format!("{key}: {m} ({cat})"));
            }
            walk(&e["errors"], out);
        }
    }
    let mut out = Vec::new();
    walk(&v["errors"], &mut out);
    if out.is_empty() {
        oauth_error(&v).or_else(|| v.get("message").and_then(Value::as_str).map(str::to_string))
    } else {
        Some(out.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hours_and_amounts_sum_exactly() {
        let hourly =
            json!([{"hours": "80.000", "amount": "3076.92"}, {"hours": "2.125", "amount": "0.10"}]);
        assert_eq!(sum(&hourly, "hours", 3), json!("82.125"));
        assert_eq!(sum(&hourly, "amount", 2), json!("3077.02"));
        assert_eq!(sum(&json!([]), "hours", 3), json!("0.000"));
        assert_eq!(
            sum(&json!([{"hours": "lots"}]), "hours", 3),
            json!("lots"),
            "kept, not dropped"
        );
    }

    #[test]
    fn nested_errors_are_flattened() {
        let body = br#"{"errors":[{"error_key":"payroll","category":"nested_errors","errors":[{"error_key":"end_date","category":"invalid_parameter","message":"End date cannot be more than 3 months in future"}]}]}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "end_date: End date cannot be more than 3 months in future (invalid_parameter)"
        );
    }
}
