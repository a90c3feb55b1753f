//! A report's sections computed in DuckDB: the SQL around each section's
//! measures (the last N periods, the recipient's slice, KPIs against goals,
//! a trend, a correlation with `corr`/`regr_slope`) and the facts read
//! back. Rendering them is `render.rs`'s job.

use std::collections::BTreeMap;

use conveyor_config::{Direction, Goal, ReportSection, SectionKind, Series};
use duckdb::Connection;

use crate::query::guard::check_config_sql;
use crate::warehouse::ident;

/// At most this many rows of a `table` section (the rest is in the warehouse).
pub const TABLE_ROWS: usize = 50;

/// A red/amber/green verdict of a value against its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rag {
    Green,
    Amber,
    Red,
}

impl Rag {
    pub fn of(goal: &Goal, value: f64) -> Rag {
        if goal.met(value) {
            return Rag::Green;
        }
        let close = goal.amber.is_some_and(|a| match goal.direction {
            Direction::Above => value >= a,
            Direction::Below => value <= a,
        });
        if close {
            Rag::Amber
        } else {
            Rag::Red
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Rag::Green => "green",
            Rag::Amber => "amber",
            Rag::Red => "red",
        }
    }
}

/// One entity's figures for one KPI over the section's periods.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiCell {
    /// The value of the entity's latest period.
    pub latest: f64,
    pub rag: Rag,
    /// Periods (of those with a value) that met the goal.
    pub met: i64,
    pub periods: i64,
}

/// What a section found.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    Kpis {
        /// Per entity (by its label), a cell per KPI (none: no value).
        rows: Vec<(String, Vec<Option<KpiCell>>)>,
    },
    Trend {
        /// `(period, value)` oldest first: the entities' average.
        points: Vec<(String, Option<f64>)>,
        entities: i64,
    },
    Correlation {
        /// `(entity, x, y)`: each entity's averages over the periods.
        points: Vec<(String, f64, f64)>,
        /// Pearson's r, the slope and intercept of y on x (none with
        /// fewer than two points or no spread).
        r: Option<f64>,
        slope: Option<f64>,
        intercept: Option<f64>,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
        /// Rows the query returned beyond [`TABLE_ROWS`].
        more: usize,
    },
}

/// Computes `section` on `conn` (the report's variables and clock already
/// set on it). Every query is checked to be one read first.
pub fn compute(conn: &Connection, section: &ReportSection) -> Result<Facts, String> {
    match &section.kind {
        SectionKind::Kpis(kpis) => {
            let mut by_entity: BTreeMap<String, Vec<Option<KpiCell>>> = BTreeMap::new();
            for (i, kpi) in kpis.iter().enumerate() {
                for (entity, cell) in kpi_cells(conn, section, &kpi.series, &kpi.goal)? {
                    by_entity
                        .entry(entity)
                        .or_insert_with(|| vec![None; kpis.len()])[i] = Some(cell);
                }
            }
            Ok(Facts::Kpis {
                rows: by_entity.into_iter().collect(),
            })
        }
        SectionKind::Trend(series, _) => trend(conn, section, series),
        SectionKind::Correlation { x, y } => correlation(conn, section, x, y),
        SectionKind::Table { sql } => table(conn, sql),
    }
}

/// `WITH m AS (…)`: the measure, cut to the recipient's slice, and `w` the
/// rows of its last `periods` periods.
fn window(
    conn: &Connection,
    section: &ReportSection,
    name: &str,
    series: &Series,
) -> Result<String, String> {
    check_config_sql(conn, &series.measure).map_err(|e| format!("{}: {e}", series.label))?;
    let sql = &series.measure;
    let only = section
        .only
        .as_ref()
        .map(|c| format!(" WHERE {col} = getvariable('{c}')", col = ident(c)))
        .unwrap_or_default();
    Ok(format!(
        "{name}_m AS (SELECT * FROM ({sql}) AS measure{only}),
         {name}_p AS (SELECT DISTINCT period FROM {name}_m ORDER BY period DESC LIMIT {n}),
         {name} AS (SELECT * FROM {name}_m WHERE period IN (SELECT period FROM {name}_p))",
        n = section.periods
    ))
}

/// How an entity is shown: its label column, or the entity itself (of
/// relation `of` in a join).
fn label_expr(section: &ReportSection, of: &str) -> String {
    let of = if of.is_empty() {
        String::new()
    } else {
        format!("{of}.")
    };
    match &section.entity_label {
        Some(c) => format!("CAST(any_value({of}{}) AS VARCHAR)", ident(c)),
        None => format!("CAST({of}entity AS VARCHAR)"),
    }
}

