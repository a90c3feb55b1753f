//! ADP Workforce Now mock, over HTTPS on 127.0.0.1 with mutual TLS: every
//! connection must present a client certificate signed by the mock's own
//! test CA (made at start, see [`crate::tls`]), the token endpoint's and the
//! API's alike; a handshake without one, or with one from another CA, is
//! refused before any request is read. Behind it:
//! `POST /auth/oauth/v2/token` (form body `grant_type=client_credentials`,
//! `client_id`, `client_secret`; tokens that expire after `expires_in`) and
//! `GET /hr/v2/workers` (`$top`/`$skip` paging with `$top` capped, **HTTP 204
//! with no body past the end**, `count=true`/`$count=true` filling
//! `meta.totalNumber`, one `$filter` on the assignment status, birth dates
//! masked unless `Accept: application/json;masked=false`), and
//! `GET /hr/v2/workers/{aoid}`.
//!
//! Documented (reference §3b): the hosts and paths, the token form and its
//! answer (`access_token`, `token_type`, `expires_in` ≈ 3600), mutual TLS on
//! every call, the worker fields, `$top`/`$skip` with 100 in practice, the
//! 204 at the end, `count=true`/`$count` and `meta.totalNumber`, the
//! `$filter` example, masking unless `masked=false`. Guessed ([?] there or
//! not said at all): the error envelope `{"response":{"responseCode",
//! "applicationCode":{"code","typeCode":"error","message"}}}` for 400, 401,
//! 403, 404 and 429; 429 with `Retry-After` (ADP publishes no limits); that
//! `$top` above the cap is capped, not refused, and that no `$top` means the
//! cap; that `meta` is left out without a count; the mask (`"0000-MM-DD"`:
//! the year hidden); that a wrong client secret is a 401 OAuth
//! `invalid_client`; the shapes of `homeOrganizationalUnits`,
//! `baseRemuneration` and `workerStatus` codes in the invented data; that
//! workers come in `associateOID` order; that only that one `$filter` is
//! understood (others are a 400).
//!
//! [`AdpMock::start`] invents its workers; [`AdpMock::start_with`] serves
//! the given records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::tls::TestPki;
use crate::wire;

pub const TOKEN_PATH: &str = "/auth/oauth/v2/token";
pub const WORKERS_PATH: &str = "/hr/v2/workers";
/// The largest `$top` served ("100 in practice").
pub const MAX_TOP: usize = 100;
/// The one `$filter` understood.
pub const STATUS_FILTER: &str = "workers/workAssignments/assignmentStatus/statusCode/codeValue";

#[derive(Clone, Debug)]
pub struct AdpMockConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of the tokens issued; they stop working after it.
    pub token_lifetime_secs: u64,
    /// The cap on `$top` (and the page size without one).
    pub max_top: usize,
    /// How many workers [`AdpMock::start`] invents.
    pub workers: usize,
    /// Not ADP: a careless server that quotes the credentials it refused
    /// (the form body as sent, and the pair base64-encoded), so redaction
    /// is tested against an answer that holds the secret.
    pub echo_refused_credentials: bool,
}

impl Default for AdpMockConfig {
    fn default() -> Self {
        AdpMockConfig {
            client_id: "adp-client-7f3e".into(),
            client_secret: "adp+secret/=&%41".into(),
            token_lifetime_secs: 3600,
            max_top: MAX_TOP,
            workers: 250,
            echo_refused_credentials: false,
        }
    }
}

struct Adp {
    cfg: AdpMockConfig,
    core: Core,
    workers: Vec<Value>,
    /// When each access token was issued (they expire after the lifetime).
    issued: HashMap<String, Instant>,
}

#[derive(Clone)]
pub struct AdpHandle {
    state: Arc<Mutex<Adp>>,
    pki: Arc<TestPki>,
}

impl MockHandle for AdpHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.state).core)
    }
}

impl AdpHandle {
    /// The CA, the trusted client certificate and an untrusted one.
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    pub fn workers(&self) -> Vec<Value> {
        lock(&self.state).workers.clone()
    }

    /// Changes the worker with `aoid` (it must exist).
    pub fn update(&self, aoid: &str, f: impl FnOnce(&mut Value)) {
        let mut a = lock(&self.state);
        let w = a.workers.iter_mut().find(|w| w["associateOID"] == aoid).expect("worker exists");
        f(w);
    }

    /// Adds a worker (kept in `associateOID` order).
    pub fn hire(&self, worker: Value) {
        let mut a = lock(&self.state);
        a.workers.push(worker);
        a.workers.sort_by_key(|w| w["associateOID"].as_str().map(str::to_string));
    }

