//! Xero Accounting mock: the identity server's `POST /connect/token`
//! (Basic `client_id:secret`; `refresh_token` grant with 30-minute access
//! tokens and a refresh token that rotates, the old one revoked;
//! `client_credentials` when the app is a custom connection), and
//! `GET /api.xro/2.0/{Contacts,Invoices,Payments}` with Xero's quirks:
//! `xero-tenant-id` required, XML unless `Accept: application/json`,
//! MS-JSON dates (`"/Date(1539993600000+0000)/"`), `page`/`pageSize` ≤ 1000
//! paging with `pagination.pageCount`, line items only when `page` is sent,
//! `If-Modified-Since` as a filter (`UpdatedDateUTC` at or after it),
//! archived contacts only with `includeArchived=true`, the per-tenant
//! minute and day budgets with `X-MinLimit-Remaining`,
//! `X-DayLimit-Remaining` and `X-AppMinLimit-Remaining` on every answer,
//! and a 429 with `Retry-After` and `X-Rate-Limit-Problem` past them.
//!
//! Documented (reference §2b and its sample payload): the headers, the
//! XML default, the token endpoint and grants, token lifetimes and
//! rotation, the record fields, MS-JSON dates with `DateString`
//! companions, the envelope (`Id`, `Status`, `ProviderName`,
//! `DateTimeUTC`, `pagination`), paging and its stop rules, line items
//! only with `page`, `If-Modified-Since` semantics, `order=`,
//! `includeArchived=true`, the limits and their headers, the 400
//! `ValidationException` body. Guessed: the 401/403 body (the reference
//! marks it [?]) and that a missing or unknown tenant is a 403
//! `AuthorizationUnsuccessful`; `X-Rate-Limit-Problem` ([?]); that
//! `pageSize` over 1000 is a 400 `ValidationException` rather than capped;
//! that an `If-Modified-Since` the server cannot read is ignored; that
//! `pagination` is only in paged answers; that payments and contacts page
//! like invoices ("follow the same pattern"); the XML's exact element
//! names; that deleted and voided invoices stay listed with their status;
//! the default order without `order=` (by id here); that a wrong client
//! secret is a 400 `invalid_client` (the identity server's usual answer).
//!
//! [`XeroMock::start`] invents its data (amounts in whole cents, updates a
//! few seconds apart); [`XeroMock::start_with`] serves the given records.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::{json, Map, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

pub const TOKEN_PATH: &str = "/connect/token";
pub const API_PREFIX: &str = "/api.xro/2.0/";
pub const ENDPOINTS: [&str; 3] = ["Contacts", "Invoices", "Payments"];
/// The largest `pageSize` Xero takes.
pub const MAX_PAGE_SIZE: usize = 1000;

#[derive(Clone, Debug)]
pub struct XeroMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub tenant_id: String,
    /// A custom connection: `client_credentials` is granted.
    pub custom_connection: bool,
    pub contacts: usize,
    pub invoices: usize,
    pub payments: usize,
    pub lines_per_invoice: usize,
    /// How old the invented records are.
    pub seed_age_days: i64,
    /// The largest `pageSize` accepted (Xero: 1000).
    pub max_page_size: usize,
    /// Calls a tenant may make a minute and a day (Xero: 60 and 5,000).
    pub minute_limit: u32,
    pub day_limit: u32,
    /// Calls the whole app may make a minute (Xero: 10,000).
    pub app_minute_limit: u32,
    /// Not Xero: a careless server that quotes the credentials it refused
    /// (the `Authorization` header and the form), so redaction is tested
    /// against an answer that holds the secret.
    pub echo_refused_credentials: bool,
}

impl Default for XeroMockConfig {
    fn default() -> Self {
        XeroMockConfig {
            client_id: "XERO0CLIENT0ID".into(),
            client_secret: "xero-secret+/=9931".into(),
            refresh_token: "xero-rt-initial".into(),
            tenant_id: "70784a63-d24b-46a9-a4db-0e70a274b056".into(),
            custom_connection: false,
            contacts: 30,
            invoices: 2100,
            payments: 40,
            lines_per_invoice: 2,
            seed_age_days: 10,
            max_page_size: MAX_PAGE_SIZE,
            minute_limit: 60,
            day_limit: 5000,
            app_minute_limit: 10_000,
            echo_refused_credentials: false,
        }
    }
}

/// Records per endpoint, in Xero's JSON shape (MS-JSON dates).
#[derive(Clone, Debug, Default)]
pub struct XeroRecords {
    pub contacts: Vec<Value>,
    pub invoices: Vec<Value>,
    pub payments: Vec<Value>,
}

