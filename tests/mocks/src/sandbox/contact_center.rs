//! Zendesk Talk-shaped contact center: Basic `{email}/token:{api_token}` auth, time-based incremental
//! exports whose `next_page` is never null, paged users, and Zendesk-flavoured QA evaluations.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    response::Response,
    Router,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::world::{anchor, at, is_weekday, week_start, Role, World};
use super::{read, ZENDESK_API_TOKEN, ZENDESK_EMAIL};
use crate::wire::{self, mix, SharedLog};

/// Zendesk's fixed export page size.
const EXPORT_PAGE: usize = 100;

struct Zendesk {
    /// Export rows keyed by `updated_at` (unix seconds), sorted by it.
    calls: Vec<(i64, Value)>,
    activity: Vec<(i64, Value)>,
    users: Vec<Value>,
    evaluations: Vec<Value>,
    log: SharedLog,
}

pub(crate) fn user_id(idx: usize) -> u64 {
    36_100_000_000 + idx as u64
}

pub(crate) fn router(world: &World, log: SharedLog) -> Router {
    let zd = Zendesk {
        calls: calls(world),
        activity: activity(world),
        users: users(world),
        evaluations: evaluations(world),
        log,
    };
    Router::new().fallback(serve).with_state(Arc::new(zd))
}

/// Zendesk renders times as second-precision UTC.
fn zts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn keyed(mut rows: Vec<(i64, Value)>) -> Vec<(i64, Value)> {
    rows.sort_by_key(|(t, v)| (*t, v["id"].as_u64()));
    rows
}

/// Five calls per agent per working day over the last four weeks, plus one abandoned call a day.
fn calls(w: &World) -> Vec<(i64, Value)> {
    let mut rows = vec![];
    let days = (0..28).map(|d| week_start(0) + Duration::days(d)).filter(|d| is_weekday(*d));
    for (day_no, day) in days.enumerate() {
        let week = day_no / 5;
        let agents = w.with_role(Role::Agent).filter(|p| p.hire_date.is_some_and(|h| h <= day));
        let shifts = agents.flat_map(|p| (0..5u64).map(move |k| (Some(p), k)));
        for (agent, k) in shifts.chain([(None, 0)]) {
            let id = 1_000_000 + rows.len() as u64;
            let h = mix(id, 5);
            let offset = agent.map_or(12 * 3600 + 7, |p| {
                8 * 3600 + k as i64 * 5_400 + (p.idx as i64 * 61) % 1_800
            });
            let created = at(day, offset);
            let (wait, hold, wrap) =
                (5 + h % 90, if h.is_multiple_of(4) { h % 120 } else { 0 }, 20 + h % 60);
            let talk = if agent.is_some() { 120 + h % 600 } else { 0 };
            let updated = created + Duration::seconds((wait + talk + hold + wrap) as i64);
            let csat = agent.and_then(|p| w.csat(p, week, day_no as u64 * 10 + k));
            let row = json!({
                "id": id, "agent_id": agent.map(|p| user_id(p.idx)),
                "ticket_id": (h % 10 < 7).then_some(50_000 + id % 100_000),
                "direction": if h.is_multiple_of(5) { "outbound" } else { "inbound" },
                "completion_status": if agent.is_some() { "completed" } else { "abandoned_in_queue" },
                "created_at": zts(created), "updated_at": zts(updated),
                "duration": wait + talk + hold, "talk_time": talk,
                "hold_time": hold, "wait_time": wait, "wrap_up_time": if agent.is_some() { wrap } else { 0 },
                "time_to_answer": if agent.is_some() { Some(wait) } else { None },
                "exceeded_queue_wait_time": wait > 80,
                "voicemail": false, "minutes_billed": (wait + talk + hold).div_ceil(60), "csat": csat,
            });
            rows.push((updated.timestamp(), row));
        }
    }
    keyed(rows)
}

/// Daily logged-in time per agent for the last eight weeks (what payroll hours should match).
fn activity(w: &World) -> Vec<(i64, Value)> {
    let mut rows = vec![];
    for day in (1..=56).map(|d| anchor() - Duration::days(d)) {
        for p in w.with_role(Role::Agent) {
            let online = (w.hours_on(p, day) * 3600.0) as i64;
            if online == 0 {
                continue;
            }
            let available = online * 85 / 100;
            let updated = at(day + Duration::days(1), 300 + 7 * p.idx as i64);
            rows.push((updated.timestamp(), json!({
                "id": 2_000_000 + rows.len() as u64, "agent_id": user_id(p.idx), "date": day.to_string(),
                "online_time": online, "available_time": available, "away_time": online - available,
                "created_at": zts(updated), "updated_at": zts(updated),
            })));
        }
    }
    keyed(rows)
}

