//! Golden e-mails of the built-in template, received by aiosmtpd: subject,
//! `X-Conveyor-*` headers, the text part word for word and the HTML part
//! saying every sentence of it — for a CSAT rule with history and peers
//! (firing, then escalating, then resolved) and a reconciliation rule whose
//! sides have names; the CSAT e-mails carry the inline trend chart.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use conveyor_config::Config;
use duckdb::Connection;

use super::mime::{collapse, sentences, visible_text, Eml};
use crate::outbox::deliver_due;
use crate::outbox::tests::Smtp;
use crate::warehouse::Warehouse;

/// A config file around `rules` (TOML), sending to `port`.
fn config(port: u16, rules: &str) -> Config {
    let text = format!(
        r#"
[warehouse]
path = "wh.duckdb"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Conveyor <conveyor@example.com>"
{rules}
"#
    );
    conveyor_config::parse(&text, std::path::Path::new("/c/conveyor.toml")).unwrap()
}

const CSAT: &str = r#"
[[rules]]
name = "csat_below_target"
title = "CSAT below target"
description = "Weekly average CSAT below target, and in the bottom quarter of the team."
owner = "cc-ops@example.com"
labels = { area = "support" }
entity_label = "agent_name"
next_step = "Book a coaching session with {{ agent_name }} this week."
measure = "SELECT agent AS entity, week AS period, score AS value, agent_name, team, supervisor FROM w"
direction = "below"
warn = 3.5
critical = 3.0
peer = { group = "team", percentile = 25 }
notify_resolved = true

[[rules.actions]]
type = "email"
to_column = "supervisor"
"#;

fn at(day: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, day)
        .unwrap()
        .and_hms_opt(6, 0, 0)
        .unwrap()
}

struct World {
    dir: tempfile::TempDir,
    conn: Connection,
}

fn world(setup: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch(setup).unwrap();
    World { dir, conn }
}

/// Four weeks of a team of four: Ann dips below 3.5 twice, the others
/// hold steady above it.
const TEAM: &str = "
CREATE TABLE w (agent VARCHAR, agent_name VARCHAR, team VARCHAR, week DATE, score DOUBLE, supervisor VARCHAR);
INSERT INTO w SELECT a.agent, a.name, 'Tier 1', DATE '2026-01-05' + INTERVAL (7 * k.i) DAY,
       CASE WHEN a.agent = 'a1' THEN [3.6, 3.4, 3.8, 3.2][k.i + 1] ELSE a.score END, 'sup@example.com'
FROM (VALUES ('a1', 'Ann Lee', 0.0), ('a2', 'Bob Roy', 4.0), ('a3', 'Cy Diaz', 4.4), ('a4', 'Di Wu', 4.8))
       AS a(agent, name, score),
     range(4) AS k(i);
";

/// Delivers what is due and returns the one e-mail it sent.
fn one_email(w: &World, smtp: &Smtp, config: &Config, now: NaiveDateTime) -> Eml {
    let before = smtp.messages().len();
    let r = deliver_due(&w.conn, config.smtp.as_ref().unwrap(), now).unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    let mail = smtp.messages();
    assert_eq!(mail.len(), before + 1);
    Eml::parse(mail.last().unwrap())
}

/// Every sentence of the text part is in the HTML part.
fn assert_same_content(eml: &Eml) {
    let html = visible_text(eml.html.as_deref().expect("an HTML part"));
    for s in sentences(&eml.text) {
        assert!(
            html.contains(&s),
            "missing from the HTML part: {s:?}\n{html}"
        );
    }
}

