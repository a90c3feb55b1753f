//! How the console reads the warehouse: on a connection of its own (the
//! reader path `/v1/query` and `/metrics` use), inside a transaction that
//! is always rolled back (one snapshot per page, and nothing a page runs
//! can stay written), with a deadline after which the query is interrupted
//! and the page says so — a page never waits long on the warehouse.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use duckdb::Connection;

use crate::warehouse::Warehouse;

/// How long a page's reads may take before they are interrupted. The
/// pages read small metadata tables and answer in milliseconds; this only
/// bounds the unexpected.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Runs `f` on a reader connection on a blocking thread.
pub async fn read<T: Send + 'static>(
    wh: Arc<Warehouse>,
    f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = tokio::task::spawn_blocking(move || {
        let conn = wh.connection()?;
        let _ = tx.send(conn.interrupt_handle());
        crate::warehouse::transaction::rolled_back(&conn, || f(&conn))
    });
    match tokio::time::timeout(DEADLINE, job).await {
        Ok(joined) => joined?,
        Err(_) => {
            if let Ok(handle) = rx.await {
                handle.interrupt();
            }
            anyhow::bail!(
                "the warehouse did not answer within {} s, so this page stopped waiting; reload it in a moment",
                DEADLINE.as_secs()
            )
        }
    }
}

/// Every row of `sql` through `map`.
pub fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn duckdb::ToSql],
    map: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>> {
    Ok(crate::warehouse::rows(conn, sql, params, map)?)
}

/// Whether `schema.name` exists as a table or view (optional tables such as
/// `conveyor.source_health`, and the model's views, may be missing).
pub fn relation_exists(conn: &Connection, schema: &str, name: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM (
             SELECT schema_name, table_name AS name FROM duckdb_tables()
             UNION ALL SELECT schema_name, view_name FROM duckdb_views())
         WHERE schema_name = ? AND name = ?",
        [schema, name],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn console_reads_are_rolled_back_and_see_the_warehouse() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Arc::new(Warehouse::open(&dir.path().join("wh.duckdb")).unwrap());
        let n = read(wh.clone(), |c| {
            c.execute_batch("CREATE TABLE scratch (x INTEGER)")?;
            Ok(relation_exists(c, "conveyor", "runs")? && relation_exists(c, "main", "scratch")?)
        })
        .await
        .unwrap();
        assert!(n, "the page's own snapshot sees what it did");
        let left = read(wh, |c| relation_exists(c, "main", "scratch"))
            .await
            .unwrap();
        assert!(!left, "nothing a page runs stays written");
    }
}
