//! The cast as Greenhouse Harvest v3 records, served by the faithful
//! Greenhouse mock: candidates (some recruiters type addresses capitalised),
//! applications with the client as a custom field, accepted offers with the
//! placement fee.

use chrono::Duration;
use serde_json::{json, Value};

use super::world::{anchor, at, Role, World};
use crate::vendors::greenhouse::GreenhouseRecords;
use crate::wire::{iso_millis as iso, mix};

pub(crate) fn candidate_id(idx: usize) -> u64 {
    57_000_000 + idx as u64
}

/// Greenhouse application id; the accounting sandbox quotes it on each placement invoice.
pub(crate) fn application_id(idx: usize) -> u64 {
    69_000_000 + idx as u64
}

/// Jobs, candidates, applications and offers: a hire is a `hired`
/// application with an accepted offer carrying the placement fee; the client
/// is an application custom field.
pub(crate) fn records(w: &World) -> GreenhouseRecords {
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
    GreenhouseRecords { jobs: jobs.collect(), candidates, applications, offers }
}
