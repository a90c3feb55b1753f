//! Work inside one DuckDB transaction, begun and ended in one place: a
//! writer's work commits when it succeeds and rolls back when it fails; a
//! reader's always rolls back (a second guard behind the read-only check).
//! A panic inside the work rolls back too, so a connection that outlives
//! the panic (a reader in a pool) is never left inside a transaction.

use duckdb::Connection;

/// Runs `work` in a transaction: committed if it returns `Ok`, rolled back
/// if it returns `Err` or the commit fails.
pub fn in_transaction<T, E: From<duckdb::Error>>(
    conn: &Connection,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    begin(conn)?;
    let open = Open(conn);
    let outcome = finish(conn, work());
    std::mem::forget(open);
    outcome
}

/// Begins a transaction that [`finish`] ends — for work that cannot be a
/// closure (it borrows the connection's owner mutably).
pub fn begin(conn: &Connection) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN TRANSACTION")
}

/// Ends the transaction [`begin`] began: commits if `outcome` is `Ok`, rolls
/// back if it is `Err` or the commit fails.
pub fn finish<T, E: From<duckdb::Error>>(conn: &Connection, outcome: Result<T, E>) -> Result<T, E> {
    let outcome = outcome.and_then(|v| {
        conn.execute_batch("COMMIT")?;
        Ok(v)
    });
    if outcome.is_err() {
        // After a failed COMMIT DuckDB has already aborted; this then only
        // reports "no transaction is active", which is fine.
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// Runs `work` in a transaction that is always rolled back: whatever it
/// wrote (temporary tables, a preview's state changes) is gone after.
pub fn rolled_back<T, E: From<duckdb::Error>>(
    conn: &Connection,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let open = Open(conn);
    let outcome = work();
    drop(open);
    outcome
}

/// A transaction still open: rolled back when dropped — at the end of a
/// reader's work, or while a panic unwinds through a writer's.
struct Open<'c>(&'c Connection);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_transaction_keeps_what_succeeded_and_nothing_of_what_failed() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        in_transaction(&conn, || conn.execute_batch("INSERT INTO t VALUES (1)")).unwrap();
        assert_eq!(count(&conn), 1);
        let failed: Result<(), duckdb::Error> = in_transaction(&conn, || {
            conn.execute_batch("INSERT INTO t VALUES (2)")?;
            conn.execute_batch("INSERT INTO no_such_table VALUES (3)")
        });
        assert!(failed.is_err());
        assert_eq!(count(&conn), 1, "the failed transaction's insert is gone");
        // The connection is usable again: no transaction left open.
        in_transaction(&conn, || conn.execute_batch("INSERT INTO t VALUES (4)")).unwrap();
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn a_rolled_back_transaction_returns_its_result_and_keeps_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let seen = rolled_back(&conn, || {
            conn.execute_batch("INSERT INTO t VALUES (1), (2)")?;
            Ok::<_, duckdb::Error>(count(&conn))
        })
        .unwrap();
        assert_eq!(seen, 2);
        assert_eq!(count(&conn), 0);
    }

    #[test]
    fn a_panic_inside_the_work_leaves_no_transaction_open() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), duckdb::Error> = in_transaction(&conn, || {
                conn.execute_batch("INSERT INTO t VALUES (1)")?;
                panic!("a bug in the middle of a write");
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(count(&conn), 0, "the half-done write is rolled back");
        // BEGIN would fail inside a transaction left open.
        in_transaction(&conn, || conn.execute_batch("INSERT INTO t VALUES (2)")).unwrap();
        assert_eq!(count(&conn), 1);
    }
}
