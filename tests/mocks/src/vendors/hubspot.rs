//! HubSpot CRM v3 mock: `POST /oauth/v1/token` (refresh-token grant,
//! client credentials in the form, 30-minute tokens, the refresh token not
//! rotated: the response hands back the one presented), `GET /crm/v3/owners`
//! (`after` cursor), `GET /crm/v3/objects/{contacts|deals}` (the list:
//! `archived=true|false`, `limit` ≤ 100, `after` cursor, `properties`), and
//! `POST /crm/v3/objects/{contacts|deals}/search` with filters, ascending
//! sort, `limit` ≤ 200, `after` in the body and a 400 past 10,000 results.
//! Archived (deleted) records only show in `archived=true` lists, with
//! `archivedAt`; search never returns them. Every property value is a
//! string. `X-HubSpot-RateLimit-*` headers of 100 calls in any 10 seconds
//! (Free/Starter), the `RATE_LIMIT` 429 body past them, and
//! `{"status":"error",…}` error bodies.
//!
//! Documented (reference §1c and its sample payload): the record shape
//! with string properties, list and search paging, `limit` caps, the
//! 10,000-result cap with a 400 beyond it, filter-group caps, the token
//! answer, the rate-limit headers and 429 body, the error body. Guessed:
//! that search never serves a result past the cap (a page ends at it,
//! and its `paging.next.after` points at the cap, which then 400s), the
//! 400's message text, that the refresh token is handed back unchanged,
//! and the archived list's id order and `archivedAt`.
//!
//! `search_cap` and `search_page_size` (and `list_page_size` for lists)
//! shrink the cap and the pages served, so the re-anchoring past the cap
//! runs with a handful of records.

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
use crate::wire;

/// Calls in any 10 seconds (a Free/Starter private app).
pub const RATE_LIMIT: u32 = 100;

pub const SEARCH_CAP: usize = 10_000;

#[derive(Clone, Debug)]
pub struct HubSpotMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub owners: usize,
    pub contacts: usize,
    /// Deals come in pairs sharing one modification time.
    pub deals: usize,
    /// Search results one query can page through (HubSpot: 10,000).
    pub search_cap: usize,
    /// Serve at most this many search results a page, whatever `limit` asks.
    pub search_page_size: Option<usize>,
    /// Serve at most this many list records a page, whatever `limit` asks.
    pub list_page_size: Option<usize>,
}

impl Default for HubSpotMockConfig {
    fn default() -> Self {
        HubSpotMockConfig {
            client_id: "hs-client".into(),
            client_secret: "hs-secret-2718".into(),
            refresh_token: "hs-rt-na1-0001".into(),
            owners: 5,
            contacts: 300,
            deals: 10_450,
            search_cap: SEARCH_CAP,
            search_page_size: None,
            list_page_size: None,
        }
    }
}

struct HubSpot {
    cfg: HubSpotMockConfig,
    core: Core,
    data: BTreeMap<&'static str, Vec<Value>>,
    owners: Vec<Value>,
    clock: DateTime<Utc>,
    /// The refresh token of every token request, in order.
    presented_refresh_tokens: Vec<String>,
}

#[derive(Clone)]
pub struct HubSpotHandle(Arc<Mutex<HubSpot>>);

impl MockHandle for HubSpotHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

/// The last-modified property of an object type.
pub fn modified_property(kind: &str) -> &'static str {
    if kind == "deals" {
        "hs_lastmodifieddate"
    } else {
        "lastmodifieddate"
    }
}

impl HubSpotHandle {
    pub fn records(&self, kind: &str) -> Vec<Value> {
        lock(&self.0).data.get(kind).cloned().unwrap_or_default()
    }
    /// Changes a record; it becomes the most recently modified.
    pub fn touch(&self, kind: &str, id: &str, f: impl FnOnce(&mut Value)) {
        let mut h = lock(&self.0);
        h.clock += Duration::seconds(5);
        let stamp = iso(h.clock);
        let r = h
            .data
            .get_mut(kind)
            .and_then(|v| v.iter_mut().find(|r| r["id"] == id))
            .expect("record exists");
        f(r);
        r["properties"][modified_property(kind)] = json!(stamp);
        r["updatedAt"] = json!(stamp);
    }