struct Xero {
    cfg: XeroMockConfig,
    core: Core,
    data: XeroRecords,
    /// Stamps changes made through the handle.
    clock: DateTime<Utc>,
    /// Data calls answered in the current minute and day (429s excluded).
    minute: (i64, u32),
    day: (i64, u32),
    /// Answer this many more data calls in XML whatever `Accept` says.
    xml_answers: usize,
}

impl Xero {
    fn list(&self, endpoint: &str) -> &Vec<Value> {
        match endpoint {
            "Contacts" => &self.data.contacts,
            "Invoices" => &self.data.invoices,
            _ => &self.data.payments,
        }
    }

    fn list_mut(&mut self, endpoint: &str) -> &mut Vec<Value> {
        match endpoint {
            "Contacts" => &mut self.data.contacts,
            "Invoices" => &mut self.data.invoices,
            _ => &mut self.data.payments,
        }
    }
}

#[derive(Clone)]
pub struct XeroHandle(Arc<Mutex<Xero>>);

impl MockHandle for XeroHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

/// The key field of an endpoint's records.
pub fn id_field(endpoint: &str) -> &'static str {
    match endpoint {
        "Contacts" => "ContactID",
        "Invoices" => "InvoiceID",
        _ => "PaymentID",
    }
}

impl XeroHandle {
    pub fn records(&self, endpoint: &str) -> Vec<Value> {
        lock(&self.0).list(endpoint).clone()
    }

    /// Changes a record; its `UpdatedDateUTC` becomes the newest (a
    /// second after the previous change, at least). Returns that time.
    pub fn touch(&self, endpoint: &str, id: &str, f: impl FnOnce(&mut Value)) -> DateTime<Utc> {
        let mut x = lock(&self.0);
        // Whole milliseconds: what MS-JSON can say.
        let next = (x.clock + Duration::seconds(1)).max(Utc::now());
        x.clock = DateTime::from_timestamp_millis(next.timestamp_millis()).expect("in range");
        let t = x.clock;
        let key = id_field(endpoint);
        let r = x.list_mut(endpoint).iter_mut().find(|r| r[key] == id).expect("record exists");
        f(r);
        r["UpdatedDateUTC"] = json!(ms_json(t));
        t
    }

    /// Answers the next `n` data calls in XML, as Xero does when it does
    /// not see `Accept: application/json`.
    pub fn answer_xml(&self, n: usize) {
        lock(&self.0).xml_answers = n;
    }

    /// Data calls counted against the current minute's budget.
    pub fn calls_this_minute(&self) -> u32 {
        lock(&self.0).minute.1
    }
}

pub struct XeroMock;

impl XeroMock {
    pub async fn start(cfg: XeroMockConfig) -> (MockServer, XeroHandle) {
        let base = Utc::now() - Duration::days(cfg.seed_age_days);
        let data = seed(&cfg, base);
        Self::serve(cfg, data).await
    }

    pub async fn start_with(cfg: XeroMockConfig, records: XeroRecords) -> (MockServer, XeroHandle) {
        Self::serve(cfg, records).await
    }

    async fn serve(cfg: XeroMockConfig, data: XeroRecords) -> (MockServer, XeroHandle) {
        let x = Xero {
            core: Core::with_refresh(&cfg.refresh_token),
            cfg,
            data,
            clock: Utc::now() - Duration::days(1),
            minute: (0, 0),
            day: (0, 0),
            xml_answers: 0,
        };
        let st = Arc::new(Mutex::new(x));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, XeroHandle(st))
    }
}

/// `/Date(1539993600000+0000)/`.
pub fn ms_json(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

/// The instant of an MS-JSON date (its offset is only how it is shown).
pub fn parse_ms_json(v: &Value) -> Option<DateTime<Utc>> {
    let inner = v.as_str()?.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| "+-".contains(*c))
        .map_or(inner.len(), |(i, _)| i);
    DateTime::from_timestamp_millis(inner[..end].parse().ok()?)
}

/// A deterministic UUID-shaped id: `kind` tells the record types apart.
fn uuid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// Cents as the JSON number Xero sends (`40.0`, `388.89`).
fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

