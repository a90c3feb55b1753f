//! Built-in reconciliation recipes: `[[reconcile]]` entries over the unified
//! model's views, ready to paste into a config (the demo appends them to its
//! own). `{ats}`, `{accounting}`, `{payroll}` and `{contact_center}` stand for
//! the names of the sources that feed each system.

/// `(name, what it finds, TOML)`, in the order the demo prints them.
pub const RECIPES: &[(&str, &str, &str)] = &[
    (
        "placement_without_invoice",
        "placements with no invoice: by the placement id an invoice carries, else to their client within a week of the start date",
        // Cohorts start together: several hires for one client on one
        // Monday are normal, so each invoice pays for one placement, the
        // closest (same id, then date, then amount) — never a cross product.
        r#"
[[reconcile]]
name = "placement_without_invoice"
after = ["{ats}", "{accounting}"]
pairing = "best"
left = { table = "model.placements" }
right = { table = "model.invoices" }
left_name = "placements"
right_name = "invoices"
keys = [
  { left = "placement_id", optional = true },
  { left = "client", right = "customer", normalize = ["trim", "lower"] },
  { left = "start_date", right = "invoice_date", window_days = 7 },
]
compare = [{ name = "fee", left = "fee", right = "amount", absolute = 0.01 }]
"#,
    ),
    (
        "payroll_hours_vs_logged",
        "hours paid per agent per pay period against the hours the contact center logged",
        // Only people the contact center logs time for, and only the pay
        // periods its data covers: everyone else has nothing to compare with.
        r#"
[[reconcile]]
name = "payroll_hours_vs_logged"
after = ["{payroll}", "{contact_center}"]
left_name = "payroll"
right_name = "contact_center"
left = { sql = """
  SELECT p.email_key, l.period_start, sum(l.hours) AS hours
  FROM model.payroll_lines l JOIN model.people p ON p.payroll_id = l.payroll_id
  WHERE p.agent_id IN (SELECT agent_id FROM model.agent_daily WHERE logged_hours > 0)
    AND l.period_start >= (SELECT min(day) FROM model.agent_daily WHERE logged_hours > 0)
  GROUP BY ALL""" }
right = { sql = """
  SELECT p.email_key, w.period_start, sum(d.logged_hours) AS hours
  FROM model.agent_daily d JOIN model.people p ON p.agent_id = d.agent_id
  JOIN (SELECT DISTINCT period_start, period_end FROM model.payroll_lines) w
    ON d.day BETWEEN w.period_start AND w.period_end
  WHERE d.logged_hours > 0
  GROUP BY ALL""" }
keys = [{ left = "email_key" }, { left = "period_start" }]
compare = [{ left = "hours", absolute = 0.25 }]
"#,
    ),
    (
        "roster_vs_hires",
        "people paid but never hired (missing_left) and hired but never paid (missing_right)",
        r#"
[[reconcile]]
name = "roster_vs_hires"
after = ["{ats}", "{payroll}"]
left = { table = "model.hires" }
right = { table = "model.payroll_people" }
left_name = "hires"
right_name = "payroll"
keys = [{ left = "email", normalize = "email" }]
compare = [{ name = "start", left = "start_date", right = "hire_date", days = 3 }]
"#,
    ),
    (
        "hires_never_paid",
        "people hired at least two weeks ago (on the payroll roster or not) who no payroll has paid",
        // Only hires on the right side too: payroll pays staff the ATS
        // never saw, which is not this recipe's question.
        r#"
[[reconcile]]
name = "hires_never_paid"
after = ["{ats}", "{payroll}"]
left = { sql = """
  SELECT email_key, start_date FROM model.hires
  WHERE start_date <= CAST(getvariable('conveyor_now') AS DATE) - INTERVAL 14 DAY""" }
right = { sql = """
  SELECT pp.email_key, min(l.period_start) AS first_paid
  FROM model.payroll_lines l JOIN model.payroll_people pp ON pp.payroll_id = l.payroll_id
  WHERE l.gross > 0 AND pp.email_key IN (SELECT email_key FROM model.hires)
  GROUP BY ALL""" }
keys = [{ left = "email_key" }]
left_name = "hires"
right_name = "payroll"
"#,
    ),
    (
        "invoices_unpaid_past_due",
        "invoices past their due date whose payments do not cover them",
        r#"
[[reconcile]]
name = "invoices_unpaid_past_due"
after = ["{accounting}"]
cardinality = "1:n"
# Past due as of the run's clock (now, or the "as of" a run is given).
left = { sql = "SELECT * FROM model.invoices WHERE due_date < CAST(getvariable('conveyor_now') AS DATE)" }
right = { table = "model.payments" }
left_name = "invoices"
right_name = "payments"
keys = [{ left = "invoice_id" }]
compare = [{ left = "amount", absolute = 0.01 }]
"#,
    ),
];

/// Every recipe as TOML, with the source names filled in.
pub fn toml(ats: &str, accounting: &str, payroll: &str, contact_center: &str) -> String {
    RECIPES
        .iter()
        .map(|(_, what, text)| {
            let text = text
                .replace("{ats}", ats)
                .replace("{accounting}", accounting)
                .replace("{payroll}", payroll)
                .replace("{contact_center}", contact_center);
            format!("\n# Finds {what}.{text}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_is_a_valid_reconcile_entry_for_the_named_sources() {
        let mut text = String::from("[warehouse]\npath = \"wh.duckdb\"\n");
        for s in ["hr_ats", "books", "pay", "phones"] {
            text += &format!(
                "[sources.{s}]\ntype = \"rest\"\nbase_url = \"https://{s}.example.com\"\n[[sources.{s}.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n"
            );
        }
        text += &toml("hr_ats", "books", "pay", "phones");
        let config = conveyor_config::parse(&text, std::path::Path::new("c.toml")).unwrap();
        let names: Vec<&str> = config.reconciles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            RECIPES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>()
        );
        assert_eq!(config.reconciles[0].after, ["hr_ats", "books"]);
        assert_eq!(config.reconciles[0].pairing, conveyor_config::Pairing::Best);
        assert!(config.reconciles[0].keys[0].optional);
        let unpaid = config
            .reconciles
            .iter()
            .find(|r| r.name == "invoices_unpaid_past_due")
            .unwrap();
        assert_eq!(unpaid.cardinality, conveyor_config::Cardinality::OneToMany);
        // Alerts over a recipe say which system is which.
        assert_eq!(
            (unpaid.left_name.as_str(), unpaid.right_name.as_str()),
            ("invoices", "payments")
        );
    }
}