/// The HTML part shows `cid:trend`, an inline image/png part with that
/// Content-ID, 480x160, whose threshold rows are drawn in their colours —
/// the very bytes stored with the outbox row (a re-delivery sends them).
fn assert_trend_chart(w: &World, eml: &Eml, values: &[(f64, &str)]) {
    use crate::outbox::chart::{
        self,
        tests::{decode, row_has},
        Level,
    };
    let html = eml.html.as_deref().unwrap();
    assert!(
        html.contains(r#"<img src="cid:trend" alt="trend of the last 4 periods against the threshold" width="480" height="160">"#),
        "{html}"
    );
    let (h, png) = eml
        .parts
        .iter()
        .find(|(h, _)| {
            h.iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("Content-ID") && v == "<trend>")
        })
        .expect("an inline part with Content-ID <trend>");
    let header = |name: &str| {
        h.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("Content-Type"), Some("image/png"));
    assert_eq!(header("Content-Disposition"), Some("inline"));
    let img = decode(png);
    assert_eq!((img.0, img.1), (480, 160));
    let points: Vec<_> = values
        .iter()
        .map(|(v, l)| (Some(*v), Level::parse(l)))
        .collect();
    let scale = chart::scale(&points, Some(3.5), Some(3.0));
    assert!(
        row_has(&img, scale.row(3.5), chart::WARN_COLOUR),
        "no warn line"
    );
    assert!(
        row_has(&img, scale.row(3.0), chart::CRITICAL_COLOUR),
        "no critical line"
    );
    let stored: Vec<u8> = w
        .conn
        .query_row(
            "SELECT chart_png FROM conveyor.outbox WHERE delivered_at IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(&stored, png, "the delivered chart is the stored one");
}

fn assert_headers(eml: &Eml, rule: &str, level: &str, state: &str) {
    assert_eq!(eml.header("X-Conveyor-Rule").as_deref(), Some(rule));
    assert_eq!(eml.header("X-Conveyor-Level").as_deref(), Some(level));
    assert_eq!(eml.header("X-Conveyor-State").as_deref(), Some(state));
}

const FIRING: &str = "\
CSAT below target: Ann Lee

Firing (warn) since 2026-01-27 06:00 UTC.
Ann Lee (a1) is at 3.2 for 2026-01-26, below the warn threshold of 3.5.

Trend of the last 4 period(s) (warn below 3.5, critical below 3):
  period        value     level
  2026-01-05    3.6       ok
  2026-01-12    3.4       warn
  2026-01-19    3.8       ok
  2026-01-26    3.2       warn

Compared with the Tier 1 group for 2026-01-26 (4 in all): median 4.2, 25th percentile 3.8; 1 of 4 breaches.

Weekly average CSAT below target, and in the bottom quarter of the team.

What to do: Book a coaching session with Ann Lee this week.

To silence this alert for 7 days, run:
  conveyor -c /c/conveyor.toml silence add csat_below_target a1 --for 7d --reason 'being handled'

Rule csat_below_target, owned by cc-ops@example.com (area=support).
";

const ESCALATED: &str = "\
CSAT below target: Ann Lee

Escalated to critical at 2026-01-28 06:00 UTC: it was announced as warn and has been firing since 2026-01-27 06:00 UTC.
Ann Lee (a1) is at 2.8 for 2026-01-26, below the critical threshold of 3.

Trend of the last 4 period(s) (warn below 3.5, critical below 3):
  period        value     level
  2026-01-05    3.6       ok
  2026-01-12    3.4       warn
  2026-01-19    3.8       ok
  2026-01-26    2.8       critical

Compared with the Tier 1 group for 2026-01-26 (4 in all): median 4.2, 25th percentile 3.7; 1 of 4 breaches.

Weekly average CSAT below target, and in the bottom quarter of the team.

What to do: Book a coaching session with Ann Lee this week.

To silence this alert for 7 days, run:
  conveyor -c /c/conveyor.toml silence add csat_below_target a1 --for 7d --reason 'being handled'

Rule csat_below_target, owned by cc-ops@example.com (area=support).
";

const RESOLVED: &str = "\
CSAT below target: Ann Lee

Resolved at 2026-01-29 06:00 UTC after firing for 2 days.
Ann Lee is back at 3.9 for 2026-01-26 (the alert clears at 3.5 or above).

Trend of the last 4 period(s) (warn below 3.5, critical below 3):
  period        value     level
  2026-01-05    3.6       ok
  2026-01-12    3.4       warn
  2026-01-19    3.8       ok
  2026-01-26    3.9       ok

Compared with the Tier 1 group for 2026-01-26 (4 in all): median 4.2, 25th percentile 3.98; 0 of 4 breach.

Weekly average CSAT below target, and in the bottom quarter of the team.

Rule csat_below_target, owned by cc-ops@example.com (area=support).
";

#[test]
fn outbox_golden_csat_firing_escalation_and_resolve() {
    let w = world(TEAM);
    let smtp = Smtp::start(&w.dir.path().join("mail"), &[]);
    let config = config(smtp.port, CSAT);
    let rule = &config.rules[0];

    crate::rules::evaluate_at(&w.conn, rule, at(27)).unwrap();
    let firing = one_email(&w, &smtp, &config, at(27));
    assert_eq!(
        firing.header("Subject").as_deref(),
        Some("[FIRING warn] CSAT below target: Ann Lee")
    );
    assert_headers(&firing, "csat_below_target", "warn", "firing");
    assert_eq!(firing.text, FIRING);
    assert_same_content(&firing);
    let trend = [(3.6, "ok"), (3.4, "warn"), (3.8, "ok"), (3.2, "warn")];
    assert_trend_chart(&w, &firing, &trend);

    // Ann's latest week is revised down past critical: one more e-mail.
    w.conn
        .execute_batch("UPDATE w SET score = 2.8 WHERE agent = 'a1' AND week = DATE '2026-01-26'")
        .unwrap();
    crate::rules::evaluate_at(&w.conn, rule, at(28)).unwrap();
    let escalated = one_email(&w, &smtp, &config, at(28));
    assert_eq!(
        escalated.header("Subject").as_deref(),
        Some("[FIRING critical] CSAT below target: Ann Lee")
    );
    assert_headers(&escalated, "csat_below_target", "critical", "firing");
    assert_eq!(escalated.text, ESCALATED);
    assert_same_content(&escalated);
    let trend = [(3.6, "ok"), (3.4, "warn"), (3.8, "ok"), (2.8, "critical")];
    assert_trend_chart(&w, &escalated, &trend);
    // Still critical the next time: nothing more to tell.
    crate::rules::evaluate_at(&w.conn, rule, at(28) + Duration::hours(1)).unwrap();
    let r = deliver_due(
        &w.conn,
        config.smtp.as_ref().unwrap(),
        at(28) + Duration::hours(1),
    );
    assert_eq!(r.unwrap().attempted(), 0, "an escalation is told once");

    // Back above target: the resolve notice (notify_resolved).
    w.conn
        .execute_batch("UPDATE w SET score = 3.9 WHERE agent = 'a1' AND week = DATE '2026-01-26'")
        .unwrap();
    crate::rules::evaluate_at(&w.conn, rule, at(29)).unwrap();
    let resolved = one_email(&w, &smtp, &config, at(29));
    assert_eq!(
        resolved.header("Subject").as_deref(),
        Some("[RESOLVED] CSAT below target: Ann Lee")
    );
    assert_headers(&resolved, "csat_below_target", "critical", "resolved");
    assert_eq!(resolved.text, RESOLVED);
    assert_same_content(&resolved);
}

const HOURS: &str = r#"
[[reconcile]]
name = "hours"
left_name = "payroll"
right_name = "contact_center"
left = { table = "paid" }
right = { table = "logged" }
keys = [{ left = "email", normalize = "email" }, { left = "period_start" }]
compare = [{ left = "hours", absolute = 0.25 }]

[[rules]]
name = "hours_disagree"
title = "Paid hours differ from logged hours"
next_step = "Check the timesheet before the next pay run."
measure = { reconciliation = "hours" }
direction = "above"
warn = 0

[[rules.actions]]
type = "email"
to = ["payroll@example.com"]
"#;

const HOURS_TEXT: &str = "\
Paid hours differ from logged hours: ann@example.com, 2026-01-05

Firing (warn) since 2026-01-20 06:00 UTC.
Payroll and contact center disagree.

  column          payroll         contact center  difference
  hours           75              79.5            +4.5

What to do: Check the timesheet before the next pay run.

To silence this alert for 7 days, run:
  conveyor -c /c/conveyor.toml silence add hours_disagree 'ann@example.com|2026-01-05' --for 7d --reason 'being handled'

Rule hours_disagree.


Paid hours differ from logged hours: Bob@Example.com, 2026-01-05

Firing (warn) since 2026-01-20 06:00 UTC.
Found in payroll, with no match in contact center.

  column          payroll         contact center  difference
  hours           80              —               —

What to do: Check the timesheet before the next pay run.

To silence this alert for 7 days, run:
  conveyor -c /c/conveyor.toml silence add hours_disagree 'bob@example.com|2026-01-05' --for 7d --reason 'being handled'

Rule hours_disagree.
";

#[test]
fn outbox_golden_reconciliation_alert_names_both_sides() {
    let w = world(
        "CREATE TABLE paid (email VARCHAR, period_start DATE, hours DECIMAL(12, 3));
         INSERT INTO paid VALUES ('ann@example.com', DATE '2026-01-05', 75.0),
                                 ('Bob@Example.com', DATE '2026-01-05', 80.0),
                                 ('cy@example.com', DATE '2026-01-05', 40.0);
         CREATE TABLE logged (email VARCHAR, period_start DATE, hours DOUBLE);
         INSERT INTO logged VALUES ('ann@example.com', DATE '2026-01-05', 79.5),
                                   ('cy@example.com', DATE '2026-01-05', 40.1);",
    );
    let smtp = Smtp::start(&w.dir.path().join("mail"), &[]);
    let config = config(smtp.port, HOURS);
    crate::recon::run_at(&w.conn, &config.reconciles[0], "manual", Some(at(20))).unwrap();
    crate::rules::evaluate_at(&w.conn, &config.rules[0], at(20)).unwrap();
    // The period is the evaluation's date, not the run's wall clock.
    let periods: Vec<String> = w
        .conn
        .prepare("SELECT DISTINCT last_period FROM conveyor.alerts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(periods, ["2026-01-20"]);
    let eml = one_email(&w, &smtp, &config, at(20));
    assert_eq!(
        eml.header("Subject").as_deref(),
        Some("[FIRING warn] Paid hours differ from logged hours: ann@example.com, 2026-01-05 (+1 more)")
    );
    assert_headers(&eml, "hours_disagree", "warn", "firing");
    assert_eq!(eml.text, HOURS_TEXT);
    assert_same_content(&eml);
    // Not raw JSON: the sides by name, the values as numbers.
    assert!(!eml.text.contains("\"column\""), "{}", eml.text);
    assert!(
        collapse(eml.html.as_deref().unwrap()).contains("<th align=\"right\">contact center</th>")
    );
}

#[test]
fn outbox_the_same_content_check_catches_a_sentence_the_html_leaves_out() {
    // The demo's old coaching e-mail: the text told of the enrolment, the
    // HTML part did not.
    let eml = Eml {
        headers: vec![],
        text: "Please book a coaching session this week. Ann has been enrolled in the CSAT recovery course.\n".into(),
        html: Some("<p>Please book a coaching session this week.</p>".into()),
        parts: vec![],
    };
    let missing = std::panic::catch_unwind(|| assert_same_content(&eml));
    assert!(missing.is_err());
    assert_eq!(
        sentences(&eml.text),
        [
            "Please book a coaching session this week",
            "Ann has been enrolled in the CSAT recovery course."
        ]
    );
    assert_eq!(
        visible_text("<p>Firing (<b>warn</b>) at 06:00</p><p>&#x2f;c&#x2f;x &amp; y</p>"),
        "Firing (warn) at 06:00 /c/x & y"
    );
}

#[test]
fn outbox_a_redelivery_keeps_the_message_id_and_the_headers() {
    let w = world(TEAM);
    let smtp = Smtp::start(&w.dir.path().join("mail"), &[]);
    let config = config(smtp.port, CSAT);
    crate::rules::evaluate_at(&w.conn, &config.rules[0], at(27)).unwrap();
    let first = one_email(&w, &smtp, &config, at(27));
    // The process died after the server took it, before the row was marked.
    w.conn
        .execute_batch("UPDATE conveyor.outbox SET delivered_at = NULL")
        .unwrap();
    let again = one_email(&w, &smtp, &config, at(27) + Duration::minutes(1));
    for name in [
        "Message-ID",
        "Subject",
        "X-Conveyor-Rule",
        "X-Conveyor-Level",
        "X-Conveyor-State",
    ] {
        assert!(first.header(name).is_some(), "{name}");
        assert_eq!(first.header(name), again.header(name), "{name}");
    }
    assert_eq!(first.text, again.text);
}

#[test]
fn outbox_golden_an_entity_gone_from_the_measure_is_announced_as_resolved() {
    let w = world(TEAM);
    let smtp = Smtp::start(&w.dir.path().join("mail"), &[]);
    let config = config(smtp.port, CSAT);
    let rule = &config.rules[0];
    crate::rules::evaluate_at(&w.conn, rule, at(27)).unwrap();
    one_email(&w, &smtp, &config, at(27));
    // Ann moves to another team's system: the measure no longer has her.
    w.conn
        .execute_batch("DELETE FROM w WHERE agent = 'a1'")
        .unwrap();
    crate::rules::evaluate_at(&w.conn, rule, at(28)).unwrap();
    // Her supervisor and name come from the evaluation that last saw her.
    let resolved = one_email(&w, &smtp, &config, at(28));
    assert_eq!(resolved.header("To").as_deref(), Some("sup@example.com"));
    assert_eq!(
        resolved.header("Subject").as_deref(),
        Some("[RESOLVED] CSAT below target: Ann Lee")
    );
    assert_headers(&resolved, "csat_below_target", "warn", "resolved");
    assert!(
        resolved.text.starts_with(
            "CSAT below target: Ann Lee\n\nResolved at 2026-01-28 06:00 UTC after firing for 1 day.\n\
             Ann Lee is no longer reported by the measure; the last value was 3.2 for 2026-01-26.\n"
        ),
        "{}",
        resolved.text
    );
    assert_same_content(&resolved);
}
