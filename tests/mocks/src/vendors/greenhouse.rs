//! Greenhouse Harvest v3 mock: `POST /token` (client credentials, Basic
//! auth, `sub`, `expires_at`), bare-array lists under `/v3/{jobs|candidates|
//! applications|offers}` with `per_page` and `updated_at`/`created_at`
//! filters (`gte|A|lte|B`), `Link` cursor paging where the cursor must be
//! the only query parameter (422 otherwise), `X-RateLimit-*` headers and
//! 429 with `Retry-After` and `X-RateLimit-Reset`.
//!
//! Documented (reference §1a and its sample payload): the client-credentials
//! token with Basic auth and `sub`, bare-array lists, `per_page` 1–500, the
//! `gte|…|lte|…` filters, the `Link` header with only `rel="next"` and none
//! on the last page, the 422 when `cursor` travels with anything else (the
//! v1 422 body shape), `X-RateLimit-*` and the 429's headers, millisecond
//! UTC timestamps. Guessed: the token's `expires_at` (the reference marks
//! it [?]), the limit of 75 per 10 s window [?], what the cursor encodes,
//! the 401/403/404 bodies (v3's are undocumented; Harvest's `message`
//! shape is used), and the id order of lists. `max_per_page` is a test
//! knob: pages smaller than `per_page` asks (legal for `Link` paging), so
//! little data still takes many pages.
//!
//! [`GreenhouseMock::start`] invents its data; [`GreenhouseMock::start_with`]
//! serves the given records (the demo's sandbox renders its cast that way).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::limit::Admission;
use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire::{self, iso_millis as iso};

pub const RESOURCES: [&str; 4] = ["jobs", "candidates", "applications", "offers"];
/// The one published v3 limit, per 10 s window.
pub const RATE_LIMIT: u32 = 75;

#[derive(Clone, Debug)]
pub struct GreenhouseMockConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The user id the token must be requested for (`sub`).
    pub user_id: String,
    pub candidates: usize,
    /// Test knob: serve at most this many records per page even when a
    /// larger `per_page` (≤500, as the real API allows) is asked for, so
    /// small datasets still take several pages.
    pub max_per_page: usize,
}

impl Default for GreenhouseMockConfig {
    fn default() -> Self {
        GreenhouseMockConfig {
            client_id: "gh-client".into(),
            client_secret: "gh-secret-0042".into(),
            user_id: "4021".into(),
            candidates: 120,
            max_per_page: 50,
        }
    }
}

struct State_ {
    cfg: GreenhouseMockConfig,
    core: Core,
    data: BTreeMap<&'static str, Vec<Value>>,
    /// Stamps changes made through the handle, after all seeded data.
    clock: DateTime<Utc>,
}

#[derive(Clone)]
pub struct GreenhouseHandle(Arc<Mutex<State_>>);

impl MockHandle for GreenhouseHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl GreenhouseHandle {
    pub fn records(&self, resource: &str) -> Vec<Value> {
        lock(&self.0).data.get(resource).cloned().unwrap_or_default()
    }

    /// Changes record `id` of `resource` and stamps a new `updated_at`
    /// (later than anything seen so far); returns that stamp.
    pub fn touch(&self, resource: &str, id: u64, f: impl FnOnce(&mut Value)) -> String {
        let mut st = lock(&self.0);
        st.clock += Duration::minutes(1);
        let stamp = iso(st.clock);
        let rec = st
            .data
            .get_mut(resource)
            .and_then(|v| v.iter_mut().find(|r| r["id"] == json!(id)))
            .expect("record exists");
        f(rec);
        rec["updated_at"] = json!(stamp);
        stamp
    }

    /// Adds a record (its `updated_at` is stamped) and returns its id.
    pub fn insert(&self, resource: &str, mut record: Value) -> u64 {
        let mut st = lock(&self.0);
        st.clock += Duration::minutes(1);
        let stamp = iso(st.clock);
        let list = st.data.get_mut(resource).expect("known resource");
        let id = list.iter().filter_map(|r| r["id"].as_u64()).max().unwrap_or(0) + 1;
        record["id"] = json!(id);
        record["created_at"] = json!(stamp);
        record["updated_at"] = json!(stamp);
        list.push(record);
        id
    }
}

/// Records per resource, shaped like the v3 schemas.
#[derive(Clone, Debug, Default)]
pub struct GreenhouseRecords {
    pub jobs: Vec<Value>,
    pub candidates: Vec<Value>,
    pub applications: Vec<Value>,
    pub offers: Vec<Value>,
}

pub struct GreenhouseMock;

impl GreenhouseMock {
    /// Starts with `cfg.candidates` invented candidates.
    pub async fn start(cfg: GreenhouseMockConfig) -> (MockServer, GreenhouseHandle) {
        let data = seed(cfg.candidates);
        Self::serve(cfg, data).await
    }