fn seed(cfg: &XeroMockConfig, base: DateTime<Utc>) -> XeroRecords {
    // Every record two seconds after the previous one.
    let at = |n: usize| ms_json(base + Duration::seconds(2 * n as i64));
    let day = |d: i64| {
        let t = (base - Duration::days(d))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        (ms_json(t), t.format("%Y-%m-%dT00:00:00").to_string())
    };
    let contact_name = |i: usize| format!("Client {i} Ltd");
    let contacts = (1..=cfg.contacts)
        .map(|i| {
            json!({"ContactID": uuid(0xc0, i), "ContactNumber": format!("C-{i:03}"), "AccountNumber": null,
                "ContactStatus": if i % 10 == 0 { "ARCHIVED" } else { "ACTIVE" },
                "Name": contact_name(i), "FirstName": format!("Given{i}"), "LastName": format!("Family{i}"),
                "EmailAddress": format!("billing{i}@client.example"), "IsSupplier": i % 4 == 0, "IsCustomer": true,
                "DefaultCurrency": "NZD", "Addresses": [{"AddressType": "POBOX", "City": "Wellington"}], "Phones": [],
                "UpdatedDateUTC": at(i), "HasAttachments": false})
        })
        .collect();
    let invoices = (1..=cfg.invoices)
        .map(|i| {
            let c = 1 + i % cfg.contacts.max(1);
            let sub = 10_000 + ((i * 3_719) % 500_000) as i64;
            let lines = cfg.lines_per_invoice.max(1);
            let line_cents: Vec<i64> = (0..lines)
                .map(|k| if k + 1 < lines { sub / lines as i64 } else { sub - (sub / lines as i64) * (lines as i64 - 1) })
                .collect();
            let taxes: Vec<i64> = line_cents.iter().map(|c| (c * 15 + 50) / 100).collect();
            let tax: i64 = taxes.iter().sum();
            let total = sub + tax;
            let status = match i {
                3 => "DELETED",
                4 => "VOIDED",
                _ if i % 7 == 0 => "PAID",
                _ if i % 11 == 0 => "DRAFT",
                _ => "AUTHORISED",
            };
            let paid = if status == "PAID" { total } else { 0 };
            let (date, date_string) = day((i % 60) as i64);
            let (due, due_string) = day((i % 60) as i64 - 30);
            let line_items: Vec<Value> = line_cents
                .iter()
                .zip(&taxes)
                .enumerate()
                .map(|(k, (c, t))| {
                    json!({"LineItemID": uuid(0x11, i * 100 + k), "Description": format!("Placement fee {i}/{}", k + 1),
                        "Quantity": 1.0, "UnitAmount": money(*c), "LineAmount": money(*c), "TaxAmount": money(*t),
                        "AccountCode": "200", "TaxType": "OUTPUT2", "Tracking": []})
                })
                .collect();
            json!({"Type": if i % 5 == 0 { "ACCPAY" } else { "ACCREC" }, "InvoiceID": uuid(0x1e, i),
                "InvoiceNumber": format!("INV-{i:04}"), "Reference": format!("PL-{}", 7000 + i),
                "Contact": {"ContactID": uuid(0xc0, c), "Name": contact_name(c)},
                "DateString": date_string, "Date": date, "DueDateString": due_string, "DueDate": due,
                "Status": status, "LineAmountTypes": "Exclusive", "LineItems": line_items,
                "SubTotal": money(sub), "TotalTax": money(tax), "Total": money(total),
                "AmountDue": money(total - paid), "AmountPaid": money(paid), "AmountCredited": 0.0,
                "CurrencyCode": "NZD", "CurrencyRate": 1.0, "Payments": [], "HasAttachments": false,
                "UpdatedDateUTC": at(cfg.contacts + i)})
        })
        .collect();
    let payments = (1..=cfg.payments)
        .map(|j| {
            let i = 2 * j;
            let c = 1 + i % cfg.contacts.max(1);
            let (date, date_string) = day(1);
            json!({"PaymentID": uuid(0x9a, j), "Date": date, "DateString": date_string, "Amount": 250.75, "BankAmount": 250.75,
                "CurrencyRate": 1.0, "Reference": format!("DD {j}"), "PaymentType": "ACCRECPAYMENT", "Status": "AUTHORISED",
                "IsReconciled": j % 2 == 0, "HasAccount": true,
                "Account": {"AccountID": uuid(0xac, 1), "Code": "090"},
                "Invoice": {"InvoiceID": uuid(0x1e, i), "InvoiceNumber": format!("INV-{i:04}"), "Type": "ACCREC",
                    "Contact": {"ContactID": uuid(0xc0, c), "Name": contact_name(c)}},
                "UpdatedDateUTC": at(cfg.contacts + cfg.invoices + j)})
        })
        .collect();
    XeroRecords { contacts, invoices, payments }
}

/// The 401/403 body (problem details).
fn refused(status: u16, title: &str, detail: &str) -> Response {
    wire::json(status, json!({"Type": null, "Title": title, "Status": status, "Detail": detail}))
}

