//! Performance rules: evaluates a `[[rules]]` entry inside DuckDB, appends
//! every result row (passes included) to `conveyor.rule_results` and moves
//! each entity's alert in `conveyor.alerts` through pending → firing →
//! resolved — results and alert transitions in one transaction.
//!
//! An alert follows the entity's latest period in the evaluation. It turns
//! pending on a breach and fires after `for` breaching evaluations in a row;
//! a pass while pending drops it (it never fired). A firing alert stays
//! firing until the value is back on the good side of `resolve`
//! (hysteresis). An entity the measure no longer returns is absent: after
//! the rule's `absent_after` evaluations (default 1) its alert resolves (or
//! is dropped if it never fired), keeping its last period and value; a row
//! without an entity is recorded but raises no alert.

mod plan;
pub mod report;
pub mod silence;
mod states;

use std::sync::Mutex;
use std::time::Instant;

use chrono::NaiveDateTime;
use conveyor_config::{Config, RuleConfig};
use duckdb::Connection;

pub use states::{AlertState, Due, Level};

/// The columns every measure must return.
const REQUIRED: [&str; 3] = ["entity", "period", "value"];

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The measure did not run or does not have the expected shape; nothing
    /// was recorded.
    #[error("rule `{rule}`: {message}")]
    Measure { rule: String, message: String },
    #[error("cannot record rule `{rule}`: {source}")]
    Store { rule: String, source: duckdb::Error },
}

/// What one evaluation found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalSummary {
    pub eval_id: i64,
    pub rule: String,
    /// Result rows per level, in [`Level::ALL`] order.
    pub levels: [i64; 4],
    /// Alerts of this rule after the evaluation, per state.
    pub pending: i64,
    pub firing: i64,
    /// Transitions made by this evaluation.
    pub started_firing: i64,
    pub resolved: i64,
    pub millis: i64,
}

impl EvalSummary {
    pub fn rows(&self) -> i64 {
        self.levels.iter().sum()
    }

    pub fn count(&self, level: Level) -> i64 {
        Level::ALL
            .iter()
            .position(|l| *l == level)
            .map_or(0, |i| self.levels[i])
    }
}

/// Evaluates `rule` now.
pub fn evaluate(conn: &Connection, rule: &RuleConfig) -> Result<EvalSummary, RuleError> {
    evaluate_at(conn, rule, chrono::Utc::now().naive_utc())
}

/// Evaluates `rule` as of `now` (UTC), on a connection of its own (it
/// creates temporary tables). A measure that fails leaves no trace.
pub fn evaluate_at(
    conn: &Connection,
    rule: &RuleConfig,
    now: NaiveDateTime,
) -> Result<EvalSummary, RuleError> {
    run(conn, rule, now, true, |_, _| Ok(())).map(|(summary, ())| summary)
}

/// What an evaluation now would do — its transitions and the notifications
/// it would queue, rendered — without recording or sending anything.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    pub rule: String,
    pub breaching: i64,
    /// `(entity, from, to)` for each alert that would change state.
    pub transitions: Vec<(String, Option<String>, Option<String>)>,
    /// `(entity, why)` for each alert a notification is due for.
    pub due: Vec<(String, Due)>,
    pub notifications: Vec<PreviewNotification>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PreviewNotification {
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
}

/// Runs the evaluation of `rule` at `now` inside a transaction that is
/// rolled back: nothing is recorded, nothing reaches the outbox.
pub fn preview_at(
    conn: &Connection,
    rule: &RuleConfig,
    now: NaiveDateTime,
) -> Result<Preview, RuleError> {
    // An evaluation running meanwhile would conflict with these writes.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (summary, (transitions, due, notifications)) =
        run(conn, rule, now, false, |conn, eval_id| {
            let mut st = conn.prepare(
                "SELECT entity, old_state, new_state FROM rule_t
             WHERE new_state IS DISTINCT FROM old_state ORDER BY entity",
            )?;
            let transitions = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<duckdb::Result<Vec<_>>>()?;
            let mut st = conn.prepare(
                "SELECT entity, notify FROM rule_t WHERE notify IS NOT NULL ORDER BY entity",
            )?;
            let due = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<duckdb::Result<Vec<_>>>()?;
            let mut st = conn.prepare(
                "SELECT channel, recipient, subject, body, html_body FROM conveyor.outbox
             WHERE eval_id = ? ORDER BY id",
            )?;
            let notifications = st
                .query_map([eval_id], |r| {
                    Ok(PreviewNotification {
                        channel: r.get(0)?,
                        recipient: r.get(1)?,
                        subject: r.get(2)?,
                        body: r.get(3)?,
                        html: r.get(4)?,
                    })
                })?
                .collect::<duckdb::Result<Vec<_>>>()?;
            Ok((transitions, due, notifications))
        })?;
    Ok(Preview {
        rule: rule.name.clone(),
        breaching: summary.count(Level::Warn) + summary.count(Level::Critical),
        transitions,
        due,
        notifications,
    })
}

