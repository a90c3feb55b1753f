//! Crafted fixtures for the rule evaluator on a real DuckDB file: threshold
//! edges in both directions, `for`, hysteresis, history and measure errors.
//! The fixture table `m` is rewritten between evaluations to simulate time.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use conveyor_config::{Direction, Located, RuleConfig};

use super::*;
use crate::warehouse::Warehouse;

pub(super) struct Db {
    _dir: tempfile::TempDir,
    pub(super) conn: Connection,
}

pub(super) fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch(
        "CREATE TABLE m (agent VARCHAR, week DATE, score DOUBLE, supervisor VARCHAR)",
    )
    .unwrap();
    Db { _dir: dir, conn }
}

pub(super) fn rule(direction: Direction, warn: Option<f64>, critical: Option<f64>) -> RuleConfig {
    RuleConfig {
        name: "r".into(),
        description: None,
        owner: None,
        labels: Default::default(),
        title: "R".into(),
        entity_label: None,
        next_step: None,
        history_periods: conveyor_config::rules::DEFAULT_HISTORY_PERIODS,
        absent_after: conveyor_config::rules::DEFAULT_ABSENT_AFTER,
        reconciliation: None,
        measure: "SELECT agent AS entity, week AS period, score AS value, supervisor FROM m".into(),
        direction,
        warn,
        critical,
        for_evaluations: 1,
        resolve: warn.or(critical).unwrap(),
        after: vec![],
        schedule: None,
        actions: vec![],
        webhooks: vec![],
        notify_resolved: false,
        n_of_m: None,
        peer: None,
        repeat_secs: None,
        cooldown_secs: None,
        at: Located {
            file: "c.toml".into(),
            line: 1,
            col: 1,
            key: "rules[0]".into(),
        },
    }
}

/// Replaces the fixture with one row per agent for `week` (day of 2026-01).
fn set(conn: &Connection, day: u32, scores: &[(&str, f64)]) {
    conn.execute_batch("DELETE FROM m").unwrap();
    for (agent, score) in scores {
        conn.execute(
            "INSERT INTO m VALUES (?, make_date(2026, 1, ?), ?, 'sup@example.com')",
            duckdb::params![agent, day as i64, score],
        )
        .unwrap();
    }
}

pub(super) fn t(n: i64) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(6, 0, 0)
        .unwrap()
        + Duration::hours(n)
}

