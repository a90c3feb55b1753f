//! Reconciliation: runs a `[[reconcile]]` entry inside DuckDB and records
//! every row's status in `conveyor.recon_results` plus one summary row in
//! `conveyor.recon_runs`. History is kept: each run appends under a new id.

mod plan;
/// The built-in recipes ship with the demo (the docs quote them).
#[cfg(any(feature = "demo", test))]
pub mod recipes;
pub mod report;

use std::time::Instant;

use conveyor_config::ReconcileConfig;
use duckdb::{params, Connection};

use crate::warehouse::literal;
use crate::warehouse::transaction::in_transaction;

/// Every status a result row can have, in report order.
pub use conveyor_config::reconcile::RECON_STATUSES as STATUSES;

#[derive(Debug, thiserror::Error)]
pub enum ReconError {
    /// The relations or expressions did not run (a missing table or column,
    /// a type that cannot be compared); recorded as a failed run.
    #[error("reconciliation `{name}` failed: {message}")]
    Query { name: String, message: String },
    #[error("cannot record reconciliation `{name}`: {source}")]
    Store { name: String, source: duckdb::Error },
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub reconciliation: String,
    pub left_rows: i64,
    pub right_rows: i64,
    /// Result rows per status, in [`STATUSES`] order.
    pub counts: [i64; 6],
    pub millis: i64,
}

impl RunSummary {
    #[cfg(test)]
    pub fn count(&self, status: &str) -> i64 {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.counts[i])
    }

    pub fn exceptions(&self) -> i64 {
        self.counts[2..].iter().sum()
    }
}

/// Runs one reconciliation on `conn` (a connection of its own: it creates
/// temporary tables). `trigger` says why it ran (`manual`, `after:ats`,
/// `schedule`). A failed run is recorded with its error, then returned.
#[cfg(test)]
pub fn run(
    conn: &Connection,
    cfg: &ReconcileConfig,
    trigger: &str,
) -> Result<RunSummary, ReconError> {
    run_at(conn, cfg, trigger, None)
}

/// Runs one reconciliation as of `as_of` (default: now). The relations see it as
/// `getvariable('conveyor_now')`, as rule measures do, so a reconciliation
/// "as of" a date gives the same answer whenever it runs.
pub fn run_at(
    conn: &Connection,
    cfg: &ReconcileConfig,
    trigger: &str,
    as_of: Option<chrono::NaiveDateTime>,
) -> Result<RunSummary, ReconError> {
    let started = Instant::now();
    let store = |source| ReconError::Store {
        name: cfg.name.clone(),
        source,
    };
    set_clock(conn, as_of).map_err(store)?;
    let run_id: i64 = conn
        .query_row("SELECT nextval('conveyor.recon_run_ids')", [], |r| r.get(0))
        .map_err(store)?;
    let started_sql = "make_timestamp(epoch_us(now()))";
    let outcome = in_transaction(conn, || -> Result<(), Failed> {
        let (left_rows, right_rows) = compute(conn, cfg, run_id).map_err(Failed::Query)?;
        let millis = started.elapsed().as_millis() as i64;
        let summary = format!(
            "INSERT INTO conveyor.recon_runs \
             SELECT {run_id}, {name}, {trigger}, 'succeeded', {started_sql} - to_milliseconds({millis}), {started_sql}, \
                    {left_rows}, {right_rows}, {counts}, NULL \
             FROM conveyor.recon_results WHERE run_id = {run_id}",
            name = literal(&cfg.name),
            trigger = literal(trigger),
            counts = STATUSES.iter().map(|s| format!("count(*) FILTER (WHERE status = '{s}')")).collect::<Vec<_>>().join(", "),
        );
        conn.execute_batch(&summary)?;
        Ok(())
    });
    drop_temp(conn);
    match outcome {
        Ok(()) => load_summary(conn, run_id).map_err(store),
        Err(Failed::Store(e)) => Err(store(e)),
        Err(Failed::Query(message)) => {
            conn.execute(
                "INSERT INTO conveyor.recon_runs (run_id, reconciliation, trigger, status, started_at, finished_at, error)
                 VALUES (?, ?, ?, 'failed', make_timestamp(epoch_us(now())), make_timestamp(epoch_us(now())), ?)",
                params![run_id, cfg.name, trigger, message],
            )
            .map_err(store)?;
            Err(ReconError::Query {
                name: cfg.name.clone(),
                message,
            })
        }
    }
}

/// Why a run's transaction ended without committing: its relations or
/// keys did not run (recorded as a failed run), or the warehouse failed.
enum Failed {
    Query(String),
    Store(duckdb::Error),
}

impl From<duckdb::Error> for Failed {
    fn from(e: duckdb::Error) -> Self {
        Failed::Store(e)
    }
}

/// Builds the temporary tables and inserts the results; returns the row
/// counts of both sides.
fn compute(conn: &Connection, cfg: &ReconcileConfig, run_id: i64) -> Result<(i64, i64), String> {
    for (side, relation) in [("left", &cfg.left), ("right", &cfg.right)] {
        if let conveyor_config::Relation::Sql(sql) = relation {
            crate::query::guard::check_config_sql(conn, sql).map_err(|e| format!("{side}: {e}"))?;
        }
    }
    compute_checked(conn, cfg, run_id).map_err(|e| e.to_string())
}

