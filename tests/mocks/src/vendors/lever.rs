//! Lever mock: `POST /oauth/token` (refresh-token grant, client id and
//! secret in the form, one-hour tokens, the refresh token rotated on every
//! use), and under `/v1` the lists `opportunities`, `postings`, `users`,
//! `opportunities/deleted` and `opportunities/{id}/offers`, each
//! `{"data", "hasNext", "next"}` with `limit` 1–100 and an opaque `offset`
//! token, authenticated by HTTP Basic `api_key:` or a bearer token, behind
//! a token bucket (10 a second, burst 20) that answers 429.
//!
//! Documented (reference §1b and its sample payload): Basic `api_key:` or
//! an OAuth bearer, the refresh-token grant with the client id and secret,
//! one-hour access tokens, the `{data, hasNext, next}` list with `limit`
//! ≤ 100 and `offset=<next>`, epoch-millisecond timestamps, the
//! opportunity fields, `updated_at_start`/`updated_at_end` (and
//! `created_at_*`) in epoch ms, the token bucket of 10 a second with a
//! burst of 20 and its 429, the related endpoints' paths. Guessed: that
//! refresh tokens rotate (the reference marks it [?]), the token endpoint's
//! error bodies (Auth0's `{error, error_description}`), the error body
//! `{"code", "message"}` and its codes [?], that a 429 from the bucket
//! carries no `Retry-After` (none is documented; a queued
//! [`Fault::RateLimited`] sends one), that an `offset` token only works with
//! the filters it was issued for (400 otherwise), the list order (as
//! stored: insertion order), that `next` is absent when `hasNext` is false,
//! the shape of `/opportunities/deleted` (`{id, deletedAt}`, filtered by
//! `deleted_at_start`/`_end`), the offer's `posting` field and its
//! `anticipated_start_date` form field, and that adding an offer touches
//! its opportunity's `updatedAt`. That both ends of a filter are
//! inclusive comes from the community OpenAPI description of postings.
//!
//! `max_per_page` is a test knob (pages smaller than `limit` asks, legal
//! for cursor paging), `echo_credentials` makes a 401 quote what was
//! presented (to prove the connector scrubs it), and the bucket's rate and
//! burst can be lowered so a burst of requests runs into it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

/// Lever's page-size cap.
pub const MAX_LIMIT: usize = 100;
/// 2024-06-01T09:00:00Z, where the seeded records start.
pub const SEED_MS: i64 = 1_717_232_400_000;
/// The access tokens' lifetime.
pub const TOKEN_TTL_SECS: u64 = 3600;

#[derive(Clone, Debug)]
pub struct LeverMockConfig {
    pub api_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub opportunities: usize,
    /// Serve at most this many records a page, whatever `limit` asks.
    pub max_per_page: usize,
    /// The token bucket: refill per second and capacity.
    pub bucket_rate: f64,
    pub bucket_burst: f64,
    /// A 401 quotes the credentials presented (a hostile echo).
    pub echo_credentials: bool,
}

impl Default for LeverMockConfig {
    fn default() -> Self {
        LeverMockConfig {
            api_key: "lever-key-7f3a9c21".into(),
            client_id: "lever-client".into(),
            client_secret: "lever-secret-5150".into(),
            refresh_token: "lever-rt-0001".into(),
            opportunities: 30,
            max_per_page: MAX_LIMIT,
            bucket_rate: 10.0,
            bucket_burst: 20.0,
            echo_credentials: false,
        }
    }
}

/// The lists the mock serves, by path under `/v1`.
pub const LISTS: [&str; 4] = ["opportunities", "postings", "users", "opportunities/deleted"];

struct Lever {
    cfg: LeverMockConfig,
    core: Core,
    data: BTreeMap<&'static str, Vec<Value>>,
    /// Offers by opportunity id.
    offers: BTreeMap<String, Vec<Value>>,
    /// Lever's clock (epoch ms): changes through the handle are stamped after it.
    clock: i64,
    tokens: f64,
    refilled: Instant,
    /// Endpoints answering 403 (`offers`, `users`, …).
    forbidden: HashSet<String>,
    /// The 429s the bucket gave.
    throttled: usize,
}

#[derive(Clone)]
pub struct LeverHandle(Arc<Mutex<Lever>>);

impl MockHandle for LeverHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl LeverHandle {
    /// The records of a list (`opportunities`, `postings`, `users`, `opportunities/deleted`).
    pub fn records(&self, list: &str) -> Vec<Value> {
        lock(&self.0).data.get(list).cloned().unwrap_or_default()
    }

    /// Every offer, with the opportunity it belongs to.
    pub fn offers(&self) -> Vec<(String, Value)> {
        let l = lock(&self.0);
        l.offers.iter().flat_map(|(o, v)| v.iter().map(|f| (o.clone(), f.clone()))).collect()
    }

