//! The demo's four in-process vendor sandboxes — ATS (Greenhouse), accounting (QuickBooks), payroll
//! (Gusto) and contact center (Zendesk Talk) — each on its own loopback port, all rendering one
//! deterministic cast of people dated relative to 2026-11-02, with a few deliberate anomalies.

mod accounting;
mod ats;
mod contact_center;
mod payroll;
mod world;

use std::sync::{Arc, Mutex};

use axum::{
    body::{to_bytes, Bytes},
    extract::Request,
    http::request::Parts,
};
use chrono::{Duration, NaiveDate};

use crate::{server::MockServer, wire::SharedLog, RequestLog};
use world::{Role, World};

/// Greenhouse: HTTP Basic on `POST {ats}/token` with `grant_type=client_credentials`.
pub const ATS_CLIENT_ID: &str = "conveyor-demo-harvest";
pub const ATS_CLIENT_SECRET: &str = "harvest-demo-secret";
/// QuickBooks: `Authorization: Bearer` with this static token against this realm.
pub const QBO_REALM_ID: &str = "9341453050298305";
pub const QBO_ACCESS_TOKEN: &str = "qbo-demo-access-token";
/// Gusto: `Authorization: Bearer` with this static token; send `X-Gusto-API-Version: GUSTO_API_VERSION`.
pub const GUSTO_COMPANY_ID: &str = "7b1b7d2c-5b8e-4a52-9f37-2d8c6e0f1a44";
pub const GUSTO_ACCESS_TOKEN: &str = "gusto-demo-access-token";
pub const GUSTO_API_VERSION: &str = "2025-06-15";
/// Zendesk: HTTP Basic with user `{ZENDESK_EMAIL}/token` and password `ZENDESK_API_TOKEN`.
pub const ZENDESK_EMAIL: &str = "demo@conveyor.example";
pub const ZENDESK_API_TOKEN: &str = "zendesk-demo-api-token";

/// How many people the cast has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxSize {
    /// 30 people.
    Small,
    /// 60 people.
    #[default]
    Default,
    /// 200 people.
    Large,
}

impl SandboxSize {
    pub fn people(self) -> usize {
        match self {
            SandboxSize::Small => 30,
            SandboxSize::Default => 60,
            SandboxSize::Large => 200,
        }
    }
}

/// The answers the demo should find, so its tests can check them. Emails are canonical (lower-case).
#[derive(Clone, Debug)]
pub struct SandboxFacts {
    /// The sandbox's "today"; every record is dated before it.
    pub anchor_date: NaiveDate,
    pub people: usize,
    /// Hired applications. Payroll has as many employees: every hire but one, plus one who was
    /// never hired.
    pub hires: usize,
    /// Greenhouse application ids of hires that have no QuickBooks invoice.
    pub uninvoiced_application_ids: Vec<u64>,
    /// QuickBooks DocNumbers of invoices past due (before the anchor) with their full balance open:
    /// the two planted ones, and any that fell due in the five days before the anchor.
    pub unpaid_invoice_numbers: Vec<String>,
    /// The hire who is not on Gusto's payroll.
    pub hired_not_on_payroll_email: String,
    /// The Gusto employee whose Greenhouse application was rejected.
    pub paid_never_hired_email: String,
    /// First and last day of the latest complete pay period (2026-10-19 to 2026-11-01).
    pub latest_pay_period: (NaiveDate, NaiveDate),
    /// Agents whose Gusto hours differ from their Zendesk logged time in the latest pay period.
    pub hours_mismatch_emails: Vec<String>,
    /// The agent whose average CSAT is below 3.5 in weeks 1, 2 and 4 of the four weeks before the anchor.
    pub low_csat_agent_email: String,
    /// The ten back-office workers (Zendesk `user_fields.team == "Back Office"`, role agent).
    pub back_office_emails: Vec<String>,
    /// The one back-office worker whose average QA score misses the objective of 80.
    pub quality_miss_email: String,
}

