//! QuickBooks Online mock: rotating refresh-token grant at
//! `POST /oauth2/v1/tokens/bearer`, the query endpoint
//! (`/v3/company/{realm}/query`) with its grammar (AND only, `OR` is a
//! parser fault; inactive customers hidden unless `Active IN (true,false)`;
//! `STARTPOSITION` 1-based, `MAXRESULTS` ≤ 1000; empty result
//! `QueryResponse:{}`), change data capture (`/cdc`, 30 days back on the
//! server's clock, deleted records as `status: "Deleted"`, at most
//! `cdc_cap` objects an answer), `Fault` error bodies, 429
//! `ThrottleExceeded`, and timestamps in the company's `-07:00` offset.
//!
//! Documented (reference §2a and its sample payloads): the query grammar
//! and paging, `QueryResponse:{}`, the CDC shape, its 30-day look-back and
//! 1000-object cap, `status: "Deleted"`, the `time` every answer carries,
//! `Fault` bodies (also inside a 200), the 429 and 401 codes. Guessed: the
//! exact 400 a `changedSince` past 30 days gets (a `ValidationFault`, code
//! 2020 here), which objects CDC keeps when it hits its cap (the oldest
//! here), and the 403 body for a realm the app may not read.
//!
//! The server has its own clock ([`QuickBooksHandle::advance_clock`]): the
//! `time` of answers and the CDC window follow it, not the test's clock,
//! and [`QuickBooksHandle::served_times`] lists every `time` it answered
//! with. [`QuickBooksMock::start`] invents its data;
//! [`QuickBooksMock::start_with`] serves the given records (the demo's
//! sandbox renders its cast that way).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde_json::{json, Value};

use super::limit::Admission;
use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

/// Calls a minute per realm.
pub const RATE_LIMIT: u32 = 500;

pub const TOKEN_PATH: &str = "/oauth2/v1/tokens/bearer";
pub const ENTITIES: [&str; 3] = ["Customer", "Invoice", "Payment"];

#[derive(Clone, Debug)]
pub struct QuickBooksMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub realm_id: String,
    pub refresh_token: String,
    pub customers: usize,
    pub invoices: usize,
    pub payments: usize,
    /// How old the invented records are (the newest a little less).
    pub seed_age_days: i64,
    /// Objects one CDC answer holds at most (Intuit: 1000).
    pub cdc_cap: usize,
}

impl Default for QuickBooksMockConfig {
    fn default() -> Self {
        QuickBooksMockConfig {
            client_id: "qbo-client".into(),
            client_secret: "qbo-secret-7781".into(),
            realm_id: "9341453050298305".into(),
            refresh_token: "AB11-initial-refresh".into(),
            customers: 25,
            invoices: 2100,
            payments: 40,
            seed_age_days: 10,
            cdc_cap: 1000,
        }
    }
}

struct Qbo {
    cfg: QuickBooksMockConfig,
    core: Core,
    data: BTreeMap<&'static str, Vec<Value>>,
    /// (entity, id, deleted at)
    deleted: Vec<(String, String, DateTime<Utc>)>,
    /// Stamps changes made through the handle.
    clock: DateTime<Utc>,
    /// The server's clock minus the test's.
    offset: Duration,
    /// (endpoint, `time`) of every answer, in order.
    served: Vec<(String, String)>,
}

impl Qbo {
    /// The server's now.
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// The answer's `time`, logged for the tests.
    fn stamp(&mut self, endpoint: &str) -> String {
        let t = company_time(self.now());
        self.served.push((endpoint.to_string(), t.clone()));
        t
    }
}

#[derive(Clone)]
pub struct QuickBooksHandle(Arc<Mutex<Qbo>>);

impl MockHandle for QuickBooksHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl QuickBooksHandle {
    pub fn records(&self, entity: &str) -> Vec<Value> {
        lock(&self.0).data.get(entity).cloned().unwrap_or_default()
    }

