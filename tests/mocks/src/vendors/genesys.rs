//! Genesys Cloud mock: `POST /oauth/token` (client credentials, Basic),
//! `GET /api/v2/users` (`pageSize`/`pageNumber`, `nextUri`), the
//! conversation-details query (`POST …/details/query`: ISO interval, whole
//! days touched by it, `pageSize` ≤ 100, `conversations` absent on an empty
//! page), quality evaluations (`GET …/evaluations/query`, one of
//! `agentUserId`… required, `pageCount` unreliable so `nextUri` must be
//! followed), user presence aggregates (`POST …/users/aggregates/query`:
//! `granularity` `P1D` over whole UTC days, grouped by `userId`, one
//! `tOrganizationPresence` sum per qualifier and day, `{}` when nothing
//! matches), `surveys[]` on conversations, conversations no agent took
//! (abandoned in queue, unanswered outbound attempts), 429 with
//! `Retry-After`, and the `{message, code, status, contextId}` error body.
//!
//! Documented (reference §4a and its sample payloads): the endpoints, the
//! query and listing shapes, `nextUri` with wrong `total`/`pageCount`, the
//! required agent filter of evaluations, the details query answering for
//! whole days, participant purposes, session metrics (`tAbandon` among
//! them), segment types, the error body. Guessed: how an abandoned
//! conversation is laid out (a customer and an `acd` participant whose
//! session has `tAbandon` and the queue, no agent), how an unanswered
//! outbound attempt looks (a customer session with an `alert` segment
//! only), the presence aggregates' exact shape and the whole-day rule, and
//! the 403 body of a missing permission (`missing.permissions`, listing
//! it), served for the paths [`GenesysHandle::deny`] names.
//!
//! `page_size_cap` serves users and evaluations in pages smaller than asked
//! (their paging follows `nextUri`, so that is legal), to walk many pages
//! with little data. [`GenesysMock::start`] invents its data;
//! [`GenesysMock::start_with`] serves the given [`GenesysRecords`] (the
//! demo's sandbox renders its cast with the record builders here).

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{json, Value};

use super::limit::Admission;
use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

/// Calls a minute a client-credentials token gets.
pub const RATE_LIMIT: u32 = 300;

#[derive(Clone, Debug)]
pub struct GenesysMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub users: usize,
    /// Agents are the first `agents` users; conversations go to them.
    pub agents: usize,
    /// Conversations per day over the last `days` days.
    pub per_day: usize,
    pub days: usize,
    /// Per day, inbound calls abandoned in queue before any agent took them.
    pub abandoned_per_day: usize,
    /// Per day, outbound attempts nobody answered (no agent participant).
    pub outbound_attempts_per_day: usize,
    pub evaluations_per_agent: usize,
    /// Users and evaluations come in pages of at most this many.
    pub page_size_cap: Option<usize>,
}

impl Default for GenesysMockConfig {
    fn default() -> Self {
        GenesysMockConfig {
            client_id: "gc-client".into(),
            client_secret: "gc-secret-1618".into(),
            users: 130,
            agents: 6,
            per_day: 40,
            days: 10,
            abandoned_per_day: 2,
            outbound_attempts_per_day: 1,
            evaluations_per_agent: 4,
            page_size_cap: None,
        }
    }
}

/// Everything the mock serves.
#[derive(Clone, Debug, Default)]
pub struct GenesysRecords {
    pub users: Vec<Value>,
    /// Conversation details, each with its `participants` and `surveys`.
    pub conversations: Vec<Value>,
    pub evaluations: Vec<Value>,
    pub presence: Vec<PresenceDay>,
}

/// Time one user spent in one organization presence on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceDay {
    pub user_id: String,
    pub day: NaiveDate,
    /// `AVAILABLE`, `ON_QUEUE`, `BUSY`, `BREAK`, `OFFLINE` …
    pub presence: String,
    pub ms: i64,
}

struct Genesys {
    cfg: GenesysMockConfig,
    core: Core,
    users: Vec<Value>,
    conversations: Vec<Value>,
    evaluations: Vec<Value>,
    presence: Vec<PresenceDay>,
    /// Paths answered with a missing-permission 403.
    denied: Vec<String>,
}

#[derive(Clone)]
pub struct GenesysHandle(Arc<Mutex<Genesys>>);

