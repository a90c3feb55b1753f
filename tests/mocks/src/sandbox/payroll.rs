//! The cast's roster as Gusto records, served by the faithful Gusto mock:
//! employees keyed in by hand (casing and whitespace differ from the ATS)
//! and processed payrolls whose money and hours are decimal strings, then
//! the next period's payroll, not processed yet.

use chrono::Duration;
use serde_json::{json, Value};

use super::world::{latest_period_start, uuid, Role, World};
use super::GUSTO_COMPANY_ID;
use crate::vendors::gusto::GustoRecords;
use crate::wire;

const PAY_SCHEDULE: &str = "40ff5990-2d1e-4c4e-9f6a-0c1d2e3f4a5b";
/// A year of bi-weekly payrolls ending with the latest complete period.
const PERIODS: i64 = 26;

pub(crate) fn employee_uuid(idx: usize) -> String {
    uuid(0x6057, idx as u64)
}

/// The roster (the unrostered hire missing, the ghost present) and a year
/// of processed bi-weekly payrolls with their employee compensations.
pub(crate) fn records(w: &World) -> GustoRecords {
    GustoRecords { employees: employees(w), payrolls: payrolls(w) }
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn employees(w: &World) -> Vec<Value> {
    w.on_payroll()
        .map(|p| {
            // Payroll was keyed in by hand: casing and stray whitespace differ from the ATS.
            let email = match p.idx % 4 {
                _ if p.idx == w.tabbed => format!("\t{}.{}@Mail.Example\u{a0}", p.first, p.last),
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

/// A year of processed payrolls, then the next period's, not processed yet
/// (Gusto lists it as unprocessed until it is run).
fn payrolls(w: &World) -> Vec<Value> {
    (-1..PERIODS)
        .rev()
        .map(|back| {
            let start = latest_period_start() - Duration::days(14 * back);
            let end = start + Duration::days(13);
            let processed = back >= 0;
            let on_payroll = w
                .on_payroll()
                .filter(|p| w.payroll_start(p) <= end && p.idx != w.never_paid);
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
            json!({
                "payroll_uuid": uuid(0x9a7, (back + 1) as u64), "company_uuid": GUSTO_COMPANY_ID, "processed": processed,
                "processed_date": processed.then(|| (end + Duration::days(1)).to_string()),
                "check_date": (end + Duration::days(5)).to_string(),
                "off_cycle": false, "payroll_type": "regular",
                "pay_period": {"start_date": start.to_string(), "end_date": end.to_string(),
                "pay_schedule_uuid": PAY_SCHEDULE},
                "totals": totals,
                "employee_compensations": comps.into_iter().map(|(_, c)| c).collect::<Vec<_>>(),
            })
        })
        .collect()
}