    /// A change happens at the server's now (a second after the previous
    /// one, so changes stay ordered).
    fn tick(q: &mut Qbo) -> DateTime<Utc> {
        q.clock = (q.clock + Duration::seconds(1)).max(q.now());
        q.clock
    }

    /// Changes a record; its `MetaData.LastUpdatedTime` becomes the newest.
    pub fn touch(&self, entity: &str, id: &str, f: impl FnOnce(&mut Value)) {
        let mut q = lock(&self.0);
        let t = Self::tick(&mut q);
        let r = q
            .data
            .get_mut(entity)
            .and_then(|v| v.iter_mut().find(|r| r["Id"] == id))
            .expect("record exists");
        f(r);
        r["SyncToken"] =
            json!((r["SyncToken"].as_str().unwrap_or("0").parse::<u64>().unwrap_or(0) + 1)
                .to_string());
        r["MetaData"]["LastUpdatedTime"] = json!(company_time(t));
    }

    /// Moves the server's clock (and so the stamp of later changes) by `d`.
    pub fn advance_clock(&self, d: Duration) {
        lock(&self.0).offset += d;
    }

    /// The server's now.
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.0).now()
    }

    /// `(endpoint, time)` of every answer so far: `query` or `cdc`, and the
    /// `time` it carried (company offset), in order.
    pub fn served_times(&self) -> Vec<(String, String)> {
        lock(&self.0).served.clone()
    }

    /// Deletes a record; CDC reports it from now on.
    pub fn delete(&self, entity: &str, id: &str) {
        let mut q = lock(&self.0);
        let t = Self::tick(&mut q);
        q.data.get_mut(entity).expect("entity").retain(|r| r["Id"] != id);
        q.deleted.push((entity.to_string(), id.to_string(), t));
    }
}

/// Records per entity, as the query endpoint returns them.
#[derive(Clone, Debug, Default)]
pub struct QuickBooksRecords {
    pub customers: Vec<Value>,
    pub invoices: Vec<Value>,
    pub payments: Vec<Value>,
}

pub struct QuickBooksMock;

impl QuickBooksMock {
    /// Starts with `cfg.customers`, `cfg.invoices` and `cfg.payments` invented records.
    pub async fn start(cfg: QuickBooksMockConfig) -> (MockServer, QuickBooksHandle) {
        let base = Utc::now() - Duration::days(cfg.seed_age_days);
        let data = seed(&cfg, base);
        Self::serve(cfg, data).await
    }

    /// Starts serving exactly `records`.
    pub async fn start_with(
        cfg: QuickBooksMockConfig,
        records: QuickBooksRecords,
    ) -> (MockServer, QuickBooksHandle) {
        let QuickBooksRecords { customers, invoices, payments } = records;
        let data =
            BTreeMap::from([("Customer", customers), ("Invoice", invoices), ("Payment", payments)]);
        Self::serve(cfg, data).await
    }

    async fn serve(
        cfg: QuickBooksMockConfig,
        data: BTreeMap<&'static str, Vec<Value>>,
    ) -> (MockServer, QuickBooksHandle) {
        let now = Utc::now();
        let q = Qbo {
            core: Core::with_refresh(&cfg.refresh_token)
                .limited(RATE_LIMIT, std::time::Duration::from_secs(60)),
            cfg,
            data,
            deleted: Vec::new(),
            clock: now - Duration::days(1),
            offset: Duration::zero(),
            served: Vec::new(),
        };
        let st = Arc::new(Mutex::new(q));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, QuickBooksHandle(st))
    }
}