impl MockHandle for GenesysHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl GenesysHandle {
    pub fn conversations(&self) -> Vec<Value> {
        lock(&self.0).conversations.clone()
    }
    pub fn evaluations(&self) -> Vec<Value> {
        lock(&self.0).evaluations.clone()
    }
    pub fn users(&self) -> Vec<Value> {
        lock(&self.0).users.clone()
    }
    pub fn presence(&self) -> Vec<PresenceDay> {
        lock(&self.0).presence.clone()
    }
    /// Every survey of every conversation.
    pub fn surveys(&self) -> Vec<Value> {
        let g = lock(&self.0);
        g.conversations
            .iter()
            .flat_map(|c| c["surveys"].as_array().cloned().unwrap_or_default())
            .collect()
    }
    /// From now on, `path` answers 403: the client lacks its permission
    /// (an org without the analytics or quality permission).
    pub fn deny(&self, path: &str) {
        lock(&self.0).denied.push(path.to_string());
    }
    /// Adds a conversation that started `ago` before now, handled by agent 0.
    pub fn add_conversation(&self, ago: Duration) -> Value {
        let mut g = lock(&self.0);
        let n = g.conversations.len();
        let c = conversation(n, &g.users[0], Utc::now() - ago, false);
        g.conversations.push(c.clone());
        c
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A deterministic Genesys-looking id for entity `i` of `kind`.
pub fn id(kind: &str, i: usize) -> String {
    format!("{kind}-{:08x}-{i:04}", wire::mix(kind.len() as u64, i as u64) as u32)
}

/// A user entity; `manager` is the manager's user id.
pub fn user(
    id: &str,
    name: &str,
    email: &str,
    department: &str,
    title: &str,
    manager: Option<&str>,
) -> Value {
    json!({"id": id, "name": name, "email": email, "username": email, "state": "active", "department": department,
        "title": title, "division": {"id": "div-1", "name": "Home"},
        "manager": manager.map_or(Value::Null, |m| json!({"id": m})), "version": 3})
}

/// A finished post-call survey (`AnalyticsSurvey`) of conversation `conversation`
/// answered for agent `agent`; `total_score` is the form's 0–100 score.
pub fn survey(
    id: &str,
    agent: &Value,
    completed: DateTime<Utc>,
    total_score: f64,
    promoter_score: i64,
) -> Value {
    json!({"surveyId": id, "surveyFormName": "Post-call CSAT", "userId": agent["id"], "queueId": "q-support",
        "surveyStatus": "Finished", "surveyCompletedDate": iso(completed), "oSurveyTotalScore": total_score,
        "surveyPromoterScore": promoter_score})
}

/// A finished quality evaluation of `agent` on conversation `conversation_id`.
pub fn evaluation(
    id: &str,
    agent_id: &str,
    conversation_id: &str,
    at: DateTime<Utc>,
    total_score: f64,
) -> Value {
    let at = iso(at);
    json!({"id": id, "conversation": {"id": conversation_id}, "evaluationForm": {"id": "form-1", "name": "QA Voice"},
        "evaluator": {"id": "user-evaluator"}, "agent": {"id": agent_id}, "status": "FINISHED",
        "answers": {"totalScore": total_score, "totalCriticalScore": 100.0, "totalNonCriticalScore": total_score, "anyFailedKillQuestions": false},
        "assignedDate": at, "releaseDate": at, "changedDate": at, "submittedDate": at, "conversationDate": at})
}

/// Conversation `i` (its id is `id("conv", i)`): a customer and `agent`
/// (a user entity) on voice, talk/hold/wrap-up times varying with `i`,
/// no `surveys` (the API leaves the key out); a transfer adds a second
/// agent session.
pub fn conversation(i: usize, agent: &Value, start: DateTime<Utc>, transferred: bool) -> Value {
    let talk = 60_000 + (i as i64 % 17) * 10_000;
    let hold = (i as i64 % 3) * 5_000;
    let acw = 20_000 + (i as i64 % 5) * 1_000;
    let end = start + Duration::milliseconds(5_000 + talk + hold + acw);
    let session = |sid: String, talk: i64| {
        json!({"sessionId": sid, "mediaType": "voice", "direction": "inbound", "ani": "tel:+15551230000", "dnis": "tel:+15559870000",
            "metrics": [{"name": "tAnswered", "value": 5_000, "emitDate": iso(start)}, {"name": "tTalkComplete", "value": talk, "emitDate": iso(end)},
                {"name": "tHeldComplete", "value": hold, "emitDate": iso(end)}, {"name": "tAcw", "value": acw, "emitDate": iso(end)},
                {"name": "tHandle", "value": talk + hold + acw, "emitDate": iso(end)}, {"name": "nTransferred", "value": if transferred { 1 } else { 0 }, "emitDate": iso(end)}],
            "segments": [{"segmentType": "interact", "queueId": "q-support", "segmentStart": iso(start), "segmentEnd": iso(end - Duration::milliseconds(acw))},
                {"segmentType": "wrapup", "wrapUpCode": format!("wc-{}", i % 4), "segmentStart": iso(end - Duration::milliseconds(acw)), "segmentEnd": iso(end)}]})
    };
    let mut participants = vec![
        json!({"participantId": format!("p-{i}-c"), "purpose": "customer", "sessions": [{"sessionId": format!("s-{i}-c"), "mediaType": "voice", "direction": "inbound"}]}),
        json!({"participantId": format!("p-{i}-a"), "purpose": "agent", "userId": agent["id"], "participantName": agent["name"],
            "sessions": [session(format!("s-{i}-a"), talk)]}),
    ];
    if transferred {
        participants.push(json!({"participantId": format!("p-{i}-b"), "purpose": "agent", "userId": agent["id"], "participantName": agent["name"],
            "sessions": [session(format!("s-{i}-b"), talk / 2)]}));
    }
    json!({"conversationId": id("conv", i), "conversationStart": iso(start), "conversationEnd": iso(end), "originatingDirection": "inbound",
        "divisionIds": ["div-1"], "participants": participants})
}

/// Conversation `i` of kind `abandoned`: an inbound call that waited
/// `wait_ms` in queue `queue` and hung up before any agent took it — a
/// customer and an `acd` participant, no agent, `tAbandon` on the queue
/// session.
pub fn abandoned_conversation(i: usize, start: DateTime<Utc>, queue: &str, wait_ms: i64) -> Value {
    let end = start + Duration::milliseconds(wait_ms);
    json!({"conversationId": id("abandoned", i), "conversationStart": iso(start), "conversationEnd": iso(end), "originatingDirection": "inbound",
        "divisionIds": ["div-1"], "participants": [
            {"participantId": format!("p-ab{i}-c"), "purpose": "customer", "sessions": [{"sessionId": format!("s-ab{i}-c"), "mediaType": "voice", "direction": "inbound",
                "ani": "tel:+15551230000", "dnis": "tel:+15559870000",
                "segments": [{"segmentType": "interact", "segmentStart": iso(start), "segmentEnd": iso(end), "disconnectType": "client"}]}]},
            {"participantId": format!("p-ab{i}-q"), "purpose": "acd", "participantName": "Support queue", "sessions": [{"sessionId": format!("s-ab{i}-q"), "mediaType": "voice", "direction": "inbound",
                "metrics": [{"name": "tAbandon", "value": wait_ms, "emitDate": iso(end)}],
                "segments": [{"segmentType": "interact", "queueId": queue, "segmentStart": iso(start), "segmentEnd": iso(end), "disconnectType": "peer"}]}]}]})
}

/// Conversation `i` of kind `outbound`: a call placed to a customer that
/// rang out unanswered — one customer session that only alerted.
pub fn outbound_attempt(i: usize, start: DateTime<Utc>) -> Value {
    let end = start + Duration::seconds(30);
    json!({"conversationId": id("outbound", i), "conversationStart": iso(start), "conversationEnd": iso(end), "originatingDirection": "outbound",
        "divisionIds": ["div-1"], "participants": [
            {"participantId": format!("p-ob{i}-c"), "purpose": "customer", "sessions": [{"sessionId": format!("s-ob{i}-c"), "mediaType": "voice", "direction": "outbound",
                "dnis": "tel:+15554440000",
                "segments": [{"segmentType": "alert", "segmentStart": iso(start), "segmentEnd": iso(end), "disconnectType": "peer"}]}]}]})
}

pub struct GenesysMock;

impl GenesysMock {
    /// Starts with invented data: `cfg.users` users, conversations for the
    /// first `cfg.agents` of them over the last `cfg.days` days (every third
    /// one surveyed), four evaluations per agent and daily presence.
    pub async fn start(cfg: GenesysMockConfig) -> (MockServer, GenesysHandle) {
        let records = invent(&cfg);
        Self::start_with(cfg, records).await
    }

    /// Starts serving exactly `records`.
    pub async fn start_with(
        cfg: GenesysMockConfig,
        records: GenesysRecords,
    ) -> (MockServer, GenesysHandle) {
        let GenesysRecords { users, conversations, evaluations, presence } = records;
        let g = Genesys {
            cfg,
            core: Core::default().limited(RATE_LIMIT, std::time::Duration::from_secs(60)),
            users,
            conversations,
            evaluations,
            presence,
            denied: Vec::new(),
        };
        let st = Arc::new(Mutex::new(g));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, GenesysHandle(st))
    }
}

fn invent(cfg: &GenesysMockConfig) -> GenesysRecords {
    let boss = id("user", 0);
    let users: Vec<Value> = (0..cfg.users)
        .map(|i| {
            let email = format!("agent{i}@acme.example");
            user(
                &id("user", i),
                &format!("Agent {i}"),
                &email,
                "Support",
                "Agent",
                (i > 0).then_some(boss.as_str()),
            )
        })
        .collect();
    let now = Utc::now();
    let mut conversations = Vec::new();
    for d in 0..cfg.days {
        for k in 0..cfg.per_day {
            let i = conversations.len();
            let start = now - Duration::days(d as i64) - Duration::minutes(30 + 13 * k as i64);
            let agent = &users[i % cfg.agents.max(1)];
            let mut c = conversation(i, agent, start, i % 7 == 0);
            if i % 3 == 0 {
                let end = c["conversationEnd"].as_str().and_then(wire::parse_time).unwrap();
                let score = 20.0 * (1 + i % 5) as f64;
                c["surveys"] = json!([survey(
                    &id("survey", i),
                    agent,
                    end + Duration::minutes(3),
                    score,
                    2 * (1 + i % 5) as i64
                )]);
            }
            conversations.push(c);
        }
    }
    // Calls no agent took, after the handled ones (so conversation `i`
    // above stays the `i`-th).
    for d in 0..cfg.days {
        for k in 0..cfg.abandoned_per_day {
            let j = d * cfg.abandoned_per_day + k;
            let start = now - Duration::days(d as i64) - Duration::minutes(41 + 17 * k as i64);
            conversations.push(abandoned_conversation(
                j,
                start,
                "q-support",
                20_000 + 5_000 * k as i64,
            ));
        }
        for k in 0..cfg.outbound_attempts_per_day {
            let j = d * cfg.outbound_attempts_per_day + k;
            let start = now - Duration::days(d as i64) - Duration::minutes(53 + 19 * k as i64);
            conversations.push(outbound_attempt(j, start));
        }
    }
    let evaluations = (0..cfg.agents * cfg.evaluations_per_agent)
        .map(|i| {
            let agent = &users[i % cfg.agents.max(1)];
            let conv = conversations[i % conversations.len().max(1)]["conversationId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let at = now - Duration::days(1 + i as i64 % 9);
            evaluation(
                &id("eval", i),
                agent["id"].as_str().unwrap_or_default(),
                &conv,
                at,
                70.0 + (i % 6) as f64 * 5.0,
            )
        })
        .collect();
    let mut presence = Vec::new();
    for d in 0..cfg.days as i64 {
        let day = (now - Duration::days(d)).date_naive();
        for (a, u) in users.iter().take(cfg.agents).enumerate() {
            let on_queue = 6 * 3_600_000 + a as i64 * 60_000 + d * 1_000;
            for (presence_name, ms) in [
                ("ON_QUEUE", on_queue),
                ("AVAILABLE", 3_600_000),
                ("BREAK", 1_800_000),
                ("OFFLINE", 15 * 3_600_000),
            ] {
                presence.push(PresenceDay {
                    user_id: u["id"].as_str().unwrap_or_default().to_string(),
                    day,
                    presence: presence_name.into(),
                    ms,
                });
            }
        }
    }
    GenesysRecords { users, conversations, evaluations, presence }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({"message": message, "code": code, "status": status, "messageParams": {}, "contextId": wire::unique_token("ctx"), "details": [], "errors": []}),
    )
}

/// The 429 past the limit, in Genesys' words.
fn too_many_requests(retry_after_secs: u64) -> Response {
    wire::with_headers(
        error(429, "too.many.requests", &format!("Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds")),
        &[("retry-after", retry_after_secs.to_string())],
    )
}

async fn serve(State(st): State<Arc<Mutex<Genesys>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let mut g = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == "/oauth/token" {
        g.core.token_requests += 1;
        if wire::basic_credentials(&parts.headers)
            != Some((g.cfg.client_id.clone(), g.cfg.client_secret.clone()))
        {
            return wire::json(
                401,
                json!({"error": "invalid_client", "description": "client not found", "error_description": "client not found"}),
            );
        }
        if wire::form_fields(&parts.headers, &body).get("grant_type").map(String::as_str)
            != Some("client_credentials")
        {
            return wire::json(400, json!({"error": "unsupported_grant_type"}));
        }
        let access = g.core.issue_access("gc-at");
        return wire::json(
            200,
            json!({"access_token": access, "token_type": "bearer", "expires_in": 86400}),
        );
    }
    if !g.core.access_ok(wire::bearer(&parts.headers)) {
        return error(
            401,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        );
    }
    if g.denied.contains(&path) {
        return error(
            403,
            "missing.permissions",
            "Unable to perform the requested action. You are missing the following permission(s) for this resource.",
        );
    }
    // About 300 calls a minute for a client-credentials token.
    if let Admission::Refused { retry_after_secs } = g.core.admit() {
        return too_many_requests(retry_after_secs);
    }
    match g.core.next_fault() {
        Some(Fault::RateLimited { retry_after_secs }) => {
            return too_many_requests(retry_after_secs)
        }
        Some(Fault::Error(status, body)) => return wire::json(status, body),
        None => {}
    }
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/api/v2/users") => {
            let all = g.users.clone();
            listing(&all, &pairs, "/api/v2/users", false, g.cfg.page_size_cap)
        }
        (&Method::GET, "/api/v2/quality/evaluations/query") => {
            let Some(agent) = wire::param(&pairs, "agentUserId") else {
                return error(400, "bad.request", "One of conversationId, agentUserId, evaluatorUserId or assigneeUserId is required");
            };
            let (from, to) = (
                wire::param(&pairs, "startTime").and_then(wire::parse_time),
                wire::param(&pairs, "endTime").and_then(wire::parse_time),
            );
            let mine: Vec<Value> = g
                .evaluations
                .iter()
                .filter(|e| e["agent"]["id"] == agent)
                .filter(|e| {
                    let at = e["changedDate"].as_str().and_then(wire::parse_time).unwrap();
                    from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t)
                })
                .cloned()
                .collect();
            listing(&mine, &pairs, "/api/v2/quality/evaluations/query", true, g.cfg.page_size_cap)
        }
        (&Method::POST, "/api/v2/analytics/conversations/details/query") => details(&g, &body),
        (&Method::POST, "/api/v2/analytics/users/aggregates/query") => user_aggregates(&g, &body),
        _ => error(404, "not.found", "The requested resource was not found."),
    }
}

