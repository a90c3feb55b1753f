//! A configurable generic paginated JSON API: the fixture for the declarative REST connector's tests.
//!
//! One data endpoint (default `GET /items`) pages a deterministic dataset in one of six styles, behind
//! one of several auth schemes, optionally filtered incrementally; `POST /oauth/token` serves OAuth.
//! A [`RestMockHandle`] mutates data, queues faults and inspects requests while the server runs.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    body::to_bytes,
    extract::{Request, State},
    http::{header::CONTENT_TYPE, request::Parts, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    Router,
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
        token(&mut h.lock(), &parts.headers, &body)
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
    match fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(f) => return fault_response(f),
        None => {}
    }
    let s = h.lock();
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
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
        Fault::Delay(_) => unreachable!("delays are served normally after sleeping"),
    }
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
    let items: Vec<Value> =
        matching.iter().skip(offset).take(limit).map(|v| (*v).clone()).collect();
    let end = offset.min(total) + items.len();
    let more = end < total;
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