/// `2024-06-03T07:15:22-07:00`: QuickBooks speaks the company's offset.
fn company_time(t: DateTime<Utc>) -> String {
    let pacific = FixedOffset::west_opt(7 * 3600).expect("offset");
    t.with_timezone(&pacific).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn seed(cfg: &QuickBooksMockConfig, base: DateTime<Utc>) -> BTreeMap<&'static str, Vec<Value>> {
    let meta = |mins: usize| {
        let t = base + Duration::seconds(mins as i64 * 30);
        json!({"CreateTime": company_time(t), "LastUpdatedTime": company_time(t)})
    };
    let customers = (1..=cfg.customers)
        .map(|i| {
            json!({"Id": i.to_string(), "SyncToken": "0", "MetaData": meta(i), "DisplayName": format!("Client {i} Ltd"),
                "CompanyName": format!("Client {i} Ltd"), "GivenName": format!("Given{i}"), "FamilyName": format!("Family{i}"),
                "PrimaryEmailAddr": {"Address": format!("billing{i}@client.example")}, "Balance": (i * 100) as f64 + 0.5,
                "Active": i % 5 != 0, "Job": false, "domain": "QBO", "sparse": false})
        })
        .collect();
    let invoices = (1..=cfg.invoices)
        .map(|i| {
            let amount = format!("{}.{:02}", 100 + (i * 37) % 5000, i % 100).parse::<f64>().unwrap();
            let customer = 1 + i % cfg.customers.max(1);
            json!({"Id": (1000 + i).to_string(), "SyncToken": "0", "MetaData": meta(cfg.customers + i), "DocNumber": format!("{}", 5000 + i),
                "TxnDate": (base.date_naive() - Duration::days((i % 60) as i64)).to_string(),
                "DueDate": (base.date_naive() + Duration::days(30)).to_string(),
                "CustomerRef": {"value": customer.to_string(), "name": format!("Client {customer} Ltd")},
                "Line": [{"Id": "1", "LineNum": 1, "Amount": amount, "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Placement"}, "Qty": 1, "UnitPrice": amount}}],
                "TotalAmt": amount, "Balance": if i % 2 == 0 { 0.0 } else { amount }, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                "EmailStatus": "EmailSent", "LinkedTxn": [], "domain": "QBO", "sparse": false})
        })
        .collect();
    let payments = (1..=cfg.payments)
        .map(|i| {
            let inv = 1000 + 2 * i;
            json!({"Id": (9000 + i).to_string(), "SyncToken": "0", "MetaData": meta(cfg.customers + cfg.invoices + i),
                "TxnDate": base.date_naive().to_string(), "CustomerRef": {"value": "1", "name": "Client 1 Ltd"},
                "TotalAmt": 250.75, "UnappliedAmt": 0, "PaymentMethodRef": {"value": "3"}, "DepositToAccountRef": {"value": "35"},
                "Line": [{"Amount": 250.75, "LinkedTxn": [{"TxnId": inv.to_string(), "TxnType": "Invoice"}]}], "domain": "QBO", "sparse": false})
        })
        .collect();
    BTreeMap::from([("Customer", customers), ("Invoice", invoices), ("Payment", payments)])
}

fn fault(status: u16, kind: &str, message: &str, detail: &str, code: &str) -> Response {
    wire::json(
        status,
        json!({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": kind}, "time": company_time(Utc::now())}),
    )
}

/// A `Fault` stamped with the server's clock.
fn fault_at(q: &Qbo, status: u16, kind: &str, message: &str, detail: &str, code: &str) -> Response {
    wire::json(
        status,
        json!({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}], "type": kind}, "time": company_time(q.now())}),
    )
}

/// The 429 past the limit. Intuit documents no Retry-After; clients back
/// off.
fn throttled() -> Response {
    fault(
        429,
        "SERVICE",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.",
        "003001",
    )
}

