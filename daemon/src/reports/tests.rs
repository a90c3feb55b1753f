//! Reports over a crafted back office: ten clerks, eight weeks, nine who
//! meet the accuracy objective and a tenth who never does; two teams with
//! a supervisor each. What each section says, the charts, one report per
//! recipient, never twice a period, and the e-mail aiosmtpd receives.

use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use conveyor_config::Config;
use duckdb::Connection;

use super::*;
use crate::outbox::content_tests::mime::Eml;
use crate::warehouse::Warehouse;

struct Fixture {
    dir: tempfile::TempDir,
    conn: Connection,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch(
        "CREATE TABLE q AS
         SELECT 'c' || lpad(i::VARCHAR, 2, '0') AS clerk,
                'Clerk ' || i AS clerk_name,
                CASE WHEN i <= 5 THEN 'north' ELSE 'south' END AS team,
                CASE WHEN i <= 5 THEN 'north@example.com' ELSE 'south@example.com' END AS supervisor,
                DATE '2026-09-14' + 7 * w::INTEGER AS week,
                CASE WHEN i = 10 THEN 94.0 + (w % 2) ELSE 98.5 + (i % 3) * 0.4 END AS accuracy,
                300 + i * 30 + w AS handle
         FROM range(1, 11) t(i), range(0, 8) s(w)",
    )
    .unwrap();
    Fixture { dir, conn }
}

fn config(port: u16) -> Config {
    let text = format!(
        r#"
[warehouse]
path = "wh.duckdb"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Conveyor <conveyor@example.com>"

[[reports]]
name = "quality"
title = "Back-office quality, week of {{{{ period }}}}"
intro = "How the clerks did against the accuracy objective."
to = ["ops@example.com"]

[[reports.sections]]
title = "Accuracy against the objective"
type = "kpis"
entity_label = "clerk_name"
kpis = [{{ label = "Accuracy %", measure = "SELECT clerk AS entity, week AS period, accuracy AS value, clerk_name FROM q", goal = 98, amber = 96, direction = "above" }}]

[[reports.sections]]
title = "The trend"
type = "trend"
label = "Accuracy %"
measure = "SELECT clerk AS entity, week AS period, accuracy AS value FROM q"
goal = 98
direction = "above"

[[reports.sections]]
title = "Handle time and accuracy"
type = "correlation"
entity_label = "clerk_name"
x = {{ label = "Handle time (s)", measure = "SELECT clerk AS entity, week AS period, handle AS value, clerk_name FROM q" }}
y = {{ label = "Accuracy %", measure = "SELECT clerk AS entity, week AS period, accuracy AS value, clerk_name FROM q" }}

[[reports]]
name = "team"
title = "Team {{{{ team }}}}"
recipients = "SELECT DISTINCT supervisor AS email, team FROM q ORDER BY team"

[[reports.sections]]
type = "kpis"
only = "team"
entity_label = "clerk_name"
periods = 4
kpis = [{{ label = "Accuracy %", measure = "SELECT clerk AS entity, week AS period, accuracy AS value, clerk_name, team FROM q", goal = 98, direction = "above" }}]

[[reports.sections]]
title = "Worst week first"
type = "table"
sql = "SELECT clerk_name, min(accuracy) AS worst FROM q WHERE team = getvariable('team') GROUP BY ALL ORDER BY worst, clerk_name LIMIT 3"
"#
    );
    conveyor_config::parse(&text, Path::new("/c/conveyor.toml")).unwrap()
}

fn at() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 2)
        .unwrap()
        .and_hms_opt(7, 0, 0)
        .unwrap()
}

fn report<'c>(config: &'c Config, name: &str) -> &'c ReportConfig {
    config.reports.iter().find(|r| r.name == name).unwrap()
}