    /// Deletes a record the way HubSpot does: it is archived (kept in the
    /// recycling bin with `archivedAt`), leaves search and `archived=false`
    /// lists, and shows in `archived=true` lists. Returns `archivedAt`.
    pub fn archive(&self, kind: &str, id: &str) -> String {
        let mut h = lock(&self.0);
        h.clock += Duration::seconds(5);
        let stamp = iso(h.clock);
        let r = h
            .data
            .get_mut(kind)
            .and_then(|v| v.iter_mut().find(|r| r["id"] == id))
            .expect("record exists");
        r["archived"] = json!(true);
        r["archivedAt"] = json!(stamp);
        stamp
    }

    /// Moves HubSpot's clock on: later changes and archives are stamped after it.
    pub fn pass_time(&self, d: Duration) {
        lock(&self.0).clock += d;
    }

    /// The app was installed again: HubSpot issued a new refresh token and
    /// the old one was deleted (`DELETE /oauth/v1/refresh-tokens/{token}`).
    /// Returns the new token.
    pub fn reissue_refresh_token(&self) -> String {
        let next = wire::unique_token("hs-rt-na1");
        lock(&self.0).core.refresh = Some(next.clone());
        next
    }

    /// The refresh token each token request presented, in order.
    pub fn presented_refresh_tokens(&self) -> Vec<String> {
        lock(&self.0).presented_refresh_tokens.clone()
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub struct HubSpotMock;

impl HubSpotMock {
    pub async fn start(cfg: HubSpotMockConfig) -> (MockServer, HubSpotHandle) {
        let base = Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).unwrap();
        let owners = (1..=cfg.owners)
            .map(|i| {
                json!({"id": format!("{}", 1_234_560 + i), "email": format!("owner{i}@acme.example"), "firstName": format!("Owner{i}"),
                    "lastName": "Smith", "userId": 9_000 + i, "createdAt": iso(base), "updatedAt": iso(base), "archived": false, "teams": []})
            })
            .collect();
        let contacts = (1..=cfg.contacts)
            .map(|i| {
                let t = iso(base + Duration::seconds(i as i64 * 7));
                json!({"id": format!("{}", 100 + i), "properties": {"email": format!("person{i}@example.com"), "firstname": format!("First{i}"),
                    "lastname": format!("Last{i}"), "lifecyclestage": "customer", "hs_lead_status": if i % 2 == 0 { "" } else { "OPEN" },
                    "hubspot_owner_id": format!("{}", 1_234_561 + i % cfg.owners.max(1)), "createdate": t, "lastmodifieddate": t, "hs_object_id": format!("{}", 100 + i)},
                    "createdAt": t, "updatedAt": t, "archived": false})
            })
            .collect();
        let deals = (1..=cfg.deals)
            .map(|i| {
                let t = iso(base + Duration::milliseconds((i / 2) as i64 * 1000 + 1));
                let won = i % 3 == 0;
                json!({"id": format!("{}", 50_000 + i), "properties": {"dealname": format!("Deal {i}"), "amount": format!("{}.{:02}", 1000 + i % 900, i % 100),
                    "dealstage": if won { "closedwon" } else { "appointmentscheduled" }, "pipeline": "default",
                    "closedate": if won { json!("2024-06-30T00:00:00Z") } else { json!(null) }, "createdate": t, "hs_lastmodifieddate": t,
                    "hubspot_owner_id": format!("{}", 1_234_561 + i % cfg.owners.max(1)), "hs_is_closed_won": if won { "true" } else { "false" },
                    "hs_object_id": format!("{}", 50_000 + i)},
                    "createdAt": t, "updatedAt": t, "archived": false})
            })
            .collect();
        let clock = base + Duration::days(30);
        let h = HubSpot {
            core: Core::with_refresh(&cfg.refresh_token)
                .limited(RATE_LIMIT, std::time::Duration::from_secs(10)),
            cfg,
            data: BTreeMap::from([("contacts", contacts), ("deals", deals)]),
            owners,
            clock,
            presented_refresh_tokens: Vec::new(),
        };
        let st = Arc::new(Mutex::new(h));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, HubSpotHandle(st))
    }
}

fn error(status: u16, category: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({"status": "error", "message": message, "correlationId": wire::unique_token("corr"), "category": category, "errors": [], "context": {}, "links": {}}),
    )
}

