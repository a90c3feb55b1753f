//! Zendesk Talk mock: Basic `{email}/token:{api_token}` auth, the
//! incremental calls export (`start_time` inclusive on `updated_at`,
//! `{calls, next_page, count, end_time}` where `next_page` is never null,
//! not even past the end), the users list (`GET /api/v2/users`, filtered by
//! `role`/`role[]`, cursor paging with `page[size]` ≤ 100 and
//! `page[after]`, or offset paging with `page`/`per_page` when no
//! `page[size]` is sent), `X-Rate-Limit` headers, 429 with `Retry-After`,
//! and `{"error","description"}` bodies.
//!
//! Documented (reference §4c): the export's shape, its inclusive
//! `start_time`, the never-null `next_page`, the call fields, 10 requests a
//! minute, 429 + `Retry-After`. The users list is not in the reference; it
//! follows Zendesk's public API docs (cursor paging: `meta.has_more`,
//! `after_cursor`, `links.next`; `role[]`; user fields `id`, `name`,
//! `email`, `role`, `active` …). Guessed: that the last cursor page still
//! carries a `links.next` (so only `has_more` ends the paging), the
//! cursor's encoding, the 400 body for `page[size]` over 100, and the
//! `{"error","description"}` bodies beyond the two the connector quotes.
//!
//! Call legs (`…/stats/incremental/legs`) are served by the same export as
//! calls (the reference: "works the same way"): two legs per call, the
//! agent's and the customer's, every third inbound call transferred to a
//! second agent's leg; the leg fields follow Zendesk's public docs
//! (guessed: `quality_issues` as a list of words, `available_via`).
//! `…/stats/agents_activity` is today's snapshot per agent, derived from the
//! agent legs (calls accepted, talk/hold/wrap-up totals and averages),
//! `next_page: null` (guessed: one page).
//!
//! Agents are users `900…` (the `agent_id`s calls name), then admins, then
//! end users; `users_page_size` serves smaller cursor pages than asked.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::limit::{Admission, RollingLimit};
use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

pub const CALLS_PATH: &str = "/api/v2/channels/voice/stats/incremental/calls";
pub const USERS_PATH: &str = "/api/v2/users";
pub const LEGS_PATH: &str = "/api/v2/channels/voice/stats/incremental/legs";
pub const AGENTS_ACTIVITY_PATH: &str = "/api/v2/channels/voice/stats/agents_activity";
/// Requests per minute on the incremental endpoints.
pub const RATE_LIMIT: u32 = 10;
/// Requests per minute for the whole account, which the `X-Rate-Limit`
/// headers report (Enterprise's figure; guessed for Talk).
pub const ACCOUNT_RATE_LIMIT: u32 = 700;

#[derive(Clone, Debug)]
pub struct ZendeskTalkMockConfig {
    pub email: String,
    pub api_token: String,
    pub calls: usize,
    /// Calls per page (the real export sends up to 1000).
    pub page_size: usize,
    /// Agents, ids `900…` (calls name `900 + i % 7`).
    pub agents: usize,
    pub admins: usize,
    pub end_users: usize,
    /// Users per cursor page at most, whatever `page[size]` asks.
    pub users_page_size: usize,
}

impl Default for ZendeskTalkMockConfig {
    fn default() -> Self {
        ZendeskTalkMockConfig {
            email: "ops@acme.example".into(),
            api_token: "zd-token-3141".into(),
            calls: 250,
            page_size: 100,
            agents: 7,
            admins: 1,
            end_users: 20,
            users_page_size: 100,
        }
    }
}

struct Talk {
    cfg: ZendeskTalkMockConfig,
    core: Core,
    calls: Vec<Value>,
    legs: Vec<Value>,
    users: Vec<Value>,
    clock: DateTime<Utc>,
    /// The account-wide window (the incremental one is the core's).
    account: RollingLimit,
}

#[derive(Clone)]
pub struct ZendeskTalkHandle(Arc<Mutex<Talk>>);

impl MockHandle for ZendeskTalkHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl ZendeskTalkHandle {
    pub fn calls(&self) -> Vec<Value> {
        lock(&self.0).calls.clone()
    }
    pub fn legs(&self) -> Vec<Value> {
        lock(&self.0).legs.clone()
    }
    /// What `agents_activity` answers now.
    pub fn agents_activity(&self) -> Vec<Value> {
        agents_activity(&lock(&self.0))
    }
    /// Every user, end users included.
    pub fn users(&self) -> Vec<Value> {
        lock(&self.0).users.clone()
    }
    /// Changes a call; its `updated_at` becomes the newest.
    pub fn touch(&self, id: u64, f: impl FnOnce(&mut Value)) {
        let mut t = lock(&self.0);
        t.clock += Duration::seconds(60);
        let stamp = iso(t.clock);
        let c = t.calls.iter_mut().find(|c| c["id"] == id).expect("call exists");
        f(c);
        c["updated_at"] = json!(stamp);
    }
}