#[test]
fn reports_a_kpi_section_says_how_many_meet_the_objective_and_who_never_does() {
    let f = fixture();
    let config = config(2525);
    let out = render_all(&f.conn, report(&config, "quality"), at()).unwrap();
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.recipient, "ops@example.com");
    assert_eq!(r.subject, "Back-office quality, week of 2026-11-02");
    assert!(
        r.text.contains(
            "Accuracy %: 9 of 10 meet the objective (goal at least 98). \
             Met in none of the 8 periods: Clerk 10."
        ),
        "{}",
        r.text
    );
    // The table: the tenth red, met in none of its 8 weeks; the others green.
    let line = |who: &str| {
        r.text
            .lines()
            .find(|l| l.starts_with(&format!("{who} ")))
            .unwrap_or_else(|| panic!("no row for {who}:\n{}", r.text))
            .to_string()
    };
    assert!(
        line("Clerk 10").contains("95 red") && line("Clerk 10").contains("0/8"),
        "{}",
        line("Clerk 10")
    );
    assert!(
        line("Clerk 3").contains("98.5 green") && line("Clerk 3").contains("8/8"),
        "{}",
        line("Clerk 3")
    );
    // The entity column is headed by the label people know it by.
    assert!(r.text.contains("\nclerk name "), "{}", r.text);
    // The HTML colours the cells.
    assert!(
        r.html.contains("background:#f8d0d0\">95 red</td>"),
        "{}",
        r.html
    );
    // The trend: the clerks' average, week by week, against the goal.
    assert!(
        r.text
            .contains("Accuracy % per period, the average of 10 entities: "),
        "{}",
        r.text
    );
    // Handle time rises as accuracy falls across the clerks.
    assert!(
        r.text.contains("Handle time (s) and Accuracy % show a ")
            && r.text.contains("negative relation (r = -"),
        "{}",
        r.text
    );
    // Every sentence of the text part is in the HTML part.
    for sentence in r.text.lines().filter(|l| l.ends_with('.')) {
        assert!(
            r.html.contains(&escape_html(sentence)),
            "missing from the HTML: {sentence}"
        );
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[test]
fn reports_the_trend_and_the_scatter_are_inline_pngs_the_html_refers_to() {
    let f = fixture();
    let config = config(2525);
    let r = render_all(&f.conn, report(&config, "quality"), at())
        .unwrap()
        .remove(0);
    let cids: Vec<&str> = r.images.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cids, ["section-2", "section-3"]);
    for (cid, png) in &r.images {
        assert!(r.html.contains(&format!("src=\"cid:{cid}\"")), "{cid}");
        let (w, h, _) = crate::outbox::chart::tests::decode(png);
        assert_eq!((w, h), (chart::WIDTH, chart::HEIGHT));
    }
}

#[test]
fn reports_one_per_recipient_row_each_with_its_own_slice() {
    let f = fixture();
    let config = config(2525);
    let out = render_all(&f.conn, report(&config, "team"), at()).unwrap();
    let to: Vec<&str> = out.iter().map(|r| r.recipient.as_str()).collect();
    assert_eq!(to, ["north@example.com", "south@example.com"]);
    let (north, south) = (&out[0], &out[1]);
    assert_eq!(north.subject, "Team north");
    assert!(
        north.text.contains("Accuracy %: 5 of 5 meet the objective"),
        "{}",
        north.text
    );
    assert!(!north.text.contains("Clerk 6"), "{}", north.text);
    assert!(
        south.text.contains("Accuracy %: 4 of 5 meet the objective"),
        "{}",
        south.text
    );
    assert!(
        south
            .text
            .contains("Met in none of the 4 periods: Clerk 10."),
        "{}",
        south.text
    );
    // The table section reads the recipient's variable too.
    assert!(south.text.contains("clerk_name  worst"), "{}", south.text);
    assert!(!south.text.contains("Clerk 1 "), "{}", south.text);
    // Variables do not outlive the report.
    let left: bool = f
        .conn
        .query_row("SELECT getvariable('team') IS NULL", [], |r| r.get(0))
        .unwrap();
    assert!(left, "the recipient's variable is reset");
}

