//! The cast as each vendor renders it: one coherent set of people across
//! the four systems, with exactly the anomalies `SandboxFacts` promises,
//! and the sandbox's credentials accepted by the mocks it starts.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDate};
use serde_json::Value;

use super::*;

fn norm(email: &str) -> String {
    email.trim().to_lowercase()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not text: {v}"))
}

#[test]
fn vendors_share_one_coherent_cast_with_the_planted_anomalies() {
    for size in [SandboxSize::Small, SandboxSize::Default, SandboxSize::Large] {
        assert_coherent(size);
    }
}

fn assert_coherent(size: SandboxSize) {
    let world = World::new(size.people());
    let facts = facts(&world);
    let (gh, qbo, gusto, gc) = (
        ats::records(&world),
        accounting::records(&world),
        payroll::records(&world),
        contact_center::records(&world),
    );

    // Greenhouse: every person applied; hires have an accepted offer.
    assert_eq!(gh.candidates.len(), facts.people);
    let hired: Vec<&Value> = gh.applications.iter().filter(|a| a["status"] == "hired").collect();
    assert_eq!((hired.len(), gh.offers.len()), (facts.hires, facts.hires));
    let candidate_email: HashMap<u64, String> = gh
        .candidates
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), norm(text(&c["email_addresses"][0]["value"]))))
        .collect();
    let hired_emails: HashSet<String> = hired
        .iter()
        .map(|a| candidate_email[&a["candidate_id"].as_u64().unwrap()].clone())
        .collect();

    // Gusto: every hire but one, plus one never hired, once addresses are normalised.
    let raw: Vec<&str> = gusto.employees.iter().map(|e| text(&e["email"])).collect();
    assert!(raw.iter().any(|e| *e != norm(e)), "normalisation must matter");
    let payroll_emails: HashSet<String> = raw.iter().map(|e| norm(e)).collect();
    let not_paid: Vec<&String> = hired_emails.difference(&payroll_emails).collect();
    assert_eq!(not_paid, vec![&facts.hired_not_on_payroll_email]);
    let never_hired: Vec<&String> = payroll_emails.difference(&hired_emails).collect();
    assert_eq!(never_hired, vec![&facts.paid_never_hired_email]);

    // QuickBooks: exactly the planted placements have no invoice; the unpaid
    // past-due invoices are the facts' (at least the two planted).
    // The cohort's invoices carry no Placement ID (they pair by client,
    // date and amount); every other invoice names its application.
    let without_id =
        qbo.invoices.iter().filter(|i| i["CustomField"] == serde_json::json!([])).count();
    assert_eq!(without_id, facts.cohort_application_ids.len());
    let invoiced: HashSet<u64> = qbo
        .invoices
        .iter()
        .filter(|i| i["CustomField"] != serde_json::json!([]))
        .map(|i| text(&i["CustomField"][0]["StringValue"]).parse().unwrap())
        .chain(facts.cohort_application_ids.iter().copied())
        .collect();
    let mut uninvoiced: Vec<u64> = hired
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .filter(|id| !invoiced.contains(id))
        .collect();
    uninvoiced.sort();
    assert_eq!(uninvoiced, facts.uninvoiced_application_ids);
    let anchor = facts.anchor_date.to_string();
    let mut unpaid: Vec<String> = qbo
        .invoices
        .iter()
        .filter(|i| i["Balance"] == i["TotalAmt"] && text(&i["DueDate"]) < anchor.as_str())
        .map(|i| text(&i["DocNumber"]).to_string())
        .collect();
    unpaid.sort();
    assert_eq!(unpaid, facts.unpaid_invoice_numbers);
    assert!(unpaid.len() >= 2, "{unpaid:?}");

    // Genesys: hires are users; the back-office team (department, with a manager).
    let email_of: HashMap<&str, String> =
        gc.users.iter().map(|u| (text(&u["id"]), text(&u["email"]).to_string())).collect();
    assert!(email_of.values().all(|e| hired_emails.contains(e)));
    let back_office: HashSet<String> = gc
        .users
        .iter()
        .filter(|u| u["department"] == "Back Office" && u["manager"]["id"].is_string())
        .map(|u| text(&u["email"]).to_string())
        .collect();
    assert_eq!(back_office, facts.back_office_emails.iter().cloned().collect());
    assert_eq!(back_office.len(), 10);

    // Exactly one back-office worker averages under the QA objective of 80.
    let mut qa: HashMap<&str, Vec<f64>> = HashMap::new();
    for e in &gc.evaluations {
        qa.entry(text(&e["agent"]["id"]))
            .or_default()
            .push(e["answers"]["totalScore"].as_f64().unwrap());
    }
    let missing: Vec<&String> = qa
        .iter()
        .filter(|(id, scores)| {
            back_office.contains(&email_of[*id])
                && scores.iter().sum::<f64>() < 80.0 * scores.len() as f64
        })
        .map(|(id, _)| &email_of[id])
        .collect();
    assert_eq!(missing, vec![&facts.quality_miss_email]);

    // Exactly one agent's weekly CSAT (survey score / 20) is under 3.5 in three of the four weeks.
    let first_week = facts.anchor_date - Duration::days(28);
    let mut weekly: HashMap<(&str, i64), (f64, f64)> = HashMap::new();
    for s in gc.conversations.iter().flat_map(|c| c["surveys"].as_array().into_iter().flatten()) {
        let day: NaiveDate = text(&s["surveyCompletedDate"])[..10].parse().unwrap();
        let slot =
            weekly.entry((text(&s["userId"]), (day - first_week).num_days() / 7)).or_default();
        *slot = (slot.0 + s["oSurveyTotalScore"].as_f64().unwrap() / 20.0, slot.1 + 1.0);
    }
    let mut low_weeks: HashMap<&str, usize> = HashMap::new();
    for ((user, _), (sum, n)) in &weekly {
        *low_weeks.entry(user).or_default() += usize::from(sum / n < 3.5);
    }
    let low: Vec<&String> =
        low_weeks.iter().filter(|(_, w)| **w >= 3).map(|(u, _)| &email_of[*u]).collect();
    assert_eq!(low, vec![&facts.low_csat_agent_email]);

    // Payroll hours match logged-in presence in the latest period except for the planted two.
    let (from, to) = facts.latest_pay_period;
    let mut logged: HashMap<String, f64> = HashMap::new();
    for p in gc.presence.iter().filter(|p| p.presence != "OFFLINE" && (from..=to).contains(&p.day))
    {
        *logged.entry(email_of[p.user_id.as_str()].clone()).or_default() +=
            p.ms as f64 / 3_600_000.0;
    }
    let gusto_email: HashMap<&str, String> =
        gusto.employees.iter().map(|e| (text(&e["uuid"]), norm(text(&e["email"])))).collect();
    let latest = gusto
        .payrolls
        .iter()
        .find(|p| p["pay_period"]["start_date"] == from.to_string())
        .expect("the latest pay period");
    let mut mismatched = vec![];
    for comp in latest["employee_compensations"].as_array().unwrap() {
        let email = &gusto_email[text(&comp["employee_uuid"])];
        let Some(hours) = comp["hourly_compensations"][0]["hours"].as_str() else { continue };
        let paid: f64 = hours.parse().unwrap();
        if logged.contains_key(email) && (paid - logged[email]).abs() > 0.01 {
            mismatched.push(email.clone());
        }
    }
    mismatched.sort();
    let mut expected = facts.hours_mismatch_emails.clone();
    expected.sort();
    assert_eq!(mismatched, expected);
}

#[tokio::test]
async fn the_sandbox_credentials_open_every_mock() {
    let sb = start_sandbox(SandboxSize::Small).await;
    let c = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let gh = c
        .post(sb.ats_token_url())
        .basic_auth(ATS_CLIENT_ID, Some(ATS_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("sub", ATS_USER_ID)]);
    let qbo = c
        .post(sb.accounting_token_url())
        .basic_auth(QBO_CLIENT_ID, Some(QBO_CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", QBO_REFRESH_TOKEN)]);
    let gusto = c.post(sb.payroll_token_url()).json(&serde_json::json!({
        "client_id": GUSTO_CLIENT_ID, "client_secret": GUSTO_CLIENT_SECRET,
        "grant_type": "refresh_token", "refresh_token": GUSTO_REFRESH_TOKEN,
    }));
    let genesys = c
        .post(sb.contact_center_token_url())
        .basic_auth(GENESYS_CLIENT_ID, Some(GENESYS_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")]);
    for req in [gh, qbo, gusto, genesys] {
        assert_eq!(status(req.send().await.unwrap()), 200);
    }
    assert_eq!(sb.requests().len(), 4);
    assert_eq!(sb.contact_center_mock.users().len(), sb.facts.hires);
}
