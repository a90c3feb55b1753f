//! Gusto mock: `POST /oauth/token` with a JSON body (refresh-token grant;
//! the old refresh token dies when the new access token is first used),
//! `X-Gusto-API-Version`, employees, payrolls in `start_date`/`end_date`
//! windows (≤ 1 year, end ≤ 3 months after the server's today, pay periods
//! inside the window) filtered by `processing_statuses` (`processed`,
//! `unprocessed`, or both comma-separated; processed only when absent),
//! payroll detail paging `employee_compensations`, `page`/`per` paging
//! whose `X-Page`, `X-Per-Page`, `X-Total-Pages`, `X-Total-Count` headers
//! appear only when `page` is sent, money and hours as decimal strings,
//! `X-RateLimit-*` headers of a rolling minute of 200 calls, 429 with
//! `Retry-After` past it, and Gusto's `errors` bodies.
//!
//! Documented (reference §3a and its sample payloads): the endpoints and
//! fields, decimal strings, the paging headers only with `page`, the date
//! window limits and the 422 body for an end too far ahead (its text and
//! `error_key: end_date`), the 404 body, processed-only by default, that
//! unprocessed payrolls exist and must be re-pulled. Guessed: "3 months"
//! taken as 92 days; the `processing_statuses` values (`unprocessed` next
//! to the reference's `processed`); which limit wins when both are broken;
//! the shape of an unprocessed payroll (`processed: false`, no
//! `processed_date`, totals already filled in).
//!
//! The server has its own today ([`GustoHandle::set_server_day_offset`],
//! `server_day_offset`), which the 3-month horizon follows, so a test can
//! put the server's clock behind the client's. [`GustoMock::start`]
//! invents its data (`upcoming` adds unprocessed payrolls for future
//! periods); [`GustoMock::start_with`] serves the given records (the
//! demo's sandbox renders its cast that way).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use super::limit::Admission;
use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

pub const RATE_LIMIT: u32 = 200;

#[derive(Clone, Debug)]
pub struct GustoMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub company_id: String,
    pub refresh_token: String,
    pub employees: usize,
    /// Biweekly pay periods, newest first; the newest is not processed yet.
    pub payrolls: usize,
    /// Unprocessed payrolls for the periods after the newest (Gusto lists
    /// upcoming payrolls before they are run).
    pub upcoming: usize,
    /// The server's today minus the client's, in days.
    pub server_day_offset: i64,
}

impl Default for GustoMockConfig {
    fn default() -> Self {
        GustoMockConfig {
            client_id: "gusto-client".into(),
            client_secret: "gusto-secret-5521".into(),
            company_id: "9aa93530-5b8e-4a52-9f37-2d8c6e0f1a44".into(),
            refresh_token: "gusto-rt-initial".into(),
            employees: 30,
            payrolls: 40,
            upcoming: 0,
            server_day_offset: 0,
        }
    }
}

struct Gusto {
    cfg: GustoMockConfig,
    core: Core,
    employees: Vec<Value>,
    /// Full payroll documents, `employee_compensations` included.
    payrolls: Vec<Value>,
    /// Refresh tokens still accepted: the current one, plus the previous
    /// one until the access token issued with the current one is used.
    refresh_ok: HashSet<String>,
    /// Access token → the refresh token its first use revokes.
    revoke_on_use: HashMap<String, String>,
}

impl Gusto {
    /// The server's today.
    fn today(&self) -> NaiveDate {
        Utc::now().date_naive() + Duration::days(self.cfg.server_day_offset)
    }
}

#[derive(Clone)]
pub struct GustoHandle(Arc<Mutex<Gusto>>);

impl MockHandle for GustoHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl GustoHandle {
    pub fn employees(&self) -> Vec<Value> {
        lock(&self.0).employees.clone()
    }
    pub fn payrolls(&self) -> Vec<Value> {
        lock(&self.0).payrolls.clone()
    }
    /// Adds a processed payroll for the period after the newest one.
    pub fn add_payroll(&self) -> Value {
        let mut g = lock(&self.0);
        let newest = g
            .payrolls
            .iter()
            .filter_map(|p| p["pay_period"]["end_date"].as_str())
            .max()
            .map(|d| d.parse::<NaiveDate>().unwrap())
            .unwrap();
        let n = g.payrolls.len();
        let p = payroll(&g.cfg, &g.employees, n, newest + Duration::days(14), true);
        g.payrolls.push(p.clone());
        p
    }
    /// Runs an unprocessed payroll: `processed` and `processed_date` set.
    pub fn process_payroll(&self, uuid: &str) {
        let mut g = lock(&self.0);
        let today = g.today();
        let p = g.payrolls.iter_mut().find(|p| p["payroll_uuid"] == uuid).expect("payroll exists");
        p["processed"] = json!(true);
        p["processed_date"] = json!(today.to_string());
    }
    /// Moves the server's today to the client's plus `days`.
    pub fn set_server_day_offset(&self, days: i64) {
        lock(&self.0).cfg.server_day_offset = days;
    }
    /// Changes a payroll in place (a correction processed late).
    pub fn edit_payroll(&self, uuid: &str, f: impl FnOnce(&mut Value)) {
        let mut g = lock(&self.0);
        f(g.payrolls.iter_mut().find(|p| p["payroll_uuid"] == uuid).expect("payroll exists"));
    }
}

