//! The README's first command: `conveyor demo` syncs the four sandbox vendor
//! APIs through the vendor connectors and leaves a warehouse that answers the
//! suggested queries, with the sandbox's planted anomalies found.

use crate::support::{sql_on, text, BIN};

#[tokio::test(flavor = "multi_thread")]
async fn demo_syncs_every_sandbox_stream() {
    // The demo's timekeeping source needs the file-drop plugin next to the binary.
    crate::plugins::built_plugins();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["demo", "--dir", "d"])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("5 source(s), 18 stream(s)"), "{stdout}");
    assert!(!stdout.contains("failed"), "{stdout}");
    let wh = dir.path().join("d/warehouse.duckdb");
    let count = |sql: &str| sql_on(&wh, sql)[0][0].clone();
    // The sandbox's default cast: 60 people, 48 of them hired.
    assert_eq!(count("SELECT count(*) FROM ats.applications"), "60");
    assert_eq!(
        count("SELECT count(*) FROM ats.applications WHERE status = 'hired'"),
        "48"
    );
    assert_eq!(count("SELECT count(*) FROM payroll.employees"), "48");
    // The built-in recipes find exactly the anomalies planted in the sandbox.
    let facts =
        conveyor_mocks::sandbox::sandbox_facts(conveyor_mocks::sandbox::SandboxSize::Default);
    let exceptions = |recon: &str| -> Vec<String> {
        let sql = format!(
            "SELECT status || ' ' || coalesce(left_key, right_key) FROM conveyor.recon_results
             WHERE reconciliation = '{recon}' AND status NOT IN ('matched', 'matched_within_tolerance') ORDER BY 1"
        );
        sql_on(&wh, &sql)
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert!(stdout.contains("Top exceptions"), "{stdout}");
    let uninvoiced = exceptions("placement_without_invoice");
    assert_eq!(
        uninvoiced.len(),
        facts.uninvoiced_application_ids.len(),
        "{uninvoiced:?}"
    );
    assert!(
        uninvoiced.iter().all(|e| e.starts_with("missing_right ")),
        "{uninvoiced:?}"
    );
    let period = facts.latest_pay_period.0;
    let mut hours: Vec<String> = facts
        .hours_mismatch_emails
        .iter()
        .map(|e| format!("mismatched {e}|{period}"))
        .collect();
    hours.sort();
    assert_eq!(exceptions("payroll_hours_vs_logged"), hours);
    assert_eq!(
        exceptions("roster_vs_hires"),
        [
            format!("missing_left {}", facts.paid_never_hired_email),
            format!("missing_right {}", facts.hired_not_on_payroll_email)
        ]
    );
    // Hired and never paid: the one off the roster and the one on it whom
    // no payroll paid (roster_vs_hires above cannot see the second).
    let mut never_paid = vec![
        format!("missing_right {}", facts.hired_not_on_payroll_email),
        format!("missing_right {}", facts.never_paid_email),
    ];
    never_paid.sort();
    assert_eq!(exceptions("hires_never_paid"), never_paid);
    // The cohort (one client, one start day, invoices without the
    // placement id) pairs one invoice each: matched, not duplicates.
    let cohort = facts
        .cohort_application_ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM conveyor.recon_results WHERE reconciliation = 'placement_without_invoice'
             AND status = 'matched' AND split_part(left_key, '|', 1) IN ({cohort})"
        )),
        facts.cohort_application_ids.len().to_string()
    );
    // The tabbed, capitalised payroll address is the same person.
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM model.people WHERE email_key = '{}' AND payroll_id IS NOT NULL AND ats_id IS NOT NULL",
            facts.tabbed_payroll_email
        )),
        "1"
    );
    // Unprocessed payrolls are read, and pay nobody yet.
    assert_eq!(
        count("SELECT count(*) FROM payroll.payrolls WHERE NOT processed"),
        facts.unprocessed_payrolls.to_string()
    );
    assert_eq!(
        count("SELECT count(*) FROM model.payroll_lines l JOIN payroll.payrolls p ON p.pay_period_start = l.period_start WHERE NOT p.processed"),
        "0"
    );
    // Callers who hung up in the queue are contacts, without an agent.
    assert_eq!(
        count("SELECT count(*) FROM model.contacts WHERE abandoned AND agent_id IS NULL"),
        facts.abandoned_contacts.to_string()
    );
    let unpaid = sql_on(
        &wh,
        "SELECT doc_number FROM accounting.invoices WHERE id IN (SELECT left_key FROM conveyor.recon_results
         WHERE reconciliation = 'invoices_unpaid_past_due' AND status = 'missing_right') ORDER BY 1",
    );
    assert_eq!(
        unpaid.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        facts.unpaid_invoice_numbers
    );
    assert_eq!(
        exceptions("invoices_unpaid_past_due").len(),
        facts.unpaid_invoice_numbers.len()
    );
    // Timekeeping exports read by the file-drop plugin through the ABI:
    // ten back-office workers, ten weekdays, eight half days off.
    assert_eq!(count("SELECT count(*) FROM timekeeping.hours"), "100");
    assert_eq!(count("SELECT sum(hours) FROM timekeeping.hours"), "768.0");
    assert_eq!(count("SELECT count(*) FROM timekeeping.absences"), "8");
    assert_eq!(
        count("SELECT typeof(work_date) FROM timekeeping.hours LIMIT 1"),
        "DATE"
    );
    // Genesys details queries touch their boundary days twice; the merge
    // keeps each agent session and survey once.
    assert_eq!(
        count("SELECT count(*) - count(DISTINCT (conversation_id, session_id)) FROM contact_center.conversations"),
        "0"
    );
    assert_eq!(
        count("SELECT count(*) - count(DISTINCT survey_id) FROM contact_center.surveys"),
        "0"
    );
    assert_eq!(
        count("SELECT count(*) FROM conveyor.runs WHERE status <> 'succeeded'"),
        "0"
    );
    // Typed vendor tables: QuickBooks dates and money, Gusto hours as DECIMAL.
    assert_eq!(
        count(
            "SELECT typeof(txn_date) || ' ' || typeof(total_amt) FROM accounting.invoices LIMIT 1"
        ),
        "DATE DECIMAL(18,2)"
    );
    assert_eq!(
        count("SELECT typeof(hours) FROM payroll.employee_compensations LIMIT 1"),
        "DECIMAL(12,3)"
    );
    // The contact center's people carry their team and supervisor.
    assert_eq!(
        count("SELECT count(*) FROM model.contact_center_people WHERE team = 'Back Office' AND supervisor_email IS NOT NULL"),
        "10"
    );
    // model.agent_daily carries CSAT, QA and logged hours: the low-CSAT agent
    // averages under 3.5 in three of the last four weeks, and nobody else does.
    let weekly_low = format!(
        "SELECT p.email_key FROM (
             SELECT agent_id, date_trunc('week', day) AS week, avg(csat) AS csat FROM model.agent_daily
             WHERE day >= DATE '{}' - INTERVAL 28 DAY AND csat IS NOT NULL GROUP BY ALL) w
         JOIN model.people p USING (agent_id)
         GROUP BY ALL HAVING count(*) FILTER (WHERE csat < 3.5) >= 3",
        facts.anchor_date
    );
    assert_eq!(
        sql_on(&wh, &weekly_low),
        vec![vec![facts.low_csat_agent_email.clone()]]
    );
    // Only the quality miss averages under 80 among the back-office workers.
    let qa = sql_on(
        &wh,
        "SELECT p.email_key, avg(d.quality_score) < 80 FROM model.agent_daily d JOIN model.people p USING (agent_id)
         WHERE p.team = 'Back Office' AND d.quality_score IS NOT NULL GROUP BY ALL ORDER BY 1",
    );
    let mut back_office = facts.back_office_emails.clone();
    back_office.sort();
    assert_eq!(
        qa.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        back_office
    );
    for row in &qa {
        let miss = row[0] == facts.quality_miss_email;
        assert_eq!(row[1], miss.to_string(), "{row:?}");
    }
    // Logged hours come from presence: every phone agent logged a working
    // day's hours (6, 7.5 or 8) on a weekday of the latest pay period.
    let (first, last) = facts.latest_pay_period;
    let logged = sql_on(
        &wh,
        &format!(
            "SELECT DISTINCT logged_hours FROM model.agent_daily WHERE logged_hours > 0
             AND day BETWEEN DATE '{first}' AND DATE '{last}' ORDER BY 1"
        ),
    );
    assert_eq!(logged, [["6.0"], ["7.5"], ["8.0"]]);
    let low_csat_hours = sql_on(
        &wh,
        &format!(
            "SELECT sum(d.logged_hours) > 0, sum(d.contacts) > 0 FROM model.agent_daily d JOIN model.people p USING (agent_id)
             WHERE p.email_key = '{}' AND d.day BETWEEN DATE '{first}' AND DATE '{last}'",
            facts.low_csat_agent_email
        ),
    );
    assert_eq!(low_csat_hours, [["true", "true"]]);
    // The printed example queries run as printed.
    let config = dir.path().join("d/conveyor.toml");
    for line in stdout.lines().filter(|l| l.contains(" query \"")) {
        let sql = line
            .split_once(" query \"")
            .unwrap()
            .1
            .trim_end_matches('"');
        let q = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["query", sql])
            .output()
            .unwrap();
        assert!(q.status.success(), "{sql}: {:?}", text(&q));
    }
    // The demo's config passes its own check, rules and templates included.
    let check = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", text(&check));
    // Secrets were written as files and referenced, never inline.
    let toml = std::fs::read_to_string(&config).unwrap();
    use conveyor_mocks::sandbox as sb;
    for (file, secret) in [
        ("ats_client_secret", sb::ATS_CLIENT_SECRET),
        ("qbo_client_secret", sb::QBO_CLIENT_SECRET),
        ("qbo_refresh_token", sb::QBO_REFRESH_TOKEN),
        ("gusto_client_secret", sb::GUSTO_CLIENT_SECRET),
        ("gusto_refresh_token", sb::GUSTO_REFRESH_TOKEN),
        ("genesys_client_secret", sb::GENESYS_CLIENT_SECRET),
    ] {
        assert!(toml.contains(&format!("\"file:secrets/{file}\"")), "{file}");
        assert!(!toml.contains(secret), "{file} inline");
    }
    // QuickBooks and Gusto rotated their refresh tokens; the new ones are
    // kept sealed in the warehouse.
    assert_eq!(
        sql_on(&wh, "SELECT name FROM conveyor.credentials ORDER BY 1"),
        [["accounting.refresh_token"], ["payroll.refresh_token"]]
    );

    // The rules fire on exactly the planted people and findings, and the
    // notifications reach the demo's SMTP capture and learning system.
    let firing = |rule: &str, key: &str| -> Vec<String> {
        let sql = format!(
            "SELECT {key} FROM conveyor.alerts a LEFT JOIN model.contact_center_people p ON p.agent_id = a.entity
             WHERE a.rule = '{rule}' AND a.state = 'firing' ORDER BY 1"
        );
        sql_on(&wh, &sql)
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(
        firing("csat_below_target", "lower(p.email)"),
        std::slice::from_ref(&facts.low_csat_agent_email)
    );
    assert_eq!(
        firing("quality_objective", "lower(p.email)"),
        std::slice::from_ref(&facts.quality_miss_email)
    );
    assert_eq!(
        firing("placement_never_invoiced", "a.entity").len(),
        facts.uninvoiced_application_ids.len()
    );
    let mut mismatched: Vec<String> = firing("payroll_hours_disagree", "a.entity")
        .iter()
        .map(|e| e.split('|').next().unwrap().to_string())
        .collect();
    mismatched.sort();
    let mut expected = facts.hours_mismatch_emails.clone();
    expected.sort();
    assert_eq!(mismatched, expected);
    let supervisor = count(&format!(
        "SELECT lower(supervisor_email) FROM model.contact_center_people WHERE lower(email) = '{}'",
        facts.low_csat_agent_email
    ));
    let mail_dir = dir.path().join("d/mail");
    assert!(
        stdout.contains(&format!(
            "4 e-mail(s) received by the demo's SMTP server, kept in {}",
            mail_dir.canonicalize().unwrap().display()
        )),
        "{stdout}"
    );
    let mut mails: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    mails.sort();
    let to = |who: &str| {
        mails
            .iter()
            .filter(|m| m.to_lowercase().contains(&format!("to: {who}\r\n")))
            .count()
    };
    assert_eq!(to(&supervisor), 1, "the coaching request: {mails:#?}");
    assert_eq!(
        to("finance@demo.example"),
        1,
        "one e-mail listing both placements"
    );
    assert_eq!(to("payroll@demo.example"), 1);
    // Quoted-printable soft line breaks undone, so phrases read whole.
    let coaching = mails
        .iter()
        .find(|m| m.contains("Coaching request"))
        .unwrap()
        .replace("=\r\n", "");
    assert!(coaching.contains("in 3 of the last 4 weeks"), "{coaching}");
    assert!(coaching.contains("text/html"), "{coaching}");
    let hooks: Vec<serde_json::Value> = std::fs::read_dir(dir.path().join("d/webhooks"))
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["signature_verified"], true);
    assert_eq!(hooks[0]["body"]["course"], "csat-recovery");
    assert_eq!(
        hooks[0]["body"]["learner"].as_str().unwrap().to_lowercase(),
        facts.low_csat_agent_email
    );
    assert_eq!(
        count("SELECT count(*) FROM conveyor.outbox WHERE delivered_at IS NULL"),
        "0",
        "everything delivered"
    );
}
