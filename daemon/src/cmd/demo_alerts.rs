//! The demo's performance rules and what they set off: an SMTP capture that
//! keeps every e-mail as an `.eml` file, a stand-in learning system that
//! keeps every training-enrolment webhook, the rules evaluated as of the
//! sandbox's "today", the outbox delivered to both, and a summary printed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDateTime;
use conveyor_config::Config;
use conveyor_mocks::smtp::SmtpCapture;

use crate::query::{self, Format};
use crate::warehouse::Warehouse;

/// The secret the demo's learning system shares with Conveyor.
pub const LMS_SECRET: &str = "demo-lms-webhook-secret";

/// The receivers notifications go to; both stop when dropped.
pub struct Receivers {
    pub mail: SmtpCapture,
    pub lms_url: String,
    pub hooks_dir: PathBuf,
    lms: tokio::task::JoinHandle<()>,
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.lms.abort();
    }
}

/// Starts the SMTP capture (`dir/mail`) and the learning system
/// (`dir/webhooks`) on loopback ports.
pub async fn start_receivers(dir: &Path) -> Result<Receivers> {
    let mail_dir = dir.join("mail");
    let hooks_dir = dir.join("webhooks");
    for d in [&mail_dir, &hooks_dir] {
        // Each demo run starts with empty folders, so what is there is its own.
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mail = SmtpCapture::start(&mail_dir)
        .await
        .context("cannot start the demo's SMTP capture")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lms_url = format!("http://{}/enrolments", listener.local_addr()?);
    let count = Arc::new(AtomicUsize::new(0));
    let folder = hooks_dir.clone();
    let app = axum::Router::new().route(
        "/enrolments",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (count, folder) = (count.clone(), folder.clone());
            async move { keep_enrolment(&folder, &count, &headers, &body) }
        }),
    );
    let lms = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Receivers {
        mail,
        lms_url,
        hooks_dir,
        lms,
    })
}