/// One evaluation in one transaction: `inspect` reads what it needs before
/// the end, then the transaction commits (`keep`) or is rolled back (a
/// preview). A measure that fails leaves no trace either way.
fn run<T>(
    conn: &Connection,
    rule: &RuleConfig,
    now: NaiveDateTime,
    keep: bool,
    inspect: impl FnOnce(&Connection, i64) -> duckdb::Result<T>,
) -> Result<(EvalSummary, T), RuleError> {
    let started = Instant::now();
    let store = |source| RuleError::Store {
        rule: rule.name.clone(),
        source,
    };
    let eval_id: i64 = conn
        .query_row("SELECT nextval('conveyor.rule_eval_ids')", [], |r| r.get(0))
        .map_err(store)?;
    let now = crate::warehouse::timestamp_literal(now);
    drop_temp(conn);
    // The evaluation's clock, for measures (and shorthands) that look back
    // from "now": a simulated clock in tests moves their window too.
    conn.execute_batch(&format!("SET VARIABLE conveyor_now = {now}"))
        .map_err(store)?;
    let work = || -> Result<_, Step> {
        let summary = compute(conn, rule, eval_id, &now)?;
        Ok((summary, inspect(conn, eval_id)?))
    };
    // A preview computes the same and keeps nothing.
    let outcome = if keep {
        in_transaction(conn, work)
    } else {
        rolled_back(conn, work)
    }
    .map(|(mut summary, found)| {
        summary.millis = started.elapsed().as_millis() as i64;
        (summary, found)
    });
    drop_temp(conn);
    outcome.map_err(|step| match step {
        Step::Measure(message) => RuleError::Measure {
            rule: rule.name.clone(),
            message,
        },
        Step::Store(source) => RuleError::Store {
            rule: rule.name.clone(),
            source,
        },
    })
}

/// Which part of an evaluation failed: the user's SQL or our bookkeeping.
enum Step {
    Measure(String),
    Store(duckdb::Error),
}

impl From<duckdb::Error> for Step {
    fn from(e: duckdb::Error) -> Self {
        Step::Store(e)
    }
}

fn compute(
    conn: &Connection,
    rule: &RuleConfig,
    eval_id: i64,
    now: &str,
) -> Result<EvalSummary, Step> {
    let measure_err = |e: duckdb::Error| Step::Measure(first_line(&e.to_string()));
    crate::query::guard::check_config_sql(conn, &rule.measure).map_err(Step::Measure)?;
    conn.execute_batch(&plan::materialise(rule))
        .map_err(measure_err)?;
    let columns = columns(conn).map_err(Step::Store)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c.eq_ignore_ascii_case(r)))
        .collect();
    if !missing.is_empty() {
        return Err(Step::Measure(format!(
            "the measure lacks column(s) {} (it returns: {}); alias them, e.g. `agent_id AS entity`",
            missing.join(", "),
            columns.join(", ")
        )));
    }
    // Two rows for one entity and period would make the alert ambiguous.
    let dup: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT CAST(entity AS VARCHAR), CAST(period AS VARCHAR), count(*) FROM rule_m
             GROUP BY ALL HAVING count(*) > 1 ORDER BY 3 DESC, 1, 2 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(Step::Store)?;
    if let Some((entity, period, n)) = dup {
        return Err(Step::Measure(format!(
            "the measure returned {n} rows for entity `{entity}`, period `{period}`; it must return one row per entity per period"
        )));
    }
    let context: Vec<String> = columns
        .into_iter()
        .filter(|c| !REQUIRED.iter().any(|r| c.eq_ignore_ascii_case(r)))
        .collect();
    conn.execute_batch(&plan::classify(rule, &context))
        .map_err(measure_err)?;
    let mut statements = vec![plan::insert_results(rule, eval_id, now)];
    statements.extend(plan::transitions(rule, now));
    statements.extend(plan::apply(rule, eval_id, now));
    for statement in statements {
        conn.execute_batch(&statement).map_err(Step::Store)?;
    }
    // The notifications join the transaction: no alert fires unannounced.
    crate::outbox::enqueue(conn, rule, eval_id, now).map_err(|e| match e {
        crate::outbox::EnqueueError::Render(m) => Step::Measure(format!("action template: {m}")),
        crate::outbox::EnqueueError::Store(e) => Step::Store(e),
    })?;
    summarise(conn, rule, eval_id).map_err(Step::Store)
}

fn columns(conn: &Connection) -> duckdb::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT column_name FROM (DESCRIBE rule_m)")?;
    let names = st.query_map([], |r| r.get(0))?.collect();
    names
}