/// `{entities, pageSize, pageNumber, total, pageCount, nextUri?}`; with
/// `wrong_counts` the totals understate, as the reference warns; `cap`
/// serves smaller pages than asked.
fn listing(
    all: &[Value],
    pairs: &[(String, String)],
    path: &str,
    wrong_counts: bool,
    cap: Option<usize>,
) -> Response {
    let size: usize =
        wire::param(pairs, "pageSize").and_then(|v| v.parse().ok()).unwrap_or(25).clamp(1, 500);
    let size = cap.map_or(size, |c| size.min(c.max(1)));
    let number: usize =
        wire::param(pairs, "pageNumber").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let page: Vec<Value> = all.iter().skip((number - 1) * size).take(size).cloned().collect();
    let pages = all.len().div_ceil(size).max(1);
    let keep: Vec<(String, String)> =
        pairs.iter().filter(|(k, _)| k != "pageNumber").cloned().collect();
    let uri = |n: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(keep.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        q.append_pair("pageNumber", &n.to_string());
        format!("{path}?{}", q.finish())
    };
    let mut body = json!({"entities": page, "pageSize": size, "pageNumber": number,
        "total": if wrong_counts { 0 } else { all.len() }, "pageCount": if wrong_counts { 1 } else { pages },
        "firstUri": uri(1), "selfUri": uri(number), "lastUri": uri(pages)});
    if number < pages {
        body["nextUri"] = json!(uri(number + 1));
    }
    wire::json(200, body)
}