fn kpi_cells(
    conn: &Connection,
    section: &ReportSection,
    series: &Series,
    goal: &Goal,
) -> Result<Vec<(String, KpiCell)>, String> {
    let met = match goal.direction {
        Direction::Above => format!("CAST(value AS DOUBLE) >= {}", goal.goal),
        Direction::Below => format!("CAST(value AS DOUBLE) <= {}", goal.goal),
    };
    let sql = format!(
        "WITH {w}
         SELECT {label} AS label,
                CAST(arg_max(value, period) AS DOUBLE) AS latest,
                count(*) FILTER (WHERE {met}) AS met,
                count(value) AS periods
         FROM w WHERE value IS NOT NULL GROUP BY entity ORDER BY label",
        w = window(conn, section, "w", series)?,
        label = label_expr(section, ""),
    );
    rows(conn, &sql, |r| {
        let latest: f64 = r.get(1)?;
        Ok((
            r.get::<_, String>(0)?,
            KpiCell {
                latest,
                rag: Rag::of(goal, latest),
                met: r.get(2)?,
                periods: r.get(3)?,
            },
        ))
    })
    .map_err(|e| format!("{}: {e}", series.label))
}

fn trend(conn: &Connection, section: &ReportSection, series: &Series) -> Result<Facts, String> {
    let w = window(conn, section, "w", series)?;
    let points = rows(
        conn,
        &format!(
            "WITH {w} SELECT CAST(period AS VARCHAR), CAST(avg(value) AS DOUBLE)
             FROM w GROUP BY period ORDER BY period"
        ),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(|e| format!("{}: {e}", series.label))?;
    let entities = conn
        .query_row(
            &format!("WITH {w} SELECT count(DISTINCT entity) FROM w"),
            [],
            |r| r.get(0),
        )
        .map_err(|e| {
            format!(
                "{}: {}",
                series.label,
                crate::query::clean_error(&e.to_string())
            )
        })?;
    Ok(Facts::Trend { points, entities })
}

fn correlation(
    conn: &Connection,
    section: &ReportSection,
    x: &Series,
    y: &Series,
) -> Result<Facts, String> {
    let pairs = format!(
        "WITH {wx}, {wy},
         pairs AS (
             SELECT {label} AS label, CAST(avg(x.value) AS DOUBLE) AS x, CAST(avg(y.value) AS DOUBLE) AS y
             FROM x JOIN y ON x.entity = y.entity AND x.period = y.period
             WHERE x.value IS NOT NULL AND y.value IS NOT NULL
             GROUP BY x.entity)",
        wx = window(conn, section, "x", x)?,
        wy = window(conn, section, "y", y)?,
        label = label_expr(section, "x"),
    );
    let points = rows(
        conn,
        &format!("{pairs} SELECT label, x, y FROM pairs ORDER BY label"),
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(|e| format!("{} vs {}: {e}", x.label, y.label))?;
    // DuckDB's own statistics over the same pairs.
    let (r, slope, intercept) = conn
        .query_row(
            &format!(
                "{pairs} SELECT corr(y, x), regr_slope(y, x), regr_intercept(y, x) FROM pairs"
            ),
            [],
            |r| {
                Ok((
                    r.get::<_, Option<f64>>(0)?,
                    r.get::<_, Option<f64>>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                ))
            },
        )
        .map_err(|e| {
            format!(
                "{} vs {}: {}",
                x.label,
                y.label,
                crate::query::clean_error(&e.to_string())
            )
        })?;
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    Ok(Facts::Correlation {
        points,
        r: finite(r),
        slope: finite(slope),
        intercept: finite(intercept),
    })
}

fn table(conn: &Connection, sql: &str) -> Result<Facts, String> {
    check_config_sql(conn, sql)?;
    let result = crate::query::run(
        conn,
        &format!("SELECT * FROM ({sql}) AS t LIMIT {}", TABLE_ROWS + 1000),
    )
    .map_err(|e| format!("{e:#}"))?;
    let total = result.rows.len();
    let rows = result
        .rows
        .into_iter()
        .take(TABLE_ROWS)
        .map(|r| r.into_iter().map(|c| c.unwrap_or_default()).collect())
        .collect();
    Ok(Facts::Table {
        columns: result.columns,
        rows,
        more: total.saturating_sub(TABLE_ROWS),
    })
}

/// Every row of `sql` through `map`, errors as one clean line.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>, String> {
    crate::warehouse::rows(conn, sql, &[], map)
        .map_err(|e| crate::warehouse::engine_error::first_line(&e.to_string()))
}
