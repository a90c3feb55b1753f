//! A configurable generic paginated JSON API: the fixture for the declarative REST connector's tests.
//!
//! One data endpoint (default `GET /items`) pages a deterministic dataset in one of six styles, behind
//! one of several auth schemes, optionally filtered incrementally; `POST /oauth/token` serves OAuth.
//! A [`RestMockHandle`] mutates data, queues faults and inspects requests while the server runs.
//!
//! For hardening tests it can also misbehave for good ([`PagingFault`]: next links in a circle,
//! endless empty pages, the same page whatever is asked, redirect loops) and echo credentials back
//! the way careless APIs do ([`Fault::Echo`], [`RestMockHandle::echo_token_requests`]): the request's
//! `Authorization` header and every secret it knows in every encoding ([`secret_forms`]), in the
//! error body and in headers.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    body::to_bytes,
    extract::{Request, State},
    http::{header::CONTENT_TYPE, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    Engine,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

pub use crate::wire::RequestLog;
use crate::{server::MockServer, wire};

/// Path of the OAuth token endpoint (both OAuth auth modes).
pub const TOKEN_PATH: &str = "/oauth/token";
/// Value of `X-RateLimit-Limit`; `X-RateLimit-Remaining` counts down from it per request.
pub const RATE_LIMIT: u64 = 1000;
/// Largest page a client may ask for via `limit`/`per_page`/`page_size`.
pub const MAX_PAGE_SIZE: usize = 1000;

/// How the data endpoint splits the dataset into pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pagination {
    /// `{"data":[...],"next":"<absolute url ?cursor=..>"|null}`.
    NextUrlInBody,
    /// Bare JSON array plus `Link: <url?cursor=..>; rel="next"` (absent on the last page); 422 when
    /// `cursor` is sent with any other query parameter (Greenhouse Harvest v3).
    LinkHeader,
    /// `{"results":[...],"paging":{"next":{"after":tok,"link":url}}}`, no `paging` on the last page;
    /// the client sends `after=<tok>` (HubSpot).
    CursorToken,
    /// The client sends `offset` and `limit`; `{"items":[...],"total":N}`.
    OffsetLimit,
    /// The client sends `page` (1-based) and `per_page`; `{"items":[...]}` plus `X-Page`, `X-Per-Page`,
    /// `X-Total-Pages`, `X-Total-Count` (Gusto). Pages past the end are empty.
    PageNumber,
    /// `{"calls":[...],"next_page":"<url ?cursor=..>","count":n,"end_time":unix}` where `next_page` is
    /// never null, not even on the last page (Zendesk Talk); no page-size parameter is honoured.
    NeverNullNext,
}

/// Credentials the data endpoint demands; failures get 401 `{"error":"unauthorized","message":..}`.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    ApiKeyHeader {
        name: String,
        value: String,
    },
    ApiKeyQuery {
        name: String,
        value: String,
    },
    Basic {
        user: String,
        pass: String,
    },
    Bearer {
        token: String,
    },
    /// `POST /oauth/token`, `grant_type=client_credentials`, client auth by Basic or form fields.
    OAuthClientCredentials {
        client_id: String,
        client_secret: String,
        token_ttl_secs: u64,
    },
    /// `POST /oauth/token`, `grant_type=refresh_token&refresh_token=..`; with `rotate` each refresh
    /// issues a new refresh token and revokes the old one (QuickBooks).
    OAuthRefreshToken {
        client_id: String,
        client_secret: String,
        initial_refresh_token: String,
        rotate: bool,
        token_ttl_secs: u64,
    },
}

/// Where the client's "updated since" value arrives. It may be ISO-8601, `gte|<iso>` or unix seconds;
/// records with `updated_at >= value` are served.
#[derive(Clone, Debug)]
pub enum Incremental {
    QueryParam { name: String },
    Header { name: String },
}

/// A misbehaviour injected into the next data request (FIFO, one per request; token calls skip it).
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 with `Retry-After` and `X-RateLimit-Reset` (epoch seconds).
    TooManyRequests { retry_after_secs: u64 },
    /// 500 `{"error":"internal","message":"upstream exploded"}`.
    ServerError,
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// 200 `application/json` with a truncated body.
    MalformedJson,
    /// This status with this body (served as JSON when it looks like JSON).
    Status(u16, String),
    /// This status, echoing the credentials: the request's `Authorization` header, query and every
    /// known secret in every form ([`RestMockHandle::secret_forms`]) in the JSON body, and the
    /// header and forms again in `x-echo-authorization`, `www-authenticate` and `x-echo-forms`.
    Echo(u16),
    /// 200 with an empty page whose next link (`next` in the body and a `Link` header) carries every
    /// secret form in its query, the way an API that puts the caller's credentials into its links
    /// would; the body is `{"data":[],"next":…}` whatever the style.
    EchoInNextLink,
}

