//! `n_of_m`, peer-relative conditions, silences, repeat intervals and
//! cooldowns, each over a simulated clock on a real DuckDB file.

use conveyor_config::{Direction, Peer, PeerCondition};

use super::tests::{db, rule, state, t, ts};
use super::*;

/// Replaces the fixture table `m` with `(agent, day of 2026-01, score)` rows.
fn rows(conn: &Connection, rows: &[(&str, u32, f64)]) {
    conn.execute_batch("DELETE FROM m").unwrap();
    for (agent, day, score) in rows {
        conn.execute(
            "INSERT INTO m VALUES (?, make_date(2026, 1, ?), ?, 'sup@example.com')",
            duckdb::params![agent, *day as i64, score],
        )
        .unwrap();
    }
}

/// `rule(…)` with a webhook action, so that its alerts are announced (the
/// outbox rows are written; nothing is delivered here).
fn announcing(direction: Direction, warn: Option<f64>) -> conveyor_config::RuleConfig {
    let mut r = rule(direction, warn, None);
    r.webhooks = vec![conveyor_config::WebhookAction {
        url: "http://127.0.0.1:9/hook".into(),
        secret: None,
        body: None,
        at: r.at.clone(),
    }];
    r
}

/// When the alert on `entity` last queued a notification.
fn notified(conn: &Connection, entity: &str) -> Option<String> {
    conn.query_row(
        "SELECT CAST(last_notified_at AS VARCHAR) FROM conveyor.alerts WHERE rule = 'r' AND entity = ?",
        [entity],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn rules_n_of_m_fires_on_three_breaching_weeks_of_four_and_resolves_when_fewer() {
    let d = db();
    let mut r = rule(Direction::Below, Some(3.5), None);
    r.n_of_m = Some((3, 4));
    // ann: low in weeks 1, 2 and 4 (not 3); ben: low in weeks 1 and 2 only;
    // cat: low in weeks 2–4 but with only three weeks of history.
    let mut data = vec![];
    for (week, (a, b)) in [(3.0, 3.0), (3.1, 3.2), (4.2, 4.0), (3.3, 4.1)]
        .iter()
        .enumerate()
    {
        let day = 1 + 7 * week as u32;
        data.extend([("ann", day, *a), ("ben", day, *b)]);
    }
    data.extend([("cat", 8, 3.0), ("cat", 15, 3.0), ("cat", 22, 3.0)]);
    rows(&d.conn, &data);
    let s = evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("firing"));
    assert_eq!(state(&d.conn, "ben"), None, "2 of 4 is not 3 of 4");
    assert_eq!(state(&d.conn, "cat").as_deref(), Some("firing"));
    assert_eq!(s.started_firing, 2);
    // The latest week's own level stays in the history (ann's week 4: warn).
    let breaches: i64 = d
        .conn
        .query_row(
            "SELECT count(*) FROM conveyor.rule_results WHERE entity = 'ann' AND level = 'warn'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(breaches, 3);
    // Week 5 is good for ann: weeks 2–5 hold two breaches → resolved.
    data.push(("ann", 29, 4.4));
    rows(&d.conn, &data);
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
    assert_eq!(state(&d.conn, "cat").as_deref(), Some("firing"));
}

#[test]
fn rules_peer_percentile_flags_only_the_tail_of_each_group() {
    let d = db();
    d.conn
        .execute_batch("ALTER TABLE m ADD COLUMN team VARCHAR")
        .unwrap();
    // Team a scores 1..=10, team b 11..=20: each team's 10th percentile
    // (interpolated) is 1.9 and 11.9 — one member of each is below it.
    for i in 1..=10 {
        d.conn
            .execute(
                "INSERT INTO m VALUES (?, DATE '2026-01-05', ?, 's@x', 'a'), (?, DATE '2026-01-05', ?, 's@x', 'b')",
                duckdb::params![format!("a{i}"), i as f64, format!("b{i}"), (i + 10) as f64],
            )
            .unwrap();
    }
    let mut r = rule(Direction::Below, Some(5.0), None);
    r.warn = None;
    r.measure = "SELECT agent AS entity, week AS period, score AS value, team FROM m".into();
    r.resolve = f64::NEG_INFINITY;
    r.peer = Some(Peer {
        group: Some("team".into()),
        condition: PeerCondition::Percentile(10.0),
    });
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    let firing: Vec<String> = d
        .conn
        .prepare("SELECT entity FROM conveyor.alerts WHERE state = 'firing' ORDER BY entity")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(firing, ["a1", "b1"]);
    // With an absolute warn as well, b1 (11) is past its peers but not
    // below target (5): only a1 breaches.
    let d2 = db();
    d2.conn
        .execute_batch("ALTER TABLE m ADD COLUMN team VARCHAR")
        .unwrap();
    r.warn = Some(5.0);
    r.resolve = 5.0;
    for i in 1..=10 {
        d2.conn
            .execute(
                "INSERT INTO m VALUES (?, DATE '2026-01-05', ?, 's@x', 'a'), (?, DATE '2026-01-05', ?, 's@x', 'b')",
                duckdb::params![format!("a{i}"), i as f64, format!("b{i}"), (i + 10) as f64],
            )
            .unwrap();
    }
    evaluate_at(&d2.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d2.conn, "a1").as_deref(), Some("firing"));
    assert_eq!(state(&d2.conn, "b1"), None);
}

#[test]
fn rules_peer_sole_flags_the_one_member_who_misses_while_the_others_meet_it() {
    let d = db();
    d.conn
        .execute_batch("ALTER TABLE m ADD COLUMN team VARCHAR")
        .unwrap();
    // Back office: nine of ten meet 80, w10 never does. Phones: three miss —
    // a shared problem, not one worker's.
    let mut sql = String::from("INSERT INTO m VALUES ");
    let mut values = vec![];
    for i in 1..=10 {
        let score = if i == 10 { 66.0 } else { 82.0 + i as f64 };
        values.push(format!(
            "('w{i}', DATE '2026-01-05', {score}, 's@x', 'back_office')"
        ));
    }
    for (p, score) in [("p1", 70.0), ("p2", 75.0), ("p3", 79.0), ("p4", 90.0)] {
        values.push(format!(
            "('{p}', DATE '2026-01-05', {score}, 's@x', 'phones')"
        ));
    }
    sql += &values.join(", ");
    d.conn.execute_batch(&sql).unwrap();
    let mut r = rule(Direction::Below, Some(80.0), None);
    r.measure = "SELECT agent AS entity, week AS period, score AS value, team FROM m".into();
    r.peer = Some(Peer {
        group: Some("team".into()),
        condition: PeerCondition::Sole,
    });
    let s = evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "w10").as_deref(), Some("firing"));
    for p in ["p1", "p2", "p3", "w1"] {
        assert_eq!(state(&d.conn, p), None, "{p}");
    }
    assert_eq!((s.firing, s.count(crate::rules::Level::Warn)), (1, 1));
}