    /// Removes a worker from the listing altogether.
    pub fn remove(&self, aoid: &str) {
        lock(&self.state).workers.retain(|w| w["associateOID"] != aoid);
    }
}

pub struct AdpMock;

impl AdpMock {
    pub async fn start(cfg: AdpMockConfig) -> (MockServer, AdpHandle) {
        let workers = (1..=cfg.workers).map(worker).collect();
        Self::serve(cfg, workers).await
    }

    pub async fn start_with(cfg: AdpMockConfig, workers: Vec<Value>) -> (MockServer, AdpHandle) {
        Self::serve(cfg, workers).await
    }

    async fn serve(cfg: AdpMockConfig, mut workers: Vec<Value>) -> (MockServer, AdpHandle) {
        workers.sort_by_key(|w| w["associateOID"].as_str().map(str::to_string));
        let pki = Arc::new(TestPki::generate(&cfg.client_id));
        let state = Arc::new(Mutex::new(Adp {
            cfg,
            core: Core::default(),
            workers,
            issued: HashMap::new(),
        }));
        let router = Router::new().fallback(serve).with_state(state.clone());
        let server = MockServer::start_tls(router, pki.server_config()).await;
        (server, AdpHandle { state, pki })
    }
}

/// An invented worker, deterministic in `i`: every tenth terminated, every
/// seventh with a second (ended) assignment, all reporting to worker 1.
pub fn worker(i: usize) -> Value {
    let terminated = i.is_multiple_of(10);
    let hire = format!("20{:02}-{:02}-{:02}", 10 + i % 14, 1 + i % 12, 1 + i % 28);
    let mut assignments = vec![json!({
        "itemID": format!("{i:05}A"),
        "primaryIndicator": true,
        "hireDate": hire,
        "jobTitle": if i.is_multiple_of(3) { "Team Lead" } else { "Customer Service Agent" },
        "assignmentStatus": {"statusCode": {"codeValue": if terminated { "T" } else { "A" }}},
        "homeOrganizationalUnits": [
            {"nameCode": {"codeValue": "CC", "shortName": "Contact Center"}, "typeCode": {"codeValue": "Department"}},
            {"nameCode": {"codeValue": "LDS", "shortName": "Leeds"}, "typeCode": {"codeValue": "Location"}}
        ],
        "reportsTo": if i == 1 { json!([]) } else { json!([{"associateOID": aoid(1), "workerID": {"idValue": "E0001"}}]) },
        "baseRemuneration": {"annualRateAmount": {"amountValue": 30000 + 125 * i, "currencyCode": "USD"}}
    })];
    if i.is_multiple_of(7) {
        assignments.push(json!({
            "itemID": format!("{i:05}B"), "primaryIndicator": false, "hireDate": "2012-05-01",
            "terminationDate": "2013-05-01", "jobTitle": "Trainee",
            "assignmentStatus": {"statusCode": {"codeValue": "T"}}
        }));
    }
    json!({
        "associateOID": aoid(i),
        "workerID": {"idValue": format!("E{i:04}")},
        "person": {
            "birthDate": format!("19{:02}-{:02}-{:02}", 60 + i % 40, 1 + i % 12, 1 + i % 28),
            "legalName": {"givenName": format!("Given{i}"), "familyName1": format!("Family{i}"),
                "formattedName": format!("Family{i}, Given{i}")}
        },
        "workerDates": if terminated {
            json!({"originalHireDate": hire, "terminationDate": "2025-12-31"})
        } else {
            json!({"originalHireDate": hire})
        },
        "workerStatus": {"statusCode": {"codeValue": if terminated { "Terminated" } else { "Active" }}},
        "workAssignments": assignments
    })
}

/// The invented worker `i`'s associate OID (ADP's look: 16 upper-case).
pub fn aoid(i: usize) -> String {
    format!("G3{i:014}")
}

/// ADP's error envelope [?], as a body (for faults a test queues).
pub fn envelope_body(status: u16, message: &str) -> Value {
    json!({"response": {"responseCode": status, "methodCode": "GET",
        "applicationCode": {"code": status, "typeCode": "error", "message": message}}})
}

fn envelope(status: u16, message: &str) -> Response {
    wire::json(status, envelope_body(status, message))
}

