//! Puts a test's fixtures in the in-memory warehouse: CSV files through
//! DuckDB's `read_csv`, inline TOML rows as typed, quoted SQL literals,
//! free SQL as written.

use std::collections::BTreeMap;

use duckdb::Connection;

use super::cells::{widen, Cell};
use super::spec::{Fixture, FixtureData, Row, TableName};
use crate::warehouse::{ident, literal};

/// Creates every fixture, in file order; the first that fails is the
/// error (DuckDB's message).
pub fn load(conn: &Connection, fixtures: &[Fixture]) -> Result<(), (usize, String)> {
    for (i, f) in fixtures.iter().enumerate() {
        load_one(conn, f).map_err(|e| (i, e))?;
    }
    Ok(())
}

fn load_one(conn: &Connection, f: &Fixture) -> Result<(), String> {
    if let Some(t) = &f.table {
        if let Some(schema) = &t.schema {
            run(
                conn,
                &format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema)),
            )?;
        }
    }
    match (&f.data, &f.table) {
        (FixtureData::Sql(sql), _) => run(conn, sql),
        (FixtureData::Csv(path), Some(table)) => {
            let types = if f.columns.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = f
                    .columns
                    .iter()
                    .map(|(c, t)| format!("{}: {}", literal(c), literal(t)))
                    .collect();
                format!(", types = {{{}}}", pairs.join(", "))
            };
            run(
                conn,
                &format!(
                    "CREATE TABLE {} AS SELECT * FROM read_csv({}, header = true{types})",
                    qualified(table),
                    literal(&path.to_string_lossy())
                ),
            )
        }
        (FixtureData::Rows(rows), Some(table)) => {
            let columns = column_types(rows, &f.columns);
            let defs: Vec<String> = columns
                .iter()
                .map(|(c, t)| format!("{} {t}", ident(c)))
                .collect();
            run(
                conn,
                &format!("CREATE TABLE {} ({})", qualified(table), defs.join(", ")),
            )?;
            append(conn, table, rows).map_err(|(_, e)| e)
        }
        (_, None) => Err("a `csv` or `rows` fixture needs `table`".into()),
    }
}

/// Each column's type: declared, else the widest kind among its values
/// (the spec has already refused kinds that do not mix), in the order
/// columns are first seen (declared ones first).
fn column_types(rows: &[Row], declared: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = declared.to_vec();
    let mut inferred: BTreeMap<&str, &'static str> = BTreeMap::new();
    let mut order = Vec::new();
    for row in rows {
        for (column, cell) in &row.cells {
            if declared.iter().any(|(c, _)| c == column) {
                continue;
            }
            let kind = cell.sql_type();
            match inferred.get(column.as_str()) {
                None => {
                    order.push(column.as_str());
                    inferred.insert(column, kind);
                }
                Some(have) => {
                    let wide = widen(have, kind).unwrap_or("VARCHAR");
                    inferred.insert(column, wide);
                }
            }
        }
    }
    out.extend(
        order
            .into_iter()
            .map(|c| (c.to_string(), inferred[c].to_string())),
    );
    out
}

/// Appends `rows` to `table`, one INSERT per row (a missing column stays
/// NULL). On failure: the row's index and DuckDB's message.
pub fn append(conn: &Connection, table: &TableName, rows: &[Row]) -> Result<(), (usize, String)> {
    for (i, row) in rows.iter().enumerate() {
        if row.cells.is_empty() {
            continue;
        }
        let columns: Vec<String> = row.cells.iter().map(|(c, _)| ident(c)).collect();
        let values: Vec<String> = row.cells.iter().map(|(_, v)| sql_literal(v)).collect();
        run(
            conn,
            &format!(
                "INSERT INTO {} ({}) VALUES ({})",
                qualified(table),
                columns.join(", "),
                values.join(", ")
            ),
        )
        .map_err(|e| (i, e))?;
    }
    Ok(())
}

/// A value as a typed SQL literal; text is quoted, floats never go through
/// exponent syntax DuckDB might read as DECIMAL.
pub fn sql_literal(cell: &Cell) -> String {
    match cell {
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => format!("CAST('{f:?}' AS DOUBLE)"),
        Cell::Bool(b) => b.to_string(),
        Cell::Text(s) => literal(s),
        Cell::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
        Cell::Timestamp(t) => crate::warehouse::timestamp_literal(*t),
        Cell::Time(t) => format!("TIME '{}'", t.format("%H:%M:%S%.6f")),
    }
}

pub fn qualified(t: &TableName) -> String {
    match &t.schema {
        Some(s) => format!("{}.{}", ident(s), ident(&t.name)),
        None => ident(&t.name),
    }
}

/// Runs `sql`; DuckDB's first line on failure.
pub fn run(conn: &Connection, sql: &str) -> Result<(), String> {
    conn.execute_batch(sql).map_err(|e| {
        e.to_string()
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string()
    })
}