/// Four running vendor APIs. Dropping it stops them all.
pub struct Sandbox {
    pub ats: MockServer,
    pub accounting: MockServer,
    pub payroll: MockServer,
    pub contact_center: MockServer,
    pub facts: SandboxFacts,
    log: SharedLog,
}

impl Sandbox {
    /// Harvest base: lists live at `{ats_base_url}/v3/{candidates|applications|jobs|offers}`.
    pub fn ats_base_url(&self) -> String {
        self.ats.base_url()
    }

    /// `{ats_base_url}/token` (the real API has it on a separate auth host).
    pub fn ats_token_url(&self) -> String {
        self.ats.url("/token")
    }

    /// QuickBooks host: query at `{accounting_base_url}/v3/company/{QBO_REALM_ID}/query`.
    pub fn accounting_base_url(&self) -> String {
        self.accounting.base_url()
    }

    /// Gusto host: `{payroll_base_url}/v1/companies/{GUSTO_COMPANY_ID}/{employees|payrolls}`.
    pub fn payroll_base_url(&self) -> String {
        self.payroll.base_url()
    }

    /// Zendesk host: endpoints under `{contact_center_base_url}/api/v2/`.
    pub fn contact_center_base_url(&self) -> String {
        self.contact_center.base_url()
    }

    /// Every request any of the four servers received, oldest first.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Builds the cast and starts the four servers on ephemeral loopback ports.
pub async fn start_sandbox(size: SandboxSize) -> Sandbox {
    let world = World::new(size.people());
    let log: SharedLog = Arc::new(Mutex::new(Vec::new()));
    let email = |idx: usize| world.people[idx].email.clone();
    let period = world::latest_period_start();
    let facts = SandboxFacts {
        anchor_date: world::anchor(),
        people: world.people.len(),
        hires: world.hired().count(),
        uninvoiced_application_ids: world
            .uninvoiced
            .iter()
            .map(|&i| ats::application_id(i))
            .collect(),
        unpaid_invoice_numbers: accounting::unpaid_doc_numbers(&world),
        hired_not_on_payroll_email: email(world.unrostered),
        paid_never_hired_email: email(world.ghost),
        latest_pay_period: (period, period + Duration::days(13)),
        hours_mismatch_emails: world.mismatch.iter().map(|&(i, _)| email(i)).collect(),
        low_csat_agent_email: email(world.low_csat),
        back_office_emails: world.with_role(Role::BackOffice).map(|p| p.email.clone()).collect(),
        quality_miss_email: email(world.quality_miss),
    };
    Sandbox {
        ats: MockServer::start(ats::router(&world, log.clone())).await,
        accounting: MockServer::start(accounting::router(&world, log.clone())).await,
        payroll: MockServer::start(payroll::router(&world, log.clone())).await,
        contact_center: MockServer::start(contact_center::router(&world, log.clone())).await,
        facts,
        log,
    }
}

/// Logs a request, then splits it into parts and its (size-capped) body.
pub(crate) async fn read(log: &SharedLog, req: Request) -> (Parts, Bytes) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(RequestLog::of(&req));
    let (parts, body) = req.into_parts();
    (parts, to_bytes(body, 1 << 20).await.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use serde_json::Value;

    use super::*;

    fn norm(email: &str) -> String {
        email.trim().to_lowercase()
    }

    fn n(v: &Value) -> u64 {
        v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
    }

    async fn ats_token(sb: &Sandbox, c: &reqwest::Client) -> String {
        let form = [("grant_type", "client_credentials")];
        let req = c
            .post(sb.ats_token_url())
            .basic_auth(ATS_CLIENT_ID, Some(ATS_CLIENT_SECRET))
            .form(&form);
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(body["expires_at"].is_string() && body["expires_in"] == 3600);
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn greenhouse(
        sb: &Sandbox,
        c: &reqwest::Client,
        token: &str,
        resource: &str,
    ) -> Vec<Value> {
        let (mut url, mut out) =
            (format!("{}/v3/{resource}?per_page=40", sb.ats_base_url()), vec![]);
        loop {
            let resp = c.get(&url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-ratelimit-limit"], "75");
            let link = resp.headers().get("link").map(|l| l.to_str().unwrap().to_string());
            out.extend(resp.json::<Vec<Value>>().await.unwrap());
            match link {
                Some(l) => url = l[1..l.find('>').unwrap()].to_string(),
                None => return out,
            }
        }
    }

    async fn qbo(sb: &Sandbox, c: &reqwest::Client, sql: &str) -> (u16, Value) {
        let url = format!("{}/v3/company/{QBO_REALM_ID}/query", sb.accounting_base_url());
        let req = c
            .get(url)
            .query(&[("query", sql), ("minorversion", "75")])
            .bearer_auth(QBO_ACCESS_TOKEN);
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn gusto(
        sb: &Sandbox,
        c: &reqwest::Client,
        path: &str,
    ) -> (reqwest::header::HeaderMap, Value) {
        let url = format!("{}/v1/companies/{GUSTO_COMPANY_ID}/{path}", sb.payroll_base_url());
        let req = c
            .get(url)
            .bearer_auth(GUSTO_ACCESS_TOKEN)
            .header("X-Gusto-API-Version", GUSTO_API_VERSION);
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        (resp.headers().clone(), resp.json().await.unwrap())
    }

    async fn zendesk(c: &reqwest::Client, url: &str) -> Value {
        let req = c.get(url).basic_auth(format!("{ZENDESK_EMAIL}/token"), Some(ZENDESK_API_TOKEN));
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        resp.json().await.unwrap()
    }

    /// Follows a Zendesk incremental export until `count <= 1`, de-duplicating boundary rows by id.
    async fn export(sb: &Sandbox, c: &reqwest::Client, key: &str) -> Vec<Value> {
        let base = sb.contact_center_base_url();
        let (mut url, mut rows) = (
            format!("{base}/api/v2/channels/voice/stats/incremental/{key}?start_time=0"),
            BTreeMap::new(),
        );
        loop {
            let body = zendesk(c, &url).await;
            rows.extend(body[key].as_array().unwrap().iter().map(|r| (n(&r["id"]), r.clone())));
            if n(&body["count"]) <= 1 {
                return rows.into_values().collect();
            }
            url = body["next_page"].as_str().expect("next_page is never null").to_string();
        }
    }

    #[tokio::test]
    async fn vendors_share_one_coherent_cast_with_the_planted_anomalies() {
        for size in [SandboxSize::Small, SandboxSize::Default, SandboxSize::Large] {
            assert_coherent(size).await;
        }
    }

    async fn assert_coherent(size: SandboxSize) {
        let sb = start_sandbox(size).await;
        let (c, facts) = (reqwest::Client::new(), sb.facts.clone());
        let token = ats_token(&sb, &c).await;
        let candidates = greenhouse(&sb, &c, &token, "candidates").await;
        let applications = greenhouse(&sb, &c, &token, "applications").await;
        assert_eq!(
            (candidates.len(), greenhouse(&sb, &c, &token, "offers").await.len()),
            (facts.people, facts.hires)
        );
        let candidate_email: HashMap<u64, String> = candidates
            .iter()
            .map(|c| (n(&c["id"]), norm(c["email_addresses"][0]["value"].as_str().unwrap())))
            .collect();
        let hired: Vec<&Value> = applications.iter().filter(|a| a["status"] == "hired").collect();
        assert_eq!(hired.len(), facts.hires);

        // Every hire but one is on payroll under the same email once case and whitespace are
        // normalised, and one employee was never hired.
        let (headers, employees) = gusto(&sb, &c, "employees").await;
        assert!(headers.get("x-total-count").is_none(), "no paging headers without `page`");
        let employees = employees.as_array().unwrap();
        let raw: Vec<&str> = employees.iter().map(|e| e["email"].as_str().unwrap()).collect();
        assert!(raw.iter().any(|e| *e != norm(e)), "normalisation must matter");
        let payroll_emails: HashSet<String> = raw.iter().map(|e| norm(e)).collect();
        let hired_emails: HashSet<String> =
            hired.iter().map(|a| candidate_email[&n(&a["candidate_id"])].clone()).collect();
        let not_paid: Vec<&String> = hired_emails.difference(&payroll_emails).collect();
        assert_eq!(not_paid, vec![&facts.hired_not_on_payroll_email]);
        let never_hired: Vec<&String> = payroll_emails.difference(&hired_emails).collect();
        assert_eq!(never_hired, vec![&facts.paid_never_hired_email]);
        let gusto_email: HashMap<&str, String> = employees
            .iter()
            .map(|e| (e["uuid"].as_str().unwrap(), norm(e["email"].as_str().unwrap())))
            .collect();

        // Exactly the planted placements have no invoice (invoices quote the application id).
        let (mut invoiced, mut unpaid) = (HashSet::new(), vec![]);
        for start in (1..).step_by(25) {
            let (status, body) =
                qbo(&sb, &c, &format!("select * from Invoice STARTPOSITION {start} MAXRESULTS 25"))
                    .await;
            assert_eq!(status, 200);
            let page = body["QueryResponse"]["Invoice"].as_array().cloned().unwrap_or_default();
            invoiced.extend(page.iter().map(|i| {
                i["CustomField"][0]["StringValue"].as_str().unwrap().parse::<u64>().unwrap()
            }));
            let anchor = facts.anchor_date.to_string();
            unpaid.extend(
                page.iter()
                    .filter(|i| {
                        i["Balance"].as_f64() == i["TotalAmt"].as_f64()
                            && i["DueDate"].as_str().unwrap() < anchor.as_str()
                    })
                    .map(|i| i["DocNumber"].as_str().unwrap().to_string()),
            );
            if page.len() < 25 {
                break;
            }
        }
        let mut uninvoiced: Vec<u64> =
            hired.iter().map(|a| n(&a["id"])).filter(|id| !invoiced.contains(id)).collect();
        uninvoiced.sort();
        assert_eq!(uninvoiced, facts.uninvoiced_application_ids);
        unpaid.sort();
        assert_eq!(unpaid, facts.unpaid_invoice_numbers);
        assert!(unpaid.len() >= 2, "the two planted unpaid invoices: {unpaid:?}");

        // Zendesk users: agents carry the same canonical emails; ten back-office workers.
        let base = sb.contact_center_base_url();
        let (mut url, mut users) = (format!("{base}/api/v2/users?role=agent&per_page=30"), vec![]);
        loop {
            let body = zendesk(&c, &url).await;
            users.extend(body["users"].as_array().unwrap().iter().cloned());
            match body["next_page"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        assert!(users
            .iter()
            .all(|u| u["role"] == "agent" && hired_emails.contains(u["email"].as_str().unwrap())));
        let email_of: HashMap<u64, String> =
            users.iter().map(|u| (n(&u["id"]), u["email"].as_str().unwrap().to_string())).collect();
        let back_office: HashSet<String> = users
            .iter()
            .filter(|u| u["user_fields"]["team"] == "Back Office")
            .map(|u| u["email"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(back_office, facts.back_office_emails.iter().cloned().collect());
        assert_eq!(back_office.len(), 10);

        // Exactly one back-office worker averages under the QA objective of 80.
        let evaluations = zendesk(&c, &format!("{base}/api/v2/quality/evaluations")).await;
        let mut qa: HashMap<String, Vec<u64>> = HashMap::new();
        for e in evaluations["evaluations"].as_array().unwrap() {
            qa.entry(email_of[&n(&e["agent_id"])].clone()).or_default().push(n(&e["score"]));
        }
        let missing: Vec<&String> = back_office
            .iter()
            .filter(|e| qa[*e].iter().sum::<u64>() < 80 * qa[*e].len() as u64)
            .collect();
        assert_eq!(missing, vec![&facts.quality_miss_email]);

        // Exactly one agent has a weekly CSAT average under 3.5 in at least three of the four weeks.
        let calls = export(&sb, &c, "calls").await;
        let mut weekly: HashMap<(String, i64), (u64, u64)> = HashMap::new();
        let first_week = facts.anchor_date - Duration::days(28);
        for call in calls.iter().filter(|c| c["csat"].is_u64()) {
            let day: NaiveDate = call["created_at"].as_str().unwrap()[..10].parse().unwrap();
            let slot = weekly
                .entry((email_of[&n(&call["agent_id"])].clone(), (day - first_week).num_days() / 7))
                .or_default();
            *slot = (slot.0 + n(&call["csat"]), slot.1 + 1);
        }
        let mut low_weeks: HashMap<&String, usize> = HashMap::new();
        for ((email, _), (sum, count)) in &weekly {
            *low_weeks.entry(email).or_default() += ((*sum as f64 / *count as f64) < 3.5) as usize;
        }
        let low: Vec<&&String> =
            low_weeks.iter().filter(|(_, w)| **w >= 3).map(|(e, _)| e).collect();
        assert_eq!(low, vec![&&facts.low_csat_agent_email]);
        assert!(calls.iter().any(|c| c["agent_id"].is_null()), "abandoned calls have no agent");

        // Payroll hours match Zendesk logged time in the latest period except for the planted two.
        let (from, to) = facts.latest_pay_period;
        let mut logged: HashMap<String, f64> = HashMap::new();
        for row in export(&sb, &c, "agent_activity").await {
            let day: NaiveDate = row["date"].as_str().unwrap().parse().unwrap();
            if (from..=to).contains(&day) {
                *logged.entry(email_of[&n(&row["agent_id"])].clone()).or_default() +=
                    n(&row["online_time"]) as f64 / 3600.0;
            }
        }
        let query =
            format!("payrolls?start_date={from}&end_date={to}&include=employee_compensations");
        let (_, payrolls) = gusto(&sb, &c, &query).await;
        assert_eq!(payrolls.as_array().unwrap().len(), 1);
        let mut mismatched = vec![];
        for comp in payrolls[0]["employee_compensations"].as_array().unwrap() {
            let email = &gusto_email[comp["employee_uuid"].as_str().unwrap()];
            let Some(hours) = comp["hourly_compensations"][0]["hours"].as_str() else {
                continue;
            };
            let paid: f64 = hours.parse().unwrap();
            if logged.contains_key(email) && (paid - logged[email]).abs() > 0.01 {
                mismatched.push(email.clone());
            }
        }
        mismatched.sort();
        let mut expected = facts.hours_mismatch_emails.clone();
        expected.sort();
        assert_eq!(mismatched, expected);
        assert!(sb
            .requests()
            .iter()
            .any(|r| r.header("x-gusto-api-version") == Some(GUSTO_API_VERSION)));
    }

    #[tokio::test]
    async fn vendor_quirks_are_faithful() {
        let sb = start_sandbox(SandboxSize::Small).await;
        let c = reqwest::Client::new();
        // Greenhouse: the cursor travels alone; per_page is bounded; filters use `gte|`.
        let token = ats_token(&sb, &c).await;
        let get = |url: String| c.get(url).bearer_auth(&token).send();
        let first = get(format!("{}/v3/candidates?per_page=5", sb.ats_base_url())).await.unwrap();
        let link = first.headers()["link"].to_str().unwrap().to_string();
        let next = &link[1..link.find('>').unwrap()];
        assert_eq!(get(format!("{next}&per_page=5")).await.unwrap().status(), 422);
        assert_eq!(
            get(format!("{}/v3/jobs?per_page=501", sb.ats_base_url())).await.unwrap().status(),
            422
        );
        let recent = get(format!(
            "{}/v3/applications?updated_at=gte%7C2026-10-01T00:00:00.000Z",
            sb.ats_base_url()
        ))
        .await
        .unwrap();
        let recent: Vec<Value> = recent.json().await.unwrap();
        assert!(recent.iter().all(|a| a["updated_at"].as_str().unwrap() >= "2026-10-01"));
        assert_eq!(
            c.get(format!("{}/v3/jobs", sb.ats_base_url())).send().await.unwrap().status(),
            401
        );

        // QuickBooks: OR is rejected, empty results are `{}`, inactive customers need `Active IN`.
        let (status, body) =
            qbo(&sb, &c, "select * from Invoice where Id = '130' OR Id = '131'").await;
        assert_eq!((status, body["Fault"]["type"].as_str()), (400, Some("ValidationFault")));
        let (_, body) = qbo(
            &sb,
            &c,
            "SELECT * FROM Payment WHERE Metadata.LastUpdatedTime > '2030-01-01T00:00:00-08:00'",
        )
        .await;
        assert_eq!(body["QueryResponse"], serde_json::json!({}));
        let (_, active) = qbo(&sb, &c, "select count(*) from Customer").await;
        let (_, all) =
            qbo(&sb, &c, "select * from Customer where Active IN (true, false) order by Id desc")
                .await;
        assert_eq!(
            (
                n(&active["QueryResponse"]["totalCount"]),
                all["QueryResponse"]["Customer"][0]["Active"].as_bool()
            ),
            (6, Some(false))
        );
        let since =
            "select * from Invoice where MetaData.LastUpdatedTime >= '2025-10-01T00:00:00-07:00' \
                     ORDER BY Metadata.LastUpdatedTime ASC";
        let (_, body) = qbo(&sb, &c, since).await;
        let times: Vec<_> = body["QueryResponse"]["Invoice"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["MetaData"]["LastUpdatedTime"].as_str().unwrap().to_string())
            .collect();
        assert!(
            times.iter().any(|t| t.ends_with("-08:00"))
                && times.iter().any(|t| t.ends_with("-07:00"))
        );
        let instants: Vec<_> =
            times.iter().map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap()).collect();
        assert!(instants.windows(2).all(|w| w[0] <= w[1]), "ordered by instant, not by text");
        let url = format!(
            "{}/v3/company/{QBO_REALM_ID}/query?query=select%20*%20from%20Invoice",
            sb.accounting_base_url()
        );
        let unauth: Value = c.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(unauth["Fault"]["Error"][0]["code"], "3200");

        // Gusto: paging headers appear only when `page` is sent; amounts are strings.
        let (headers, page) = gusto(&sb, &c, "employees?page=2&per=10").await;
        assert_eq!(
            (headers["x-page"].to_str().unwrap(), headers["x-total-count"].to_str().unwrap()),
            ("2", "24")
        );
        assert_eq!(page.as_array().unwrap().len(), 10);
        assert!(page[0]["jobs"][0]["rate"].is_string());
        let (_, default_window) = gusto(&sb, &c, "payrolls").await;
        assert_eq!(
            default_window.as_array().unwrap().len(),
            13,
            "six months of bi-weekly payrolls by default"
        );

        // Zendesk: next_page is never null, even past the end; bad credentials get 401.
        let url = format!(
            "{}/api/v2/channels/voice/stats/incremental/calls.json?start_time=4102444800",
            sb.contact_center_base_url()
        );
        let body = zendesk(&c, &url).await;
        assert_eq!((n(&body["count"]), body["next_page"].is_string()), (0, true));
        assert_eq!(c.get(url).basic_auth("x", Some("y")).send().await.unwrap().status(), 401);
    }
}
