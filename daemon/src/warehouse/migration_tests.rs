//! A warehouse written by an older Conveyor opens with its metadata tables
//! brought up to date, and its firing alerts are not announced twice.

use super::*;

#[test]
fn warehouse_an_older_file_gets_the_new_columns_and_keeps_its_announcements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.duckdb");
    {
        // The alerts and outbox tables as the first rules release wrote them.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE SCHEMA conveyor;
             CREATE TABLE conveyor.alerts (
               rule VARCHAR NOT NULL, entity VARCHAR NOT NULL, state VARCHAR NOT NULL,
               level VARCHAR NOT NULL, since TIMESTAMP NOT NULL, last_evaluated TIMESTAMP NOT NULL,
               last_eval_id BIGINT NOT NULL, last_period VARCHAR, last_value DOUBLE,
               consecutive INTEGER NOT NULL, fired_at TIMESTAMP, resolved_at TIMESTAMP);
             CREATE TABLE conveyor.outbox (
               id BIGINT NOT NULL, key VARCHAR NOT NULL, rule VARCHAR NOT NULL, eval_id BIGINT NOT NULL,
               channel VARCHAR NOT NULL, recipient VARCHAR NOT NULL, subject VARCHAR NOT NULL,
               body VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, attempts INTEGER NOT NULL,
               next_attempt_at TIMESTAMP NOT NULL, delivered_at TIMESTAMP, dead_at TIMESTAMP,
               last_error VARCHAR);
             INSERT INTO conveyor.alerts VALUES
               ('r', 'ann', 'firing', 'warn', TIMESTAMP '2026-01-01 06:00:00', TIMESTAMP '2026-01-01 06:00:00',
                1, '2026-01-01', 3.0, 1, TIMESTAMP '2026-01-01 06:00:00', NULL),
               ('r', 'bob', 'pending', 'warn', TIMESTAMP '2026-01-01 06:00:00', TIMESTAMP '2026-01-01 06:00:00',
                1, '2026-01-01', 3.0, 1, NULL, NULL);",
        )
        .unwrap();
    }
    let wh = Warehouse::open(&path).unwrap();
    let conn = wh.connection().unwrap();
    let notified: Vec<(String, Option<String>)> = conn
        .prepare(
            "SELECT entity, CAST(last_notified_at AS VARCHAR) FROM conveyor.alerts ORDER BY entity",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        notified,
        [
            ("ann".to_string(), Some("2026-01-01 06:00:00".to_string())),
            ("bob".to_string(), None)
        ],
        "the firing alert was announced by the old version"
    );
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'conveyor'
             AND table_name = 'outbox' AND column_name IN ('html_body', 'reported_at', 'reported_by')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 3);
    drop(conn);
    drop(wh);
    // Opening again changes nothing more (a new firing alert without a
    // notification stays unannounced).
    let wh = Warehouse::open(&path).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch("UPDATE conveyor.alerts SET state = 'firing', fired_at = TIMESTAMP '2026-01-02 06:00:00' WHERE entity = 'bob'")
        .unwrap();
    drop(conn);
    drop(wh);
    let wh = Warehouse::open(&path).unwrap();
    let bob: Option<String> = wh
        .connection()
        .unwrap()
        .query_row(
            "SELECT CAST(last_notified_at AS VARCHAR) FROM conveyor.alerts WHERE entity = 'bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bob, None);
}