#[test]
fn reports_a_period_reaches_each_recipient_once() {
    let f = fixture();
    let config = config(2525);
    let team = report(&config, "team");
    assert_eq!(enqueue(&f.conn, team, at()).unwrap(), 2);
    // The schedule firing again the same day, or a restart: nothing new.
    assert_eq!(
        enqueue(&f.conn, team, at() + chrono::Duration::hours(3)).unwrap(),
        0
    );
    // The next period is a new report.
    assert_eq!(
        enqueue(&f.conn, team, at() + chrono::Duration::days(7)).unwrap(),
        2
    );
    let rows: i64 = f
        .conn
        .query_row(
            "SELECT count(*) FROM conveyor.outbox WHERE rule = 'report:team'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 4);
}

#[test]
fn reports_arrive_as_multipart_emails_with_their_charts_inline() {
    let f = fixture();
    let smtp = crate::outbox::tests::Smtp::start(&f.dir.path().join("mail"), &[]);
    let config = config(smtp.port);
    assert_eq!(
        enqueue(&f.conn, report(&config, "quality"), at()).unwrap(),
        1
    );
    // Queued at the wall clock's now, whatever period it reports on.
    let now = chrono::Utc::now().naive_utc();
    let delivered =
        crate::outbox::deliver_due(&f.conn, config.smtp.as_ref().unwrap(), now).unwrap();
    assert_eq!(delivered.delivered, 1);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let eml = Eml::parse(&mails[0]);
    assert_eq!(
        eml.header("Subject").as_deref(),
        Some("Back-office quality, week of 2026-11-02")
    );
    assert_eq!(eml.header("X-Conveyor-Report").as_deref(), Some("quality"));
    assert!(
        eml.text.contains("9 of 10 meet the objective"),
        "{}",
        eml.text
    );
    let html = eml.html.as_deref().unwrap();
    assert!(html.contains("cid:section-2") && html.contains("cid:section-3"));
    let ids: Vec<String> = eml
        .parts
        .iter()
        .filter_map(|(h, _)| crate::outbox::content_tests::mime::header_in(h, "Content-ID"))
        .collect();
    assert_eq!(ids, ["<section-2>", "<section-3>"]);
    for (_, png) in &eml.parts {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}

#[test]
fn reports_a_broken_section_fails_the_report_and_names_the_section() {
    let f = fixture();
    let mut config = config(2525);
    let quality = config
        .reports
        .iter_mut()
        .find(|r| r.name == "quality")
        .unwrap();
    if let conveyor_config::SectionKind::Trend(series, _) = &mut quality.sections[1].kind {
        series.measure = "SELECT clerk AS entity, week AS period, no_such AS value FROM q".into();
    }
    let e = render_all(&f.conn, report(&config, "quality"), at()).unwrap_err();
    assert!(
        e.starts_with("report `quality`: section `The trend`: Accuracy %: "),
        "{e}"
    );
    // A query that writes is refused before it runs.
    let quality = config
        .reports
        .iter_mut()
        .find(|r| r.name == "quality")
        .unwrap();
    quality.sections[0].kind = conveyor_config::SectionKind::Table {
        sql: "DELETE FROM q".into(),
    };
    let e = render_all(&f.conn, report(&config, "quality"), at()).unwrap_err();
    assert!(e.contains("must be exactly one SELECT"), "{e}");
    let rows: i64 = f
        .conn
        .query_row("SELECT count(*) FROM q", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 80);
}

/// A recipients row is data (it may come from a vendor's API): a value
/// that looks like SQL stays a value — the variable holds it exactly and
/// nothing runs.
#[test]
fn reports_a_hostile_recipient_value_is_a_value_not_sql() {
    let f = fixture();
    let mut config = config(2525);
    let team = config
        .reports
        .iter_mut()
        .find(|r| r.name == "team")
        .unwrap();
    team.recipients =
        Some("SELECT 'sup@example.com' AS email, 'north''; DROP TABLE q; --' AS team".into());
    let out = render_all(&f.conn, report(&config, "team"), at()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].subject, "Team north'; DROP TABLE q; --");
    // No team of that name: an empty slice, and the table intact.
    assert!(
        out[0].text.contains("No values in these periods."),
        "{}",
        out[0].text
    );
    let rows: i64 = f
        .conn
        .query_row("SELECT count(*) FROM q", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 80);
    // A header injection through the title is flattened onto one line.
    let team = config
        .reports
        .iter_mut()
        .find(|r| r.name == "team")
        .unwrap();
    team.recipients =
        Some("SELECT 'sup@example.com' AS email, E'north\\r\\nBcc: x@evil.example' AS team".into());
    let out = render_all(&f.conn, report(&config, "team"), at()).unwrap();
    assert!(
        !out[0].subject.contains('\n') && !out[0].subject.contains('\r'),
        "{:?}",
        out[0].subject
    );
}