/// Employees and full payroll documents (`employee_compensations` and
/// `totals` included; the list endpoint leaves them out as Gusto does).
#[derive(Clone, Debug, Default)]
pub struct GustoRecords {
    pub employees: Vec<Value>,
    pub payrolls: Vec<Value>,
}

pub struct GustoMock;

impl GustoMock {
    /// Starts with `cfg.employees` invented employees and `cfg.payrolls` payrolls.
    pub async fn start(cfg: GustoMockConfig) -> (MockServer, GustoHandle) {
        let employees: Vec<Value> = (0..cfg.employees).map(employee).collect();
        let newest_end = Utc::now().date_naive() - Duration::days(3);
        let mut payrolls: Vec<Value> = (0..cfg.payrolls)
            .map(|k| {
                payroll(&cfg, &employees, k, newest_end - Duration::days(14 * k as i64), k > 0)
            })
            .collect();
        for j in 0..cfg.upcoming {
            let end = newest_end + Duration::days(14 * (j as i64 + 1));
            payrolls.push(payroll(&cfg, &employees, cfg.payrolls + j, end, false));
        }
        Self::start_with(cfg, GustoRecords { employees, payrolls }).await
    }

    /// Starts serving exactly `records`.
    pub async fn start_with(
        cfg: GustoMockConfig,
        records: GustoRecords,
    ) -> (MockServer, GustoHandle) {
        let GustoRecords { employees, payrolls } = records;
        let g = Gusto {
            core: Core::with_refresh(&cfg.refresh_token)
                .limited(RATE_LIMIT, StdDuration::from_secs(60)),
            refresh_ok: HashSet::from([cfg.refresh_token.clone()]),
            cfg,
            employees,
            payrolls,
            revoke_on_use: HashMap::new(),
        };
        let st = Arc::new(Mutex::new(g));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, GustoHandle(st))
    }
}

fn uuid(kind: u64, i: u64) -> String {
    format!("{:08x}-{:04x}-4{:03x}-8000-{:012x}", wire::mix(kind, i) as u32, kind, i % 4096, i)
}

fn employee(i: usize) -> Value {
    let i = i as u64;
    json!({"uuid": uuid(1, i), "first_name": format!("First{i}"), "last_name": format!("Last{i}"), "email": format!("person{i}@example.com"),
        "department": if i.is_multiple_of(4) { "Back Office" } else { "Contact Center" }, "manager_uuid": if i == 0 { Value::Null } else { json!(uuid(1, 0)) },
        "terminated": i % 10 == 9, "onboarded": true, "current_employment_status": "full_time",
        "jobs": [{"uuid": uuid(2, i), "title": "Agent", "hire_date": "2023-03-01", "rate": "25.50", "payment_unit": "Hour", "compensations": []}],
        "version": format!("{:x}", wire::mix(3, i))})
}

/// Cents as a decimal string.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn payroll(
    cfg: &GustoMockConfig,
    employees: &[Value],
    k: usize,
    end: NaiveDate,
    processed: bool,
) -> Value {
    let (mut gross_total, mut net_total) = (0i64, 0i64);
    let comps: Vec<Value> = employees
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // Half hours at $25.50 keep every amount exact in cents.
            let half_hours = 140 + ((i + k) % 20) as i64;
            let hourly_cents = half_hours * 1275;
            let gross = hourly_cents + 10_000;
            let net = gross * 3 / 4;
            gross_total += gross;
            net_total += net;
            json!({"employee_uuid": e["uuid"], "gross_pay": money(gross), "net_pay": money(net), "check_amount": money(net),
                "payment_method": "Direct Deposit",
                "hourly_compensations": [{"name": "Regular Hours", "hours": format!("{}.{}00", half_hours / 2, if half_hours % 2 == 1 { 5 } else { 0 }),
                    "amount": money(hourly_cents), "job_uuid": e["jobs"][0]["uuid"], "compensation_multiplier": 1.0, "flsa_status": "Nonexempt"}],
                "fixed_compensations": [{"name": "Bonus", "amount": "100.00", "job_uuid": e["jobs"][0]["uuid"]}],
                "paid_time_off": [{"name": "Vacation Hours", "hours": "0.000"}], "deductions": []})
        })
        .collect();
    json!({"payroll_uuid": uuid(4, k as u64), "company_uuid": cfg.company_id, "processed": processed,
        "processed_date": if processed { json!((end + Duration::days(2)).to_string()) } else { Value::Null },
        "check_date": (end + Duration::days(4)).to_string(), "off_cycle": false,
        "pay_period": {"start_date": (end - Duration::days(13)).to_string(), "end_date": end.to_string(), "pay_schedule_uuid": uuid(5, 0)},
        "totals": {"gross_pay": money(gross_total), "net_pay": money(net_total), "employer_taxes": money(gross_total / 10),
            "employee_taxes": money(gross_total - net_total), "company_debit": money(gross_total + gross_total / 10)},
        "employee_compensations": comps})
}