async fn serve(State(st): State<Arc<Mutex<Adp>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let mut a = lock(&st);
    let path = parts.uri.path().to_string();
    if path == TOKEN_PATH {
        if parts.method != Method::POST {
            return envelope(405, "Method not allowed");
        }
        return token(&mut a, &parts.headers, &body);
    }
    let one = path.strip_prefix(WORKERS_PATH).and_then(|rest| rest.strip_prefix('/'));
    if path != WORKERS_PATH && one.is_none() {
        return envelope(404, "Resource not found");
    }
    if parts.method != Method::GET {
        return envelope(400, "Only GET is mocked");
    }
    let lifetime = Duration::from_secs(a.cfg.token_lifetime_secs);
    let token = wire::bearer(&parts.headers);
    let alive = token.and_then(|t| a.issued.get(t)).is_some_and(|at| at.elapsed() < lifetime);
    if !a.core.access_ok(token) || !alive {
        return envelope(401, "Invalid or expired access token");
    }
    match a.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => {
            return wire::with_headers(
                envelope(429, "Too many requests"),
                &[("retry-after", retry_after_secs.to_string())],
            )
        }
        Some(Fault::Error(status, body)) => return wire::json(status, body),
        None => {}
    }
    let unmasked = wire::header_str(&parts.headers, "accept").is_some_and(|h| {
        h.split(';').skip(1).any(|p| p.trim().eq_ignore_ascii_case("masked=false"))
    });
    let show = |w: &Value| if unmasked { w.clone() } else { masked(w) };
    if let Some(id) = one {
        return match a.workers.iter().find(|w| w["associateOID"] == id) {
            Some(w) => wire::json(200, json!({"workers": [show(w)]})),
            None => envelope(404, "Worker not found"),
        };
    }
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let number = |name: &str| wire::param(&pairs, name).map(|v| v.parse::<usize>());
    let top = match number("$top") {
        None => a.cfg.max_top,
        Some(Ok(n)) if n >= 1 => n.min(a.cfg.max_top),
        Some(_) => return envelope(400, "$top must be a positive whole number"),
    };
    let skip = match number("$skip") {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return envelope(400, "$skip must be a whole number"),
    };
    let status = match wire::param(&pairs, "$filter").map(status_filter) {
        None => None,
        Some(Some(code)) => Some(code),
        Some(None) => return envelope(400, "Unsupported $filter expression"),
    };
    let matching: Vec<&Value> = a
        .workers
        .iter()
        .filter(|w| {
            status.as_deref().is_none_or(|code| {
                w["workAssignments"].as_array().into_iter().flatten().any(|wa| {
                    wa["assignmentStatus"]["statusCode"]["codeValue"].as_str() == Some(code)
                })
            })
        })
        .collect();
    let page: Vec<Value> = matching.iter().skip(skip).take(top).map(|w| show(w)).collect();
    if page.is_empty() {
        // ADP's end of the list: no content at all.
        return (StatusCode::NO_CONTENT, Body::empty()).into_response();
    }
    let counted = ["count", "$count"]
        .iter()
        .any(|k| wire::param(&pairs, k).is_some_and(|v| v.eq_ignore_ascii_case("true")));
    let mut answer = json!({"workers": page});
    if counted {
        answer["meta"] = json!({"totalNumber": matching.len()});
    }
    wire::json(200, answer)
}

/// The status code of `…/codeValue eq 'A'`, the one filter understood.
fn status_filter(expr: &str) -> Option<String> {
    let rest = expr.trim().strip_prefix(STATUS_FILTER)?.trim_start();
    let value = rest.strip_prefix("eq")?.trim();
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.to_string())
}

/// The worker as ADP shows it without `masked=false`: the birth year hidden [?].
fn masked(w: &Value) -> Value {
    let mut w = w.clone();
    if let Some(d) = w["person"]["birthDate"].as_str() {
        let month_day = d.get(4..).unwrap_or("").to_string();
        w["person"]["birthDate"] = json!(format!("0000{month_day}"));
    }
    w
}

fn token(a: &mut Adp, headers: &HeaderMap, body: &[u8]) -> Response {
    a.core.token_requests += 1;
    let form = wire::form_fields(headers, body);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return wire::json(400, json!({"error": "unsupported_grant_type"}));
    }
    let presented = (form.get("client_id").cloned(), form.get("client_secret").cloned());
    if presented != (Some(a.cfg.client_id.clone()), Some(a.cfg.client_secret.clone())) {
        let mut answer =
            json!({"error": "invalid_client", "error_description": "Client authentication failed"});
        if a.cfg.echo_refused_credentials {
            use base64::Engine;
            let (id, secret) = (presented.0.unwrap_or_default(), presented.1.unwrap_or_default());
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            answer["error_description"] = json!(format!(
                "refused {id}:{secret} (Basic {pair}) from body {}",
                String::from_utf8_lossy(body)
            ));
        }
        return wire::json(401, answer);
    }
    let access = a.core.issue_access("adp-at");
    a.issued.insert(access.clone(), Instant::now());
    wire::json(
        200,
        json!({"access_token": access, "token_type": "Bearer",
            "expires_in": a.cfg.token_lifetime_secs, "scope": "api"}),
    )
}