    /// Changes record `id` of `list` and stamps a new `updatedAt` (later
    /// than anything so far); returns that stamp in epoch ms.
    pub fn touch(&self, list: &str, id: &str, f: impl FnOnce(&mut Value)) -> i64 {
        let mut l = lock(&self.0);
        let stamp = l.tick();
        let rec = l
            .data
            .get_mut(list)
            .and_then(|v| v.iter_mut().find(|r| r["id"] == id))
            .expect("record exists");
        f(rec);
        rec["updatedAt"] = json!(stamp);
        stamp
    }

    /// Adds an offer to an opportunity, which that touches; returns its id.
    pub fn add_offer(&self, opportunity: &str, mut offer: Value) -> String {
        let mut l = lock(&self.0);
        let stamp = l.tick();
        let id = format!("offer-{}", wire::unique_token("x"));
        offer["id"] = json!(id);
        offer["createdAt"] = json!(stamp);
        l.offers.entry(opportunity.to_string()).or_default().push(offer);
        let opp = l
            .data
            .get_mut("opportunities")
            .and_then(|v| v.iter_mut().find(|r| r["id"] == opportunity))
            .expect("opportunity exists");
        opp["updatedAt"] = json!(stamp);
        id
    }

    /// Deletes an opportunity: gone from the list and its offers with it,
    /// listed under `/opportunities/deleted`. Returns `deletedAt`.
    pub fn delete_opportunity(&self, id: &str) -> i64 {
        let mut l = lock(&self.0);
        let stamp = l.tick();
        let list = l.data.get_mut("opportunities").expect("seeded");
        let before = list.len();
        list.retain(|r| r["id"] != id);
        assert!(list.len() < before, "opportunity {id} exists");
        l.offers.remove(id);
        l.data
            .get_mut("opportunities/deleted")
            .expect("seeded")
            .push(json!({"id": id, "deletedAt": stamp}));
        stamp
    }

    /// `endpoint` (`offers`, or a list's path) answers 403 from now on.
    pub fn forbid(&self, endpoint: &str) {
        lock(&self.0).forbidden.insert(endpoint.to_string());
    }

    /// How many 429s the token bucket gave.
    pub fn throttled(&self) -> usize {
        lock(&self.0).throttled
    }
}

impl Lever {
    fn tick(&mut self) -> i64 {
        self.clock += 60_000;
        self.clock
    }

    /// Takes one token from the bucket; `false` when it is empty.
    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * self.cfg.bucket_rate;
        self.tokens = (self.tokens + refill).min(self.cfg.bucket_burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.throttled += 1;
            self.core.refused += 1;
            false
        }
    }
}

/// `8c3f…`-style ids: deterministic, uuid-shaped.
fn uuid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

pub struct LeverMock;

impl LeverMock {
    pub async fn start(cfg: LeverMockConfig) -> (MockServer, LeverHandle) {
        let (data, offers) = seed(cfg.opportunities);
        let clock = data
            .values()
            .flatten()
            .filter_map(|r| r["updatedAt"].as_i64().or(r["deletedAt"].as_i64()))
            .max()
            .unwrap_or(SEED_MS);
        let st = Arc::new(Mutex::new(Lever {
            core: Core::with_refresh(&cfg.refresh_token),
            tokens: cfg.bucket_burst,
            refilled: Instant::now(),
            cfg,
            data,
            offers,
            clock,
            forbidden: HashSet::new(),
            throttled: 0,
        }));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, LeverHandle(st))
    }
}

