//! Read-only SQL for ops: running a query on a connection, behind the
//! statement guard ([`guard`]); rendering is in [`render`].

use anyhow::{Context, Result};
use duckdb::arrow::array::Array;
use duckdb::arrow::datatypes::DataType;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::Connection;

pub mod guard;
mod render;

pub use render::{render, Format};

/// A query result, ready to print or send over the wire.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    /// Per column: whether values are numbers or booleans (unquoted in JSON).
    pub literal: Vec<bool>,
    /// Per column: whether values are JSON documents (embedded as JSON).
    #[serde(default)]
    pub json: Vec<bool>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// An engine error as a person should read it: DuckDB's messages carry a
/// trailing `: Error code 1: Unknown error code` from the C API's error
/// chain, which says nothing.
pub fn clean_error(text: &str) -> String {
    let cut = text.find(": Error code ").map_or(text, |i| &text[..i]);
    cut.trim_end().to_string()
}

/// Refuses anything but one reading statement; returns the text to run
/// (see [`guard`]).
pub fn check_read_only(conn: &Connection, sql: &str) -> Result<String, guard::Refusal> {
    guard::check_read_only(conn, sql)
}

/// The most text a result may hold: it is built in memory (the Postgres
/// endpoint streams instead), so past this the query stops with advice
/// rather than take the daemon's memory.
pub const MAX_RESULT_BYTES: usize = 256 << 20;
/// How long one query may run before it is interrupted.
pub const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs a read-only query. The caller decides the isolation (a read-only
/// file, or a transaction that is always rolled back).
pub fn run(conn: &Connection, sql: &str) -> Result<QueryResult> {
    run_with(conn, sql, QUERY_TIMEOUT, MAX_RESULT_BYTES)
}

fn run_with(
    conn: &Connection,
    sql: &str,
    timeout: std::time::Duration,
    max_bytes: usize,
) -> Result<QueryResult> {
    // Only what the guard returns is ever prepared.
    let sql = check_read_only(conn, sql)?;
    // A watchdog interrupts the query at the deadline; finishing first
    // drops the sender, which wakes it to leave.
    let handle = conn.interrupt_handle();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(timeout) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            handle.interrupt();
        }
    });
    let result = collect(conn, &sql, max_bytes).map_err(|e| {
        let text = e.to_string();
        if text.contains("INTERRUPT") || text.contains("nterrupt") {
            anyhow::anyhow!(
                "the query ran longer than {} s and was stopped; narrow it (WHERE, LIMIT) or use the Postgres endpoint",
                timeout.as_secs()
            )
        } else {
            e
        }
    });
    drop(done);
    let _ = watchdog.join();
    result
}

fn collect(conn: &Connection, sql: &str, max_bytes: usize) -> Result<QueryResult> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| anyhow::anyhow!(explain_engine_error(&e.to_string())))?;
    let batches = stmt
        .query_arrow([])
        .map_err(|e| anyhow::anyhow!(explain_engine_error(&e.to_string())))?;
    let opts = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot format result")?;
        for r in 0..batch.num_rows() {
            let row: Vec<Option<String>> = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(col, f)| (!col.is_null(r)).then(|| f.value(r).to_string()))
                .collect();
            bytes += row.iter().flatten().map(String::len).sum::<usize>() + row.len();
            if bytes > max_bytes {
                anyhow::bail!(
                    "the result is larger than {} MB; add a LIMIT or aggregate, or read it over the \
                     Postgres endpoint, which streams",
                    max_bytes >> 20
                );
            }
            rows.push(row);
        }
    }
    let json = (0..stmt.column_count())
        .map(|i| stmt.column_logical_type(i).get_alias().as_deref() == Some("JSON"))
        .collect();
    let schema = stmt.schema();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let literal: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric() || matches!(f.data_type(), DataType::Boolean))
        .collect();
    Ok(QueryResult {
        columns,
        literal,
        json,
        rows,
    })
}

/// Runs a query on a connection to a database that is being written: inside
/// a transaction that is always rolled back, as a second guard.
pub fn run_isolated(conn: &Connection, sql: &str) -> Result<QueryResult> {
    crate::warehouse::transaction::rolled_back(conn, || run(conn, sql))
}

/// An engine error, with what to do when it is the file system lock-down.
fn explain_engine_error(text: &str) -> String {
    let text = clean_error(text);
    if text.contains("Permission Error") {
        format!(
            "readers cannot touch the file system (the warehouse runs with external access \
             off; query its tables instead): {text}"
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_lose_the_c_api_filler() {
        assert_eq!(
            clean_error("Catalog Error: Table with name x does not exist!: Error code 1: Unknown error code"),
            "Catalog Error: Table with name x does not exist!"
        );
        let conn = Connection::open_in_memory().unwrap();
        let e = run(&conn, "SELECT * FROM nowhere").unwrap_err().to_string();
        assert!(e.contains("nowhere") && !e.contains("Error code"), "{e}");
    }

    #[test]
    fn queries_stop_at_the_deadline_and_the_size_cap() {
        let conn = Connection::open_in_memory().unwrap();
        let started = std::time::Instant::now();
        let e = run_with(
            &conn,
            "SELECT count(*) FROM range(100000000000000) t(i) WHERE hash(i) = 0",
            std::time::Duration::from_millis(300),
            MAX_RESULT_BYTES,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ran longer than"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let e = run_with(
            &conn,
            "SELECT repeat('x', 1000) FROM range(10000)",
            QUERY_TIMEOUT,
            1 << 20,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("larger than 1 MB"), "{e}");
    }

    #[test]
    fn json_columns_are_marked() {
        let conn = Connection::open_in_memory().unwrap();
        let r = run(&conn, r#"SELECT '{"a":1}'::JSON AS j, 'x' AS t, 2 AS n"#).unwrap();
        assert_eq!(r.json, vec![true, false, false]);
        assert_eq!(r.literal, vec![false, false, true]);
    }
}