/// A 400 `ValidationException` with one message.
fn validation(message: &str) -> Response {
    wire::json(
        400,
        json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
            "Elements": [{"ValidationErrors": [{"Message": message}]}]}),
    )
}

async fn serve(State(st): State<Arc<Mutex<Xero>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut x = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == TOKEN_PATH {
        return token(&mut x, &parts.headers, &body);
    }
    let Some(endpoint) =
        path.strip_prefix(API_PREFIX).and_then(|e| ENDPOINTS.iter().find(|n| **n == e))
    else {
        return wire::json(
            404,
            json!({"Title": "Not Found", "Status": 404, "Detail": "The resource you're looking for cannot be found"}),
        );
    };
    if parts.method != Method::GET {
        return validation("Only GET is mocked");
    }
    if !x.core.access_ok(wire::bearer(&parts.headers)) {
        return refused(401, "Unauthorized", "AuthenticationUnsuccessful");
    }
    if wire::header_str(&parts.headers, "xero-tenant-id") != Some(x.cfg.tenant_id.as_str()) {
        return refused(403, "Forbidden", "AuthorizationUnsuccessful");
    }
    // The budgets: per tenant a minute and a day, per app a minute.
    let now = Utc::now();
    let (minute, today) = (now.timestamp() / 60, now.timestamp() / 86_400);
    if x.minute.0 != minute {
        x.minute = (minute, 0);
    }
    if x.day.0 != today {
        x.day = (today, 0);
    }
    let over = if x.minute.1 >= x.cfg.minute_limit {
        Some(("minute", 60 - now.timestamp() % 60))
    } else if x.day.1 >= x.cfg.day_limit {
        Some(("day", 86_400 - now.timestamp() % 86_400))
    } else {
        None
    };
    if over.is_some() {
        x.core.refused += 1;
    }
    let fault = if over.is_none() { x.core.next_fault() } else { None };
    if over.is_none() && !matches!(fault, Some(Fault::RateLimited { .. })) {
        x.minute.1 += 1;
        x.day.1 += 1;
    }
    let limits = [
        ("x-minlimit-remaining", x.cfg.minute_limit.saturating_sub(x.minute.1).to_string()),
        ("x-daylimit-remaining", x.cfg.day_limit.saturating_sub(x.day.1).to_string()),
        ("x-appminlimit-remaining", x.cfg.app_minute_limit.saturating_sub(x.minute.1).to_string()),
    ];
    let resp = match (over, fault) {
        (Some((problem, wait)), _) => too_many(problem, wait as u64),
        (None, Some(Fault::RateLimited { retry_after_secs })) => {
            too_many("minute", retry_after_secs)
        }
        (None, Some(Fault::Error(status, body))) => wire::json(status, body),
        (None, None) => {
            let accept = wire::header_str(&parts.headers, "accept").unwrap_or("");
            let xml = x.xml_answers > 0 || !accept.contains("application/json");
            x.xml_answers = x.xml_answers.saturating_sub(1);
            list(&x, endpoint, &parts.headers, &pairs, xml)
        }
    };
    wire::with_headers(resp, &limits)
}

fn too_many(problem: &str, retry_after: u64) -> Response {
    wire::with_headers(
        wire::json(
            429,
            json!({"Title": "Too Many Requests", "Status": 429, "Detail": "Rate limit exceeded"}),
        ),
        &[("retry-after", retry_after.to_string()), ("x-rate-limit-problem", problem.to_string())],
    )
}

fn token(x: &mut Xero, headers: &HeaderMap, body: &[u8]) -> Response {
    x.core.token_requests += 1;
    if wire::basic_credentials(headers)
        != Some((x.cfg.client_id.clone(), x.cfg.client_secret.clone()))
    {
        let mut answer = json!({"error": "invalid_client"});
        if x.cfg.echo_refused_credentials {
            // The header as sent, the pair decoded, and it form-encoded.
            let (id, secret) = wire::basic_credentials(headers).unwrap_or_default();
            let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &id)
                .append_pair("client_secret", &secret)
                .finish();
            answer["error_description"] = json!(format!(
                "refused Authorization: {} ({id}:{secret}; {encoded}) with body {}",
                wire::header_str(headers, "authorization").unwrap_or(""),
                String::from_utf8_lossy(body)
            ));
        }
        return wire::json(400, answer);
    }
    let form = wire::form_fields(headers, body);
    let refresh = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let Some(next) =
                x.core.rotate_refresh(form.get("refresh_token").map(String::as_str), "xero-rt")
            else {
                return wire::json(400, json!({"error": "invalid_grant"}));
            };
            Some(next)
        }
        Some("client_credentials") if x.cfg.custom_connection => None,
        Some("client_credentials") => {
            return wire::json(400, json!({"error": "unauthorized_client"}))
        }
        _ => return wire::json(400, json!({"error": "unsupported_grant_type"})),
    };
    let access = x.core.issue_access("xero-at");
    let mut answer = json!({"access_token": access, "expires_in": 1800, "token_type": "Bearer",
        "scope": "accounting.transactions.read accounting.contacts.read offline_access"});
    if let Some(r) = refresh {
        answer["refresh_token"] = json!(r);
    }
    wire::json(200, answer)
}