type Seed = (BTreeMap<&'static str, Vec<Value>>, BTreeMap<String, Vec<Value>>);

/// Opportunities a minute apart; every third hired (a signed offer,
/// archived for the hired reason), every fifth with a draft offer.
fn seed(n: usize) -> Seed {
    let at = |mins: i64| SEED_MS + mins * 60_000;
    let users: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"id": uuid(1, i), "name": format!("Recruiter {i}"), "username": format!("rec{i}"),
                "email": format!("rec{i}@acme.example"), "accessRole": if i == 1 { "super admin" } else { "team member" },
                "photo": null, "createdAt": at(-10_000), "deactivatedAt": null, "externalDirectoryId": null,
                "linkedContactIds": [], "jobTitle": "Recruiter", "managerId": if i == 1 { Value::Null } else { json!(uuid(1, 1)) }})
        })
        .collect();
    let postings: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"id": uuid(2, i), "text": format!("Role {i}"), "createdAt": at(-5_000), "updatedAt": at(-5_000 + i as i64),
                "user": uuid(1, 1), "owner": uuid(1, 2), "hiringManager": uuid(1, 3), "confidentiality": "non-confidential",
                "categories": {"team": "Operations", "department": format!("Client {i}"), "location": "Remote",
                    "allLocations": ["Remote"], "commitment": "Full-time", "level": "Mid"},
                "country": "US", "tags": ["ops"], "state": "published", "distributionChannels": ["public"],
                "reqCode": format!("REQ-{i}"), "requisitionCodes": [format!("REQ-{i}")],
                "salaryRange": {"min": 50000, "max": 70000, "currency": "USD", "interval": "per-year-salary"},
                "workplaceType": "remote"})
        })
        .collect();
    let mut opportunities = Vec::new();
    let mut offers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for i in 1..=n {
        let id = uuid(3, i);
        let t = at(i as i64);
        let hired = i % 3 == 0;
        let posting = uuid(2, 1 + i % 3);
        opportunities.push(json!({"id": id, "name": format!("First{i} Last{i}"), "headline": "Ops lead",
            "contact": uuid(4, i), "emails": [format!("person{i}@example.com")], "phones": [{"type": "mobile", "value": format!("+1 555 01{i:02}")}],
            "confidentiality": "non-confidential", "location": "Remote", "links": [],
            "createdAt": t - 86_400_000, "updatedAt": t, "lastInteractionAt": t, "lastAdvancedAt": t, "snoozedUntil": null,
            "archived": if hired { json!({"archivedAt": t, "reason": "hired-reason"}) } else { Value::Null },
            "stage": if hired { "offer" } else { "applicant-new" },
            "stageChanges": [{"toStageId": "applicant-new", "toStageIndex": 0, "userId": uuid(1, 2), "updatedAt": t - 86_400_000}],
            "owner": uuid(1, 2), "tags": [], "sources": ["LinkedIn"], "origin": if i % 2 == 0 { "sourced" } else { "applied" },
            "sourcedBy": null, "applications": [uuid(5, i)], "followers": [], "isAnonymized": false}));
        if hired || i % 5 == 0 {
            let status = if hired { "signed" } else { "draft" };
            offers.entry(id.clone()).or_default().push(json!({"id": uuid(6, i), "createdAt": t - 3_600_000, "status": status,
                "creator": uuid(1, 2), "posting": posting,
                "fields": [{"text": "Anticipated start date", "identifier": "anticipated_start_date", "value": SEED_MS + 30 * 86_400_000},
                           {"text": "Placement fee", "identifier": "placement_fee", "value": 12000},
                           {"text": "Client", "identifier": "client_company", "value": format!("Client {}", 1 + i % 3)}],
                "sentDocument": {"fileName": "offer.pdf", "uploadedAt": t - 3_000_000, "downloadUrl": "https://example.invalid/sent"},
                "signedDocument": if hired { json!({"fileName": "signed.pdf", "uploadedAt": t - 60_000, "downloadUrl": "https://example.invalid/signed"}) } else { Value::Null }}));
        }
    }
    let deleted = vec![json!({"id": uuid(3, 9_001), "deletedAt": at(-100)})];
    let data = BTreeMap::from([
        ("opportunities", opportunities),
        ("postings", postings),
        ("users", users),
        ("opportunities/deleted", deleted),
    ]);
    (data, offers)
}

fn error(status: u16, code: &str, message: &str) -> Response {
    wire::json(status, json!({"code": code, "message": message}))
}

async fn serve(State(st): State<Arc<Mutex<Lever>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut l = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == "/oauth/token" {
        return token(&mut l, &parts.headers, &body);
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return error(404, "ResourceNotFound", "Not found");
    };
    if parts.method != Method::GET {
        return error(405, "MethodNotAllowed", "Method not allowed");
    }
    if !l.take_token() {
        return error(429, "TooManyRequests", "Rate limit exceeded");
    }
    if let Some(refused) = authenticate(&l, &parts.headers) {
        return refused;
    }
    match l.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => {
            return wire::with_headers(
                error(429, "TooManyRequests", "Rate limit exceeded"),
                &[("retry-after", retry_after_secs.to_string())],
            )
        }
        Some(Fault::Error(status, body)) => return wire::json(status, body),
        None => {}
    }
    // `/opportunities/deleted` is a list; any other `/opportunities/{id}/offers` is per opportunity.
    if let Some(id) = rest.strip_prefix("opportunities/").and_then(|r| r.strip_suffix("/offers")) {
        if l.forbidden.contains("offers") {
            return error(403, "Forbidden", "This key may not read offers");
        }
        // Ids are uuids: nothing in them is percent-encoded.
        if !l.data["opportunities"].iter().any(|o| o["id"] == id) {
            return error(404, "ResourceNotFound", "Opportunity not found");
        }
        let offers = l.offers.get(id).cloned().unwrap_or_default();
        return wire::json(200, json!({"data": offers, "hasNext": false}));
    }
    let Some(list) = LISTS.into_iter().find(|p| *p == rest) else {
        return error(404, "ResourceNotFound", "Not found");
    };
    if l.forbidden.contains(list) {
        return error(403, "Forbidden", "This key may not read this resource");
    }
    page(&l, list, &pairs)
}