/// `t(n)` as DuckDB prints a TIMESTAMP cast to VARCHAR.
pub(super) fn ts(n: i64) -> String {
    t(n).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn levels(conn: &Connection, eval_id: i64) -> Vec<(String, String)> {
    let mut st = conn
        .prepare(
            "SELECT entity, level FROM conveyor.rule_results WHERE eval_id = ? ORDER BY entity",
        )
        .unwrap();
    st.query_map([eval_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `(state, consecutive)` of the alert on `entity`, if it has a row.
fn alert(conn: &Connection, entity: &str) -> Option<(String, i32)> {
    conn.query_row(
        "SELECT state, consecutive FROM conveyor.alerts WHERE rule = 'r' AND entity = ?",
        [entity],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

pub(super) fn state(conn: &Connection, entity: &str) -> Option<String> {
    alert(conn, entity).map(|a| a.0)
}

#[test]
fn rules_thresholds_at_and_just_past_the_limit_above() {
    let d = db();
    set(
        &d.conn,
        1,
        &[
            ("at_warn", 10.0),
            ("past_warn", 10.001),
            ("at_crit", 20.0),
            ("past_crit", 20.001),
            ("low", 3.0),
        ],
    );
    let s = evaluate_at(
        &d.conn,
        &rule(Direction::Above, Some(10.0), Some(20.0)),
        t(0),
    )
    .unwrap();
    assert_eq!(
        levels(&d.conn, s.eval_id),
        [
            ("at_crit", "warn"),
            ("at_warn", "ok"),
            ("low", "ok"),
            ("past_crit", "critical"),
            ("past_warn", "warn")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        (
            s.count(crate::rules::Level::Ok),
            s.count(crate::rules::Level::Warn),
            s.count(crate::rules::Level::Critical),
            s.rows()
        ),
        (2, 2, 1, 5)
    );
    assert_eq!((s.firing, s.started_firing), (3, 3));
    assert_eq!(
        state(&d.conn, "at_warn"),
        None,
        "a pass leaves no alert row"
    );
}

#[test]
fn rules_thresholds_at_and_just_past_the_limit_below() {
    let d = db();
    set(
        &d.conn,
        1,
        &[
            ("at_warn", 4.2),
            ("past_warn", 4.199),
            ("at_crit", 3.0),
            ("past_crit", 2.999),
            ("high", 5.0),
        ],
    );
    let s = evaluate_at(&d.conn, &rule(Direction::Below, Some(4.2), Some(3.0)), t(0)).unwrap();
    assert_eq!(
        levels(&d.conn, s.eval_id),
        [
            ("at_crit", "warn"),
            ("at_warn", "ok"),
            ("high", "ok"),
            ("past_crit", "critical"),
            ("past_warn", "warn")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let level: String = d
        .conn
        .query_row(
            "SELECT level FROM conveyor.alerts WHERE entity = 'past_crit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(level, "critical");
}

#[test]
fn rules_for_three_fires_only_on_the_third_consecutive_breach_and_a_pass_resets() {
    let d = db();
    let mut r = rule(Direction::Below, Some(4.0), None);
    r.for_evaluations = 3;
    // ann: breach, breach, pass, breach, breach, breach → fires at the 6th.
    let ann = [3.0, 3.0, 4.5, 3.0, 3.0, 3.0];
    let mut seen = Vec::new();
    for (i, score) in ann.iter().enumerate() {
        set(&d.conn, i as u32 + 1, &[("ann", *score)]);
        evaluate_at(&d.conn, &r, t(i as i64)).unwrap();
        seen.push(alert(&d.conn, "ann"));
    }
    let want = [
        Some(("pending", 1)),
        Some(("pending", 2)),
        None,
        Some(("pending", 1)),
        Some(("pending", 2)),
        Some(("firing", 3)),
    ]
    .map(|a| a.map(|(s, n)| (s.to_string(), n)));
    assert_eq!(seen, want);
    let (since, fired): (String, String) = d
        .conn
        .query_row(
            "SELECT since::VARCHAR, fired_at::VARCHAR FROM conveyor.alerts WHERE entity = 'ann'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((since, fired), (ts(5), ts(5)));
}

#[test]
fn rules_hysteresis_keeps_firing_between_resolve_and_warn() {
    let d = db();
    let mut r = rule(Direction::Above, Some(90.0), None);
    r.resolve = 80.0;
    let steps = [
        (95.0, "firing"),
        (85.0, "firing"), // between resolve and warn: still firing
        (90.0, "firing"), // at warn: no breach, not recovered either
        (80.5, "firing"),
        (80.0, "resolved"), // back at resolve
        (70.0, "resolved"),
        (91.0, "firing"), // breaches again: fires again (for = 1)
    ];
    for (i, (value, want)) in steps.iter().enumerate() {
        set(&d.conn, i as u32 + 1, &[("bob", *value)]);
        let s = evaluate_at(&d.conn, &r, t(i as i64)).unwrap();
        assert_eq!(
            state(&d.conn, "bob").as_deref(),
            Some(*want),
            "step {i}: value {value}"
        );
        if i == 4 {
            assert_eq!(s.resolved, 1);
        }
    }
    let (fired, resolved): (String, Option<String>) = d
        .conn
        .query_row("SELECT fired_at::VARCHAR, resolved_at::VARCHAR FROM conveyor.alerts WHERE entity = 'bob'", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((fired, resolved), (ts(6), None));
}

#[test]
fn rules_a_pending_that_clears_after_an_earlier_firing_goes_back_to_resolved() {
    let d = db();
    let mut r = rule(Direction::Above, Some(10.0), None);
    r.for_evaluations = 2;
    for (i, v) in [11.0, 11.0, 5.0, 11.0, 5.0].iter().enumerate() {
        set(&d.conn, i as u32 + 1, &[("cy", *v)]);
        evaluate_at(&d.conn, &r, t(i as i64)).unwrap();
    }
    let (state, resolved_at): (String, String) = d
        .conn
        .query_row(
            "SELECT state, resolved_at::VARCHAR FROM conveyor.alerts WHERE entity = 'cy'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), resolved_at), ("resolved", ts(2)));
}

#[test]
fn rules_results_are_appended_across_evaluations_with_context() {
    let d = db();
    let r = rule(Direction::Below, Some(4.0), None);
    set(&d.conn, 1, &[("ann", 3.0), ("bob", 4.5)]);
    let first = evaluate_at(&d.conn, &r, t(0)).unwrap();
    set(&d.conn, 8, &[("ann", 4.5), ("bob", 4.5)]);
    let second = evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert!(second.eval_id > first.eval_id);
    let history: Vec<(i64, String, String, String)> = {
        let mut st = d
            .conn
            .prepare("SELECT eval_id, entity, period, level FROM conveyor.rule_results ORDER BY eval_id, entity")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(
        (history[0].1.as_str(), history[0].3.as_str()),
        ("ann", "warn")
    );
    assert_eq!(
        (history[0].2.as_str(), history[2].2.as_str()),
        ("2026-01-01", "2026-01-08")
    );
    assert_eq!(history[2].3, "ok");
    let supervisor: String = d
        .conn
        .query_row(
            "SELECT context->>'supervisor' FROM conveyor.rule_results LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(supervisor, "sup@example.com");
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
}

#[test]
fn rules_a_measure_ending_in_a_line_comment_still_runs() {
    let d = db();
    let mut r = rule(Direction::Above, Some(1.0), None);
    r.measure =
        "SELECT agent AS entity, week AS period, score AS value FROM m -- weekly scores".into();
    set(&d.conn, 1, &[("ann", 2.0)]);
    assert!(check_measure(&d.conn, &r).is_none());
    assert_eq!(evaluate_at(&d.conn, &r, t(0)).unwrap().firing, 1);
}

#[test]
fn rules_the_alert_follows_the_latest_period() {
    let d = db();
    d.conn
        .execute_batch(
            "INSERT INTO m VALUES ('ann', DATE '2026-01-01', 3.0, NULL), ('ann', DATE '2026-01-15', 4.5, NULL),
                                  ('ann', DATE '2026-01-08', 3.0, NULL)",
        )
        .unwrap();
    let s = evaluate_at(&d.conn, &rule(Direction::Below, Some(4.0), None), t(0)).unwrap();
    assert_eq!(
        (
            s.count(crate::rules::Level::Warn),
            s.count(crate::rules::Level::Ok),
            s.firing
        ),
        (2, 1, 0)
    );
    assert_eq!(state(&d.conn, "ann"), None);
}

#[test]
fn rules_a_bad_measure_records_nothing_and_says_why() {
    let d = db();
    let mut r = rule(Direction::Above, Some(1.0), None);
    r.measure = "SELECT agent AS who, week AS period, score AS value FROM m".into();
    let e = evaluate_at(&d.conn, &r, t(0)).unwrap_err().to_string();
    assert!(
        e.contains("lacks column(s) entity") && e.contains("who, period, value"),
        "{e}"
    );

    r.measure = "SELECT agent AS entity, 1 AS period, score AS value FROM m".into();
    set(&d.conn, 1, &[("ann", 2.0)]);
    d.conn
        .execute_batch("INSERT INTO m SELECT * FROM m")
        .unwrap();
    let e = evaluate_at(&d.conn, &r, t(0)).unwrap_err().to_string();
    assert!(
        e.contains("returned 2 rows for entity `ann`, period `1`"),
        "{e}"
    );

    r.measure = "SELECT * FROM no_such_table".into();
    let e = evaluate_at(&d.conn, &r, t(0)).unwrap_err().to_string();
    assert!(e.contains("rule `r`") && e.contains("no_such_table"), "{e}");

    let rows: i64 = d
        .conn
        .query_row("SELECT count(*) FROM conveyor.rule_results", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0);
    // The temporary tables are gone: the next evaluation works.
    r.measure = "SELECT agent AS entity, week AS period, score AS value FROM m".into();
    d.conn.execute_batch("DELETE FROM m").unwrap();
    set(&d.conn, 1, &[("ann", 2.0)]);
    assert_eq!(evaluate_at(&d.conn, &r, t(1)).unwrap().firing, 1);
}

#[tokio::test]
async fn rules_follow_the_sources_and_reconciliations_that_just_ran() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[warehouse]
path = "{wh}"
[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"
[sources.accounting]
type = "rest"
base_url = "https://qbo.example.com"
[[sources.accounting.streams]]
name = "invoices"
path = "/invoices"
primary_key = "id"
[[reconcile]]
name = "pairs"
after = ["ats"]
left = {{ table = "a" }}
right = {{ table = "b" }}
keys = [{{ left = "id" }}]
[[rules]]
name = "by_source"
after = ["ats"]
measure = "SELECT 'ann' AS entity, 1 AS period, 5 AS value"
direction = "above"
warn = 1
[[rules]]
name = "by_recon"
after = ["pairs"]
measure = "SELECT 'bob' AS entity, 1 AS period, 0 AS value"
direction = "above"
warn = 1
[[rules]]
name = "not_yet"
after = ["accounting"]
measure = "SELECT 'cy' AS entity, 1 AS period, 5 AS value"
direction = "above"
warn = 1
"#,
        wh = dir.path().join("wh.duckdb").display()
    );
    let config = conveyor_config::parse(&text, &dir.path().join("c.toml")).unwrap();
    let wh = std::sync::Arc::new(Warehouse::open(&config.warehouse.path).unwrap());
    wh.connection()
        .unwrap()
        .execute_batch("CREATE TABLE a (id INT); CREATE TABLE b (id INT);")
        .unwrap();
    let recons =
        crate::pipeline::after_sync(wh.clone(), std::sync::Arc::new(config), vec!["ats".into()])
            .await;
    assert_eq!(recons.len(), 1);
    let conn = wh.connection().unwrap();
    let mut st = conn
        .prepare("SELECT rule, entity, level FROM conveyor.rule_results ORDER BY rule")
        .unwrap();
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [("by_recon", "bob", "ok"), ("by_source", "ann", "warn")].map(|(a, b, c)| (
            a.into(),
            b.into(),
            c.into()
        ))
    );
    let firing: i64 = conn
        .query_row(
            "SELECT count(*) FROM conveyor.alerts WHERE rule = 'by_source' AND state = 'firing'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(firing, 1);
}

#[test]
fn rules_check_binds_the_measure_without_running_it() {
    let d = db();
    let mut r = rule(Direction::Above, Some(1.0), None);
    assert!(check_measure(&d.conn, &r).is_none());
    r.measure = "SELECT agent AS who, week AS period, score AS value FROM m".into();
    let p = check_measure(&d.conn, &r).unwrap();
    assert!(
        !p.not_there_yet && p.message.contains("lacks column(s) entity"),
        "{p:?}"
    );
    r.measure = "SELECT * FROM src.not_synced_yet".into();
    let p = check_measure(&d.conn, &r).unwrap();
    assert!(
        p.not_there_yet && p.message.contains("not_synced_yet"),
        "{p:?}"
    );
    r.measure = "SELECT agent AS entity, week AS period, scor AS value FROM m".into();
    let p = check_measure(&d.conn, &r).unwrap();
    assert!(!p.not_there_yet && p.message.contains("scor"), "{p:?}");
}

#[test]
fn rules_a_measure_is_one_select_and_cannot_smuggle_a_second_statement() {
    let d = db();
    d.conn
        .execute_batch("CREATE TABLE victim (x INT); INSERT INTO victim VALUES (1)")
        .unwrap();
    let mut r = rule(Direction::Above, Some(1.0), None);
    // Closes the wrapping subquery and drops a table, if it were spliced.
    r.measure = "SELECT agent AS entity, week AS period, score AS value FROM m) AS x; DROP TABLE victim; SELECT * FROM (SELECT 1".into();
    let p = check_measure(&d.conn, &r).unwrap();
    assert!(
        p.message.contains("exactly one SELECT") || p.message.contains("rror"),
        "{p:?}"
    );
    assert!(evaluate_at(&d.conn, &r, chrono::Utc::now().naive_utc()).is_err());
    let n: i64 = d
        .conn
        .query_row("SELECT count(*) FROM victim", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the table survived");
}