fn summarise(conn: &Connection, rule: &RuleConfig, eval_id: i64) -> duckdb::Result<EvalSummary> {
    let levels = Level::ALL
        .iter()
        .map(|l| format!("(SELECT count(*) FROM rule_c WHERE level = '{l}')"))
        .collect::<Vec<_>>()
        .join(", ");
    conn.query_row(
        &format!(
            "SELECT {levels},
               (SELECT count(*) FROM conveyor.alerts WHERE rule = ? AND state = 'pending'),
               (SELECT count(*) FROM conveyor.alerts WHERE rule = ? AND state = 'firing'),
               (SELECT count(*) FROM rule_t WHERE new_state = 'firing' AND old_state IS DISTINCT FROM 'firing'),
               (SELECT count(*) FROM rule_t WHERE new_state = 'resolved' AND old_state = 'firing')"
        ),
        [&rule.name, &rule.name],
        |r| {
            Ok(EvalSummary {
                eval_id,
                rule: rule.name.clone(),
                levels: [r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?],
                pending: r.get(4)?,
                firing: r.get(5)?,
                started_firing: r.get(6)?,
                resolved: r.get(7)?,
                millis: 0,
            })
        },
    )
}

use crate::warehouse::engine_error::{first_line, is_missing_object};
use crate::warehouse::transaction::{in_transaction, rolled_back};

fn drop_temp(conn: &Connection) {
    for t in plan::TEMP_TABLES {
        let _ = conn.execute_batch(&format!("DROP TABLE IF EXISTS temp.main.{t}"));
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// The rules to evaluate after `done` (sources synced and reconciliations
/// run without failing).
pub fn following<'c>(config: &'c Config, done: &[String]) -> Vec<&'c RuleConfig> {
    config
        .rules
        .iter()
        .filter(|r| r.after.iter().any(|a| done.contains(a)))
        .collect()
}

/// Evaluates `rules` one after another; a failing one is logged and does
/// not stop the others.
pub fn evaluate_all(
    conn: &Connection,
    rules: &[&RuleConfig],
) -> Vec<Result<EvalSummary, RuleError>> {
    // A rule on its schedule and the same rule after a sync would otherwise
    // rewrite the same alert rows in two transactions (a write conflict).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    rules
        .iter()
        .map(|r| {
            let result = evaluate(conn, r);
            match &result {
                Ok(s) => tracing::info!(rule = %s.rule, eval_id = s.eval_id, firing = s.firing, pending = s.pending, "rule evaluated"),
                Err(e) => tracing::error!(error = %e, "rule evaluation failed"),
            }
            result
        })
        .collect()
}

/// A measure that does not bind against the warehouse, for `conveyor check`.
#[derive(Debug)]
pub struct MeasureProblem {
    pub message: String,
    /// A table it reads does not exist yet (its source never synced).
    pub not_there_yet: bool,
}

/// Binds `rule`'s measure on `conn` (read-only is enough; no row is read)
/// and checks it returns `entity`, `period` and `value`.
#[cfg(test)]
pub fn check_measure(conn: &Connection, rule: &RuleConfig) -> Option<MeasureProblem> {
    measure_columns(conn, rule).err()
}

/// The columns `rule`'s measure returns, once it binds and has the
/// required ones (for checking action templates against them).
pub fn measure_columns(
    conn: &Connection,
    rule: &RuleConfig,
) -> Result<Vec<String>, MeasureProblem> {
    measure_sql_columns(conn, &rule.measure)
}

/// The columns a measure's SQL returns, once it binds and has `entity`,
/// `period` and `value` (a rule's, or a report section's).
pub fn measure_sql_columns(conn: &Connection, sql: &str) -> Result<Vec<String>, MeasureProblem> {
    let columns = sql_columns(conn, sql)?;
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c.eq_ignore_ascii_case(r)))
        .collect();
    if !missing.is_empty() {
        return Err(MeasureProblem {
            message: format!(
                "lacks column(s) {} (it returns: {})",
                missing.join(", "),
                columns.join(", ")
            ),
            not_there_yet: false,
        });
    }
    Ok(columns)
}

/// The columns config SQL returns, bound on `conn` without reading a row
/// (it must be one SELECT).
pub fn sql_columns(conn: &Connection, sql: &str) -> Result<Vec<String>, MeasureProblem> {
    // Measures may read the evaluation's clock; give it a typed value so
    // they bind as they will at run time.
    let _ = conn.execute_batch("SET VARIABLE conveyor_now = make_timestamp(epoch_us(now()))");
    if let Err(message) = crate::query::guard::check_config_sql(conn, sql) {
        return Err(MeasureProblem {
            message,
            not_there_yet: false,
        });
    }
    conn.prepare(&format!("DESCRIBE SELECT * FROM ({sql}\n) AS measure"))
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<duckdb::Result<Vec<String>>>()
        })
        .map_err(|e| {
            let text = e.to_string();
            MeasureProblem {
                not_there_yet: is_missing_object(&text),
                message: first_line(&text),
            }
        })
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
