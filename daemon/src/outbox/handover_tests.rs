//! The evaluator's state carried from one warehouse to another, as a
//! failover in a cluster does: the alert states and undelivered rule
//! notifications arrive whole (images too), what the state no longer holds
//! is never sent, evaluation ids continue past the old evaluator's, and a
//! still-firing alert is not announced again.

use chrono::Duration;
use duckdb::Connection;

use super::handover::{export, import, Imported};
use super::tests::{config, fixture, t0, Smtp};
use super::*;

const TO_SUPERVISOR: &str = r#"to_column = "supervisor"
subject = "CSAT below target: {{ agent_name }}"
body = "{{ agent_name }} ({{ entity }}) scored {{ value }}""#;

fn alerts(conn: &Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT CAST(a AS VARCHAR) FROM conveyor.alerts a ORDER BY rule, entity")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `(key, eval_id, delivered, dead, reported, images)` of every outbox row.
fn outbox(conn: &Connection) -> Vec<(String, i64, bool, bool, bool, i64)> {
    let mut st = conn
        .prepare(
            "SELECT key, eval_id, delivered_at IS NOT NULL, dead_at IS NOT NULL, reported_at IS NOT NULL,
                    (SELECT count(*) FROM conveyor.outbox_images i WHERE i.outbox_id = o.id)
                    + CASE WHEN chart_png IS NULL THEN 0 ELSE 1 END
               FROM conveyor.outbox o ORDER BY id",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn handover_carries_alerts_and_pending_notifications_and_announces_nothing_twice() {
    let mail_dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&mail_dir.path().join("mail"), &[]);
    let config = config(smtp.port, TO_SUPERVISOR);
    let rule = &config.rules[0];

    // The old evaluator: a1 and a2 breach; one e-mail queued, not sent.
    let a = fixture();
    let fired = crate::rules::evaluate_at(&a.conn, rule, t0()).unwrap();
    assert_eq!(fired.started_firing, 3);
    let state = export(&a.conn).unwrap();
    assert_eq!(state.keys.len(), 1, "{state:?}");
    assert_eq!(state.last_eval_id, fired.eval_id);

    // The new one evaluated on its own before (its own ids, its own
    // undelivered e-mail about a3), then takes the state over.
    let b = fixture();
    b.conn.execute_batch("UPDATE m SET score = 5.0").unwrap();
    crate::rules::evaluate_at(&b.conn, rule, t0() - Duration::days(7)).unwrap();
    b.conn
        .execute_batch("UPDATE m SET score = 3.0 WHERE agent = 'a3'")
        .unwrap();
    let own = crate::rules::evaluate_at(&b.conn, rule, t0() - Duration::days(1)).unwrap();
    assert_eq!(own.started_firing, 1);
    let before = outbox(&b.conn);
    assert_eq!(before.len(), 1);

    let now = crate::warehouse::timestamp_text(t0());
    let done = import(&b.conn, &state, &now).unwrap();
    assert_eq!(
        done,
        Imported {
            alerts: alerts(&a.conn).len(),
            queued: 1,
            superseded: 1,
        }
    );
    assert_eq!(alerts(&b.conn), alerts(&a.conn));
    let after = outbox(&b.conn);
    assert_eq!(
        after,
        vec![
            // b's own e-mail: kept, never sent, never reported as dead.
            (
                before[0].0.clone(),
                before[0].1,
                false,
                true,
                true,
                before[0].5
            ),
            // a's, with its key and its images.
            (
                state.keys[0].clone(),
                fired.eval_id,
                false,
                false,
                false,
                outbox(&a.conn)[0].5
            ),
        ]
    );

    // Evaluating on: a1 and a2 still fire (no new e-mail); a3 breaches in
    // b's data and starts firing, under an id past both evaluators'.
    let next = crate::rules::evaluate_at(&b.conn, rule, t0() + Duration::hours(2)).unwrap();
    assert_eq!(next.started_firing, 1, "only a3");
    assert!(next.eval_id > fired.eval_id.max(own.eval_id), "{next:?}");
    let r = deliver_due(
        &b.conn,
        config.smtp.as_ref().unwrap(),
        t0() + Duration::hours(3),
    )
    .unwrap();
    assert_eq!(r.delivered, 2);
    let mail = smtp.messages();
    let ids: Vec<String> = mail
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_string()
        })
        .collect();
    let new_key = notification_key("csat_low", next.eval_id, "email", "sup@example.com");
    assert_eq!(
        ids,
        vec![
            format!("<{}@conveyor>", state.keys[0]),
            format!("<{new_key}@conveyor>")
        ]
    );
    assert!(mail[0].contains("Ann (a1) scored 3.1"), "{}", mail[0]);
    assert!(mail[1].contains("Cy (a3) scored 3"), "{}", mail[1]);

    // The same state taken in twice changes nothing more.
    let again = import(&b.conn, &export(&b.conn).unwrap(), &now).unwrap();
    assert_eq!((again.queued, again.superseded), (0, 0));
}