    /// Starts serving exactly `records`.
    pub async fn start_with(
        cfg: GreenhouseMockConfig,
        records: GreenhouseRecords,
    ) -> (MockServer, GreenhouseHandle) {
        let GreenhouseRecords { jobs, candidates, applications, offers } = records;
        let data = BTreeMap::from([
            ("jobs", jobs),
            ("candidates", candidates),
            ("applications", applications),
            ("offers", offers),
        ]);
        Self::serve(cfg, data).await
    }

    async fn serve(
        cfg: GreenhouseMockConfig,
        data: BTreeMap<&'static str, Vec<Value>>,
    ) -> (MockServer, GreenhouseHandle) {
        // Changes made through the handle are stamped after every record.
        let newest = data
            .values()
            .flatten()
            .filter_map(|r| r["updated_at"].as_str().and_then(wire::parse_time))
            .max();
        let clock = newest.unwrap_or_else(|| Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
        let st = Arc::new(Mutex::new(State_ {
            cfg,
            core: Core::default().limited(RATE_LIMIT, std::time::Duration::from_secs(10)),
            data,
            clock,
        }));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, GreenhouseHandle(st))
    }
}

/// Deterministic records shaped like the v3 schemas.
fn seed(n: usize) -> BTreeMap<&'static str, Vec<Value>> {
    let base = Utc.with_ymd_and_hms(2024, 6, 1, 9, 0, 0).unwrap();
    let at = |mins: i64| iso(base + Duration::minutes(mins));
    let jobs = (1..=3u64)
        .map(|j| {
            json!({"id": j, "name": format!("Job {j}"), "requisition_id": format!("REQ-{j:03}"), "status": "open",
                "opened_at": at(0), "closed_at": null, "departments": [{"id": 500 + j, "name": "Operations"}],
                "offices": [{"id": 700, "name": "Remote"}], "openings": [{"id": 880 + j, "opening_id": format!("OP-{j}"), "status": "open"}],
                "created_at": at(0), "updated_at": at(j as i64)})
        })
        .collect();
    let (mut candidates, mut applications, mut offers) = (vec![], vec![], vec![]);
    for i in 1..=n as u64 {
        let t = at(10 + i as i64);
        candidates.push(json!({"id": i, "first_name": format!("First{i}"), "last_name": format!("Last{i}"), "company": null,
            "title": null, "email_addresses": [{"type": "personal", "value": format!("person{i}@example.com")}],
            "tags": if i % 3 == 0 { json!(["referral"]) } else { json!([]) }, "private": false,
            "last_activity_at": t, "created_at": t, "updated_at": t}));
        let hired = i % 3 == 0;
        applications.push(json!({"id": 1000 + i, "candidate_id": i, "job_id": 1 + i % 3, "job_post_id": 11, "prospect": false,
            "status": if hired { "hired" } else { "in_process" }, "stage_id": 767358, "stage_name": "Application Review",
            "source_id": 100674, "recruiter_id": 92120, "rejected_at": null, "rejection_reason_id": null,
            "last_activity_at": t, "created_at": t, "updated_at": t,
            "custom_fields": {"client_company": {"name": "Client Company", "type": "short_text", "value": "Acme"}}}));
        if hired {
            offers.push(json!({"id": 5000 + i, "application_id": 1000 + i, "candidate_id": i, "job_id": 1 + i % 3,
                "opening_id": 881, "version": 1, "status": "Accepted", "sent_on": "2024-06-10", "starts_on": "2024-07-01",
                "resolved_at": t, "created_at": t, "updated_at": t}));
        }
    }
    BTreeMap::from([
        ("jobs", jobs),
        ("candidates", candidates),
        ("applications", applications),
        ("offers", offers),
    ])
}

async fn serve(State(st): State<Arc<Mutex<State_>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut s = lock(&st);
    match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/token") => token(&mut s, &parts.headers, &body),
        (&Method::GET, path) if path.starts_with("/v3/") => {
            // 75 calls in any 10 seconds; past them a 429 like the queued
            // one, its reset when the oldest call ages out.
            let admission = s.core.admit();
            let remaining = match admission {
                Admission::Admitted { remaining, .. } => remaining,
                Admission::Refused { .. } => 0,
            };
            let fault = match admission {
                Admission::Refused { retry_after_secs } => {
                    Some(Fault::RateLimited { retry_after_secs })
                }
                Admission::Admitted { .. } => s.core.next_fault(),
            };
            let resp = match fault {
                Some(Fault::RateLimited { retry_after_secs }) => {
                    let reset = Utc::now().timestamp() + retry_after_secs as i64;
                    return wire::with_headers(
                        wire::json(429, json!({"message": "Too Many Requests"})),
                        &[
                            ("retry-after", retry_after_secs.to_string()),
                            ("x-ratelimit-reset", reset.to_string()),
                            ("x-ratelimit-limit", RATE_LIMIT.to_string()),
                            ("x-ratelimit-remaining", "0".into()),
                        ],
                    );
                }
                Some(Fault::Error(status, body)) => wire::json(status, body),
                None => list(&s, &path[4..], &parts.headers, &pairs),
            };
            wire::with_headers(
                resp,
                &[
                    ("x-ratelimit-limit", RATE_LIMIT.to_string()),
                    ("x-ratelimit-remaining", remaining.to_string()),
                ],
            )
        }
        _ => wire::json(404, json!({"message": "Not Found"})),
    }
}

