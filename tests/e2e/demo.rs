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
            "8 e-mail(s) received by the demo's SMTP server, kept in {}",
            mail_dir.canonicalize().unwrap().display()
        )),
        "{stdout}"
    );
    let mut mails: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    mails.sort();
    // Alerts (the scorecards are counted below).
    let to = |who: &str| {
        mails
            .iter()
            .filter(|m| !m.contains("X-Conveyor-Report: "))
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
    // Each e-mail as a person reads it: headers unfolded, parts decoded.
    let mails: Vec<Mail> = mails.iter().map(|m| Mail::parse(m)).collect();
    let find = |subject: &str| {
        mails
            .iter()
            .find(|m| m.header("Subject").starts_with(subject))
            .unwrap_or_else(|| {
                panic!(
                    "no e-mail `{subject}…`: {:#?}",
                    mails
                        .iter()
                        .map(|m| m.header("Subject"))
                        .collect::<Vec<_>>()
                )
            })
    };
    let agent = count(&format!(
        "SELECT agent_id || '|' || name || '|' || team FROM model.contact_center_people WHERE lower(email) = '{}'",
        facts.low_csat_agent_email
    ));
    let [agent_id, agent_name, team] = agent.split('|').collect::<Vec<_>>()[..] else {
        panic!("{agent}")
    };
    // The coaching request: the built-in e-mail, its threshold the rule's,
    // with the weeks behind it, the team and how to silence it.
    let coaching = find(&format!("[FIRING warn] CSAT below target: {agent_name}"));
    assert_eq!(coaching.header("X-Conveyor-Rule"), "csat_below_target");
    assert_eq!(coaching.header("X-Conveyor-State"), "firing");
    assert_eq!(coaching.header("X-Conveyor-Level"), "warn");
    for phrase in [
        format!("{agent_name} ({agent_id}) is at "),
        ", below the warn threshold of 3.5.".to_string(),
        "It breached in 3 of its last 4 periods.".to_string(),
        "Trend of the last 4 period(s) (warn below 3.5):".to_string(),
        format!("Compared with the {team} group for "),
        "25th percentile".to_string(),
        format!(
            "The learning system has been asked to enrol {agent_name} in the CSAT recovery course."
        ),
        format!("silence add csat_below_target {agent_id} --for 7d"),
    ] {
        assert!(
            coaching.text.contains(&phrase),
            "{phrase:?} in {}",
            coaching.text
        );
        assert!(
            coaching.html_text().contains(&phrase),
            "{phrase:?} in the HTML part: {}",
            coaching.html_text()
        );
    }
    let weeks = coaching
        .text
        .lines()
        .filter(|l| l.trim_end().ends_with(" warn") || l.trim_end().ends_with(" ok"))
        .count();
    assert_eq!(weeks, 4, "one trend row per week: {}", coaching.text);
    assert!(
        !coaching.text.contains("below 3.5 in"),
        "no threshold in template text"
    );
    // The quality miss: its own template, the objective from the rule.
    let quality = find("[FIRING warn] Quality objective missed: ");
    for phrase in [
        ", below the objective of 80.",
        "The other 9 of the 10 people in Back Office meet it",
    ] {
        assert!(
            quality.text.contains(phrase),
            "{phrase:?} in {}",
            quality.text
        );
        assert!(
            quality.html_text().contains(phrase),
            "{phrase:?} in {}",
            quality.html_text()
        );
    }
    // The payroll e-mail names both sides and shows both values, not JSON.
    let payroll = find("[FIRING warn] Paid hours differ from logged hours: ");
    assert!(
        payroll
            .text
            .contains("Payroll and contact center disagree."),
        "{}",
        payroll.text
    );
    assert!(
        payroll
            .text
            .contains("  column          payroll         contact center  difference"),
        "{}",
        payroll.text
    );
    assert!(!payroll.text.contains("\"column\""), "{}", payroll.text);
    for email in &facts.hours_mismatch_emails {
        assert!(
            payroll.text.to_lowercase().contains(email),
            "{email}: {}",
            payroll.text
        );
    }
    // The finance e-mail names each placement by its id, client and start
    // date as written, and carries its fee.
    let finance = find("[FIRING warn] Placement never invoiced: ");
    assert!(
        finance
            .text
            .contains("Found in placements, with no match in invoices."),
        "{}",
        finance.text
    );
    for id in &facts.uninvoiced_application_ids {
        let row = sql_on(
            &wh,
            &format!("SELECT client, CAST(start_date AS VARCHAR), fee FROM model.placements WHERE placement_id = '{id}'"),
        );
        let (client, start, fee) = (&row[0][0], &row[0][1], row[0][2].parse::<f64>().unwrap());
        assert!(
            finance.text.contains(&format!("{id}, {client}, {start}")),
            "{id} {client} {start}: {}",
            finance.text
        );
        let fee = format!("  fee             {}", thousands(fee));
        assert!(finance.text.contains(&fee), "{fee:?}: {}", finance.text);
    }
    // The three scorecards: the executive's, one per phone-team supervisor,
    // and the back office's, where the one who misses the QA objective is
    // the one the quality rule alerts on.
    for r in [
        "executive_summary",
        "supervisor_scorecard",
        "back_office_quality",
    ] {
        assert!(stdout.contains(r), "{r} in {stdout}");
    }
    let reports: Vec<&Mail> = mails
        .iter()
        .filter(|m| !m.header("X-Conveyor-Report").is_empty())
        .collect();
    assert_eq!(
        reports.len(),
        4,
        "{:#?}",
        reports
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let exec = find("Executive summary, week of ");
    assert!(
        exec.text.contains("placement_without_invoice"),
        "{}",
        exec.text
    );
    assert!(exec.text.contains("CSAT: "), "{}", exec.text);
    let scorecards: Vec<&&Mail> = reports
        .iter()
        .filter(|m| m.header("Subject").starts_with("Team scorecard: Phones"))
        .collect();
    assert_eq!(scorecards.len(), 2);
    for card in &scorecards {
        assert!(
            card.text.contains("Handle time (s) and CSAT show "),
            "{}",
            card.text
        );
        assert!(card.html.contains("cid:section-2") && card.html.contains("cid:section-3"));
    }
    let back_office = find("Back-office quality, week of ");
    let miss = count(&format!(
        "SELECT name FROM model.contact_center_people WHERE lower(email) = '{}'",
        facts.quality_miss_email
    ));
    for phrase in [
        "QA: 9 of 10 meet the objective (goal at least 80).".to_string(),
        format!("Met in none of the 4 periods: {miss}."),
    ] {
        assert!(
            back_office.text.contains(&phrase),
            "{phrase:?} in {}",
            back_office.text
        );
        assert!(
            back_office.html_text().contains(&phrase),
            "{phrase:?} in {}",
            back_office.html_text()
        );
    }
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

/// An e-mail as a person reads it: headers unfolded, the text and HTML
/// parts decoded from quoted-printable or base64.
#[derive(Debug)]
struct Mail {
    head: String,
    text: String,
    html: String,
}

impl Mail {
    fn parse(raw: &str) -> Mail {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        let mut mail = Mail {
            head,
            text: String::new(),
            html: String::new(),
        };
        // Split on the MIME boundaries only: a text line may start with "--".
        let boundaries: Vec<String> = raw
            .split("boundary=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .map(|b| format!("\r\n--{b}"))
            .collect();
        let mut parts = vec![body.to_string()];
        for b in &boundaries {
            parts = parts
                .iter()
                .flat_map(|p| p.split(b.as_str()).map(str::to_string).collect::<Vec<_>>())
                .collect();
        }
        for part in parts
            .iter()
            .map(|p| p.trim_start_matches("--").trim_start_matches("\r\n"))
        {
            let Some((h, b)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            // Only the text parts (not the inline trend chart's PNG).
            if !h.contains("text/plain") && !h.contains("text/html") {
                continue;
            }
            let b = b.trim_end_matches("\r\n");
            let decoded = if h.contains("Content-Transfer-Encoding: base64") {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.replace("\r\n", ""))
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            } else if h.contains("quoted-printable") {
                quoted_printable(b)
            } else {
                b.to_string()
            };
            let decoded = decoded.replace("\r\n", "\n");
            if h.contains("text/plain") {
                mail.text = decoded;
            } else if h.contains("text/html") {
                mail.html = decoded;
            }
        }
        mail
    }

    fn header(&self, name: &str) -> String {
        let prefix = format!("{name}: ");
        self.head
            .split("\r\n")
            .find_map(|l| l.strip_prefix(&prefix))
            .map(decode_words)
            .unwrap_or_default()
    }

    /// The HTML part's visible text, whitespace collapsed (an inline tag
    /// such as `<b>` leaves no space, a block's does).
    fn html_text(&self) -> String {
        let mut html = self.html.clone();
        for inline in ["<b>", "</b>", "<code>", "</code>"] {
            html = html.replace(inline, "");
        }
        let mut out = String::new();
        let mut tag = false;
        for c in html.chars() {
            match c {
                '<' => tag = true,
                '>' => {
                    tag = false;
                    out.push(' ');
                }
                _ if !tag => out.push(c),
                _ => {}
            }
        }
        let out = out
            .replace("&#x27;", "'")
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A subject's RFC 2047 encoded words (`=?utf-8?b?…?=`) decoded; adjacent
/// encoded words join without the space between them.
fn decode_words(value: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut last_encoded = false;
    for w in value.split(' ') {
        let lower = w.to_ascii_lowercase();
        let decoded = if lower.starts_with("=?utf-8?b?") && w.ends_with("?=") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&w[10..w.len() - 2])
                .unwrap();
            Some(String::from_utf8(bytes).unwrap())
        } else if lower.starts_with("=?utf-8?q?") && w.ends_with("?=") {
            Some(quoted_printable(&w[10..w.len() - 2].replace('_', " ")))
        } else {
            None
        };
        let encoded = decoded.is_some();
        if !out.is_empty() && (!encoded || !last_encoded) {
            out.push(' ');
        }
        out.push_str(&decoded.unwrap_or_else(|| w.to_string()));
        last_encoded = encoded;
    }
    out
}

/// `12500.0` → `12,500`, as the e-mails print amounts.
fn thousands(x: f64) -> String {
    let rounded = format!("{:.2}", x);
    let (whole, frac) = rounded.split_once('.').unwrap();
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if frac.is_empty() {
        out
    } else {
        format!("{out}.{frac}")
    }
}
