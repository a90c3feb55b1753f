//! Greenhouse Harvest v3-shaped ATS: client-credentials token, bare-array lists with `per_page`,
//! cursor-only `Link` paging (422 otherwise) and `updated_at=gte|<iso>` filters.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration as StdDuration, Instant},
};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method},
    response::Response,
    Router,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::world::{anchor, at, Role, World};
use super::{read, ATS_CLIENT_ID, ATS_CLIENT_SECRET};
use crate::wire::{self, iso_millis as iso, mix, SharedLog};

struct Ats {
    lists: HashMap<&'static str, Vec<Value>>,
    tokens: Mutex<HashMap<String, Instant>>,
    log: SharedLog,
}

pub(crate) fn candidate_id(idx: usize) -> u64 {
    57_000_000 + idx as u64
}

/// Greenhouse application id; the accounting sandbox quotes it on each placement invoice.
pub(crate) fn application_id(idx: usize) -> u64 {
    69_000_000 + idx as u64
}

pub(crate) fn router(world: &World, log: SharedLog) -> Router {
    let ats = Ats { lists: build(world), tokens: Mutex::default(), log };
    Router::new().fallback(serve).with_state(Arc::new(ats))
}

fn build(w: &World) -> HashMap<&'static str, Vec<Value>> {
    let opened = at(anchor() - Duration::days(420), 9 * 3600);
    let job_specs = [
        ("Contact Center Agent", "Contact Center"),
        ("Back Office Specialist", "Operations"),
        ("Team Supervisor", "Operations"),
    ];
    let jobs = (1u64..).zip(job_specs).map(|(j, (name, dept))| {
        json!({
            "id": 4_100_000 + j, "name": name, "requisition_id": format!("REQ-{j:03}"), "status": "open",
            "opened_at": iso(opened), "closed_at": null, "departments": [{"id": 500 + j, "name": dept}],
            "offices": [{"id": 700, "name": "Remote"}],
            "openings": [{"id": 8_800 + j, "opening_id": format!("OP-{j}"), "status": "open"}],
            "created_at": iso(opened), "updated_at": iso(opened + Duration::days(j as i64)),
        })
    });
    let (mut candidates, mut applications, mut offers) = (vec![], vec![], vec![]);
    for p in &w.people {
        let jitter = (mix(p.idx as u64, 2) % 28_800) as i64;
        let applied = p
            .hire_date
            .map_or(anchor() - Duration::days(10 + (jitter % 300)), |h| h - Duration::days(35));
        let decided = match p.status {
            "hired" => applied + Duration::days(21),
            "rejected" => applied + Duration::days(12),
            _ => applied + Duration::days(3),
        };
        let (created, updated) =
            (iso(at(applied, 9 * 3600 + jitter)), iso(at(decided, 15 * 3600 + jitter)));
        let job = 4_100_000
            + match p.role {
                Role::Agent => 1,
                Role::BackOffice => 2,
                Role::Supervisor => 3,
                Role::Candidate => 1 + p.idx as u64 % 2,
            };
        // Some recruiters type names capitalised; payroll and the contact center do their own thing.
        let email = if p.idx % 6 == 5 {
            format!("{}.{}@mail.example", p.first, p.last)
        } else {
            p.email.clone()
        };
        candidates.push(json!({
            "id": candidate_id(p.idx), "first_name": p.first, "last_name": p.last, "company": null,
            "title": null,
            "email_addresses": [{"type": "personal", "value": email}],
            "tags": if p.idx % 3 == 0 { json!(["referral"]) } else { json!([]) },
            "private": false, "last_activity_at": updated, "created_at": created, "updated_at": updated,
        }));
        let (stage_id, stage) = match p.status {
            "hired" => (9, "Offer"),
            "rejected" => (3, "Phone Screen"),
            _ => (2, "Application Review"),
        };
        let rejected = p.status == "rejected";
        applications.push(json!({
            "id": application_id(p.idx), "candidate_id": candidate_id(p.idx), "job_id": job,
            "job_post_id": job + 10,
            "prospect": false, "status": p.status, "stage_id": stage_id, "stage_name": stage,
            "source_id": 100 + p.idx as u64 % 4,
            "recruiter_id": 92_120, "rejected_at": if rejected { json!(updated) } else { Value::Null },
            "rejection_reason_id": if rejected { json!(14) } else { Value::Null },
            "last_activity_at": updated,
            "created_at": created, "updated_at": updated,
            "custom_fields": {
                "client_company": {"name": "Client Company", "type": "short_text", "value": p.client},
            },
        }));
        let Some(start) = p.hire_date else { continue };
        let (sent, resolved) =
            (start - Duration::days(21), at(start - Duration::days(18), 11 * 3600 + jitter));
        let unit = if p.role == Role::Supervisor { "year" } else { "hour" };
        offers.push(json!({
            "id": 88_000_000 + p.idx as u64, "application_id": application_id(p.idx),
            "candidate_id": candidate_id(p.idx),
            "job_id": job, "opening_id": job - 4_100_000 + 8_800, "version": 1, "status": "Accepted",
            "sent_on": sent.to_string(), "starts_on": start.to_string(), "resolved_at": iso(resolved),
            "created_at": iso(at(sent, 10 * 3600 + jitter)), "updated_at": iso(resolved),
            "custom_fields": {
                "placement_fee":
                    {"name": "Placement Fee", "type": "currency", "value": {"amount": p.fee, "unit": "USD"}},
                "pay_rate": {"name": "Pay Rate", "type": "currency", "value": {"amount": p.rate, "unit": "USD"}},
                "pay_period": {"name": "Pay Period", "type": "single_select", "value": unit},
            },
        }));
    }
    HashMap::from([
        ("jobs", jobs.collect()),
        ("candidates", candidates),
        ("applications", applications),
        ("offers", offers),
    ])
}