/// A paging misbehaviour the data endpoint keeps up on every request (a [`Fault`] is served once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingFault {
    /// Link styles: the first page links to page B (the second slice), B links to page A (the first
    /// slice, as an explicit cursor), A to B again: A→B→A, forever.
    Cycle,
    /// Every page is empty and links to a new next page, forever.
    EndlessEmpty,
    /// The first full page whatever the paging parameters ask, with a next page always promised (an
    /// API that ignores `offset`/`page`).
    SamePage,
    /// The data endpoint answers 302 to `?hop=a`, which redirects to `?hop=b`, which redirects back
    /// to `?hop=a`.
    RedirectLoop,
    /// Every redirect leads to a new URL (`?hop=1`, `?hop=2`, …), never to data.
    EndlessRedirects,
}

#[derive(Clone, Debug)]
pub struct RestMockConfig {
    /// Data endpoint path, default `/items`.
    pub path: String,
    /// Default page size (100) when the client sends none.
    pub page_size: usize,
    pub pagination: Pagination,
    pub auth: Auth,
    pub incremental: Option<Incremental>,
    /// Send `X-RateLimit-Limit`/`X-RateLimit-Remaining` on every response.
    pub rate_limit_headers: bool,
    /// Initial dataset, kept sorted by `id` (default `dataset(250)`).
    pub records: Vec<Value>,
    /// A misbehaviour kept up on every data request (none by default).
    pub paging_fault: Option<PagingFault>,
}

impl Default for RestMockConfig {
    fn default() -> Self {
        RestMockConfig {
            path: "/items".into(),
            page_size: 100,
            pagination: Pagination::NextUrlInBody,
            auth: Auth::None,
            incremental: None,
            rate_limit_headers: false,
            records: dataset(250),
            paging_fault: None,
        }
    }
}

/// Deterministic record `i` (1-based): id, name, email, amount, active, updated_at, address, tags.
pub fn record(i: u64) -> Value {
    const CITIES: [&str; 4] = ["Lisbon", "Austin", "Osaka", "Nairobi"];
    let base = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let updated = base + chrono::Duration::seconds(i as i64);
    // Varying tag counts (including none) exercise array handling.
    let tags: Vec<String> = (0..i % 3).map(|t| format!("tag{}", (i + t) % 5)).collect();
    json!({
        "id": i,
        "name": format!("Person {i}"),
        "email": format!("person{i}@example.com"),
        "amount": 10.5 + i as f64,
        "active": !i.is_multiple_of(4),
        "updated_at": wire::iso_millis(updated),
        "address": {"city": CITIES[(i % 4) as usize], "zip": format!("{:05}", 10000 + i)},
        "tags": tags,
    })
}

/// Records `1..=n`.
pub fn dataset(n: u64) -> Vec<Value> {
    (1..=n).map(record).collect()
}

pub struct RestMock {
    config: RestMockConfig,
}

struct MockState {
    config: RestMockConfig,
    records: Vec<Value>,
    log: Vec<RequestLog>,
    faults: VecDeque<Fault>,
    access_tokens: HashMap<String, Instant>,
    refresh_current: Option<String>,
    refresh_issued: Vec<String>,
    access_issued: Vec<String>,
    /// Token requests answered with this status, echoing the credentials.
    token_echo: Option<u16>,
}

/// Live view of a running [`RestMock`]; cheap to clone.
#[derive(Clone)]
pub struct RestMockHandle(Arc<Mutex<MockState>>);

impl RestMock {
    pub fn new(config: RestMockConfig) -> Self {
        RestMock { config }
    }

    pub async fn start(self) -> (MockServer, RestMockHandle) {
        let mut config = self.config;
        let mut records = std::mem::take(&mut config.records);
        sort_by_id(&mut records);
        let refresh = match &config.auth {
            Auth::OAuthRefreshToken { initial_refresh_token, .. } => {
                Some(initial_refresh_token.clone())
            }
            _ => None,
        };
        let handle = RestMockHandle(Arc::new(Mutex::new(MockState {
            config,
            records,
            log: Vec::new(),
            faults: VecDeque::new(),
            access_tokens: HashMap::new(),
            refresh_issued: refresh.iter().cloned().collect(),
            refresh_current: refresh,
            access_issued: Vec::new(),
            token_echo: None,
        })));
        let router = Router::new().fallback(serve).with_state(handle.clone());
        (MockServer::start(router).await, handle)
    }
}

fn sort_by_id(records: &mut [Value]) {
    records.sort_by_key(|r| r["id"].as_u64().unwrap_or(0));
}