#[test]
fn rules_a_silence_delays_the_notification_until_it_ends_and_never_drops_it() {
    let d = db();
    let r = announcing(Direction::Below, Some(4.0));
    d.conn
        .execute(
            "INSERT INTO conveyor.silences VALUES (1, 'r', 'ann', 'on leave', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL, 'lead'),
                                                  (2, 'other_rule', NULL, 'x', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL, 'lead')",
            duckdb::params![ts(-1), ts(10), ts(-1), ts(10)],
        )
        .unwrap();
    rows(&d.conn, &[("ann", 1, 3.0), ("ben", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(
        state(&d.conn, "ann").as_deref(),
        Some("firing"),
        "state moves on"
    );
    assert_eq!(notified(&d.conn, "ann"), None, "silenced");
    assert_eq!(
        notified(&d.conn, "ben"),
        Some(ts(0)),
        "another entity is not"
    );
    evaluate_at(&d.conn, &r, t(5)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), None);
    // The silence ends while ann still breaches: announced now, once.
    evaluate_at(&d.conn, &r, t(10)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(10)));
    evaluate_at(&d.conn, &r, t(11)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(10)));
    // A removed silence no longer holds anything back.
    d.conn
        .execute_batch(
            "UPDATE conveyor.silences SET entity = NULL, expires_at = TIMESTAMP '2030-01-01'",
        )
        .unwrap();
    rows(&d.conn, &[("ann", 1, 3.0), ("cid", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(12)).unwrap();
    assert_eq!(notified(&d.conn, "cid"), None, "a rule-wide silence");
    d.conn
        .execute(
            "UPDATE conveyor.silences SET removed_at = CAST(? AS TIMESTAMP)",
            [ts(13)],
        )
        .unwrap();
    evaluate_at(&d.conn, &r, t(13)).unwrap();
    assert_eq!(notified(&d.conn, "cid"), Some(ts(13)));
}

#[test]
fn rules_repeat_reminds_while_firing_and_cooldown_quiets_flapping() {
    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.repeat_secs = Some(2 * 3600);
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)));
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)), "not yet due");
    evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(2)), "reminder");

    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.cooldown_secs = Some(5 * 3600);
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    rows(&d.conn, &[("ann", 1, 4.5)]);
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("firing"));
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)), "cooling down");
    evaluate_at(&d.conn, &r, t(6)).unwrap();
    assert_eq!(
        notified(&d.conn, "ann"),
        Some(ts(6)),
        "still firing after the cooldown"
    );
}

