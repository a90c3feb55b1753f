//! The README's first command: `conveyor demo` syncs the four sandbox APIs
//! end to end and leaves a warehouse that answers the suggested queries.

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
    assert!(stdout.contains("5 source(s), 15 stream(s)"), "{stdout}");
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
        conveyor_mocks::sandbox::start_sandbox(conveyor_mocks::sandbox::SandboxSize::Default)
            .await
            .facts;
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
    let unpaid = sql_on(
        &wh,
        "SELECT DocNumber FROM accounting.invoices WHERE Id IN (SELECT left_key FROM conveyor.recon_results
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
    // Zendesk exports repeat boundary rows; the merge keeps each call once.
    assert_eq!(
        count("SELECT count(*) - count(DISTINCT id) FROM contact_center.calls"),
        "0"
    );
    assert_eq!(
        count("SELECT count(*) FROM conveyor.runs WHERE status <> 'succeeded'"),
        "0"
    );
    // QuickBooks timestamps carry -07:00/-08:00 offsets; stored as UTC.
    assert_eq!(
        count("SELECT typeof(TxnDate) FROM accounting.invoices LIMIT 1"),
        "DATE"
    );
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
    // Secrets were written as files and referenced, never inline.
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(
        toml.contains("file:secrets/ats_client_secret")
            && !toml.contains(conveyor_mocks::sandbox::ATS_CLIENT_SECRET)
    );
}