/// Saves one enrolment request with the headers a receiver checks.
fn keep_enrolment(
    folder: &Path,
    count: &AtomicUsize,
    headers: &HeaderMap,
    body: &str,
) -> StatusCode {
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let signature_ok =
        header("x-conveyor-signature") == crate::outbox::signature(LMS_SECRET, body.as_bytes());
    let record = serde_json::json!({
        "idempotency_key": header("idempotency-key"),
        "signature_verified": signature_ok,
        "body": serde_json::from_str::<serde_json::Value>(body).unwrap_or(body.into()),
    });
    let path = folder.join(format!("{n:03}.json"));
    match std::fs::write(&path, format!("{record:#}\n")) {
        Ok(()) if signature_ok => StatusCode::CREATED,
        Ok(()) => StatusCode::UNAUTHORIZED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The demo's `[smtp]`, `[[rules]]` and `[[reports]]`; `{smtp_port}` and `{lms_url}` are
/// filled in by [`config_toml`].
const DEMO_RULES: &str = r#"
# Notifications: the demo's SMTP capture keeps every e-mail as an .eml file.
[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Conveyor demo <conveyor@demo.example>"
operator = "ops-oncall@demo.example"   # told of anything that cannot be delivered

# An agent below the CSAT target in 3 of the last 4 weeks (and in the
# bottom quarter of their team): a coaching request to their supervisor —
# the built-in e-mail, with the trend and the team — and an enrolment in
# the CSAT course.
[[rules]]
name = "csat_below_target"
title = "CSAT below target"
description = "Weekly average CSAT below target in 3 of the last 4 complete weeks, and in the bottom quarter of the team."
owner = "contact-center-ops@demo.example"
entity_label = "agent_name"
next_step = "Please book a coaching session with {{ agent_name }} ({{ agent_email }}) this week. The learning system has been asked to enrol {{ agent_name }} in the CSAT recovery course."
measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, round(avg(d.csat), 2) AS value,
       any_value(p.name) AS agent_name, any_value(p.email) AS agent_email,
       any_value(p.supervisor_email) AS supervisor_email, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.csat IS NOT NULL
  AND d.day >= date_trunc('week', getvariable('conveyor_now')) - INTERVAL 4 WEEK
  AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL"""
direction = "below"
warn = 3.5
n_of_m = [3, 4]
peer = { group = "team", percentile = 25 }
repeat = "7d"

[[rules.actions]]
type = "email"
to_column = "supervisor_email"

[[rules.actions]]
type = "webhook"
url = "{lms_url}"
secret = "file:secrets/lms_webhook_secret"
body = '{"learner": {{ agent_email|tojson }}, "course": "csat-recovery", "requested_by": {{ rule|tojson }}, "evidence": {"weeks_below_target": {{ breaches }}, "latest_weekly_csat": {{ value }}}}'

# The one back-office worker whose QA average misses the objective while the
# rest of the team meets it (several missing it would be a process problem).
# Its own templates, from the alert's variables: the objective is the rule's.
[[rules]]
name = "quality_objective"
title = "Quality objective missed"
description = "QA average of the last 4 weeks below the objective, and the only one of the team below it."
entity_label = "agent_name"
measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', getvariable('conveyor_now')) AS DATE) AS period,
       round(avg(d.quality_score), 1) AS value,
       any_value(p.name) AS agent_name, any_value(p.supervisor_email) AS supervisor_email, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.quality_score IS NOT NULL AND p.team = 'Back Office'
  AND d.day >= date_trunc('week', getvariable('conveyor_now')) - INTERVAL 4 WEEK
GROUP BY ALL"""
direction = "below"
warn = 80
peer = { group = "team", sole = true }

[[rules.actions]]
type = "email"
to_column = "supervisor_email"
subject = "{{ subject_tag }} Quality objective missed: {{ who }} ({{ value|num }})"
body = """
{{ who }} averaged a QA score of {{ value|num }} over the last four weeks, below the objective of {{ warn|num }}. The other {{ peer_size - peer_breaching }} of the {{ peer_size }} people in {{ team }} meet it (team median {{ peer_median|num }}), so this is about {{ who }}, not the process.
Please review a few of {{ who }}'s recent evaluations together.

To silence this alert for 7 days, run: {{ silence_command }}"""
html = """
<p><b>{{ who }}</b> averaged a QA score of <b>{{ value|num }}</b> over the last four weeks, below the objective of {{ warn|num }}. The other {{ peer_size - peer_breaching }} of the {{ peer_size }} people in {{ team }} meet it (team median {{ peer_median|num }}), so this is about {{ who }}, not the process.</p>
<p>Please review a few of {{ who }}'s recent evaluations together.</p>
<p>To silence this alert for 7 days, run: <code>{{ silence_command }}</code></p>"""

# Placements that were never invoiced, from the reconciliation's latest run:
# the built-in e-mail names each by its keys as written, with its fee.
[[rules]]
name = "placement_never_invoiced"
title = "Placement never invoiced"
description = "No invoice quotes the placement's id, and none went to its client within a week of the start date."
next_step = "Invoice the client, or tell the recruiting team if the placement fell through."
measure = { reconciliation = "placement_without_invoice", statuses = ["missing_right"] }
direction = "above"
warn = 0

[[rules.actions]]
type = "email"
to = ["finance@demo.example"]

# Hours paid that disagree with the hours the contact center logged: both
# sides by name, with the difference.
[[rules]]
name = "payroll_hours_disagree"
title = "Paid hours differ from logged hours"
next_step = "Check the timesheet with the agent's supervisor and correct the payroll or the log before the next pay run."
measure = { reconciliation = "payroll_hours_vs_logged", statuses = ["mismatched"] }
direction = "above"
warn = 0

[[rules.actions]]
type = "email"
to = ["payroll@demo.example"]

# Scorecards, one for each stakeholder, through the same outbox as alerts.
# An executive: progress against the corporate goals, across teams.
[[reports]]
name = "executive_summary"
title = "Executive summary, week of {{ period }}"
intro = "Progress against the corporate goals: placements invoiced, hours paid as logged, and customer outcomes by team."
to = ["exec@demo.example"]

[[reports.sections]]
title = "Placements invoiced and hours paid as logged"
type = "table"
sql = """
SELECT r.reconciliation AS comparison,
       count(*) FILTER (WHERE r.status IN ('matched', 'matched_within_tolerance')) AS agree,
       count(*) FILTER (WHERE r.status NOT IN ('matched', 'matched_within_tolerance')) AS exceptions
FROM conveyor.recon_results AS r
WHERE r.run_id IN (SELECT max(run_id) FROM conveyor.recon_runs
                   WHERE status = 'succeeded'
                     AND reconciliation IN ('placement_without_invoice', 'payroll_hours_vs_logged')
                   GROUP BY reconciliation)
GROUP BY ALL ORDER BY 1"""

[[reports.sections]]
title = "CSAT and QA against goal, by team"
type = "kpis"
periods = 4
kpis = [
  { label = "CSAT", goal = 4.0, amber = 3.7, direction = "above", measure = """
SELECT p.team AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.csat) AS value
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.csat IS NOT NULL AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL""" },
  { label = "QA", goal = 80, amber = 75, direction = "above", measure = """
SELECT p.team AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.quality_score) AS value
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.quality_score IS NOT NULL AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL""" },
]

# A supervisor: their team's results, one report each.
[[reports]]
name = "supervisor_scorecard"
title = "Team scorecard: {{ team }}, week of {{ period }}"
intro = "Your team's results over the last weeks: satisfaction against the goal, and what handle time has to do with it."
recipients = """
SELECT DISTINCT supervisor_email AS email, team FROM model.contact_center_people
WHERE supervisor_email IS NOT NULL AND team LIKE 'Phones%' ORDER BY team"""

[[reports.sections]]
title = "Each agent against the goal"
type = "kpis"
only = "team"
entity_label = "agent_name"
periods = 4
kpis = [
  { label = "CSAT", goal = 4.0, amber = 3.5, direction = "above", measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.csat) AS value,
       any_value(p.name) AS agent_name, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.csat IS NOT NULL AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL""" },
  { label = "Handle time (s)", goal = 900, amber = 960, direction = "below", measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.handle_secs) AS value,
       any_value(p.name) AS agent_name, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.handle_secs IS NOT NULL AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL""" },
]

[[reports.sections]]
title = "The team's CSAT, week by week"
type = "trend"
only = "team"
label = "CSAT"
goal = 4.0
direction = "above"
measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.csat) AS value,
       any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.csat IS NOT NULL AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL"""

[[reports.sections]]
title = "Handle time and satisfaction"
type = "correlation"
only = "team"
entity_label = "agent_name"
x = { label = "Handle time (s)", measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.handle_secs) AS value,
       any_value(p.name) AS agent_name, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.handle_secs IS NOT NULL GROUP BY ALL""" }