impl RestMockHandle {
    fn lock(&self) -> MutexGuard<'_, MockState> {
        // A panicking test thread must not wedge the server for the others.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_records(&self, mut records: Vec<Value>) {
        sort_by_id(&mut records);
        self.lock().records = records;
    }

    /// Mutates the record with this id (the caller bumps `updated_at` if it wants); false if absent.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Value)) -> bool {
        let mut s = self.lock();
        let Some(rec) = s.records.iter_mut().find(|r| r["id"].as_u64() == Some(id)) else {
            return false;
        };
        f(rec);
        true
    }

    pub fn push(&self, record: Value) {
        let mut s = self.lock();
        s.records.push(record);
        sort_by_id(&mut s.records);
    }

    pub fn records(&self) -> Vec<Value> {
        self.lock().records.clone()
    }

    /// Every request received, token calls and unknown paths included, oldest first.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.lock().log.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().log.len()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.lock().faults = faults.into();
    }

    /// Invalidates every issued access token now, as if they all expired mid-sync.
    pub fn expire_tokens(&self) {
        self.lock().access_tokens.clear();
    }

    /// Refresh tokens in issue order, the configured initial one first.
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.lock().refresh_issued.clone()
    }

    /// The only refresh token the server currently accepts.
    pub fn current_refresh_token(&self) -> Option<String> {
        self.lock().refresh_current.clone()
    }

    /// Access tokens in issue order.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.lock().access_issued.clone()
    }

    /// Answers every token request with `status` (`None`: normally again), echoing the request's
    /// credentials and every secret form in the body and headers, like [`Fault::Echo`].
    pub fn echo_token_requests(&self, status: Option<u16>) {
        self.lock().token_echo = status;
    }

    /// Changes the misbehaviour kept up on every data request.
    pub fn set_paging_fault(&self, fault: Option<PagingFault>) {
        self.lock().config.paging_fault = fault;
    }

    /// Every form of every secret this server knows — the configured credentials (and for Basic and
    /// OAuth clients the `user:secret` pair as sent in a Basic header) and the tokens it issued — as
    /// [`secret_forms`] and [`basic_forms`] spell them: what must never leave a client.
    pub fn secret_forms(&self) -> Vec<String> {
        let s = self.lock();
        known_secret_forms(&s)
    }
}

/// The forms a secret takes on the wire: as is, percent-encoded (every byte outside RFC 3986's
/// unreserved set), form-encoded (`+` for a space), and base64 in both alphabets, padded or not.
pub fn secret_forms(secret: &str) -> Vec<String> {
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut out = vec![secret.to_string(), percent, form];
    out.extend(base64_forms(secret.as_bytes()));
    dedup(out)
}

/// The forms of a `user:secret` pair sent by HTTP Basic: the header value, its base64 in both
/// alphabets padded or not, and those form-encoded (as they look when echoed inside a URL).
pub fn basic_forms(user: &str, secret: &str) -> Vec<String> {
    let mut out = vec![format!("Basic {}", STANDARD.encode(format!("{user}:{secret}")))];
    for b64 in base64_forms(format!("{user}:{secret}").as_bytes()) {
        out.push(url::form_urlencoded::byte_serialize(b64.as_bytes()).collect());
        out.push(b64);
    }
    dedup(out)
}

fn base64_forms(bytes: &[u8]) -> Vec<String> {
    vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

fn known_secret_forms(s: &MockState) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    match &s.config.auth {
        Auth::None => {}
        Auth::ApiKeyHeader { value, .. } | Auth::ApiKeyQuery { value, .. } => {
            secrets.push(value.clone())
        }
        Auth::Basic { user, pass } => {
            secrets.push(pass.clone());
            pairs.push((user.clone(), pass.clone()));
        }
        Auth::Bearer { token } => secrets.push(token.clone()),
        Auth::OAuthClientCredentials { client_id, client_secret, .. }
        | Auth::OAuthRefreshToken { client_id, client_secret, .. } => {
            secrets.push(client_secret.clone());
            pairs.push((client_id.clone(), client_secret.clone()));
        }
    }
    secrets.extend(s.refresh_issued.iter().cloned());
    secrets.extend(s.access_issued.iter().cloned());
    let mut out: Vec<String> = secrets.iter().flat_map(|v| secret_forms(v)).collect();
    out.extend(pairs.iter().flat_map(|(u, p)| basic_forms(u, p)));
    dedup(out)
}

