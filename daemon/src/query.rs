//! Read-only SQL for ops: the statement guard, running a query on a
//! connection, and rendering results as a table, CSV or JSON.

use anyhow::{Context, Result};
use duckdb::arrow::array::Array;
use duckdb::arrow::datatypes::DataType;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::Connection;

/// Statements that only read. Anything else is refused before it runs.
const READ_KEYWORDS: &[&str] = &[
    "SELECT",
    "WITH",
    "FROM",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "SUMMARIZE",
    "EXPLAIN",
    "VALUES",
    "TABLE",
];

/// A query result, ready to print or send over the wire.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    /// Per column: whether values are numbers or booleans (unquoted in JSON).
    pub literal: Vec<bool>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Refuses anything but one reading statement, with a reason a user can act on.
pub fn check_read_only(sql: &str) -> Result<(), String> {
    let code = strip_comments_and_strings(sql);
    let trimmed = code.trim().trim_end_matches(';').trim();
    if trimmed.is_empty() {
        return Err("empty query".into());
    }
    if trimmed.contains(';') {
        return Err("one statement at a time, please".into());
    }
    let first = trimmed
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if READ_KEYWORDS.contains(&first.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "`conveyor query` is read-only and `{first}` statements change data or settings; \
             the warehouse is written only by syncs"
        ))
    }
}

/// Blanks out comments and quoted text so keywords inside them don't count.
fn strip_comments_and_strings(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                out.push_str(" x ");
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Runs a read-only query. The caller decides the isolation (a read-only
/// file, or a transaction that is always rolled back).
pub fn run(conn: &Connection, sql: &str) -> Result<QueryResult> {
    check_read_only(sql).map_err(anyhow::Error::msg)?;
    let mut stmt = conn.prepare(sql)?;
    let batches: Vec<_> = stmt.query_arrow([])?.collect();
    let schema = stmt.schema();
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let literal: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().is_numeric() || matches!(f.data_type(), DataType::Boolean))
        .collect();
    let opts = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot format result")?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(col, f)| (!col.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok(QueryResult {
        columns,
        literal,
        rows,
    })
}

/// Runs a query on a connection to a database that is being written: inside
/// a transaction that is always rolled back, as a second guard.
pub fn run_isolated(conn: &Connection, sql: &str) -> Result<QueryResult> {
    check_read_only(sql).map_err(anyhow::Error::msg)?;
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = run(conn, sql);
    let _ = conn.execute_batch("ROLLBACK");
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn render(result: &QueryResult, format: Format) -> String {
    match format {
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_header(&result.columns);
            for r in &result.rows {
                t.add_row(r.iter().map(|v| v.clone().unwrap_or_default()));
            }
            format!(
                "{t}\n({} row{})",
                result.rows.len(),
                if result.rows.len() == 1 { "" } else { "s" }
            )
        }
        Format::Csv => {
            let mut out = String::new();
            out.push_str(
                &result
                    .columns
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
            for r in &result.rows {
                out.push_str(
                    &r.iter()
                        .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            out.trim_end().to_string()
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> =
                result
                    .rows
                    .iter()
                    .map(|r| {
                        let obj = result.columns.iter().zip(r).zip(&result.literal).map(
                            |((c, v), lit)| {
                                let value = match v {
                                    None => serde_json::Value::Null,
                                    Some(s) if *lit => serde_json::from_str(s)
                                        .unwrap_or_else(|_| serde_json::Value::String(s.clone())),
                                    Some(s) => serde_json::Value::String(s.clone()),
                                };
                                (c.clone(), value)
                            },
                        );
                        serde_json::Value::Object(obj.collect())
                    })
                    .collect();
            serde_json::to_string_pretty(&rows).expect("JSON values serialise")
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reading_statements_pass() {
        assert!(check_read_only("SELECT 1").is_ok());
        assert!(check_read_only("  with x as (select 1) select * from x;").is_ok());
        assert!(check_read_only("-- note\nFROM conveyor.runs").is_ok());
        assert!(check_read_only("SELECT 'DELETE; x'").is_ok());
        let e = check_read_only("DELETE FROM ats.jobs").unwrap_err();
        assert!(e.contains("read-only") && e.contains("DELETE"), "{e}");
        assert!(check_read_only("select 1; drop table x").is_err());
        assert!(check_read_only("/* select */ INSERT INTO t VALUES (1)").is_err());
        assert!(check_read_only("ATTACH 'x.db'").is_err());
    }

    #[test]
    fn csv_quotes_when_needed() {
        let r = QueryResult {
            columns: vec!["a".into(), "b".into()],
            literal: vec![true, false],
            rows: vec![
                vec![Some("1".into()), Some("x, \"y\"".into())],
                vec![None, Some("z".into())],
            ],
        };
        assert_eq!(render(&r, Format::Csv), "a,b\n1,\"x, \"\"y\"\"\"\n,z");
        let j: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(j[0]["a"], serde_json::json!(1));
        assert_eq!(j[1]["a"], serde_json::Value::Null);
    }
}