y = { label = "CSAT", measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.csat) AS value,
       any_value(p.name) AS agent_name, any_value(p.team) AS team
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.csat IS NOT NULL GROUP BY ALL""" }

# The back office: quality against the objective, person by person.
[[reports]]
name = "back_office_quality"
title = "Back-office quality, week of {{ period }}"
intro = "QA scores against the objective of 80 over the last eight weeks."
to = ["backoffice-lead@demo.example"]

[[reports.sections]]
title = "QA against the objective"
type = "kpis"
entity_label = "agent_name"
kpis = [
  { label = "QA", goal = 80, amber = 75, direction = "above", measure = """
SELECT d.agent_id AS entity, CAST(date_trunc('week', d.day) AS DATE) AS period, avg(d.quality_score) AS value,
       any_value(p.name) AS agent_name
FROM model.agent_daily AS d JOIN model.contact_center_people AS p USING (agent_id)
WHERE d.quality_score IS NOT NULL AND p.team = 'Back Office'
  AND d.day < date_trunc('week', getvariable('conveyor_now'))
GROUP BY ALL""" },
]
"#;

/// The rules and `[smtp]` section for receivers `r`; writes the webhook
/// secret to `dir/secrets`.
pub fn config_toml(dir: &Path, r: &Receivers) -> Result<String> {
    let secret = dir.join("secrets").join("lms_webhook_secret");
    std::fs::write(&secret, LMS_SECRET)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(DEMO_RULES
        .replace("{smtp_port}", &r.mail.port.to_string())
        .replace("{lms_url}", &r.lms_url))
}

/// Evaluates every rule as of `as_of`, delivers the outbox to the
/// receivers writing into `mail_dir` and `hooks_dir`, and prints what fired
/// and where the notifications are. Blocking (SMTP and HTTP delivery).
pub fn evaluate_and_notify(
    wh: &Warehouse,
    config: &Config,
    mail_dir: &Path,
    hooks_dir: &Path,
    as_of: NaiveDateTime,
) -> Result<()> {
    println!(
        "\nEvaluating the performance rules as of the sandbox's today ({}) …\n",
        as_of.date()
    );
    let conn = wh.connection()?;
    let mut names = Vec::new();
    for rule in &config.rules {
        match crate::rules::evaluate_at(&conn, rule, as_of) {
            Ok(s) => {
                names.push(rule.name.as_str());
                println!(
                    "  {:<26} {} firing of {} row(s)",
                    s.rule,
                    s.firing,
                    s.rows()
                );
            }
            Err(e) => println!("  {:<26} failed: {e}", rule.name),
        }
    }
    let alerts = query::run(&conn, &crate::rules::report::alerts_sql(&names))?;
    println!("\n{}", query::render(&alerts, Format::Table));
    if !config.reports.is_empty() {
        println!("\nScorecards as of {} …", as_of.date());
        for report in &config.reports {
            match crate::reports::enqueue(&conn, report, as_of) {
                Ok(n) => println!("  {:<26} {n} e-mail(s) queued", report.name),
                Err(e) => println!("  {:<26} failed: {e}", report.name),
            }
        }
    }
    crate::outbox::deliver_logged(&conn, config);
    let mut mail: Vec<PathBuf> = std::fs::read_dir(mail_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    mail.sort();
    println!(
        "\n{} e-mail(s) received by the demo's SMTP server, kept in {}:",
        mail.len(),
        mail_dir.display()
    );
    for path in &mail {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Long headers are folded onto indented lines: unfold them first.
        let head = text
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .replace("\r\n ", " ");
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        println!(
            "  {}  To: {}  Subject: {}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default(),
            header("To:"),
            header("Subject:")
        );
    }
    let hooks = std::fs::read_dir(hooks_dir)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    println!(
        "{hooks} training enrolment(s) POSTed to the demo learning system (signed, with an Idempotency-Key), kept in {}",
        hooks_dir.display()
    );
    Ok(())
}