/// A reply that quotes the request's credentials back: in the JSON body (the `Authorization` header,
/// the query, the request body, every known secret form) and in headers.
fn echo(s: &MockState, status: u16, headers: &HeaderMap, query: &str, body: &[u8]) -> Response {
    let auth = wire::header_str(headers, "authorization").unwrap_or("").to_string();
    let forms = known_secret_forms(s);
    let body_text = String::from_utf8_lossy(body).into_owned();
    let reply = json!({
        "error": "invalid_request",
        "message": format!(
            "rejected credentials {auth}; you sent: {}; query {query}; body {body_text}",
            forms.join(" ")
        ),
        "authorization": auth,
        "query": query,
        "body": body_text,
        "forms": forms,
    });
    let header_forms: Vec<&str> =
        forms.iter().map(String::as_str).filter(|f| HeaderValue::from_str(f).is_ok()).collect();
    let mut resp = wire::json(status, reply);
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-echo-authorization", auth.clone()),
        ("www-authenticate", format!("Basic realm=\"{auth}\"")),
        ("x-echo-forms", header_forms.join(" ")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

async fn serve(State(h): State<RestMockHandle>, req: Request) -> Response {
    let entry = RequestLog::of(&req);
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let (data_path, rate_headers, served) = {
        let mut s = h.lock();
        s.log.push(entry);
        (s.config.path.clone(), s.config.rate_limit_headers, s.log.len() as u64)
    };
    let resp = if parts.method == Method::POST && parts.uri.path() == TOKEN_PATH {
        let mut s = h.lock();
        match s.token_echo {
            Some(status) => {
                echo(&s, status, &parts.headers, parts.uri.query().unwrap_or(""), &body)
            }
            None => token(&mut s, &parts.headers, &body),
        }
    } else if parts.method == Method::GET && parts.uri.path() == data_path {
        data(&h, &parts).await
    } else {
        wire::json(404, json!({"error": "not_found", "message": "no such endpoint"}))
    };
    if !rate_headers {
        return resp;
    }
    // The window "resets" every RATE_LIMIT requests so long test runs never starve.
    let remaining = (RATE_LIMIT - 1 - (served - 1) % RATE_LIMIT).to_string();
    let headers =
        [("x-ratelimit-limit", RATE_LIMIT.to_string()), ("x-ratelimit-remaining", remaining)];
    wire::with_headers(resp, &headers)
}

async fn data(h: &RestMockHandle, parts: &Parts) -> Response {
    let fault = h.lock().faults.pop_front();
    let query = parts.uri.query().unwrap_or("");
    match fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Echo(status)) => return echo(&h.lock(), status, &parts.headers, query, &[]),
        Some(Fault::EchoInNextLink) => return echo_in_next_link(&h.lock(), &parts.headers),
        Some(f) => return fault_response(f),
        None => {}
    }
    let s = h.lock();
    let pairs = wire::query_pairs(query);
    if let Some(to) = redirect(&s, &parts.headers, &pairs) {
        return to;
    }
    if !authorized(&s, &parts.headers, &pairs) {
        let msg = "missing or invalid credentials";
        return wire::json(401, json!({"error": "unauthorized", "message": msg}));
    }
    page(&s, &parts.headers, &pairs)
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::TooManyRequests { retry_after_secs } => {
            let reset = Utc::now().timestamp() + retry_after_secs as i64;
            let body = json!({"error": "rate_limited", "message": "Too many requests"});
            let headers = [
                ("retry-after", retry_after_secs.to_string()),
                ("x-ratelimit-reset", reset.to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
            ];
            wire::with_headers(wire::json(429, body), &headers)
        }
        Fault::ServerError => {
            wire::json(500, json!({"error": "internal", "message": "upstream exploded"}))
        }
        Fault::MalformedJson => {
            ([(CONTENT_TYPE, "application/json")], r#"{"data":[{"id":1,"#).into_response()
        }
        Fault::Status(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let looks_json = body.trim_start().starts_with(['{', '[']);
            let ctype = if looks_json { "application/json" } else { "text/plain" };
            (status, [(CONTENT_TYPE, ctype)], body).into_response()
        }
        Fault::Delay(_) | Fault::Echo(_) | Fault::EchoInNextLink => {
            unreachable!("served by `data`, which has the request")
        }
    }
}

/// An empty page whose next link carries every secret form.
fn echo_in_next_link(s: &MockState, headers: &HeaderMap) -> Response {
    let mut next =
        url::Url::parse(&format!("{}{}", wire::origin(headers), s.config.path)).expect("mock URL");
    {
        let mut q = next.query_pairs_mut();
        q.append_pair("cursor", &wire::encode_cursor(&json!({"o": 0})));
        for form in known_secret_forms(s) {
            q.append_pair("echo", &form);
        }
    }
    let link = ("link", format!("<{next}>; rel=\"next\""));
    wire::with_headers(wire::json(200, json!({"data": [], "next": next.as_str()})), &[link])
}

/// The redirect a [`PagingFault`] asks for, if any.
fn redirect(s: &MockState, headers: &HeaderMap, pairs: &[(String, String)]) -> Option<Response> {
    let hop = wire::param(pairs, "hop");
    let next = match s.config.paging_fault? {
        PagingFault::RedirectLoop => match hop {
            Some("a") => "b".to_string(),
            _ => "a".to_string(),
        },
        PagingFault::EndlessRedirects => {
            (hop.and_then(|h| h.parse::<u64>().ok()).unwrap_or(0) + 1).to_string()
        }
        _ => return None,
    };
    let to = format!("{}{}?hop={next}", wire::origin(headers), s.config.path);
    Some((StatusCode::FOUND, [(axum::http::header::LOCATION, to)]).into_response())
}

fn authorized(s: &MockState, headers: &HeaderMap, pairs: &[(String, String)]) -> bool {
    match &s.config.auth {
        Auth::None => true,
        Auth::ApiKeyHeader { name, value } => {
            wire::header_str(headers, name) == Some(value.as_str())
        }
        Auth::ApiKeyQuery { name, value } => wire::param(pairs, name) == Some(value.as_str()),
        Auth::Basic { user, pass } => {
            wire::basic_credentials(headers) == Some((user.clone(), pass.clone()))
        }
        Auth::Bearer { token } => wire::bearer(headers) == Some(token.as_str()),
        Auth::OAuthClientCredentials { .. } | Auth::OAuthRefreshToken { .. } => {
            wire::bearer(headers)
                .and_then(|t| s.access_tokens.get(t))
                .is_some_and(|expiry| *expiry > Instant::now())
        }
    }
}

fn token(s: &mut MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = wire::form_fields(headers, body);
    let (id, secret, ttl, rotate) = match &s.config.auth {
        Auth::OAuthClientCredentials { client_id, client_secret, token_ttl_secs } => {
            (client_id.clone(), client_secret.clone(), *token_ttl_secs, None)
        }
        Auth::OAuthRefreshToken { client_id, client_secret, token_ttl_secs, rotate, .. } => {
            (client_id.clone(), client_secret.clone(), *token_ttl_secs, Some(*rotate))
        }
        _ => return wire::json(404, json!({"error": "not_found"})),
    };
    let creds = wire::basic_credentials(headers)
        .or_else(|| Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())));
    if creds != Some((id, secret)) {
        return wire::json(401, json!({"error": "invalid_client"}));
    }
    let grant = form.get("grant_type").map(String::as_str);
    let mut reply = match (rotate, grant) {
        (None, Some("client_credentials")) => json!({}),
        (Some(rotate), Some("refresh_token")) => {
            if s.refresh_current.is_none()
                || form.get("refresh_token") != s.refresh_current.as_ref()
            {
                return wire::json(400, json!({"error": "invalid_grant"}));
            }
            if rotate {
                let fresh = wire::unique_token("rt");
                s.refresh_issued.push(fresh.clone());
                s.refresh_current = Some(fresh);
            }
            json!({"refresh_token": s.refresh_current, "x_refresh_token_expires_in": 8_726_400})
        }
        _ => return wire::json(400, json!({"error": "unsupported_grant_type"})),
    };
    let access = wire::unique_token("at");
    s.access_issued.push(access.clone());
    s.access_tokens.insert(access.clone(), Instant::now() + Duration::from_secs(ttl));
    reply["access_token"] = json!(access);
    reply["token_type"] = json!("bearer");
    reply["expires_in"] = json!(ttl);
    wire::json(200, reply)
}

