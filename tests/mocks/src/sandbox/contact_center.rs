//! The cast as Genesys Cloud records, served by the faithful Genesys mock:
//! every hire is a user (department = team, manager = supervisor), phone
//! agents take five calls per weekday over the last four weeks with the
//! world's CSAT as post-call surveys, agents and back-office workers get a
//! weekly quality evaluation with the world's QA score, and phone agents'
//! logged hours are their daily organization presence; two callers a day
//! hang up in the queue (conversations without an agent).

use std::collections::HashMap;

use chrono::Duration;
use serde_json::Value;

use super::world::{anchor, at, is_weekday, week_start, Person, Role, World};
use crate::vendors::genesys::{
    abandoned_conversation, conversation, evaluation, id, survey, user, GenesysRecords, PresenceDay,
};

/// Calls per agent per working day.
const CALLS_PER_DAY: u64 = 5;
/// Callers per working day who hang up in the queue before an agent answers.
pub(crate) const ABANDONED_PER_DAY: usize = 2;
/// Days of presence before the anchor: the latest pay periods and then some.
const PRESENCE_DAYS: i64 = 56;

/// The Genesys user id of person `idx`.
pub(crate) fn user_id(idx: usize) -> String {
    id("user", idx)
}

pub(crate) fn records(w: &World) -> GenesysRecords {
    let users: HashMap<usize, Value> = w.hired().map(|p| (p.idx, user_of(p))).collect();
    let mut ordered: Vec<&Value> = w.hired().map(|p| &users[&p.idx]).collect();
    ordered.sort_by_key(|u| u["id"].as_str().map(str::to_string));
    let (conversations, first_call) = calls(w, &users);
    GenesysRecords {
        users: ordered.into_iter().cloned().collect(),
        conversations,
        evaluations: evaluations(w, &first_call),
        presence: presence(w),
    }
}

fn user_of(p: &Person) -> Value {
    let title = match p.role {
        Role::Supervisor => "Team Supervisor",
        Role::BackOffice => "Back Office Specialist",
        _ => "Contact Center Agent",
    };
    let manager = p.supervisor.map(user_id);
    let name = format!("{} {}", p.first, p.last);
    user(&user_id(p.idx), &name, &p.email, p.team, title, manager.as_deref())
}

/// Five calls per phone agent per working day of the last four weeks; the
/// customer answers the CSAT survey when the world says so. Also returns
/// each agent's first call of each day, for the evaluations to point at.
fn calls(
    w: &World,
    users: &HashMap<usize, Value>,
) -> (Vec<Value>, HashMap<(usize, chrono::NaiveDate), String>) {
    let (mut out, mut first_call) = (Vec::new(), HashMap::new());
    let days = (0..28).map(|d| week_start(0) + Duration::days(d)).filter(|d| is_weekday(*d));
    for (day_no, day) in days.enumerate() {
        let week = day_no / 5;
        for a in 0..ABANDONED_PER_DAY {
            let start = at(day, 10 * 3600 + a as i64 * 7_200);
            let n = day_no * ABANDONED_PER_DAY + a;
            out.push(abandoned_conversation(n, start, "queue-phones", 30_000 + n as i64 * 1_000));
        }
        for p in w.with_role(Role::Agent).filter(|p| p.hire_date.is_some_and(|h| h <= day)) {
            let agent = &users[&p.idx];
            for k in 0..CALLS_PER_DAY {
                let i = out.len();
                let start = at(day, 8 * 3600 + k as i64 * 5_400 + (p.idx as i64 * 61) % 1_800);
                let mut c = conversation(i, agent, start, i % 9 == 0);
                let conversation_id = c["conversationId"].as_str().unwrap_or_default().to_string();
                first_call.entry((p.idx, day)).or_insert(conversation_id);
                if let Some(csat) = w.csat(p, week, day_no as u64 * 10 + k) {
                    let end = c["conversationEnd"].as_str().and_then(crate::wire::parse_time);
                    let completed = end.unwrap_or(start) + Duration::minutes(4);
                    // A five-point question: the form's 0–100 total is csat × 20.
                    let s = survey(
                        &id("survey", i),
                        agent,
                        completed,
                        f64::from(csat) * 20.0,
                        2 * i64::from(csat),
                    );
                    c["surveys"] = Value::Array(vec![s]);
                }
                out.push(c);
            }
        }
    }
    (out, first_call)
}

/// One evaluation per agent and back-office worker per week, on Thursday.
fn evaluations(w: &World, first_call: &HashMap<(usize, chrono::NaiveDate), String>) -> Vec<Value> {
    let mut rows = vec![];
    for week in 0..4 {
        let day = week_start(week) + Duration::days(3);
        for p in w.hired().filter(|p| matches!(p.role, Role::Agent | Role::BackOffice)) {
            let when = at(day, 15 * 3600 + 13 * p.idx as i64);
            // Back-office work is not a call: the evaluation names a case id.
            let conversation =
                first_call.get(&(p.idx, day)).cloned().unwrap_or_else(|| id("case", rows.len()));
            let score = f64::from(w.qa_score(p, week));
            rows.push(evaluation(
                &id("eval", rows.len()),
                &user_id(p.idx),
                &conversation,
                when,
                score,
            ));
        }
    }
    rows
}

/// Each phone agent's logged-in time per day, split over presences that add
/// up to the world's hours; the rest of the day is `OFFLINE`.
fn presence(w: &World) -> Vec<PresenceDay> {
    let mut rows = vec![];
    for day in (1..=PRESENCE_DAYS).map(|d| anchor() - Duration::days(d)) {
        for p in w.with_role(Role::Agent) {
            let logged = (w.hours_on(p, day) * 3_600_000.0) as i64;
            if logged == 0 {
                continue;
            }
            let (on_queue, available, busy) = (logged * 3 / 4, logged / 10, logged / 20);
            for (presence, ms) in [
                ("ON_QUEUE", on_queue),
                ("AVAILABLE", available),
                ("BUSY", busy),
                ("BREAK", logged - on_queue - available - busy),
                ("OFFLINE", 24 * 3_600_000 - logged),
            ] {
                let user_id = user_id(p.idx);
                rows.push(PresenceDay { user_id, day, presence: presence.into(), ms });
            }
        }
    }
    rows
}
