//! The Reconciliations pages: each reconciliation's latest run (counts by
//! status) and its trend across runs; a run's exceptions with both sides'
//! keys and the values that differ, filterable by status and text, and the
//! same selection as CSV.

use std::collections::BTreeMap;

use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use duckdb::Connection;
use minijinja::context;
use serde::Serialize;

use super::chart::{self, Bar};
use super::reader::{read, rows};
use super::session::Session;
use super::view::{self, Failure, PageResult};
use super::Console;
use crate::recon::STATUSES;

/// Runs drawn in a reconciliation's trend.
const TREND_RUNS: i64 = 30;
/// Exceptions shown on the page (the CSV has them all).
const PAGE_ROWS: i64 = 500;
/// The statuses that are not exceptions.
const AGREE: [&str; 2] = ["matched", "matched_within_tolerance"];

#[derive(Serialize, Clone)]
struct RunView {
    run_id: i64,
    trigger: String,
    status: String,
    started: String,
    left_rows: Option<i64>,
    right_rows: Option<i64>,
    /// Per status, in [`STATUSES`] order.
    counts: Vec<i64>,
    exceptions: i64,
    error: Option<String>,
}

fn run_rows(
    conn: &Connection,
    only: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<Vec<(String, RunView)>> {
    let filter = if only.is_some() {
        "WHERE reconciliation = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT reconciliation, run_id, trigger, status, epoch_us(started_at), left_rows, right_rows, {}, error
         FROM conveyor.recon_runs {filter}
         QUALIFY row_number() OVER (PARTITION BY reconciliation ORDER BY run_id DESC) <= {TREND_RUNS}
         ORDER BY reconciliation, run_id",
        STATUSES.map(|s| format!("coalesce({s}, 0)")).join(", ")
    );
    let params: Vec<&dyn duckdb::ToSql> = match &only {
        Some(n) => vec![n as &dyn duckdb::ToSql],
        None => vec![],
    };
    rows(conn, &sql, &params, |r| {
        let counts: Vec<i64> = (0..STATUSES.len())
            .map(|i| r.get(7 + i))
            .collect::<duckdb::Result<_>>()?;
        let exceptions = STATUSES
            .iter()
            .zip(&counts)
            .filter(|(s, _)| !AGREE.contains(s))
            .map(|(_, n)| n)
            .sum();
        Ok((
            r.get(0)?,
            RunView {
                run_id: r.get(1)?,
                trigger: r.get(2)?,
                status: r.get(3)?,
                started: view::time(r.get(4)?, tz),
                left_rows: r.get(5)?,
                right_rows: r.get(6)?,
                counts,
                exceptions,
                error: r.get(7 + STATUSES.len())?,
            },
        ))
    })
}

/// A stacked bar per run: its exceptions by status.
fn trend(name: &str, runs: &[RunView]) -> String {
    let class = |s: &str| match s {
        "missing_left" => "c1",
        "missing_right" => "c2",
        "mismatched" => "c3",
        _ => "c4",
    };
    let bars: Vec<Bar> = runs
        .iter()
        .map(|r| Bar {
            label: format!("run {}", r.run_id),
            parts: STATUSES
                .iter()
                .zip(&r.counts)
                .filter(|(s, _)| !AGREE.contains(s))
                .map(|(s, n)| (*n as f64, class(s)))
                .collect(),
            tip: format!(
                "run {} ({}): {} exceptions{}",
                r.run_id,
                r.started,
                r.exceptions,
                if r.status == "failed" { ", failed" } else { "" }
            ),
        })
        .collect();
    chart::bars(&format!("{name}: exceptions per run"), &bars, "no runs yet")
}

#[derive(Serialize)]
struct ReconView {
    name: String,
    href: String,
    latest: Option<RunView>,
    chart: minijinja::Value,
}

fn href(name: &str) -> String {
    let n: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/console/reconciliations/{n}")
}

pub async fn list(State(c): State<Console>, Extension(s): Extension<Session>) -> PageResult {
    let tz = c.tz;
    let runs = read(c.wh.clone(), move |conn| run_rows(conn, None, tz)).await?;
    let mut by: BTreeMap<String, Vec<RunView>> = BTreeMap::new();
    for (name, r) in runs {
        by.entry(name).or_default().push(r);
    }
    let config = c.live.config();
    // Configured ones in file order, then any with history only.
    let mut names: Vec<String> = config.reconciles.iter().map(|r| r.name.clone()).collect();
    names.extend(
        by.keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let recons: Vec<ReconView> = names
        .into_iter()
        .map(|name| {
            let runs = by.remove(&name).unwrap_or_default();
            ReconView {
                href: href(&name),
                latest: runs.last().cloned(),
                chart: view::svg(trend(&name, &runs)),
                name,
            }
        })
        .collect();
    Ok(view::render(
        "recons.html",
        context! {
            recons => recons,
            statuses => STATUSES,
            ..view::page(&s, "recons", "Reconciliations", tz)
        },
    ))
}

#[derive(serde::Deserialize, Default, Clone)]
pub struct ExceptionFilter {
    /// A run id; the latest run when absent.
    #[serde(default)]
    run: Option<String>,
    /// One status; every exception status when empty.
    #[serde(default)]
    status: String,
    /// Text the keys or differences contain (case-insensitive).
    #[serde(default)]
    q: String,
}

#[derive(Serialize)]
struct Difference {
    column: String,
    left: String,
    right: String,
    delta: String,
}

#[derive(Serialize)]
struct ExceptionView {
    status: String,
    left_key: Option<String>,
    right_key: Option<String>,
    differences: Vec<Difference>,
    #[serde(skip)]
    raw: Option<String>,
}

fn json_text(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn differences(raw: Option<&str>) -> Vec<Difference> {
    let Some(serde_json::Value::Array(items)) = raw.and_then(|t| serde_json::from_str(t).ok())
    else {
        return Vec::new();
    };
    items
        .iter()
        .map(|d| Difference {
            column: json_text(d.get("column")),
            left: json_text(d.get("left")),
            right: json_text(d.get("right")),
            delta: json_text(d.get("delta")),
        })
        .collect()
}

/// The WHERE clause and parameters of a filtered selection of run `run`.
fn selection(name: &str, run: i64, f: &ExceptionFilter) -> (String, Vec<String>) {
    let mut sql = String::from("reconciliation = ? AND run_id = CAST(? AS BIGINT)");
    let mut params = vec![name.to_string(), run.to_string()];
    if f.status.is_empty() {
        sql.push_str(" AND status NOT IN ('matched', 'matched_within_tolerance')");
    } else {
        sql.push_str(" AND status = ?");
        params.push(f.status.clone());
    }
    if !f.q.trim().is_empty() {
        sql.push_str(
            " AND contains(lower(coalesce(left_key, '') || ' ' || coalesce(right_key, '') || ' ' \
             || coalesce(CAST(differences AS VARCHAR), '')), lower(?))",
        );
        params.push(f.q.trim().to_string());
    }
    (sql, params)
}

const ORDER: &str = " ORDER BY CASE status WHEN 'mismatched' THEN 0 WHEN 'missing_right' THEN 1 \
     WHEN 'missing_left' THEN 2 WHEN 'duplicate' THEN 3 ELSE 4 END, left_key NULLS LAST, right_key";

fn exception_rows(
    conn: &Connection,
    name: &str,
    run: i64,
    f: &ExceptionFilter,
    limit: Option<i64>,
) -> Result<(Vec<ExceptionView>, i64)> {
    let (filter, params) = selection(name, run, f);
    let p: Vec<&dyn duckdb::ToSql> = params.iter().map(|p| p as &dyn duckdb::ToSql).collect();
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM conveyor.recon_results WHERE {filter}"),
        p.as_slice(),
        |r| r.get(0),
    )?;
    let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
    let rows = rows(
        conn,
        &format!(
            "SELECT status, left_key, right_key, CAST(differences AS VARCHAR)
             FROM conveyor.recon_results WHERE {filter}{ORDER}{limit}"
        ),
        &p,
        |r| {
            let raw: Option<String> = r.get(3)?;
            Ok(ExceptionView {
                status: r.get(0)?,
                left_key: r.get(1)?,
                right_key: r.get(2)?,
                differences: differences(raw.as_deref()),
                raw,
            })
        },
    )?;
    Ok((rows, total))
}

/// Run `f.run`, or the latest; `None` when it has no run.
fn chosen_run(runs: &[(String, RunView)], f: &ExceptionFilter) -> Option<RunView> {
    match f.run.as_deref().and_then(|r| r.parse::<i64>().ok()) {
        Some(id) => runs
            .iter()
            .find(|(_, r)| r.run_id == id)
            .map(|(_, r)| r.clone()),
        None => runs.last().map(|(_, r)| r.clone()),
    }
}

pub async fn exceptions(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(f): Query<ExceptionFilter>,
) -> PageResult {
    let tz = c.tz;
    let (n, filter) = (name.clone(), f.clone());
    let (runs, run, found) = read(c.wh.clone(), move |conn| {
        let runs = run_rows(conn, Some(&n), tz)?;
        let run = chosen_run(&runs, &filter);
        let found = match &run {
            Some(r) => Some(exception_rows(
                conn,
                &n,
                r.run_id,
                &filter,
                Some(PAGE_ROWS),
            )?),
            None => None,
        };
        Ok((runs, run, found))
    })
    .await?;
    let config = c.live.config();
    let cfg = config.reconciles.iter().find(|r| r.name == name);
    if cfg.is_none() && runs.is_empty() {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no reconciliation named {name:?}"),
        ));
    }
    let (rows, total) = found.unwrap_or_default();
    let csv: String = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(r) = &run {
            q.append_pair("run", &r.run_id.to_string());
        }
        q.append_pair("status", &f.status).append_pair("q", &f.q);
        format!("{}/exceptions.csv?{}", href(&name), q.finish())
    };
    let run_list: Vec<RunView> = runs.iter().rev().map(|(_, r)| r.clone()).collect();
    let title = format!("Reconciliation: {name}");
    Ok(view::render(
        "recon.html",
        context! {
            name => name,
            href => href(&name),
            left_name => cfg.map_or("left".to_string(), |c| c.left_name.clone()),
            right_name => cfg.map_or("right".to_string(), |c| c.right_name.clone()),
            run => run,
            runs => run_list,
            rows => rows,
            shown => rows.len(),
            total => total,
            statuses => STATUSES,
            filter => context! { status => f.status, q => f.q },
            csv => csv,
            ..view::page(&s, "recons", &title, tz)
        },
    ))
}

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@`
/// (a formula to a spreadsheet) made inert with a `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The filtered exceptions as CSV: one line per exception, the differing
/// columns spelled out and as the stored JSON.
pub async fn csv(
    State(c): State<Console>,
    Path(name): Path<String>,
    Query(f): Query<ExceptionFilter>,
) -> Result<Response, Failure> {
    let (n, filter) = (name.clone(), f.clone());
    let tz = c.tz;
    let (run, rows) = read(c.wh.clone(), move |conn| {
        let runs = run_rows(conn, Some(&n), tz)?;
        let Some(run) = chosen_run(&runs, &filter) else {
            return Ok((None, Vec::new()));
        };
        let (rows, _) = exception_rows(conn, &n, run.run_id, &filter, None)?;
        Ok((Some(run), rows))
    })
    .await?;
    let Some(run) = run else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no run of reconciliation {name:?}"),
        ));
    };
    let mut out = String::from(
        "reconciliation,run_id,status,left_key,right_key,differences,differences_json\n",
    );
    for r in &rows {
        let diffs = r
            .differences
            .iter()
            .map(|d| format!("{}: {} / {} ({})", d.column, d.left, d.right, d.delta))
            .collect::<Vec<_>>()
            .join("; ");
        let fields = [
            name.as_str(),
            &run.run_id.to_string(),
            &r.status,
            r.left_key.as_deref().unwrap_or(""),
            r.right_key.as_deref().unwrap_or(""),
            &diffs,
            r.raw.as_deref().unwrap_or(""),
        ];
        out.push_str(&fields.map(csv_field).join(","));
        out.push('\n');
    }
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{file}-run{}-exceptions.csv\"",
                    run.run_id
                ),
            ),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_csv_fields_are_quoted_and_formulas_made_inert() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-3"), "'-3");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn console_exception_differences_are_read_from_the_json() {
        let d = differences(Some(
            r#"[{"column": "hours", "left": 80, "right": 72.5, "delta": -7.5, "status": "mismatched"}]"#,
        ));
        assert_eq!(d.len(), 1);
        assert_eq!(
            (
                d[0].column.as_str(),
                d[0].left.as_str(),
                d[0].right.as_str(),
                d[0].delta.as_str()
            ),
            ("hours", "80", "72.5", "-7.5")
        );
        assert!(differences(None).is_empty() && differences(Some("{}")).is_empty());
    }

    #[test]
    fn console_exception_filters_are_parameters() {
        let f = ExceptionFilter {
            run: None,
            status: "missing_right".into(),
            q: "o'brien".into(),
        };
        let (sql, params) = selection("r", 7, &f);
        assert!(
            !sql.contains("o'brien") && !sql.contains("missing_right"),
            "{sql}"
        );
        assert_eq!(params, ["r", "7", "missing_right", "o'brien"]);
    }
}
