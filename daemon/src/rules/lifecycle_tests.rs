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
    assert_eq!((s.firing, s.count("warn")), (1, 1));
}

#[test]
fn rules_a_silence_delays_the_notification_until_it_ends_and_never_drops_it() {
    let d = db();
    let r = rule(Direction::Below, Some(4.0), None);
    d.conn
        .execute(
            "INSERT INTO conveyor.silences VALUES (1, 'r', 'ann', 'on leave', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL),
                                                  (2, 'other_rule', NULL, 'x', CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL)",
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
    let mut r = rule(Direction::Below, Some(4.0), None);
    r.repeat_secs = Some(2 * 3600);
    rows(&d.conn, &[("ann", 1, 3.0)]);
    evaluate_at(&d.conn, &r, t(0)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)));
    evaluate_at(&d.conn, &r, t(1)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(0)), "not yet due");
    evaluate_at(&d.conn, &r, t(2)).unwrap();
    assert_eq!(notified(&d.conn, "ann"), Some(ts(2)), "reminder");

    let d = db();
    let mut r = rule(Direction::Below, Some(4.0), None);
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