fn compute_checked(
    conn: &Connection,
    cfg: &ReconcileConfig,
    run_id: i64,
) -> duckdb::Result<(i64, i64)> {
    for statement in plan::prepare(cfg) {
        let started = Instant::now();
        conn.execute_batch(&statement)?;
        tracing::debug!(reconciliation = %cfg.name, ms = started.elapsed().as_millis() as u64, sql = %statement, "recon step");
    }
    if cfg.pairing == conveyor_config::Pairing::Best {
        let started = Instant::now();
        let mut rounds = 0;
        while conn.execute(plan::ASSIGN_ROUND, [])? > 0 {
            rounds += 1;
        }
        tracing::debug!(reconciliation = %cfg.name, rounds, ms = started.elapsed().as_millis() as u64, "best pairing");
    }
    conn.execute_batch(&plan::insert_results(cfg, run_id))?;
    conn.query_row(
        "SELECT (SELECT count(*) FROM recon_l), (SELECT count(*) FROM recon_r)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn drop_temp(conn: &Connection) {
    let _ = conn.execute_batch(
        "DROP TABLE IF EXISTS recon_l; DROP TABLE IF EXISTS recon_r; DROP TABLE IF EXISTS recon_p;
         DROP TABLE IF EXISTS recon_c;",
    );
}

fn load_summary(conn: &Connection, run_id: i64) -> duckdb::Result<RunSummary> {
    conn.query_row(
        "SELECT reconciliation, left_rows, right_rows, matched, matched_within_tolerance, missing_left, missing_right,
                mismatched, duplicate, CAST(epoch_ms(finished_at) - epoch_ms(started_at) AS BIGINT)
         FROM conveyor.recon_runs WHERE run_id = ?",
        params![run_id],
        |r| {
            Ok(RunSummary {
                run_id,
                reconciliation: r.get(0)?,
                left_rows: r.get(1)?,
                right_rows: r.get(2)?,
                counts: [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                millis: r.get(9)?,
            })
        },
    )
}

/// Runs `recons` one after another on a fresh connection; a failing one is
/// logged and does not stop the others.
pub fn run_all(
    conn: &Connection,
    recons: &[&ReconcileConfig],
    trigger: &str,
    as_of: Option<chrono::NaiveDateTime>,
) -> Vec<Result<RunSummary, ReconError>> {
    recons
        .iter()
        .map(|r| {
            let result = run_at(conn, r, trigger, as_of);
            match &result {
                Ok(s) => tracing::info!(reconciliation = %s.reconciliation, run_id = s.run_id, exceptions = s.exceptions(), "reconciled"),
                Err(e) => tracing::error!(error = %e, "reconciliation failed"),
            }
            result
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// A side of a reconciliation that does not bind against the warehouse.
#[derive(Debug)]
pub struct RelationProblem {
    /// `left` or `right`.
    pub side: &'static str,
    pub message: String,
    /// A table it reads does not exist yet (its source never synced).
    pub not_there_yet: bool,
}

/// Sets `getvariable('conveyor_now')` for the relations: `as_of`, or now.
fn set_clock(conn: &Connection, as_of: Option<chrono::NaiveDateTime>) -> duckdb::Result<()> {
    let now = match as_of {
        Some(t) => crate::warehouse::timestamp_literal(t),
        None => "make_timestamp(epoch_us(now()))".to_string(),
    };
    conn.execute_batch(&format!("SET VARIABLE conveyor_now = {now}"))
}

/// For `conveyor check`: binds each side's relation with its key and
/// compared expressions on `conn` (read-only is enough; no row is read).
pub fn check_relations(conn: &Connection, cfg: &ReconcileConfig) -> Vec<RelationProblem> {
    let mut out = Vec::new();
    // Relations may read the clock; give it a typed value so they bind.
    let _ = set_clock(conn, None);
    for (side, relation) in [("left", &cfg.left), ("right", &cfg.right)] {
        let pick = |l: &String, r: &String| if side == "left" { l.clone() } else { r.clone() };
        let exprs: Vec<String> = cfg
            .keys
            .iter()
            .map(|k| pick(&k.left, &k.right))
            .chain(cfg.compare.iter().map(|c| pick(&c.left, &c.right)))
            .collect();
        if let conveyor_config::Relation::Sql(sql) = relation {
            if let Err(message) = crate::query::guard::check_config_sql(conn, sql) {
                out.push(RelationProblem {
                    side,
                    message,
                    not_there_yet: false,
                });
                continue;
            }
        }
        let sql = format!(
            "SELECT count(*) FROM (SELECT {} FROM {} AS src LIMIT 0)",
            exprs.join(", "),
            relation.from_item()
        );
        if let Err(e) = conn.query_row(&sql, [], |r| r.get::<_, i64>(0)) {
            let text = e.to_string();
            let message = crate::warehouse::engine_error::first_line(&text);
            out.push(RelationProblem {
                side,
                not_there_yet: crate::warehouse::engine_error::is_missing_object(&text),
                message,
            });
        }
    }
    out
}