/// `2024-06-01T00:00:00` (UTC), fractions allowed; anything else is not read.
fn modified_since(headers: &HeaderMap) -> Option<DateTime<Utc>> {
    let v = wire::header_str(headers, "if-modified-since")?.trim();
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc())
}

fn list(
    x: &Xero,
    endpoint: &str,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    xml: bool,
) -> Response {
    let page = match wire::param(pairs, "page").map(str::parse::<usize>) {
        None => None,
        Some(Ok(p)) if p >= 1 => Some(p),
        Some(_) => return validation("page must be a positive whole number"),
    };
    let size = match wire::param(pairs, "pageSize").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(s)) if (1..=x.cfg.max_page_size).contains(&s) => s,
        Some(_) => {
            return validation(&format!("pageSize must be between 1 and {}", x.cfg.max_page_size))
        }
    };
    let since = modified_since(headers);
    let archived =
        wire::param(pairs, "includeArchived").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let updated = |r: &Value| parse_ms_json(&r["UpdatedDateUTC"]).expect("seeded time");
    let key = id_field(endpoint);
    let mut rows: Vec<&Value> = x
        .list(endpoint)
        .iter()
        .filter(|r| endpoint != "Contacts" || archived || r["ContactStatus"] != "ARCHIVED")
        .filter(|r| since.is_none_or(|s| updated(r) >= s))
        .collect();
    match wire::param(pairs, "order").map(|o| o.to_ascii_lowercase()) {
        Some(o) if o == "updateddateutc asc" || o == "updateddateutc" => {
            rows.sort_by_key(|r| (updated(r), r[key].as_str().map(str::to_string)))
        }
        Some(o) if o == "updateddateutc desc" => rows
            .sort_by_key(|r| std::cmp::Reverse((updated(r), r[key].as_str().map(str::to_string)))),
        Some(o) => return validation(&format!("Order by '{o}' is not supported by the mock")),
        None => rows.sort_by_key(|r| r[key].as_str().map(str::to_string)),
    }
    let total = rows.len();
    let served: Vec<Value> = match page {
        Some(p) => rows.into_iter().skip((p - 1) * size).take(size).cloned().collect(),
        // Unpaged lists are summaries: no line items.
        None => rows
            .into_iter()
            .cloned()
            .map(|mut r| {
                if let Some(o) = r.as_object_mut() {
                    o.remove("LineItems");
                }
                r
            })
            .collect(),
    };
    let mut envelope = Map::new();
    envelope.insert("Id".into(), json!(wire::unique_token("resp")));
    envelope.insert("Status".into(), json!("OK"));
    envelope.insert("ProviderName".into(), json!("Conveyor mock"));
    envelope
        .insert("DateTimeUTC".into(), json!(format!("/Date({})/", Utc::now().timestamp_millis())));
    if let Some(p) = page {
        envelope.insert(
            "pagination".into(),
            json!({"page": p, "pageSize": size, "pageCount": total.div_ceil(size), "itemCount": total}),
        );
    }
    envelope.insert(endpoint.into(), Value::Array(served));
    let body = Value::Object(envelope);
    if xml {
        let text = format!(
            "<Response xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\">{}</Response>",
            to_xml(&body)
        );
        return ([("content-type", "text/xml; charset=utf-8")], text).into_response();
    }
    wire::json(200, body)
}

/// A JSON value as Xero-style XML elements: lists hold one element per
/// item named by the singular (`Invoices` → `Invoice`).
fn to_xml(v: &Value) -> String {
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match v {
                Value::Array(items) => {
                    let one = k.strip_suffix('s').unwrap_or(k);
                    let inner: String =
                        items.iter().map(|i| format!("<{one}>{}</{one}>", to_xml(i))).collect();
                    format!("<{k}>{inner}</{k}>")
                }
                Value::Null => String::new(),
                other => format!("<{k}>{}</{k}>", to_xml(other)),
            })
            .collect(),
        Value::String(s) => s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
        Value::Array(_) | Value::Null => String::new(),
        other => other.to_string(),
    }
}