/// Incremental values: `gte|<iso>` (Greenhouse), ISO-8601, or unix seconds.
fn parse_since(raw: &str) -> Option<DateTime<Utc>> {
    wire::parse_time(raw.strip_prefix("gte|").unwrap_or(raw))
}

fn bad_request(message: &str) -> Response {
    wire::json(400, json!({"error": "bad_request", "message": message}))
}

fn page(s: &MockState, headers: &HeaderMap, pairs: &[(String, String)]) -> Response {
    use Pagination::*;
    let cfg = &s.config;
    let style = cfg.pagination;
    let cursor_name = if style == CursorToken { "after" } else { "cursor" };
    let api_key = match &cfg.auth {
        Auth::ApiKeyQuery { name, .. } => Some(name.as_str()),
        _ => None,
    };
    let others = pairs.iter().any(|(k, _)| k != "cursor" && Some(k.as_str()) != api_key);
    if style == LinkHeader && wire::param(pairs, "cursor").is_some() && others {
        let err = json!({"message": "cursor must be the only query parameter", "field": "cursor"});
        return wire::json(422, json!({"message": "Validation error", "errors": [err]}));
    }
    let uses_cursor = matches!(style, NextUrlInBody | LinkHeader | CursorToken | NeverNullNext);
    let cursor = match wire::param(pairs, cursor_name).filter(|_| uses_cursor) {
        Some(raw) => match wire::decode_cursor(raw) {
            Some(c) => c,
            None => return bad_request("invalid cursor"),
        },
        None => json!({}),
    };
    let asked = ["limit", "per_page", "page_size"]
        .iter()
        .find_map(|n| wire::param(pairs, n))
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|_| style != NeverNullNext);
    let from_cursor = cursor["l"].as_u64().map(|l| l as usize);
    let limit = asked.or(from_cursor).unwrap_or(cfg.page_size).clamp(1, MAX_PAGE_SIZE);
    let since_raw = match &cfg.incremental {
        Some(Incremental::QueryParam { name }) => wire::param(pairs, name),
        Some(Incremental::Header { name }) => wire::header_str(headers, name),
        None => None,
    }
    .or(cursor["s"].as_str());
    let since = match since_raw.map(parse_since) {
        Some(None) => return bad_request("unparseable incremental value"),
        parsed => parsed.flatten(),
    };
    let number = |name: &str| wire::param(pairs, name).and_then(|v| v.parse::<usize>().ok());
    let page_no = number("page").unwrap_or(1).max(1);
    let offset = match style {
        _ if cfg.paging_fault == Some(PagingFault::SamePage) => 0,
        OffsetLimit => number("offset").unwrap_or(0),
        PageNumber => (page_no - 1) * limit,
        _ => cursor["o"].as_u64().unwrap_or(0) as usize,
    };
    let updated = |r: &Value| r["updated_at"].as_str().and_then(wire::parse_time);
    let matching: Vec<&Value> = s
        .records
        .iter()
        .filter(|r| since.is_none_or(|t| updated(r).is_some_and(|u| u >= t)))
        .collect();
    let total = matching.len();
    let mut items: Vec<Value> =
        matching.iter().skip(offset).take(limit).map(|v| (*v).clone()).collect();
    let mut end = offset.min(total) + items.len();
    let mut more = end < total;
    match cfg.paging_fault {
        // First page → B (the second slice) → A (the first slice, by cursor) → B …
        Some(PagingFault::Cycle) => {
            end = if offset == 0 { limit } else { 0 };
            more = true;
        }
        // Always a next page, always a new one, never a record.
        Some(PagingFault::EndlessEmpty) => {
            items.clear();
            end = offset + limit;
            more = true;
        }
        Some(PagingFault::SamePage) => more = true,
        _ => {}
    }
    // The cursor carries the filter too, because Greenhouse-style next links must stand alone.
    let next_cursor = wire::encode_cursor(&json!({"o": end, "l": limit, "s": since_raw}));
    let next_url = format!("{}{}?{}={}", wire::origin(headers), cfg.path, cursor_name, next_cursor);
    match style {
        NextUrlInBody => wire::json(200, json!({"data": items, "next": more.then_some(next_url)})),
        LinkHeader => {
            let link = more.then(|| ("link", format!("<{next_url}>; rel=\"next\"")));
            wire::with_headers(wire::json(200, Value::Array(items)), link.as_slice())
        }
        CursorToken => {
            let mut body = json!({ "results": items });
            if more {
                body["paging"] = json!({"next": {"after": next_cursor, "link": next_url}});
            }
            wire::json(200, body)
        }
        OffsetLimit => wire::json(200, json!({"items": items, "total": total})),
        PageNumber => {
            let headers = [
                ("x-page", page_no.to_string()),
                ("x-per-page", limit.to_string()),
                ("x-total-pages", total.div_ceil(limit).to_string()),
                ("x-total-count", total.to_string()),
            ];
            wire::with_headers(wire::json(200, json!({ "items": items })), &headers)
        }
        NeverNullNext => {
            let end_time = items.last().and_then(updated).unwrap_or_else(Utc::now).timestamp();
            let count = items.len();
            let body = json!({"calls": items, "next_page": next_url, "count": count, "end_time": end_time});
            wire::json(200, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Pagination::*, *};

    fn ids(items: &Value) -> Vec<u64> {
        items.as_array().expect("array").iter().map(|r| r["id"].as_u64().unwrap()).collect()
    }

    async fn start(
        pagination: Pagination,
        tweak: impl FnOnce(&mut RestMockConfig),
    ) -> (MockServer, RestMockHandle) {
        let mut config =
            RestMockConfig { pagination, page_size: 7, records: dataset(23), ..Default::default() };
        tweak(&mut config);
        RestMock::new(config).start().await
    }

    async fn get(url: &str) -> (u16, HeaderMap, String) {
        let resp = reqwest::get(url).await.unwrap();
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.unwrap())
    }

    /// Follows the pages the way a connector would, starting at `first`; returns the ids seen.
    async fn walk(server: &MockServer, style: Pagination, first: &str) -> Vec<u64> {
        let mut seen = vec![];
        let mut url = server.url(first);
        for page in 1.. {
            assert!(page < 50, "pagination never ended");
            let (status, headers, text) = get(&url).await;
            assert_eq!(status, 200, "{text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            let next = match style {
                NextUrlInBody => {
                    seen.extend(ids(&body["data"]));
                    body["next"].as_str().map(String::from)
                }
                LinkHeader => {
                    seen.extend(ids(&body));
                    let link = headers.get("link").map(|l| l.to_str().unwrap().to_string());
                    link.map(|l| l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string())
                }
                CursorToken => {
                    seen.extend(ids(&body["results"]));
                    let after = body["paging"]["next"]["after"].as_str();
                    after.map(|a| server.url(&format!("/items?after={a}")))
                }
                OffsetLimit => {
                    seen.extend(ids(&body["items"]));
                    let done = seen.len() as u64 >= body["total"].as_u64().unwrap();
                    (!done).then(|| server.url(&format!("/items?offset={}&limit=7", seen.len())))
                }
                PageNumber => {
                    seen.extend(ids(&body["items"]));
                    let pages: usize = headers["x-total-pages"].to_str().unwrap().parse().unwrap();
                    (page < pages)
                        .then(|| server.url(&format!("/items?page={}&per_page=7", page + 1)))
                }
                NeverNullNext => {
                    seen.extend(ids(&body["calls"]));
                    let next = body["next_page"].as_str().expect("next_page is never null");
                    (body["count"].as_u64().unwrap() >= 7).then(|| next.to_string())
                }
            };
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        seen
    }

    #[tokio::test]
    async fn every_style_walks_all_records_exactly_once() {
        for style in
            [NextUrlInBody, LinkHeader, CursorToken, OffsetLimit, PageNumber, NeverNullNext]
        {
            let (server, _h) = start(style, |_| {}).await;
            assert_eq!(
                walk(&server, style, "/items").await,
                (1..=23).collect::<Vec<_>>(),
                "{style:?}"
            );
        }
    }

    #[tokio::test]
    async fn page_size_parameter_is_honoured_and_capped() {
        let (server, _h) = start(OffsetLimit, |c| c.records = dataset(1500)).await;
        let (_, _, text) = get(&server.url("/items?limit=5")).await;
        assert_eq!(
            ids(&serde_json::from_str::<Value>(&text).unwrap()["items"]),
            vec![1, 2, 3, 4, 5]
        );
        let (_, _, text) = get(&server.url("/items?limit=5000&offset=100")).await;
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["items"].as_array().unwrap().len(), MAX_PAGE_SIZE);
        assert_eq!(body["total"], 1500);
        let (_, headers, _) = get(&server.url("/items?page=9&per_page=500")).await;
        assert!(
            headers.get("x-total-pages").is_none(),
            "only the PageNumber style sends page headers"
        );
    }

    #[tokio::test]
    async fn greenhouse_cursor_must_be_the_only_parameter() {
        let (server, _h) = start(LinkHeader, |_| {}).await;
        let (_, headers, _) = get(&server.url("/items?per_page=5")).await;
        let link = headers["link"].to_str().unwrap();
        assert!(link.ends_with("rel=\"next\""));
        let next = &link[1..link.find('>').unwrap()];
        let (status, _, text) = get(&format!("{next}&per_page=5")).await;
        assert_eq!(status, 422);
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["errors"][0]["field"], "cursor");
        let (status, _, text) = get(next).await;
        assert_eq!(status, 200);
        assert_eq!(ids(&serde_json::from_str(&text).unwrap()), vec![6, 7, 8, 9, 10]);
    }

    #[tokio::test]
    async fn static_auth_schemes() {
        let cases = [
            (Auth::ApiKeyHeader { name: "x-api-key".into(), value: "s3cret".into() }, "/items"),
            (
                Auth::ApiKeyQuery { name: "api_key".into(), value: "s3cret".into() },
                "/items?api_key=s3cret",
            ),
            (Auth::Basic { user: "u".into(), pass: "s3cret".into() }, "/items"),
            (Auth::Bearer { token: "s3cret".into() }, "/items"),
        ];
        for (auth, path) in cases {
            let (server, _h) = start(NextUrlInBody, |c| c.auth = auth.clone()).await;
            let c = reqwest::Client::new();
            let unauth = c.get(server.url("/items")).send().await.unwrap();
            assert_eq!(unauth.status(), 401, "{auth:?}");
            assert_eq!(unauth.json::<Value>().await.unwrap()["error"], "unauthorized");
            let req = c.get(server.url(path)).header("x-api-key", "s3cret");
            let req = match auth {
                Auth::Bearer { .. } => req.bearer_auth("s3cret"),
                _ => req.basic_auth("u", Some("s3cret")),
            };
            assert_eq!(req.send().await.unwrap().status(), 200, "{auth:?}");
        }
    }

    #[tokio::test]
    async fn client_credentials_tokens_work_then_expire() {
        let auth = Auth::OAuthClientCredentials {
            client_id: "cid".into(),
            client_secret: "sec".into(),
            token_ttl_secs: 1,
        };
        let (server, h) = start(NextUrlInBody, |c| c.auth = auth).await;
        let c = reqwest::Client::new();
        let token_url = server.url(TOKEN_PATH);
        let grant = [("grant_type", "client_credentials")];
        let bad =
            c.post(&token_url).basic_auth("cid", Some("nope")).form(&grant).send().await.unwrap();
        assert_eq!(bad.status(), 401);
        h.push_fault(Fault::ServerError);
        let form =
            [("grant_type", "client_credentials"), ("client_id", "cid"), ("client_secret", "sec")];
        let tok: Value = c.post(&token_url).form(&form).send().await.unwrap().json().await.unwrap();
        assert_eq!(tok["token_type"], "bearer");
        assert_eq!(tok["expires_in"], 1);
        let access = tok["access_token"].as_str().unwrap().to_string();
        let data = || c.get(server.url("/items")).bearer_auth(&access).send();
        assert_eq!(
            data().await.unwrap().status(),
            500,
            "the token call must not consume the fault"
        );
        assert_eq!(data().await.unwrap().status(), 200);
        h.expire_tokens();
        assert_eq!(data().await.unwrap().status(), 401);
        let tok: Value = c
            .post(&token_url)
            .basic_auth("cid", Some("sec"))
            .form(&grant)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let access = tok["access_token"].as_str().unwrap().to_string();
        let data = || c.get(server.url("/items")).bearer_auth(&access).send();
        assert_eq!(data().await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(data().await.unwrap().status(), 401, "wall-clock ttl elapsed");
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_and_old_ones_are_rejected() {
        let auth = Auth::OAuthRefreshToken {
            client_id: "cid".into(),
            client_secret: "sec".into(),
            initial_refresh_token: "rt-0".into(),
            rotate: true,
            token_ttl_secs: 3600,
        };
        let (server, h) = start(CursorToken, |c| c.auth = auth).await;
        let c = reqwest::Client::new();
        let refresh = |rt: String| {
            let form = [("grant_type", "refresh_token".to_string()), ("refresh_token", rt)];
            c.post(server.url(TOKEN_PATH)).basic_auth("cid", Some("sec")).form(&form).send()
        };
        let first: Value = refresh("rt-0".into()).await.unwrap().json().await.unwrap();
        let rt1 = first["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(rt1, "rt-0");
        let stale = refresh("rt-0".into()).await.unwrap();
        assert_eq!(stale.status(), 400);
        assert_eq!(stale.json::<Value>().await.unwrap()["error"], "invalid_grant");
        let second: Value = refresh(rt1.clone()).await.unwrap().json().await.unwrap();
        let rt2 = second["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(h.issued_refresh_tokens(), vec!["rt-0".to_string(), rt1, rt2.clone()]);
        assert_eq!(h.current_refresh_token(), Some(rt2));
        let access = second["access_token"].as_str().unwrap();
        let resp = c.get(server.url("/items")).bearer_auth(access).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn faults_are_served_in_order_then_normal_service_resumes() {
        let (server, h) = start(NextUrlInBody, |c| c.rate_limit_headers = true).await;
        h.set_faults(vec![
            Fault::TooManyRequests { retry_after_secs: 2 },
            Fault::ServerError,
            Fault::MalformedJson,
            Fault::Status(418, r#"{"teapot":true}"#.into()),
            Fault::Delay(Duration::from_millis(200)),
        ]);
        let url = server.url("/items");
        let (status, headers, _) = get(&url).await;
        assert_eq!(
            (status, &headers["retry-after"], &headers["x-ratelimit-remaining"]),
            (429, &"2".parse().unwrap(), &"0".parse().unwrap())
        );
        assert!(headers.contains_key("x-ratelimit-reset"));
        let (status, _, text) = get(&url).await;
        assert_eq!(
            (status, serde_json::from_str::<Value>(&text).unwrap()["message"].as_str()),
            (500, Some("upstream exploded"))
        );
        let (status, _, text) = get(&url).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_str::<Value>(&text).is_err());
        assert_eq!(get(&url).await.0, 418);
        let started = Instant::now();
        let (status, headers, _) = get(&url).await;
        assert!(status == 200 && started.elapsed() >= Duration::from_millis(200));
        assert_eq!(headers["x-ratelimit-limit"], "1000");
        assert_eq!(get(&url).await.0, 200);
        assert_eq!(h.request_count(), 6);
        assert_eq!(h.requests()[0].path, "/items");
    }

    #[tokio::test]
    async fn echo_quotes_the_credentials_in_every_form_in_body_and_headers() {
        let auth = Auth::Basic { user: "u".into(), pass: "p w+/".into() };
        let (server, h) = start(NextUrlInBody, |c| c.auth = auth).await;
        h.push_fault(Fault::Echo(400));
        let resp = reqwest::Client::new()
            .get(server.url("/items"))
            .basic_auth("u", Some("p w+/"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["x-echo-authorization"], "Basic dTpwIHcrLw==");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["authorization"], "Basic dTpwIHcrLw==");
        let forms = h.secret_forms();
        for form in ["p w+/", "p%20w%2B%2F", "p+w%2B%2F", "dTpwIHcrLw", "Basic dTpwIHcrLw=="] {
            assert!(forms.iter().any(|f| f == form), "{form} in {forms:?}");
            assert!(body["message"].as_str().unwrap().contains(form), "{form}");
        }
    }

    #[tokio::test]
    async fn paging_faults_are_kept_up_on_every_request() {
        let (server, h) = start(NextUrlInBody, |c| c.paging_fault = Some(PagingFault::Cycle)).await;
        let (_, _, first) = get(&server.url("/items")).await;
        let b =
            serde_json::from_str::<Value>(&first).unwrap()["next"].as_str().unwrap().to_string();
        let (_, _, page_b) = get(&b).await;
        let page_b: Value = serde_json::from_str(&page_b).unwrap();
        assert_eq!(ids(&page_b["data"]), (8..=14).collect::<Vec<_>>());
        let (_, _, page_a) = get(page_b["next"].as_str().unwrap()).await;
        let page_a: Value = serde_json::from_str(&page_a).unwrap();
        assert_eq!(ids(&page_a["data"]), (1..=7).collect::<Vec<_>>());
        assert_eq!(page_a["next"].as_str(), Some(b.as_str()), "A links to B again");

        h.set_paging_fault(Some(PagingFault::RedirectLoop));
        let no_follow =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let hop = |q: &'static str| no_follow.get(server.url(&format!("/items{q}"))).send();
        let to = |r: reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();
        assert!(to(hop("").await.unwrap()).ends_with("?hop=a"));
        assert!(to(hop("?hop=a").await.unwrap()).ends_with("?hop=b"));
        assert!(to(hop("?hop=b").await.unwrap()).ends_with("?hop=a"));
    }

    #[tokio::test]
    async fn incremental_filter_applies_before_paging() {
        let incremental = Some(Incremental::QueryParam { name: "updated_since".into() });
        let (server, h) = start(NextUrlInBody, |c| {
            c.incremental = incremental;
            c.page_size = 2;
        })
        .await;
        let since = record(20)["updated_at"].as_str().unwrap().to_string();
        let unix = (Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 20).unwrap()).timestamp().to_string();
        for value in [since.clone(), format!("gte|{since}"), unix] {
            let first = format!("/items?updated_since={}", value.replace('|', "%7C"));
            assert_eq!(walk(&server, NextUrlInBody, &first).await, vec![20, 21, 22, 23], "{value}");
        }
        assert!(h.update(3, |r| r["updated_at"] = json!("2025-01-01T00:00:00.000Z")));
        h.push(record(24));
        let first = format!("/items?updated_since={since}");
        assert_eq!(walk(&server, NextUrlInBody, &first).await, vec![3, 20, 21, 22, 23, 24]);

        let header = Some(Incremental::Header { name: "x-since".into() });
        let (server, _h) = start(OffsetLimit, |c| c.incremental = header).await;
        let resp = reqwest::Client::new()
            .get(server.url("/items"))
            .header("x-since", &since)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.json::<Value>().await.unwrap()["total"], 4);
    }
}