/// Outbox rows of rule `r` for `entity`'s channel, oldest first.
fn queued(conn: &Connection, channel: &str) -> Vec<String> {
    conn.prepare("SELECT body FROM conveyor.outbox WHERE channel = ? ORDER BY id")
        .unwrap()
        .query_map([channel], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn rules_peer_percentile_with_warn_resolves_on_the_absolute_scale() {
    let d = db();
    d.conn
        .execute_batch("ALTER TABLE m ADD COLUMN team VARCHAR")
        .unwrap();
    let mut r = rule(Direction::Below, Some(3.5), None);
    r.measure = "SELECT agent AS entity, week AS period, score AS value, team FROM m".into();
    r.peer = Some(Peer {
        group: Some("team".into()),
        condition: PeerCondition::Percentile(10.0),
    });
    let team = |conn: &Connection, ann: f64| {
        conn.execute_batch("DELETE FROM m").unwrap();
        for (agent, score) in [("ann", ann), ("b", 4.9), ("c", 4.95), ("d", 5.0)] {
            conn.execute(
                "INSERT INTO m VALUES (?, DATE '2026-01-05', ?, 's@x', 't')",
                duckdb::params![agent, score],
            )
            .unwrap();
        }
    };
    team(&d.conn, 3.0);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("firing"));
    // Back above target, still the team's lowest: that is no breach.
    team(&d.conn, 4.8);
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
}

#[test]
fn rules_peer_entities_without_a_group_are_not_pooled() {
    let d = db();
    d.conn
        .execute_batch(
            "ALTER TABLE m ADD COLUMN team VARCHAR;
             INSERT INTO m VALUES ('x', DATE '2026-01-05', 70, 's@x', NULL),
                                  ('y', DATE '2026-01-05', 72, 's@x', NULL);",
        )
        .unwrap();
    let mut r = rule(Direction::Below, Some(80.0), None);
    r.measure = "SELECT agent AS entity, week AS period, score AS value, team FROM m".into();
    r.peer = Some(Peer {
        group: Some("team".into()),
        condition: PeerCondition::Sole,
    });
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "x").as_deref(), Some("firing"));
    assert_eq!(state(&d.conn, "y").as_deref(), Some("firing"));
}