fn token(s: &mut State_, headers: &HeaderMap, body: &[u8]) -> Response {
    s.core.token_requests += 1;
    if wire::basic_credentials(headers)
        != Some((s.cfg.client_id.clone(), s.cfg.client_secret.clone()))
    {
        return wire::json(401, json!({"error": "invalid_client"}));
    }
    let form = wire::form_fields(headers, body);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return wire::json(400, json!({"error": "unsupported_grant_type"}));
    }
    if form.get("sub") != Some(&s.cfg.user_id) {
        return wire::json(
            400,
            json!({"error": "invalid_request", "error_description": "sub must be a Greenhouse user id"}),
        );
    }
    let access = s.core.issue_access("gh-jwt");
    // v3 states the expiry as an instant, not a duration.
    json_ok(
        json!({"access_token": access, "token_type": "Bearer", "expires_at": iso(Utc::now() + Duration::hours(1))}),
    )
}

fn json_ok(v: Value) -> Response {
    wire::json(200, v)
}

fn invalid(field: &str, message: &str) -> Response {
    wire::json(
        422,
        json!({"message": "Validation error", "errors": [{"message": message, "field": field}]}),
    )
}

/// `gte|A|lte|B` → [(op, instant)]; `None` if malformed.
fn parse_filter(raw: &str) -> Option<Vec<(String, DateTime<Utc>)>> {
    let parts: Vec<&str> = raw.split('|').collect();
    if !parts.len().is_multiple_of(2) {
        return None;
    }
    parts
        .chunks(2)
        .map(|c| {
            ["gte", "gt", "lte", "lt"]
                .contains(&c[0])
                .then(|| Some((c[0].to_string(), wire::parse_time(c[1])?)))
                .flatten()
        })
        .collect()
}

fn passes(t: DateTime<Utc>, filter: &[(String, DateTime<Utc>)]) -> bool {
    filter.iter().all(|(op, v)| match op.as_str() {
        "gte" => t >= *v,
        "gt" => t > *v,
        "lte" => t <= *v,
        _ => t < *v,
    })
}

fn list(s: &State_, resource: &str, headers: &HeaderMap, pairs: &[(String, String)]) -> Response {
    if !s.core.access_ok(wire::bearer(headers)) {
        return wire::json(
            401,
            json!({"message": "Unauthorized: access token is invalid or expired"}),
        );
    }
    let Some(records) = s.data.get(resource) else {
        return wire::json(404, json!({"message": "Not Found"}));
    };
    // The cursor carries the first call's page size and filters, since it must travel alone.
    let state = match wire::param(pairs, "cursor") {
        Some(_) if pairs.len() > 1 => {
            return invalid("cursor", "cursor must be the only query parameter")
        }
        Some(raw) => match wire::decode_cursor(raw) {
            Some(state) => state,
            None => return invalid("cursor", "invalid cursor"),
        },
        None => {
            let per_page =
                wire::param(pairs, "per_page").map_or(Some(100), |v| v.parse::<usize>().ok());
            let Some(per_page) = per_page.filter(|n| (1..=500).contains(n)) else {
                return invalid("per_page", "must be between 1 and 500");
            };
            let filters: serde_json::Map<String, Value> =
                ["updated_at", "created_at", "last_activity_at"]
                    .iter()
                    .filter_map(|f| Some((f.to_string(), json!(wire::param(pairs, f)?))))
                    .collect();
            json!({"o": 0, "l": per_page.min(s.cfg.max_per_page), "f": filters})
        }
    };
    let mut filters = vec![];
    for (field, raw) in state["f"].as_object().into_iter().flatten() {
        match raw.as_str().and_then(parse_filter) {
            Some(f) => filters.push((field.clone(), f)),
            None => {
                return invalid(
                    field,
                    "expected operator|timestamp pairs, e.g. gte|2024-06-01T00:00:00.000Z",
                )
            }
        }
    }
    let mut matching: Vec<&Value> = records
        .iter()
        .filter(|r| {
            filters.iter().all(|(field, f)| {
                r[field.as_str()].as_str().and_then(wire::parse_time).is_some_and(|t| passes(t, f))
            })
        })
        .collect();
    matching.sort_by_key(|r| r["id"].as_u64());
    let (offset, limit) =
        (state["o"].as_u64().unwrap_or(0) as usize, state["l"].as_u64().unwrap_or(100) as usize);
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).map(|v| (*v).clone()).collect();
    let resp = wire::json(200, Value::Array(page));
    if offset + limit >= matching.len() {
        // The last page has no Link header at all.
        return resp;
    }
    let mut next = state.clone();
    next["o"] = json!(offset + limit);
    let url =
        format!("{}/v3/{resource}?cursor={}", wire::origin(headers), wire::encode_cursor(&next));
    wire::with_headers(resp, &[("link", format!("<{url}>; rel=\"next\""))])
}