fn errors(status: u16, key: &str, category: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({"errors": [{"error_key": key, "category": category, "message": message}]}),
    )
}

async fn serve(State(st): State<Arc<Mutex<Gusto>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut g = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == "/oauth/token" {
        return token(&mut g, &parts.headers, &body);
    }
    // 200 in any rolling minute; the reset is when the oldest call in the
    // window ages out.
    let admission = g.core.admit();
    let (remaining, resets_in) = match admission {
        Admission::Admitted { remaining, resets_in } => (remaining, resets_in),
        Admission::Refused { retry_after_secs } => (0, StdDuration::from_secs(retry_after_secs)),
    };
    let reset = (Utc::now() + Duration::from_std(resets_in).unwrap_or_default()).to_rfc3339();
    let limits = [
        ("x-ratelimit-limit", RATE_LIMIT.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset),
    ];
    if let Admission::Refused { retry_after_secs } = admission {
        return wire::with_headers(
            wire::with_headers(
                too_many_requests(),
                &[("retry-after", retry_after_secs.to_string())],
            ),
            &limits,
        );
    }
    let resp = match g.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => wire::with_headers(
            too_many_requests(),
            &[("retry-after", retry_after_secs.to_string())],
        ),
        Some(Fault::Error(status, body)) => wire::json(status, body),
        None => data(&mut g, &parts.headers, &path, &pairs),
    };
    wire::with_headers(resp, &limits)
}

/// Gusto's 429 body.
fn too_many_requests() -> Response {
    errors(
        429,
        "base",
        "rate_limit_exceeded",
        "Too many requests. Please retry after the Retry-After period.",
    )
}

fn token(g: &mut Gusto, headers: &HeaderMap, body: &[u8]) -> Response {
    g.core.token_requests += 1;
    let f = wire::form_fields(headers, body);
    if !header_is_json(headers) {
        return errors(415, "base", "invalid_request", "the token request must be JSON");
    }
    if f.get("client_id") != Some(&g.cfg.client_id)
        || f.get("client_secret") != Some(&g.cfg.client_secret)
    {
        return wire::json(
            401,
            json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
        );
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return wire::json(400, json!({"error": "unsupported_grant_type"}));
    }
    let presented = f.get("refresh_token").cloned().unwrap_or_default();
    if !g.refresh_ok.contains(&presented) {
        return wire::json(
            400,
            json!({"error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, revoked"}),
        );
    }
    let next = wire::unique_token("gusto-rt");
    let access = g.core.issue_access("gusto-at");
    g.refresh_ok.insert(next.clone());
    g.core.refresh = Some(next.clone());
    g.revoke_on_use.insert(access.clone(), presented);
    wire::json(
        200,
        json!({"access_token": access, "token_type": "bearer", "expires_in": 7200, "refresh_token": next, "created_at": Utc::now().timestamp()}),
    )
}

fn header_is_json(headers: &HeaderMap) -> bool {
    wire::header_str(headers, "content-type").is_some_and(|c| c.contains("json"))
}

