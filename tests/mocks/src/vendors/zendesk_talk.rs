//! Zendesk Talk mock: Basic `{email}/token:{api_token}` auth, the
//! incremental calls export (`start_time` inclusive on `updated_at`,
//! `{calls, next_page, count, end_time}` where `next_page` is never null,
//! not even past the end), `X-Rate-Limit` headers, 429 with `Retry-After`,
//! and `{"error","description"}` bodies.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

pub const CALLS_PATH: &str = "/api/v2/channels/voice/stats/incremental/calls";
/// Requests per minute on the incremental endpoints.
pub const RATE_LIMIT: u64 = 10;

#[derive(Clone, Debug)]
pub struct ZendeskTalkMockConfig {
    pub email: String,
    pub api_token: String,
    pub calls: usize,
    /// Calls per page (the real export sends up to 1000).
    pub page_size: usize,
}

impl Default for ZendeskTalkMockConfig {
    fn default() -> Self {
        ZendeskTalkMockConfig {
            email: "ops@acme.example".into(),
            api_token: "zd-token-3141".into(),
            calls: 250,
            page_size: 100,
        }
    }
}

struct Talk {
    cfg: ZendeskTalkMockConfig,
    core: Core,
    calls: Vec<Value>,
    clock: DateTime<Utc>,
    data_requests: u64,
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
        let calls = (1..=cfg.calls as u64)
            .map(|i| {
                let t = iso(base + Duration::seconds(97 * i as i64));
                json!({"id": 360_000_000 + i, "agent_id": 900 + i % 7, "ticket_id": 5000 + i, "direction": if i % 4 == 0 { "outbound" } else { "inbound" },
                    "completion_status": if i % 9 == 0 { "abandoned_in_queue" } else { "completed" }, "created_at": t, "updated_at": t,
                    "duration": 200 + i % 300, "talk_time": 150 + i % 250, "hold_time": i % 30, "wait_time": i % 45, "wrap_up_time": 20 + i % 40,
                    "time_to_answer": i % 45, "exceeded_queue_wait_time": false, "voicemail": false, "minutes_billed": 4 + i % 5})
            })
            .collect();
        let clock = base + Duration::days(30);
        let t = Talk { cfg, core: Core::default(), calls, clock, data_requests: 0 };
        let st = Arc::new(Mutex::new(t));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, ZendeskTalkHandle(st))
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn serve(State(st): State<Arc<Mutex<Talk>>>, req: Request) -> Response {
    let (parts, _) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut t = lock(&st);
    t.data_requests += 1;
    let remaining = RATE_LIMIT.saturating_sub(t.data_requests);
    let limits = [
        ("x-rate-limit", RATE_LIMIT.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
    ];
    let user = format!("{}/token", t.cfg.email);
    if wire::basic_credentials(&parts.headers) != Some((user, t.cfg.api_token.clone())) {
        return wire::json(401, json!({"error": "Couldn't authenticate you"}));
    }
    let resp = match t.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => wire::with_headers(
            wire::json(
                429,
                json!({"error": "TooManyRequests", "description": "You have exceeded the rate limit for this endpoint"}),
            ),
            &[("retry-after", retry_after_secs.to_string())],
        ),
        Some(Fault::Error(status, body)) => wire::json(status, body),
        None if parts.method == Method::GET
            && parts.uri.path().trim_end_matches(".json") == CALLS_PATH =>
        {
            export(&t, &parts.headers, &pairs)
        }
        None => wire::json(404, json!({"error": "InvalidEndpoint", "description": "Not found"})),
    };
    wire::with_headers(resp, &limits)
}

fn export(t: &Talk, headers: &HeaderMap, pairs: &[(String, String)]) -> Response {
    let Some(start) = wire::param(pairs, "start_time").and_then(|s| s.parse::<i64>().ok()) else {
        return wire::json(
            400,
            json!({"error": "InvalidValue", "description": "start_time is required and must be a unix timestamp"}),
        );
    };
    let mut calls: Vec<&Value> = t
        .calls
        .iter()
        .filter(|c| {
            c["updated_at"]
                .as_str()
                .and_then(wire::parse_time)
                .is_some_and(|u| u.timestamp() >= start)
        })
        .collect();
    calls.sort_by_key(|c| (c["updated_at"].as_str().map(str::to_string), c["id"].as_u64()));
    let page: Vec<Value> = calls.into_iter().take(t.cfg.page_size).cloned().collect();
    let end_time = page
        .last()
        .and_then(|c| c["updated_at"].as_str())
        .and_then(wire::parse_time)
        .map_or(start, |u| u.timestamp());
    // next_page is always present; the inclusive start repeats the last call.
    let next = format!("{}{CALLS_PATH}.json?start_time={end_time}", wire::origin(headers));
    wire::json(
        200,
        json!({"calls": page.clone(), "next_page": next, "count": page.len(), "end_time": end_time}),
    )
}