async fn serve(State(st): State<Arc<Mutex<Qbo>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut q = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == TOKEN_PATH {
        return token(&mut q, &parts.headers, &body);
    }
    let company = format!("/v3/company/{}/", q.cfg.realm_id);
    let Some(endpoint) = path.strip_prefix(&company) else {
        return fault(
            403,
            "AUTHORIZATION",
            "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
            "",
            "003100",
        );
    };
    if !q.core.access_ok(wire::bearer(&parts.headers)) {
        return fault(
            401,
            "AUTHENTICATION",
            "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "Token expired",
            "3200",
        );
    }
    // 500 calls a minute per realm.
    if matches!(q.core.admit(), Admission::Refused { .. }) {
        return throttled();
    }
    match q.core.next_fault() {
        Some(Fault::RateLimited { .. }) => return throttled(),
        Some(Fault::Error(status, body)) => return wire::json(status, body),
        None => {}
    }
    match (&parts.method, endpoint) {
        (&Method::GET, "query") => query(&mut q, wire::param(&pairs, "query").unwrap_or("")),
        (&Method::GET, "cdc") => cdc(&mut q, &pairs),
        _ => fault(
            400,
            "ValidationFault",
            "Unsupported Operation",
            &format!("Operation {endpoint} is not supported."),
            "500",
        ),
    }
}

fn token(q: &mut Qbo, headers: &HeaderMap, body: &[u8]) -> Response {
    q.core.token_requests += 1;
    if wire::basic_credentials(headers)
        != Some((q.cfg.client_id.clone(), q.cfg.client_secret.clone()))
    {
        return wire::json(401, json!({"error": "invalid_client"}));
    }
    let form = wire::form_fields(headers, body);
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return wire::json(400, json!({"error": "unsupported_grant_type"}));
    }
    let Some(next) =
        q.core.rotate_refresh(form.get("refresh_token").map(String::as_str), "AB11-rt")
    else {
        return wire::json(400, json!({"error": "invalid_grant"}));
    };
    let access = q.core.issue_access("qbo-at");
    wire::json(
        200,
        json!({"token_type": "bearer", "access_token": access, "expires_in": 3600, "refresh_token": next, "x_refresh_token_expires_in": 8726400}),
    )
}

fn parser_error(detail: &str) -> Response {
    fault(
        400,
        "ValidationFault",
        "Error parsing query",
        &format!("QueryParserError: {detail}"),
        "4000",
    )
}

/// The subset of the query language the connector uses, parsed strictly.
fn query(q: &mut Qbo, text: &str) -> Response {
    let lower = text.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("select * from ") else {
        return parser_error("expected select * from");
    };
    let entity_lc: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let Some(entity) = ENTITIES.iter().find(|e| e.to_ascii_lowercase() == entity_lc) else {
        return parser_error(&format!("unknown entity {entity_lc}"));
    };
    let tail = &text[14 + entity_lc.len()..];
    let tail_lc = tail.to_ascii_lowercase();
    let num_after = |kw: &str| -> Option<usize> {
        let at = tail_lc.find(kw)? + kw.len();
        tail_lc[at..].split_whitespace().next()?.parse().ok()
    };
    let start = num_after("startposition").unwrap_or(1).max(1);
    let max = num_after("maxresults").unwrap_or(100);
    if max > 1000 {
        return parser_error("MAXRESULTS must be at most 1000");
    }
    let clause_end = ["order by", "startposition", "maxresults"]
        .iter()
        .filter_map(|k| tail_lc.find(k))
        .min()
        .unwrap_or(tail.len());
    let where_part = tail[..clause_end].trim();
    let mut include_inactive = false;
    let mut filters: Vec<(String, DateTime<Utc>)> = Vec::new();
    if !where_part.is_empty() {
        let Some(conds) =
            where_part.strip_prefix("where ").or_else(|| where_part.strip_prefix("WHERE "))
        else {
            return parser_error(&format!("Encountered \"{where_part}\""));
        };
        if conds.to_ascii_lowercase().contains(" or ") {
            return parser_error("Encountered \" \"OR\" \"OR \"\"");
        }
        for cond in split_and(conds) {
            let c = cond.trim();
            let cl = c.to_ascii_lowercase().replace(' ', "");
            if cl == "activein(true,false)" {
                include_inactive = true;
                continue;
            }
            let Some(rest) = c
                .get(..24)
                .filter(|p| p.eq_ignore_ascii_case("MetaData.LastUpdatedTime"))
                .map(|_| c[24..].trim())
            else {
                return parser_error(&format!("unsupported condition {c}"));
            };
            let op: String = rest.chars().take_while(|ch| "<>=".contains(*ch)).collect();
            let value = rest[op.len()..].trim().trim_matches('\'');
            let Some(t) = wire::parse_time(value) else {
                return parser_error(&format!("bad date {value}"));
            };
            if !["<", "<=", ">", ">=", "="].contains(&op.as_str()) {
                return parser_error(&format!("bad operator {op}"));
            }
            filters.push((op, t));
        }
    }
    let mut rows: Vec<&Value> = q.data[entity]
        .iter()
        .filter(|r| *entity != "Customer" || include_inactive || r["Active"] == true)
        .filter(|r| {
            let t = r["MetaData"]["LastUpdatedTime"]
                .as_str()
                .and_then(wire::parse_time)
                .expect("seeded time");
            filters.iter().all(|(op, v)| match op.as_str() {
                "<" => t < *v,
                "<=" => t <= *v,
                ">" => t > *v,
                ">=" => t >= *v,
                _ => t == *v,
            })
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            r["MetaData"]["LastUpdatedTime"].as_str().and_then(wire::parse_time),
            r["Id"].as_str().map(str::to_string),
        )
    });
    let page: Vec<Value> = rows.into_iter().skip(start - 1).take(max).cloned().collect();
    let time = q.stamp("query");
    if page.is_empty() {
        return wire::json(200, json!({"QueryResponse": {}, "time": time}));
    }
    let n = page.len();
    wire::json(
        200,
        json!({"QueryResponse": {*entity: page, "startPosition": start, "maxResults": n}, "time": time}),
    )
}