async fn serve(State(st): State<Arc<Mutex<HubSpot>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut h = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == "/oauth/v1/token" {
        return token(&mut h, &parts.headers, &body);
    }
    // A private app on Free/Starter: 100 calls in any 10 seconds.
    let admission = h.core.admit();
    let remaining = match admission {
        Admission::Admitted { remaining, .. } => remaining,
        Admission::Refused { .. } => 0,
    };
    let limits = [
        ("x-hubspot-ratelimit-max", RATE_LIMIT.to_string()),
        ("x-hubspot-ratelimit-remaining", remaining.to_string()),
        ("x-hubspot-ratelimit-interval-milliseconds", "10000".into()),
        ("x-hubspot-ratelimit-daily", "250000".into()),
        ("x-hubspot-ratelimit-daily-remaining", "249000".into()),
    ];
    if let Admission::Refused { retry_after_secs } = admission {
        return wire::with_headers(
            wire::json(
                429,
                json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT", "correlationId": wire::unique_token("corr"), "policyName": "TEN_SECONDLY_ROLLING"}),
            ),
            &[&limits[..], &[("retry-after", retry_after_secs.to_string())]].concat(),
        );
    }
    if !h.core.access_ok(wire::bearer(&parts.headers)) {
        return error(
            401,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired 5 second(s) ago.",
        );
    }
    let resp = match h.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => wire::with_headers(
            wire::json(
                429,
                json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": wire::unique_token("corr"), "policyName": "SECONDLY"}),
            ),
            &[
                ("retry-after", retry_after_secs.to_string()),
                ("x-hubspot-ratelimit-secondly", "10".into()),
                ("x-hubspot-ratelimit-secondly-remaining", "0".into()),
            ],
        ),
        Some(Fault::Error(status, body)) => wire::json(status, body),
        None => match (&parts.method, path.as_str()) {
            (&Method::GET, "/crm/v3/owners") => owners(&h, &pairs, &parts.headers),
            (&Method::GET, p) if p.starts_with("/crm/v3/objects/") => {
                list(&h, &p["/crm/v3/objects/".len()..], &pairs, &parts.headers)
            }
            (&Method::POST, p) if p.starts_with("/crm/v3/objects/") && p.ends_with("/search") => {
                let kind = &p["/crm/v3/objects/".len()..p.len() - "/search".len()];
                search(&h, kind, &body)
            }
            _ => error(404, "OBJECT_NOT_FOUND", "resource not found"),
        },
    };
    wire::with_headers(resp, &limits)
}

fn token(h: &mut HubSpot, headers: &HeaderMap, body: &[u8]) -> Response {
    h.core.token_requests += 1;
    let f = wire::form_fields(headers, body);
    if let Some(rt) = f.get("refresh_token") {
        h.presented_refresh_tokens.push(rt.clone());
    }
    if f.get("client_id") != Some(&h.cfg.client_id)
        || f.get("client_secret") != Some(&h.cfg.client_secret)
    {
        return wire::json(
            400,
            json!({"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}),
        );
    }
    if f.get("grant_type").map(String::as_str) != Some("refresh_token")
        || f.get("refresh_token") != h.core.refresh.as_ref()
    {
        return wire::json(
            400,
            json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}),
        );
    }
    let access = h.core.issue_access("hs-at");
    // HubSpot hands back the same refresh token: it lives until the app is
    // uninstalled or the token deleted, and is not rotated on use.
    wire::json(
        200,
        json!({"access_token": access, "refresh_token": h.core.refresh, "expires_in": 1800, "token_type": "bearer"}),
    )
}