pub struct ZendeskTalkMock;

impl ZendeskTalkMock {
    pub async fn start(cfg: ZendeskTalkMockConfig) -> (MockServer, ZendeskTalkHandle) {
        let base = Utc.with_ymd_and_hms(2024, 6, 3, 8, 0, 0).unwrap();
        let calls: Vec<Value> = (1..=cfg.calls as u64)
            .map(|i| {
                let t = iso(base + Duration::seconds(97 * i as i64));
                json!({"id": 360_000_000 + i, "agent_id": 900 + i % 7, "ticket_id": 5000 + i, "direction": if i % 4 == 0 { "outbound" } else { "inbound" },
                    "completion_status": if i % 9 == 0 { "abandoned_in_queue" } else { "completed" }, "created_at": t, "updated_at": t,
                    "duration": 200 + i % 300, "talk_time": 150 + i % 250, "hold_time": i % 30, "wait_time": i % 45, "wrap_up_time": 20 + i % 40,
                    "time_to_answer": i % 45, "exceeded_queue_wait_time": false, "voicemail": false, "minutes_billed": 4 + i % 5})
            })
            .collect();
        let users = invent_users(&cfg, base);
        let legs = legs_of(&calls);
        let clock = base + Duration::days(30);
        let core = Core::default().limited(RATE_LIMIT, StdDuration::from_secs(60));
        let account = RollingLimit::new(ACCOUNT_RATE_LIMIT, StdDuration::from_secs(60));
        let t = Talk { cfg, core, calls, legs, users, clock, account };
        let st = Arc::new(Mutex::new(t));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, ZendeskTalkHandle(st))
    }
}

/// The agent's and the customer's leg of each call; every third inbound
/// call was transferred, so a second agent has a leg too.
fn legs_of(calls: &[Value]) -> Vec<Value> {
    let mut legs = Vec::new();
    for c in calls {
        let id = c["id"].as_u64().unwrap_or_default();
        let at = c["updated_at"].clone();
        let leg = |n: u64, kind: &str, agent: Value, talk: u64| {
            json!({"id": id * 10 + n, "call_id": id, "agent_id": agent, "user_id": if kind == "customer" { json!(7000 + id % 20) } else { json!(null) },
                "type": kind, "available_via": if kind == "agent" { json!("browser") } else { json!(null) }, "forwarded_to": null,
                "completion_status": c["completion_status"], "created_at": at, "updated_at": at,
                "duration": talk + 10, "talk_time": talk, "hold_time": if kind == "agent" { c["hold_time"].clone() } else { json!(0) },
                "wrap_up_time": if kind == "agent" { c["wrap_up_time"].clone() } else { json!(0) }, "conference_time": 0, "consultation_time": 0,
                "minutes_billed": c["minutes_billed"], "quality_issues": if id % 13 == 0 { json!(["high_latency"]) } else { json!([]) }})
        };
        let talk = c["talk_time"].as_u64().unwrap_or_default();
        let transferred = c["direction"] == "inbound" && id % 3 == 0;
        let first = if transferred { talk / 3 } else { talk };
        legs.push(leg(1, "agent", c["agent_id"].clone(), first));
        legs.push(leg(2, "customer", json!(null), talk));
        if transferred {
            let second = 900 + (c["agent_id"].as_u64().unwrap_or(900) - 900 + 1) % 7;
            legs.push(leg(3, "agent", json!(second), talk - first));
        }
    }
    legs
}