/// Splits on ` AND ` outside parentheses, case-insensitively.
fn split_and(s: &str) -> Vec<String> {
    let lower = s.to_ascii_lowercase();
    let mut out = Vec::new();
    let (mut depth, mut last, bytes) = (0i32, 0usize, lower.as_bytes());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 && lower[i..].starts_with(" and ") => {
                out.push(s[last..i].to_string());
                last = i + 5;
                i += 5;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(s[last..].to_string());
    out
}

fn cdc(q: &mut Qbo, pairs: &[(String, String)]) -> Response {
    let Some(since) = wire::param(pairs, "changedSince").and_then(wire::parse_time) else {
        return fault_at(
            q,
            400,
            "ValidationFault",
            "Invalid changedSince",
            "changedSince is required",
            "2020",
        );
    };
    // The look-back is counted on the server's clock.
    if since < q.now() - Duration::days(30) {
        return fault_at(
            q,
            400,
            "ValidationFault",
            "Invalid changedSince",
            "changedSince cannot be more than 30 days in the past",
            "2020",
        );
    }
    let mut responses = Vec::new();
    let mut room = q.cfg.cdc_cap;
    for entity in wire::param(pairs, "entities").unwrap_or("").split(',') {
        let Some(list) = q.data.get(entity) else { continue };
        let mut changed: Vec<(DateTime<Utc>, Value)> = list
            .iter()
            .filter_map(|r| {
                let t = r["MetaData"]["LastUpdatedTime"].as_str().and_then(wire::parse_time)?;
                (t >= since).then(|| (t, r.clone()))
            })
            .collect();
        for (e, id, at) in &q.deleted {
            if e == entity && *at >= since {
                changed.push((*at, json!({"Id": id, "status": "Deleted", "MetaData": {"LastUpdatedTime": company_time(*at)}})));
            }
        }
        // Over the cap, the oldest changes are kept.
        changed.sort_by_key(|(t, _)| *t);
        changed.truncate(room);
        room -= changed.len();
        let changed: Vec<Value> = changed.into_iter().map(|(_, r)| r).collect();
        let n = changed.len();
        responses.push(json!({entity: changed, "startPosition": 1, "maxResults": n}));
    }
    let time = q.stamp("cdc");
    wire::json(200, json!({"CDCResponse": [{"QueryResponse": responses}], "time": time}))
}