fn owners(h: &HubSpot, pairs: &[(String, String)], headers: &HeaderMap) -> Response {
    let limit: usize =
        wire::param(pairs, "limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(500);
    let limit = h.cfg.list_page_size.map_or(limit, |p| limit.min(p.max(1)));
    let after: usize = wire::param(pairs, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = h.owners.iter().skip(after).take(limit).cloned().collect();
    let mut body = json!({"results": page});
    if after + limit < h.owners.len() {
        let next = after + limit;
        body["paging"] = json!({"next": {"after": next.to_string(), "link": format!("{}/crm/v3/owners?after={next}", wire::origin(headers))}});
    }
    wire::json(200, body)
}

/// The numeric id, the list's paging order.
fn numeric_id(r: &Value) -> u64 {
    r["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0)
}

fn is_archived(r: &Value) -> bool {
    r["archived"] == true
}

/// `GET /crm/v3/objects/{kind}`: live or archived records in id order, the
/// `after` cursor being the next id (stable while records get archived).
fn list(h: &HubSpot, kind: &str, pairs: &[(String, String)], headers: &HeaderMap) -> Response {
    let Some(records) = h.data.get(kind) else {
        return error(
            404,
            "OBJECT_NOT_FOUND",
            &format!("Unable to infer object type from: {kind}"),
        );
    };
    let limit: usize = wire::param(pairs, "limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    if limit > 100 {
        return error(400, "VALIDATION_ERROR", "limit must be at most 100");
    }
    let limit = h.cfg.list_page_size.map_or(limit, |p| limit.min(p.max(1)));
    let archived = wire::param(pairs, "archived") == Some("true");
    let after: u64 = wire::param(pairs, "after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let wanted: Vec<String> = wire::param(pairs, "properties")
        .map(|p| p.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let mut matching: Vec<&Value> =
        records.iter().filter(|r| is_archived(r) == archived && numeric_id(r) >= after).collect();
    matching.sort_by_key(|r| numeric_id(r));
    let page: Vec<Value> =
        matching.iter().take(limit).map(|r| with_properties(r, kind, &wanted)).collect();
    let mut body = json!({"results": page});
    if let Some(next) = matching.get(limit) {
        let next = numeric_id(next).to_string();
        body["paging"] = json!({"next": {"after": next, "link": format!("{}/crm/v3/objects/{kind}?after={next}", wire::origin(headers))}});
    }
    wire::json(200, body)
}

/// The record with only the asked-for properties, plus the defaults.
fn with_properties(r: &Value, kind: &str, wanted: &[String]) -> Value {
    let mut r = r.clone();
    let props = r["properties"].as_object().cloned().unwrap_or_default();
    let keep: serde_json::Map<String, Value> = props
        .into_iter()
        .filter(|(k, _)| {
            wanted.contains(k)
                || k == "hs_object_id"
                || k == "createdate"
                || k == modified_property(kind)
        })
        .collect();
    r["properties"] = Value::Object(keep);
    r
}

/// Epoch milliseconds or an ISO instant, as HubSpot accepts in filters.
fn filter_time(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().or_else(|| wire::parse_time(v).map(|t| t.timestamp_millis()))
}

fn search(h: &HubSpot, kind: &str, body: &[u8]) -> Response {
    let Some(records) = h.data.get(kind) else {
        return error(
            404,
            "OBJECT_NOT_FOUND",
            &format!("Unable to infer object type from: {kind}"),
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(400, "VALIDATION_ERROR", "Invalid input JSON");
    };
    let limit = req["limit"].as_u64().unwrap_or(10) as usize;
    if limit > 200 {
        return error(400, "VALIDATION_ERROR", "limit must be at most 200");
    }
    let after: usize = match &req["after"] {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        _ => 0,
    };
    let cap = h.cfg.search_cap;
    if after >= cap {
        return error(
            400,
            "VALIDATION_ERROR",
            &format!("There was a problem with the request. Search results are limited to {cap}."),
        );
    }
    // Never a result past the cap: the page ends there.
    let served = h.cfg.search_page_size.map_or(limit, |p| limit.min(p.max(1))).min(cap - after);
    let groups = req["filterGroups"].as_array().cloned().unwrap_or_default();
    if groups.len() > 5 {
        return error(400, "VALIDATION_ERROR", "Too many filter groups (max 5)");
    }
    let value_of = |r: &Value, prop: &str| r["properties"][prop].as_str().map(str::to_string);
    let passes = |r: &Value| {
        groups.is_empty()
            || groups.iter().any(|g| {
                g["filters"].as_array().into_iter().flatten().all(|f| {
                    let prop = f["propertyName"].as_str().unwrap_or("");
                    let (Some(have), Some(want)) = (
                        value_of(r, prop).as_deref().and_then(filter_time),
                        f["value"].as_str().and_then(filter_time),
                    ) else {
                        return false;
                    };
                    match f["operator"].as_str().unwrap_or("") {
                        "GTE" => have >= want,
                        "GT" => have > want,
                        "LTE" => have <= want,
                        "LT" => have < want,
                        _ => have == want,
                    }
                })
            })
    };
    // Search only sees live records; archived ones are list-only.
    let mut matching: Vec<&Value> =
        records.iter().filter(|r| !is_archived(r) && passes(r)).collect();
    if let Some(sort) = req["sorts"].get(0) {
        let prop = sort["propertyName"].as_str().unwrap_or("").to_string();
        matching.sort_by_key(|r| {
            (
                value_of(r, &prop).as_deref().and_then(filter_time),
                r["id"].as_str().map(str::to_string),
            )
        });
        if sort["direction"] == "DESCENDING" {
            matching.reverse();
        }
    }
    let wanted: Vec<String> = req["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(after)
        .take(served)
        .map(|r| with_properties(r, kind, &wanted))
        .collect();
    let mut body = json!({"total": total, "results": page});
    if after + served < total {
        body["paging"] = json!({"next": {"after": (after + served).to_string()}});
    }
    wire::json(200, body)
}