/// `None` when the request carries a valid key or bearer token.
fn authenticate(l: &Lever, headers: &HeaderMap) -> Option<Response> {
    if let Some((user, password)) = wire::basic_credentials(headers) {
        if user == l.cfg.api_key && password.is_empty() {
            return None;
        }
    }
    if l.core.access_ok(wire::bearer(headers)) {
        return None;
    }
    let mut message = "Invalid API key or access token".to_string();
    if l.cfg.echo_credentials {
        let presented = wire::header_str(headers, "authorization").unwrap_or("");
        let user = wire::basic_credentials(headers).map(|(u, _)| u).unwrap_or_default();
        message = format!(
            "{message}: got `{presented}` (key `{user}`, url-encoded `{}`)",
            urlencode(&user)
        );
    }
    Some(error(401, "UnauthorizedError", &message))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn token(l: &mut Lever, headers: &HeaderMap, body: &[u8]) -> Response {
    l.core.token_requests += 1;
    let f = wire::form_fields(headers, body);
    if f.get("client_id") != Some(&l.cfg.client_id)
        || f.get("client_secret") != Some(&l.cfg.client_secret)
    {
        return wire::json(
            401,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return wire::json(403, json!({"error": "unsupported_grant_type"}));
    }
    let Some(next) = l.core.rotate_refresh(f.get("refresh_token").map(String::as_str), "lever-rt")
    else {
        return wire::json(
            403,
            json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}),
        );
    };
    let access = l.core.issue_access("lever-at");
    wire::json(
        200,
        json!({"access_token": access, "refresh_token": next, "expires_in": TOKEN_TTL_SECS,
            "token_type": "Bearer", "scope": "opportunities:read:admin offers:read:admin postings:read:admin users:read:admin offline_access"}),
    )
}

/// The filters a list takes: `(parameter, record field, is start)`.
fn filters(list: &str) -> &'static [(&'static str, &'static str, bool)] {
    match list {
        "opportunities" => &[
            ("updated_at_start", "updatedAt", true),
            ("updated_at_end", "updatedAt", false),
            ("created_at_start", "createdAt", true),
            ("created_at_end", "createdAt", false),
        ],
        "postings" => {
            &[("updated_at_start", "updatedAt", true), ("updated_at_end", "updatedAt", false)]
        }
        "opportunities/deleted" => {
            &[("deleted_at_start", "deletedAt", true), ("deleted_at_end", "deletedAt", false)]
        }
        _ => &[],
    }
}

fn page(l: &Lever, list: &str, pairs: &[(String, String)]) -> Response {
    let limit = match wire::param(pairs, "limit").map(|v| v.parse::<usize>()) {
        None => MAX_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return error(400, "BadRequestError", "limit must be between 1 and 100"),
    };
    // The filters as sent, which the offset token must have been issued for.
    let mut sent: Vec<(String, i64)> = Vec::new();
    for (param, _, _) in filters(list) {
        if let Some(v) = wire::param(pairs, param) {
            match v.parse::<i64>() {
                Ok(ms) => sent.push((param.to_string(), ms)),
                Err(_) => {
                    return error(
                        400,
                        "BadRequestError",
                        &format!("{param} must be a timestamp in milliseconds"),
                    )
                }
            }
        }
    }
    let signature = json!(sent);
    let offset = match wire::param(pairs, "offset") {
        None => 0,
        Some(raw) => match wire::decode_cursor(raw) {
            Some(t) if t["f"] == signature => t["o"].as_u64().unwrap_or(0) as usize,
            _ => return error(400, "BadRequestError", "Invalid offset token"),
        },
    };
    let matching: Vec<&Value> = l.data[list]
        .iter()
        .filter(|r| {
            sent.iter().all(|(param, ms)| {
                let (_, field, start) =
                    filters(list).iter().find(|(p, _, _)| p == param).expect("a known filter");
                // Inclusive at both ends.
                r[*field].as_i64().is_some_and(|t| if *start { t >= *ms } else { t <= *ms })
            })
        })
        .collect();
    let take = limit.min(l.cfg.max_per_page.max(1));
    let data: Vec<Value> = matching.iter().skip(offset).take(take).map(|v| (*v).clone()).collect();
    let has_next = offset + take < matching.len();
    let mut body = json!({"data": data, "hasNext": has_next});
    if has_next {
        body["next"] = json!(wire::encode_cursor(&json!({"o": offset + take, "f": signature})));
    }
    wire::json(200, body)
}
