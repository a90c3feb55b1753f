//! Gusto-shaped payroll: bearer auth, employees and two-week payrolls whose money and hours are
//! decimal strings, `page`/`per` paging with `X-Total-*` headers only when `page` is sent.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    response::Response,
    Router,
};
use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};

use super::world::{anchor, latest_period_start, uuid, Role, World};
use super::{read, GUSTO_ACCESS_TOKEN, GUSTO_COMPANY_ID};
use crate::wire::{self, SharedLog};

const PAY_SCHEDULE: &str = "40ff5990-2d1e-4c4e-9f6a-0c1d2e3f4a5b";
/// A year of bi-weekly payrolls ending with the latest complete period.
const PERIODS: i64 = 26;

struct Gusto {
    employees: Vec<Value>,
    /// (pay period start, payroll without compensations, employee_compensations, totals)
    payrolls: Vec<(NaiveDate, Value, Value, Value)>,
    log: SharedLog,
}

pub(crate) fn employee_uuid(idx: usize) -> String {
    uuid(0x6057, idx as u64)
}

pub(crate) fn router(world: &World, log: SharedLog) -> Router {
    let gusto = Gusto { employees: employees(world), payrolls: payrolls(world), log };
    Router::new().fallback(serve).with_state(Arc::new(gusto))
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn employees(w: &World) -> Vec<Value> {
    w.on_payroll()
        .map(|p| {
            // Payroll was keyed in by hand: casing and stray whitespace differ from the ATS.
            let email = match p.idx % 4 {
                0 => format!("{}.{}@mail.example", p.first, p.last),
                1 => format!("{} ", p.email),
                2 => p.email.to_uppercase(),
                _ => p.email.clone(),
            };
            let hire = w.payroll_start(p).to_string();
            let (unit, flsa, rate) = match p.role {
                Role::Supervisor => ("Year", "Exempt", money(p.rate)),
                _ => ("Hour", "Nonexempt", money(p.rate)),
            };
            let title = match p.role {
                Role::Supervisor => "Team Supervisor",
                Role::BackOffice => "Back Office Specialist",
                _ => "Contact Center Agent",
            };
            let department = if p.role == Role::Agent { "Contact Center" } else { "Operations" };
            let job = uuid(0x70b, p.idx as u64);
            json!({
                "uuid": employee_uuid(p.idx), "first_name": p.first, "last_name": p.last, "email": email,
                "department": department, "manager_uuid": p.supervisor.map(employee_uuid),
                "terminated": false, "onboarded": true, "current_employment_status": "full_time",
                "version": format!("{:x}", wire::mix(p.idx as u64, 9)),
                "jobs": [{
                    "uuid": job, "title": title, "hire_date": hire, "primary": true, "rate": rate,
                    "payment_unit": unit,
                    "compensations": [{
                        "uuid": uuid(0xc0, p.idx as u64), "job_uuid": job, "rate": rate,
                        "payment_unit": unit, "flsa_status": flsa, "effective_date": hire,
                    }],
                }],
            })
        })
        .collect()
}

fn payrolls(w: &World) -> Vec<(NaiveDate, Value, Value, Value)> {
    (0..PERIODS)
        .rev()
        .map(|back| {
            let start = latest_period_start() - Duration::days(14 * back);
            let end = start + Duration::days(13);
            let on_payroll = w.on_payroll().filter(|p| w.payroll_start(p) <= end);
            let comps: Vec<(f64, Value)> = on_payroll
                .map(|p| {
                    let job = uuid(0x70b, p.idx as u64);
                    let (hourly, fixed, gross) = if p.role == Role::Supervisor {
                        let gross = (p.rate / 26.0 * 100.0).round() / 100.0;
                        let salary = json!({"name": "Salary", "amount": money(gross), "job_uuid": job});
                        (json!([]), json!([salary]), gross)
                    } else {
                        let hours = w.paid_hours(p, start);
                        let gross = hours * p.rate;
                        let line = json!({
                            "name": "Regular Hours", "hours": format!("{hours:.3}"), "amount": money(gross),
                            "job_uuid": job, "compensation_multiplier": 1.0, "flsa_status": "Nonexempt",
                        });
                        (json!([line]), json!([]), gross)
                    };
                    let net = money(gross * 0.78);
                    let comp = json!({
                        "employee_uuid": employee_uuid(p.idx), "gross_pay": money(gross), "net_pay": net,
                        "check_amount": net, "payment_method": "Direct Deposit",
                        "fixed_compensations": fixed, "hourly_compensations": hourly,
                        "paid_time_off": [], "deductions": [],
                    });
                    (gross, comp)
                })
                .collect();
            let gross: f64 = comps.iter().map(|(g, _)| g).sum();
            let (net, taxes) = (money(gross * 0.78), money(gross * 0.0765));
            let totals = json!({"gross_pay": money(gross), "net_pay": net, "employer_taxes": taxes});
            let payroll = json!({
                "payroll_uuid": uuid(0x9a7, back as u64), "company_uuid": GUSTO_COMPANY_ID, "processed": true,
                "processed_date": (end + Duration::days(1)).to_string(),
                "check_date": (end + Duration::days(5)).to_string(),
                "off_cycle": false, "payroll_type": "regular",
                "pay_period": {"start_date": start.to_string(), "end_date": end.to_string(),
                "pay_schedule_uuid": PAY_SCHEDULE},
            });
            (start, payroll, Value::Array(comps.into_iter().map(|(_, c)| c).collect()), totals)
        })
        .collect()
}

fn error(status: u16, key: &str, category: &str, message: &str) -> Response {
    wire::json(
        status,
        json!({"errors": [{"error_key": key, "category": category, "message": message}]}),
    )
}

async fn serve(State(gusto): State<Arc<Gusto>>, req: Request) -> Response {
    // `X-Gusto-API-Version` is accepted whatever it is; the request log keeps it for assertions.
    let (parts, _) = read(&gusto.log, req).await;
    if wire::bearer(&parts.headers) != Some(GUSTO_ACCESS_TOKEN) {
        return error(
            401,
            "request",
            "unauthorized",
            "The access token is missing, invalid or expired.",
        );
    }
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let rest = parts.uri.path().strip_prefix(&format!("/v1/companies/{GUSTO_COMPANY_ID}/"));
    match rest {
        Some("employees") => paged(gusto.employees.clone(), &pairs),
        Some("payrolls") => list_payrolls(&gusto, &pairs),
        _ => error(404, "request", "not_found", "The requested resource was not found."),
    }
}

fn list_payrolls(gusto: &Gusto, pairs: &[(String, String)]) -> Response {
    let date = |name: &str, default: NaiveDate| match wire::param(pairs, name) {
        Some(v) => v.parse::<NaiveDate>().map_err(|_| name.to_string()),
        None => Ok(default),
    };
    // Without dates Gusto answers for the last six months; the sandbox's "today" is the anchor.
    let (start, end) =
        match (date("start_date", anchor() - Duration::days(183)), date("end_date", anchor())) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(name), _) | (_, Err(name)) => {
                return error(422, &name, "invalid_parameter", "must be a date (YYYY-MM-DD)")
            }
        };
    if end > anchor() + Duration::days(92) {
        return error(
            422,
            "end_date",
            "invalid_parameter",
            "End date cannot be more than 3 months in future",
        );
    }
    if end - start > Duration::days(366) {
        return error(
            422,
            "start_date",
            "invalid_parameter",
            "Start date must be within one year of end date",
        );
    }
    let include = wire::param(pairs, "include").unwrap_or("");
    let items =
        gusto.payrolls.iter().filter(|(s, ..)| *s >= start && *s + Duration::days(13) <= end).map(
            |(_, payroll, comps, totals)| {
                let mut payroll = payroll.clone();
                if include.split(',').any(|i| i == "employee_compensations") {
                    payroll["employee_compensations"] = comps.clone();
                }
                if include.split(',').any(|i| i == "totals") {
                    payroll["totals"] = totals.clone();
                }
                payroll
            },
        );
    paged(items.collect(), pairs)
}

/// Everything when `page` is absent; otherwise one page of `per` (default 25) plus Gusto's headers.
fn paged(items: Vec<Value>, pairs: &[(String, String)]) -> Response {
    let Some(page) = wire::param(pairs, "page").map(|p| p.parse::<usize>().unwrap_or(1).max(1))
    else {
        return wire::json(200, Value::Array(items));
    };
    let per =
        wire::param(pairs, "per").and_then(|p| p.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    let headers = [
        ("x-page", page.to_string()),
        ("x-per-page", per.to_string()),
        ("x-total-pages", total.div_ceil(per).to_string()),
        ("x-total-count", total.to_string()),
    ];
    wire::with_headers(wire::json(200, Value::Array(slice)), &headers)
}
