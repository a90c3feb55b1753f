//! `conveyor outbox retry`: re-queue notifications now — the given ids, the
//! dead letters, or every undelivered one — by resetting their attempts,
//! next attempt and dead state, so the next delivery pass sends them.

use chrono::NaiveDateTime;
use duckdb::Connection;

/// Which notifications to re-queue. Delivered ones never are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Selection {
    /// These outbox ids (those not delivered yet).
    Ids(Vec<i64>),
    /// Every dead letter.
    Dead,
    /// Every notification not delivered yet, dead or still queued.
    All,
}

/// Re-queues the selected notifications as of `now`: no attempt counted,
/// due at once, no longer dead (and no longer reported, so dying again is
/// reported again). Returns how many rows were re-queued. Waits for a
/// delivery pass in flight, so no row is reset while it is being sent.
pub fn retry(
    conn: &Connection,
    selection: &Selection,
    now: NaiveDateTime,
) -> duckdb::Result<usize> {
    let _one_pass = super::deliver::ONE_PASS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let ts = now.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    const SET: &str = "UPDATE conveyor.outbox SET attempts = 0,
            next_attempt_at = CAST(? AS TIMESTAMP), dead_at = NULL,
            reported_at = NULL, reported_by = NULL
         WHERE delivered_at IS NULL";
    match selection {
        Selection::All => conn.execute(SET, duckdb::params![ts]),
        Selection::Dead => conn.execute(
            &format!("{SET} AND dead_at IS NOT NULL"),
            duckdb::params![ts],
        ),
        Selection::Ids(ids) if ids.is_empty() => Ok(0),
        Selection::Ids(ids) => {
            // Whole numbers only: safe to list inline.
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            conn.execute(
                &format!("{SET} AND id IN ({})", list.join(", ")),
                duckdb::params![ts],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::Warehouse;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    /// Rows 1 queued with attempts, 2 dead (reported), 3 delivered, 4 dead.
    fn outbox() -> (tempfile::TempDir, Warehouse) {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
        let conn = wh.connection().unwrap();
        conn.execute_batch(
            "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                 created_at, attempts, next_attempt_at, delivered_at, dead_at, last_error, reported_at, reported_by)
             VALUES
             (1, 'k1', 'r', 1, 'email', 'a@x', 's', 'b', TIMESTAMP '2026-01-01', 2, TIMESTAMP '2026-01-02', NULL, NULL, 'down', NULL, NULL),
             (2, 'k2', 'r', 1, 'email', 'b@x', 's', 'b', TIMESTAMP '2026-01-01', 5, TIMESTAMP '2026-01-03', NULL, TIMESTAMP '2026-01-02', 'down', TIMESTAMP '2026-01-02', 9),
             (3, 'k3', 'r', 1, 'email', 'c@x', 's', 'b', TIMESTAMP '2026-01-01', 1, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', NULL, NULL, NULL, NULL),
             (4, 'k4', 'r', 1, 'webhook', 'http://h', 's', '{}', TIMESTAMP '2026-01-01', 1, TIMESTAMP '2026-01-01', NULL, TIMESTAMP '2026-01-01', '400', NULL, NULL);",
        )
        .unwrap();
        (dir, wh)
    }

    /// (id, attempts, next_attempt_at, dead, reported, delivered) per row.
    fn rows(wh: &Warehouse) -> Vec<(i64, i32, String, bool, bool, bool)> {
        let conn = wh.connection().unwrap();
        let mut st = conn
            .prepare(
                "SELECT id, attempts, CAST(next_attempt_at AS VARCHAR), dead_at IS NOT NULL,
                        reported_by IS NOT NULL, delivered_at IS NOT NULL
                 FROM conveyor.outbox ORDER BY id",
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

    const NOW: &str = "2026-02-01 10:00:00";

    #[test]
    fn retry_dead_requeues_only_dead_letters_and_clears_their_report() {
        let (_dir, wh) = outbox();
        let n = retry(&wh.connection().unwrap(), &Selection::Dead, t(NOW)).unwrap();
        assert_eq!(n, 2);
        let r = rows(&wh);
        assert_eq!(
            r[0],
            (1, 2, "2026-01-02 00:00:00".into(), false, false, false)
        );
        assert_eq!(r[1], (2, 0, NOW.into(), false, false, false));
        assert_eq!(r[2].1, 1, "delivered rows are left alone");
        assert_eq!(r[3], (4, 0, NOW.into(), false, false, false));
    }

    #[test]
    fn retry_all_requeues_every_undelivered_row_never_a_delivered_one() {
        let (_dir, wh) = outbox();
        let n = retry(&wh.connection().unwrap(), &Selection::All, t(NOW)).unwrap();
        assert_eq!(n, 3);
        let r = rows(&wh);
        for row in [&r[0], &r[1], &r[3]] {
            assert_eq!((row.1, row.2.as_str(), row.3), (0, NOW, false), "{row:?}");
        }
        assert_eq!(
            r[2],
            (3, 1, "2026-01-01 00:00:00".into(), false, false, true)
        );
    }

    #[test]
    fn retry_ids_requeues_the_given_undelivered_ones_and_skips_unknown_or_delivered() {
        let (_dir, wh) = outbox();
        let conn = wh.connection().unwrap();
        let n = retry(&conn, &Selection::Ids(vec![1, 3, 77]), t(NOW)).unwrap();
        assert_eq!(n, 1);
        let r = rows(&wh);
        assert_eq!(r[0], (1, 0, NOW.into(), false, false, false));
        assert!(r[1].3 && r[3].3, "dead letters not named stay dead");
        assert_eq!(retry(&conn, &Selection::Ids(vec![]), t(NOW)).unwrap(), 0);
    }

    #[test]
    fn retry_dead_then_a_delivery_pass_picks_the_row_up() {
        let (_dir, wh) = outbox();
        let conn = wh.connection().unwrap();
        retry(&conn, &Selection::Ids(vec![2]), t(NOW)).unwrap();
        let due: i64 = conn
            .query_row(
                "SELECT count(*) FROM conveyor.outbox WHERE channel = 'email'
                   AND delivered_at IS NULL AND dead_at IS NULL
                   AND next_attempt_at <= CAST(? AS TIMESTAMP)",
                [NOW],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(due, 2, "row 1 (already due) and row 2 (re-queued)");
    }
}