/// Today's activity per agent, from the agent legs.
fn agents_activity(t: &Talk) -> Vec<Value> {
    let mut out = Vec::new();
    for u in t.users.iter().filter(|u| u["role"] == "agent") {
        let id = u["id"].clone();
        let mine: Vec<&Value> =
            t.legs.iter().filter(|l| l["type"] == "agent" && l["agent_id"] == id).collect();
        let sum = |f: &str| mine.iter().map(|l| l[f].as_u64().unwrap_or(0)).sum::<u64>();
        let n = mine.len() as u64;
        let avg = |total: u64| total.checked_div(n).unwrap_or(0);
        let (talk, hold, wrap) = (sum("talk_time"), sum("hold_time"), sum("wrap_up_time"));
        out.push(json!({"agent_id": id, "name": u["name"], "status": "online", "via": "browser", "avatar_url": null,
            "forwarding_number": null, "calls_accepted": n, "calls_denied": 0, "calls_missed": n / 10, "calls_put_on_hold": mine.iter().filter(|l| l["hold_time"].as_u64().unwrap_or(0) > 0).count(),
            "accepted_transfers": 0, "started_transfers": 0, "accepted_third_party_conferences": 0, "started_third_party_conferences": 0,
            "total_talk_time": talk, "average_talk_time": avg(talk), "total_hold_time": hold, "average_hold_time": avg(hold),
            "total_wrap_up_time": wrap, "average_wrap_up_time": avg(wrap), "total_call_duration": sum("duration"), "average_call_duration": avg(sum("duration")),
            "online_time": 28_800, "available_time": 25_200, "away_time": 1_800, "transfers_only_time": 0}));
    }
    out
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Agents (ids from 900), admins, then end users, in id order.
fn invent_users(cfg: &ZendeskTalkMockConfig, base: DateTime<Utc>) -> Vec<Value> {
    let roles = std::iter::repeat_n("agent", cfg.agents)
        .chain(std::iter::repeat_n("admin", cfg.admins))
        .chain(std::iter::repeat_n("end-user", cfg.end_users));
    roles
        .enumerate()
        .map(|(i, role)| {
            let id = 900 + i as u64;
            let t = iso(base - Duration::days(200) + Duration::hours(i as i64));
            let staff = role != "end-user";
            json!({"id": id, "url": format!("https://acme.zendesk.com/api/v2/users/{id}.json"), "name": format!("User {id}"),
                "email": format!("user{id}@acme.example"), "created_at": t, "updated_at": t, "time_zone": "America/New_York",
                "iana_time_zone": "America/New_York", "phone": null, "locale": "en-US", "locale_id": 1, "organization_id": if staff { json!(null) } else { json!(7000 + i as u64) },
                "role": role, "role_type": if staff { json!(0) } else { json!(null) }, "custom_role_id": null, "verified": true, "external_id": null,
                "tags": [], "alias": "", "active": true, "shared": false, "shared_agent": false, "last_login_at": if staff { json!(t) } else { json!(null) },
                "two_factor_auth_enabled": false, "signature": "", "details": "", "notes": "", "default_group_id": if staff { json!(360_001) } else { json!(null) },
                "moderator": staff, "only_private_comments": false, "restricted_agent": false, "suspended": false, "chat_only": false,
                "user_fields": {}})
        })
        .collect()
}

async fn serve(State(st): State<Arc<Mutex<Talk>>>, req: Request) -> Response {
    let (parts, _) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut t = lock(&st);
    // Every call counts against the account; the exports also against
    // their own 10 a minute.
    let account = t.account.admit();
    let is_export = parts.uri.path().contains("/stats/incremental/");
    let refused = match account {
        Admission::Refused { retry_after_secs } => Some(retry_after_secs),
        Admission::Admitted { .. } if is_export => match t.core.admit() {
            Admission::Refused { retry_after_secs } => Some(retry_after_secs),
            Admission::Admitted { .. } => None,
        },
        Admission::Admitted { .. } => None,
    };
    if matches!(account, Admission::Refused { .. }) {
        t.core.refused += 1;
    }
    let remaining = match account {
        Admission::Admitted { remaining, .. } => remaining,
        Admission::Refused { .. } => 0,
    };
    let limits = [
        ("x-rate-limit", ACCOUNT_RATE_LIMIT.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
    ];
    if let Some(retry_after_secs) = refused {
        return wire::with_headers(too_many_requests(retry_after_secs), &limits);
    }
    let user = format!("{}/token", t.cfg.email);
    if wire::basic_credentials(&parts.headers) != Some((user, t.cfg.api_token.clone())) {
        return wire::json(401, json!({"error": "Couldn't authenticate you"}));
    }
    let resp = match t.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => too_many_requests(retry_after_secs),
        Some(Fault::Error(status, body)) => wire::json(status, body),
        None if parts.method == Method::GET
            && parts.uri.path().trim_end_matches(".json") == CALLS_PATH =>
        {
            export(&t.calls, CALLS_PATH, "calls", t.cfg.page_size, &parts.headers, &pairs)
        }
        None if parts.method == Method::GET
            && parts.uri.path().trim_end_matches(".json") == LEGS_PATH =>
        {
            export(&t.legs, LEGS_PATH, "legs", t.cfg.page_size, &parts.headers, &pairs)
        }
        None if parts.method == Method::GET
            && parts.uri.path().trim_end_matches(".json") == AGENTS_ACTIVITY_PATH =>
        {
            let agents = agents_activity(&t);
            wire::json(
                200,
                json!({"count": agents.len(), "agents_activity": agents, "next_page": null, "previous_page": null}),
            )
        }
        None if parts.method == Method::GET
            && parts.uri.path().trim_end_matches(".json") == USERS_PATH =>
        {
            users(&t, &parts.headers, &pairs)
        }
        None => wire::json(404, json!({"error": "InvalidEndpoint", "description": "Not found"})),
    };
    wire::with_headers(resp, &limits)
}

/// The 429 past a limit, with the seconds to wait.
fn too_many_requests(retry_after_secs: u64) -> Response {
    wire::with_headers(
        wire::json(
            429,
            json!({"error": "TooManyRequests", "description": "You have exceeded the rate limit for this endpoint"}),
        ),
        &[("retry-after", retry_after_secs.to_string())],
    )
}

/// An incremental export (`calls` or `legs`) from `start_time`, inclusive.
fn export(
    records: &[Value],
    path: &str,
    key: &str,
    page_size: usize,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Response {
    let Some(start) = wire::param(pairs, "start_time").and_then(|s| s.parse::<i64>().ok()) else {
        return wire::json(
            400,
            json!({"error": "InvalidValue", "description": "start_time is required and must be a unix timestamp"}),
        );
    };
    let mut calls: Vec<&Value> = records
        .iter()
        .filter(|c| {
            c["updated_at"]
                .as_str()
                .and_then(wire::parse_time)
                .is_some_and(|u| u.timestamp() >= start)
        })
        .collect();
    calls.sort_by_key(|c| (c["updated_at"].as_str().map(str::to_string), c["id"].as_u64()));
    let page: Vec<Value> = calls.into_iter().take(page_size).cloned().collect();
    let end_time = page
        .last()
        .and_then(|c| c["updated_at"].as_str())
        .and_then(wire::parse_time)
        .map_or(start, |u| u.timestamp());
    // next_page is always present; the inclusive start repeats the last call.
    let next = format!("{}{path}.json?start_time={end_time}", wire::origin(headers));
    wire::json(
        200,
        json!({key: page.clone(), "next_page": next, "count": page.len(), "end_time": end_time}),
    )
}

/// `GET /api/v2/users`: cursor pages with `page[size]`, else offset pages.
fn users(t: &Talk, headers: &HeaderMap, pairs: &[(String, String)]) -> Response {
    let roles: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "role[]" || k == "role")
        .map(|(_, v)| v.as_str())
        .collect();
    let matching: Vec<&Value> = t
        .users
        .iter()
        .filter(|u| roles.is_empty() || roles.iter().any(|r| u["role"] == *r))
        .collect();
    let kept: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| !k.starts_with("page")).cloned().collect();
    let link = |extra: &[(&str, String)]| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        q.extend_pairs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        format!("{}{USERS_PATH}.json?{}", wire::origin(headers), q.finish())
    };
    let Some(size) = wire::param(pairs, "page[size]") else {
        // Offset paging: `page` from 1, `per_page` ≤ 100, `next_page` null at the end.
        let per: usize = wire::param(pairs, "per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100)
            .clamp(1, 100);
        let page: usize =
            wire::param(pairs, "page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
        let slice: Vec<Value> =
            matching.iter().skip((page - 1) * per).take(per).map(|u| (*u).clone()).collect();
        let more = page * per < matching.len();
        let next =
            more.then(|| link(&[("page", (page + 1).to_string()), ("per_page", per.to_string())]));
        return wire::json(
            200,
            json!({"users": slice, "next_page": next, "previous_page": null, "count": matching.len()}),
        );
    };
    let Some(size) = size.parse::<usize>().ok().filter(|s| (1..=100).contains(s)) else {
        return wire::json(
            400,
            json!({"error": "InvalidPaginationParameter", "description": "page[size] must be between 1 and 100"}),
        );
    };
    let size = size.min(t.cfg.users_page_size.max(1));
    // The cursor is the last id served.
    let after: u64 = match wire::param(pairs, "page[after]") {
        None => 0,
        Some(c) => match wire::decode_cursor(c).and_then(|v| v["id"].as_u64()) {
            Some(id) => id,
            None => {
                return wire::json(
                    400,
                    json!({"error": "InvalidPaginationParameter", "description": "page[after] is not a valid cursor"}),
                )
            }
        },
    };
    let rest: Vec<&&Value> = matching.iter().filter(|u| u["id"].as_u64() > Some(after)).collect();
    let slice: Vec<Value> = rest.iter().take(size).map(|u| (**u).clone()).collect();
    let has_more = rest.len() > size;
    let cursor = |u: Option<&Value>| u.map(|u| wire::encode_cursor(&json!({"id": u["id"]})));
    let after_cursor = cursor(slice.last());
    let before_cursor = cursor(slice.first());
    // The last page still links onward; only `has_more` says it is the last.
    let next = after_cursor
        .as_ref()
        .map(|c| link(&[("page[size]", size.to_string()), ("page[after]", c.clone())]));
    let prev = before_cursor
        .as_ref()
        .map(|c| link(&[("page[size]", size.to_string()), ("page[before]", c.clone())]));
    wire::json(
        200,
        json!({"users": slice, "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {"next": next, "prev": prev}}),
    )
}