fn users(w: &World) -> Vec<Value> {
    let since = at(anchor() - Duration::days(400), 8 * 3600);
    let created = |p: &super::world::Person| {
        zts(p.hire_date.map_or(since, |h| at(h, 8 * 3600 + p.idx as i64)))
    };
    w.hired()
        .map(|p| {
            let role = if p.role == Role::Supervisor { "admin" } else { "agent" };
            let supervisor = p.supervisor.map(|s| w.people[s].email.clone());
            json!({
                "id": user_id(p.idx), "name": format!("{} {}", p.first, p.last), "email": p.email,
                "role": role, "active": true, "created_at": created(p), "updated_at": created(p),
                "user_fields": {"supervisor_email": supervisor, "team": p.team},
            })
        })
        .collect()
}

/// One QA evaluation per agent and back-office worker per week, for the last four weeks.
fn evaluations(w: &World) -> Vec<Value> {
    let mut rows = vec![];
    for week in 0..4 {
        let evaluated = w.hired().filter(|p| matches!(p.role, Role::Agent | Role::BackOffice));
        for p in evaluated {
            let t = at(week_start(week) + Duration::days(3), 15 * 3600 + 13 * p.idx as i64);
            rows.push(json!({
                "id": 7_000 + rows.len() as u64, "agent_id": user_id(p.idx), "score": w.qa_score(p, week),
                "created_at": zts(t), "updated_at": zts(t + Duration::hours(2)),
            }));
        }
    }
    rows
}

async fn serve(State(zd): State<Arc<Zendesk>>, req: Request) -> Response {
    let (parts, _) = read(&zd.log, req).await;
    let expected = (format!("{ZENDESK_EMAIL}/token"), ZENDESK_API_TOKEN.to_string());
    if wire::basic_credentials(&parts.headers) != Some(expected) {
        return wire::json(401, json!({"error": "Couldn't authenticate you"}));
    }
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    // Zendesk accepts every path with or without a `.json` suffix.
    let path = parts.uri.path().trim_end_matches(".json");
    let base = format!("{}{path}", wire::origin(&parts.headers));
    match path {
        "/api/v2/channels/voice/stats/incremental/calls" => {
            export(&zd.calls, "calls", &pairs, &base)
        }
        "/api/v2/channels/voice/stats/incremental/agent_activity" => {
            export(&zd.activity, "agent_activity", &pairs, &base)
        }
        "/api/v2/users" => {
            let role = wire::param(&pairs, "role");
            let users = zd.users.iter().filter(|u| role.is_none_or(|r| u["role"] == r));
            paged(users.cloned().collect(), "users", &pairs, &base)
        }
        "/api/v2/quality/evaluations" => {
            paged(zd.evaluations.clone(), "evaluations", &pairs, &base)
        }
        _ => wire::json(404, json!({"error": "InvalidEndpoint", "description": "Not found"})),
    }
}

/// Time-based incremental export: rows with `updated_at >= start_time`, 100 at a time; the next page
/// restarts at the last row's time (so boundary rows repeat) and `next_page` is never null.
fn export(rows: &[(i64, Value)], key: &str, pairs: &[(String, String)], base: &str) -> Response {
    let Some(start) = wire::param(pairs, "start_time").and_then(|s| s.parse::<i64>().ok()) else {
        return wire::json(
            400,
            json!({
                "error": "InvalidValue",
                "description": "start_time is required and must be a unix timestamp",
            }),
        );
    };
    let from = rows.partition_point(|(t, _)| *t < start);
    let page = &rows[from..rows.len().min(from + EXPORT_PAGE)];
    let end_time = page.last().map_or(start, |(t, _)| *t);
    let items: Vec<&Value> = page.iter().map(|(_, v)| v).collect();
    let next = format!("{base}.json?start_time={end_time}");
    wire::json(
        200,
        json!({key: items, "next_page": next, "count": items.len(), "end_time": end_time}),
    )
}

/// Classic offset paging: `page` and `per_page` (≤100), `next_page`/`previous_page` URLs or null;
/// the links keep the caller's other filters.
fn paged(items: Vec<Value>, key: &str, pairs: &[(String, String)], base: &str) -> Response {
    let page = wire::param(pairs, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let per = wire::param(pairs, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let kept = pairs.iter().filter(|(k, _)| k != "page" && k != "per_page");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(kept);
    let kept = query.finish();
    let link = |n: usize| {
        format!(
            "{base}.json?{kept}{}page={n}&per_page={per}",
            if kept.is_empty() { "" } else { "&" }
        )
    };
    let count = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    let next = (page * per < count).then(|| link(page + 1));
    let previous = (page > 1).then(|| link(page - 1));
    wire::json(
        200,
        json!({key: slice, "next_page": next, "previous_page": previous, "count": count}),
    )
}