async fn serve(State(ats): State<Arc<Ats>>, req: Request) -> Response {
    let (parts, body) = read(&ats.log, req).await;
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let resp = match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/token") => token(&ats, &parts.headers, &body),
        (&Method::GET, path) if path.starts_with("/v3/") => {
            list(&ats, &path[4..], &parts.headers, &pairs)
        }
        _ => wire::json(404, json!({"message": "Not Found"})),
    };
    // Harvest v3 limits vary per integration; 75 is the one published figure.
    wire::with_headers(
        resp,
        &[("x-ratelimit-limit", "75".into()), ("x-ratelimit-remaining", "74".into())],
    )
}

fn token(ats: &Ats, headers: &HeaderMap, body: &[u8]) -> Response {
    if wire::basic_credentials(headers) != Some((ATS_CLIENT_ID.into(), ATS_CLIENT_SECRET.into())) {
        return wire::json(401, json!({"error": "invalid_client"}));
    }
    if wire::form_fields(headers, body).get("grant_type").map(String::as_str)
        != Some("client_credentials")
    {
        return wire::json(400, json!({"error": "unsupported_grant_type"}));
    }
    let access = wire::unique_token("gh");
    let expires = Instant::now() + StdDuration::from_secs(3600);
    ats.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(access.clone(), expires);
    let expires_at = iso(Utc::now() + Duration::hours(1));
    wire::json(
        200,
        json!({"access_token": access, "token_type": "bearer", "expires_at": expires_at, "expires_in": 3600}),
    )
}

fn invalid(field: &str, message: &str) -> Response {
    wire::json(
        422,
        json!({"message": "Validation error", "errors": [{"message": message, "field": field}]}),
    )
}

/// `gte|A|lte|B` → [(op, instant)]; None if malformed.
fn parse_filter(raw: &str) -> Option<Vec<(String, DateTime<Utc>)>> {
    let parts: Vec<&str> = raw.split('|').collect();
    if !parts.len().is_multiple_of(2) {
        return None;
    }
    let ops = ["gte", "gt", "lte", "lt"];
    parts
        .chunks(2)
        .map(|c| {
            ops.contains(&c[0]).then(|| Some((c[0].to_string(), wire::parse_time(c[1])?))).flatten()
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

fn list(ats: &Ats, resource: &str, headers: &HeaderMap, pairs: &[(String, String)]) -> Response {
    let tokens = ats.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let valid =
        wire::bearer(headers).and_then(|t| tokens.get(t)).is_some_and(|e| *e > Instant::now());
    drop(tokens);
    if !valid {
        return wire::json(401, json!({"message": "Unauthorized"}));
    }
    let Some(records) = ats.lists.get(resource) else {
        return wire::json(404, json!({"message": "Not Found"}));
    };
    // The cursor replays the first call's page size and filters, since it must travel alone.
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
                wire::param(pairs, "per_page").map_or(Some(100), |v| v.parse::<u64>().ok());
            let Some(per_page) = per_page.filter(|n| (1..=500).contains(n)) else {
                return invalid("per_page", "must be between 1 and 500");
            };
            let filters: serde_json::Map<String, Value> = ["updated_at", "created_at"]
                .iter()
                .filter_map(|f| Some((f.to_string(), json!(wire::param(pairs, f)?))))
                .collect();
            json!({"o": 0, "l": per_page, "f": filters})
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
    let keep = |r: &&Value| {
        filters.iter().all(|(field, f)| {
            r[field.as_str()].as_str().and_then(wire::parse_time).is_some_and(|t| passes(t, f))
        })
    };
    let matching: Vec<&Value> = records.iter().filter(keep).collect();
    let (offset, limit) =
        (state["o"].as_u64().unwrap_or(0) as usize, state["l"].as_u64().unwrap_or(100) as usize);
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).map(|v| (*v).clone()).collect();
    let resp = wire::json(200, Value::Array(page));
    if offset + limit >= matching.len() {
        return resp;
    }
    let mut next = state.clone();
    next["o"] = json!(offset + limit);
    let url =
        format!("{}/v3/{resource}?cursor={}", wire::origin(headers), wire::encode_cursor(&next));
    wire::with_headers(resp, &[("link", format!("<{url}>; rel=\"next\""))])
}