#[test]
fn rules_a_resolve_during_a_silence_is_announced_when_it_ends() {
    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.notify_resolved = true;
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    d.conn
        .execute(
            "INSERT INTO conveyor.silences VALUES (1, 'r', NULL, 'x', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL, 'lead')",
            duckdb::params![ts(1), ts(3)],
        )
        .unwrap();
    rows(&d.conn, &[("ann", 1, 4.5)]);
    evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)), "held back");
    evaluate_at(&d.conn, &r, t(4)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(4)), "announced after");
    evaluate_at(&d.conn, &r, t(5)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(4)), "once");
    let bodies = queued(&d.conn, "webhook");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies[1].contains("\"transition\":\"resolved\""),
        "{bodies:?}"
    );
}

#[test]
fn rules_repeat_reminders_are_not_posted_to_webhooks_again() {
    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.repeat_secs = Some(3600);
    rows(&d.conn, &[("ann", 1, 3.0)]);
    for h in 0..4 {
        evaluate_at(&d.conn, &r, t(h)).unwrap();
    }
    assert_eq!(notified(&d.conn, "ann"), Some(ts(3)), "reminders were due");
    assert_eq!(
        queued(&d.conn, "webhook").len(),
        1,
        "one enrolment, not four"
    );
}

#[test]
fn rules_alerts_of_a_rule_without_actions_are_announced_once_it_gets_one() {
    let d = db();
    let quiet = rule(Direction::Below, Some(4.0), None);
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &quiet, t(0)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), None);
    let r = announcing(Direction::Below, Some(4.0));
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(1)));
    assert_eq!(queued(&d.conn, "webhook").len(), 1);
}

#[test]
fn rules_a_reconciliation_measure_resolves_exceptions_the_latest_run_no_longer_reports() {
    let d = db();
    let config = conveyor_config::parse(
        r#"
[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "x"
path = "/x"
primary_key = "id"

[[reconcile]]
name = "placed"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]

[[rules]]
name = "r"
measure = { reconciliation = "placed" }
direction = "above"
warn = 0
"#,
        std::path::Path::new("/c/conveyor.toml"),
    )
    .unwrap();
    let r = &config.rules[0];
    let run = |id: i64, at: i64, results: &[(&str, Option<&str>, Option<&str>)]| {
        d.conn
            .execute(
                "INSERT INTO conveyor.recon_runs (run_id, reconciliation, trigger, status, started_at)
                 VALUES (?, 'placed', 'manual', 'succeeded', CAST(? AS TIMESTAMP))",
                duckdb::params![id, ts(at)],
            )
            .unwrap();
        for (status, left, right) in results {
            d.conn
                .execute(
                    "INSERT INTO conveyor.recon_results (run_id, reconciliation, status, left_key, right_key)
                     VALUES (?, 'placed', ?, ?, ?)",
                    duckdb::params![id, status, left, right],
                )
                .unwrap();
        }
    };
    // k1 never invoiced; R9 paid but its left side under another key.
    run(
        1,
        0,
        &[
            ("missing_right", Some("k1"), None),
            ("matched", Some("k2"), Some("k2")),
            ("missing_left", None, Some("R9")),
        ],
    );
    evaluate_at(&d.conn, r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "k1").as_deref(), Some("firing"));
    assert_eq!(state(&d.conn, "R9").as_deref(), Some("firing"));
    assert_eq!(state(&d.conn, "k2"), None);
    // The next run: k1 is gone from the data, R9 matched under L9.
    run(
        2,
        1,
        &[
            ("matched", Some("k2"), Some("k2")),
            ("matched", Some("L9"), Some("R9")),
        ],
    );
    evaluate_at(&d.conn, r, t(1)).unwrap();
    assert_eq!(state(&d.conn, "k1").as_deref(), Some("resolved"));
    assert_eq!(state(&d.conn, "R9").as_deref(), Some("resolved"));
    assert_eq!(state(&d.conn, "L9"), None);
}