fn data(g: &mut Gusto, headers: &HeaderMap, path: &str, pairs: &[(String, String)]) -> Response {
    let token = wire::bearer(headers).map(str::to_string);
    if !g.core.access_ok(token.as_deref()) {
        return errors(
            401,
            "base",
            "invalid_oauth_token",
            "The access token is invalid or has expired",
        );
    }
    // First use of a new access token revokes the refresh token it replaced.
    if let Some(old) = token.and_then(|t| g.revoke_on_use.remove(&t)) {
        g.refresh_ok.remove(&old);
    }
    let prefix = format!("/v1/companies/{}/", g.cfg.company_id);
    let Some(rest) = path.strip_prefix(&prefix) else {
        return errors(404, "request", "not_found", "The requested resource was not found.");
    };
    match rest {
        "employees" => paged(g.employees.clone(), pairs, Value::Array),
        "payrolls" => list_payrolls(g, pairs),
        other => match other.strip_prefix("payrolls/") {
            Some(id) => match g.payrolls.iter().find(|p| p["payroll_uuid"] == id) {
                Some(p) => {
                    let mut doc = p.clone();
                    let comps = doc
                        .as_object_mut()
                        .unwrap()
                        .remove("employee_compensations")
                        .unwrap_or(json!([]));
                    let comps = comps.as_array().cloned().unwrap_or_default();
                    // The detail pages its compensations at up to 100.
                    let mut pairs = pairs.to_vec();
                    if let Some((_, per)) = pairs.iter_mut().find(|(k, _)| k == "per") {
                        *per = per.parse::<usize>().unwrap_or(25).min(100).to_string();
                    }
                    paged(comps, &pairs, move |page| {
                        doc["employee_compensations"] = Value::Array(page);
                        doc.clone()
                    })
                }
                None => {
                    errors(404, "request", "not_found", "The requested resource was not found.")
                }
            },
            None => errors(404, "request", "not_found", "The requested resource was not found."),
        },
    }
}

/// Without `page` everything comes back, without paging headers.
fn paged(
    all: Vec<Value>,
    pairs: &[(String, String)],
    mut render: impl FnMut(Vec<Value>) -> Value,
) -> Response {
    let Some(page) = wire::param(pairs, "page") else { return wire::json(200, render(all)) };
    let page: usize = page.parse().unwrap_or(1).max(1);
    let per: usize = wire::param(pairs, "per").and_then(|p| p.parse().ok()).unwrap_or(25).max(1);
    let total = all.len();
    let pages = total.div_ceil(per);
    let slice: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
    wire::with_headers(
        wire::json(200, render(slice)),
        &[
            ("x-page", page.to_string()),
            ("x-per-page", per.to_string()),
            ("x-total-pages", pages.to_string()),
            ("x-total-count", total.to_string()),
        ],
    )
}

fn list_payrolls(g: &Gusto, pairs: &[(String, String)]) -> Response {
    let today = g.today();
    let date =
        |k: &str| wire::param(pairs, k).map(|v| v.parse::<NaiveDate>().map_err(|_| k.to_string()));
    let (start, end) = match (date("start_date"), date("end_date")) {
        (Some(Err(k)), _) | (_, Some(Err(k))) => {
            return errors(422, &k, "invalid_parameter", "is not a valid date")
        }
        (s, e) => (
            s.and_then(Result::ok).unwrap_or(today - Duration::days(183)),
            e.and_then(Result::ok).unwrap_or(today),
        ),
    };
    if end > today + Duration::days(92) {
        return errors(
            422,
            "end_date",
            "invalid_parameter",
            "End date cannot be more than 3 months in future",
        );
    }
    if end - start > Duration::days(366) {
        return errors(
            422,
            "start_date",
            "invalid_parameter",
            "Start date and end date must be within one year of each other",
        );
    }
    // Processed payrolls only, unless asked otherwise.
    let statuses: Vec<&str> = wire::param(pairs, "processing_statuses")
        .map_or(vec!["processed"], |s| s.split(',').map(str::trim).collect());
    if let Some(bad) = statuses.iter().find(|s| !["processed", "unprocessed"].contains(s)) {
        return errors(
            422,
            "processing_statuses",
            "invalid_parameter",
            &format!("{bad} is not a valid processing status"),
        );
    }
    let wanted = |p: &Value| {
        let status = if p["processed"] == true { "processed" } else { "unprocessed" };
        statuses.contains(&status)
    };
    let include_totals =
        wire::param(pairs, "include").is_some_and(|i| i.split(',').any(|x| x == "totals"));
    let mut rows: Vec<Value> = g
        .payrolls
        .iter()
        .filter(|p| wanted(p))
        .filter(|p| {
            let s = p["pay_period"]["start_date"]
                .as_str()
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .unwrap();
            let e = p["pay_period"]["end_date"]
                .as_str()
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .unwrap();
            s >= start && e <= end
        })
        .map(|p| {
            let mut p = p.clone();
            let o = p.as_object_mut().unwrap();
            o.remove("employee_compensations");
            if !include_totals {
                o.remove("totals");
            }
            p
        })
        .collect();
    rows.sort_by(|a, b| {
        a["pay_period"]["end_date"].as_str().cmp(&b["pay_period"]["end_date"].as_str())
    });
    paged(rows, pairs, Value::Array)
}