fn details(g: &Genesys, body: &[u8]) -> Response {
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return error(
            400,
            "bad.request",
            "The request could not be understood by the server due to malformed syntax.",
        );
    };
    let interval = q["interval"].as_str().unwrap_or("");
    let Some((from, to)) = interval
        .split_once('/')
        .and_then(|(a, b)| Some((wire::parse_time(a)?, wire::parse_time(b)?)))
    else {
        return error(400, "bad.request", &format!("Interval is invalid: {interval}"));
    };
    let size = q["paging"]["pageSize"].as_u64().unwrap_or(25) as usize;
    let number = q["paging"]["pageNumber"].as_u64().unwrap_or(1).max(1) as usize;
    if size > 100 {
        return error(400, "bad.request", "pageSize must be at most 100");
    }
    // Conversations that started on a day the interval touches.
    let day_start = from.date_naive().and_time(NaiveTime::MIN).and_utc();
    let day_end = (to - Duration::milliseconds(1)).date_naive().and_time(NaiveTime::MIN).and_utc()
        + Duration::days(1);
    let mut hits: Vec<&Value> = g
        .conversations
        .iter()
        .filter(|c| {
            c["conversationStart"]
                .as_str()
                .and_then(wire::parse_time)
                .is_some_and(|s| s >= day_start && s < day_end)
        })
        .collect();
    hits.sort_by_key(|c| c["conversationStart"].as_str().map(str::to_string));
    let total = hits.len();
    let page: Vec<Value> = hits.into_iter().skip((number - 1) * size).take(size).cloned().collect();
    if page.is_empty() {
        return wire::json(200, json!({"totalHits": total}));
    }
    wire::json(200, json!({"conversations": page, "totalHits": total}))
}