#[test]
fn rules_check_reports_a_peer_group_the_measure_lacks() {
    let mut r = rule(Direction::Below, Some(80.0), None);
    r.peer = Some(Peer {
        group: Some("tean".into()),
        condition: PeerCondition::Sole,
    });
    let columns: Vec<String> = ["entity", "period", "value", "team"]
        .map(String::from)
        .to_vec();
    let problems: Vec<String> = crate::checks::check_templates(&r, &columns)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("rules[0].peer.group: the measure has no column `tean`"),
        "{problems:?}"
    );
    r.peer.as_mut().unwrap().group = Some("team".into());
    assert!(crate::checks::check_templates(&r, &columns).is_empty());
}

#[test]
fn rules_an_alert_escalating_to_critical_is_announced_once_more() {
    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.critical = Some(3.0);
    rows(&d.conn, &[("ann", 1, 3.5)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)));
    rows(&d.conn, &[("ann", 1, 2.5)]);
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(1)), "escalated");
    evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(1)), "once");
    assert_eq!(
        queued(&d.conn, "webhook").len(),
        1,
        "the webhook acted on the firing only"
    );
}

#[test]
fn rules_an_entity_gone_from_the_measure_resolves_after_absent_after_evaluations() {
    let d = db();
    let mut r = announcing(Direction::Below, Some(4.0));
    r.notify_resolved = true;
    r.absent_after = 2;
    rows(
        &d.conn,
        &[("ann", 5, 3.0), ("ben", 5, 3.1), ("cat", 5, 4.5)],
    );
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("firing"));
    assert_eq!(state(&d.conn, "ben").as_deref(), Some("firing"));
    // ann and ben leave the measure (a transfer, a query that stops
    // returning them); only cat is left.
    rows(&d.conn, &[("cat", 5, 4.5)]);
    let s = evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(
        (state(&d.conn, "ann").as_deref(), s.resolved),
        (Some("firing"), 0),
        "one absent evaluation of two"
    );
    // ben comes back, still breaching: the count starts over for him.
    rows(&d.conn, &[("ben", 12, 3.2), ("cat", 12, 4.5)]);
    let s = evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(s.resolved, 1);
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("resolved"));
    assert_eq!(state(&d.conn, "ben").as_deref(), Some("firing"));
    // The resolve was announced (the webhook's body says so), and the alert
    // keeps ann's last period and value.
    let bodies = queued(&d.conn, "webhook");
    let resolved: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .filter(|b: &serde_json::Value| b["transition"] == "resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{bodies:?}");
    assert_eq!(resolved[0]["entity"], "ann");
    assert_eq!(resolved[0]["value"], 3.0);
    assert_eq!(resolved[0]["context"]["supervisor"], "sup@example.com");
    let (period, value, absent): (String, f64, i32) = d
        .conn
        .query_row(
            "SELECT last_period, last_value, absent FROM conveyor.alerts WHERE rule = 'r' AND entity = 'ann'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((period.as_str(), value, absent), ("2026-01-05", 3.0, 2));
    // Another evaluation without ann changes nothing more.
    evaluate_at(&d.conn, &r, t(3)).unwrap();
    assert_eq!(queued(&d.conn, "webhook").len(), bodies.len());
}

#[test]
fn rules_with_absent_after_zero_an_alert_waits_for_its_entity() {
    let d = db();
    let mut r = rule(Direction::Below, Some(4.0), None);
    r.absent_after = 0;
    rows(&d.conn, &[("ann", 5, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    rows(&d.conn, &[]);
    for n in 1..=3 {
        evaluate_at(&d.conn, &r, t(n)).unwrap();
    }
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("firing"));
}

#[test]
fn rules_a_pending_alert_whose_entity_leaves_is_dropped() {
    let d = db();
    let mut r = rule(Direction::Below, Some(4.0), None);
    r.for_evaluations = 3;
    rows(&d.conn, &[("ann", 5, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(state(&d.conn, "ann").as_deref(), Some("pending"));
    rows(&d.conn, &[]);
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(state(&d.conn, "ann"), None, "it never fired");
}