/// One day's presence metrics of one user, as the aggregates answer lists them.
type DayMetrics = (NaiveDate, Vec<Value>);

/// `tOrganizationPresence` per user and day. Like the real API, P1D buckets
/// count from the interval's start, so an interval that does not start and
/// end at midnight is refused rather than bucketed across days.
fn user_aggregates(g: &Genesys, body: &[u8]) -> Response {
    let Ok(q) = serde_json::from_slice::<Value>(body) else {
        return error(
            400,
            "bad.request",
            "The request could not be understood by the server due to malformed syntax.",
        );
    };
    let interval = q["interval"].as_str().unwrap_or("");
    let Some((from, to)) = interval
        .split_once('/')
        .and_then(|(a, b)| Some((wire::parse_time(a)?, wire::parse_time(b)?)))
        .filter(|(a, b)| a < b)
    else {
        return error(400, "bad.request", &format!("Interval is invalid: {interval}"));
    };
    if q["granularity"] != "P1D" {
        return error(400, "bad.request", "This mock serves granularity P1D only");
    }
    let whole_days = |t: DateTime<Utc>| t.time() == NaiveTime::MIN;
    if !whole_days(from) || !whole_days(to) {
        return error(
            400,
            "bad.request",
            "The interval must align with the granularity (whole days)",
        );
    }
    if to - from > Duration::days(31) {
        return error(400, "bad.request", "The interval may span at most 31 days");
    }
    let grouped = q["groupBy"].as_array().is_some_and(|g| g.iter().any(|v| v == "userId"));
    let wanted =
        q["metrics"].as_array().is_some_and(|m| m.iter().any(|v| v == "tOrganizationPresence"));
    if !grouped || !wanted {
        return error(
            400,
            "bad.request",
            "groupBy must include userId and metrics tOrganizationPresence",
        );
    }
    let (first, last) = (from.date_naive(), to.date_naive());
    let mut by_user: Vec<(String, Vec<DayMetrics>)> = Vec::new();
    for p in g.presence.iter().filter(|p| p.day >= first && p.day < last) {
        let metric = json!({"metric": "tOrganizationPresence", "qualifier": p.presence, "stats": {"sum": p.ms, "count": 1}});
        let at = match by_user.iter().position(|(u, _)| *u == p.user_id) {
            Some(i) => i,
            None => {
                by_user.push((p.user_id.clone(), Vec::new()));
                by_user.len() - 1
            }
        };
        let days = &mut by_user[at].1;
        match days.iter_mut().find(|(d, _)| *d == p.day) {
            Some((_, metrics)) => metrics.push(metric),
            None => days.push((p.day, vec![metric])),
        }
    }
    if by_user.is_empty() {
        return wire::json(200, json!({}));
    }
    let results: Vec<Value> = by_user
        .into_iter()
        .map(|(user, days)| {
            let data: Vec<Value> = days
                .into_iter()
                .map(|(d, metrics)| {
                    let start = d.and_time(NaiveTime::MIN).and_utc();
                    json!({"interval": format!("{}/{}", iso(start), iso(start + Duration::days(1))), "metrics": metrics})
                })
                .collect();
            json!({"group": {"userId": user}, "data": data})
        })
        .collect();
    wire::json(200, json!({"results": results}))
}
