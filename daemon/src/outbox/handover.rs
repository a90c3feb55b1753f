//! The evaluator's state handed from daemon to daemon in a cluster: the
//! alert states and the rule notifications not yet delivered, written out
//! after each change by the daemon that evaluates (`export`) and read in by
//! the next one before its first evaluation (`import`). Beside it, the gate
//! that keeps a rule notification from being sent before the cluster holds
//! it: what the evaluator has not yet handed over is never sent, so a crash
//! of the evaluator means its successor evaluates again from the last state
//! handed over, and every alert is announced once — not once per daemon.
//!
//! Operator notifications (`conveyor.*`: failing jobs, dead letters) are
//! each daemon's own, and are not handed over.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use duckdb::Connection;

/// The rule notifications: every row but the operator's own.
const RULE_ROWS: &str = "rule NOT LIKE 'conveyor.%'";

/// What the evaluator hands over, as JSON texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatorState {
    /// Every row of `conveyor.alerts`.
    pub alerts: String,
    /// The rule notifications neither delivered nor dead.
    pub outbox: String,
    /// Their inline images.
    pub images: String,
    /// The highest rule evaluation id used: the next evaluator continues
    /// after it, so notification keys never repeat across daemons.
    pub last_eval_id: i64,
    /// The highest outbox id of a rule notification in this state: those
    /// up to it may be sent once the state is handed over.
    pub upto: i64,
    /// The keys of the undelivered notifications, to ask the cluster which
    /// were delivered elsewhere.
    pub keys: Vec<String>,
}

/// The outbox columns handed over, with their types for `from_json`.
const OUTBOX_COLUMNS: &[(&str, &str)] = &[
    ("id", "BIGINT"),
    ("key", "VARCHAR"),
    ("rule", "VARCHAR"),
    ("eval_id", "BIGINT"),
    ("channel", "VARCHAR"),
    ("recipient", "VARCHAR"),
    ("subject", "VARCHAR"),
    ("body", "VARCHAR"),
    ("html_body", "VARCHAR"),
    ("created_at", "TIMESTAMP"),
    ("attempts", "INTEGER"),
    ("next_attempt_at", "TIMESTAMP"),
    ("last_error", "VARCHAR"),
    ("headers", "VARCHAR"),
    ("chart_png", "VARCHAR"),
];

/// Reads the state out of the warehouse (one read transaction, so the
/// alerts and the outbox agree).
pub fn export(conn: &Connection) -> Result<EvaluatorState> {
    crate::warehouse::transaction::rolled_back(conn, || {
        let alerts: String = conn.query_row(
            "SELECT CAST(coalesce(to_json(list(a ORDER BY rule, entity)), '[]') AS VARCHAR) FROM conveyor.alerts a",
            [],
            |r| r.get(0),
        )?;
        let outbox: String = conn.query_row(
            &format!(
                "SELECT CAST(coalesce(to_json(list(o ORDER BY id)), '[]') AS VARCHAR) FROM (
                   SELECT id, key, rule, eval_id, channel, recipient, subject, body, html_body,
                          created_at, attempts, next_attempt_at, last_error,
                          CAST(headers AS VARCHAR) AS headers, base64(chart_png) AS chart_png
                     FROM conveyor.outbox
                    WHERE {RULE_ROWS} AND delivered_at IS NULL AND dead_at IS NULL) o"
            ),
            [],
            |r| r.get(0),
        )?;
        let images: String = conn.query_row(
            &format!(
                "SELECT CAST(coalesce(to_json(list(i ORDER BY outbox_id, n)), '[]') AS VARCHAR) FROM (
                   SELECT outbox_id, cid, base64(png) AS png, rowid AS n FROM conveyor.outbox_images
                    WHERE outbox_id IN (SELECT id FROM conveyor.outbox
                                         WHERE {RULE_ROWS} AND delivered_at IS NULL AND dead_at IS NULL)) i"
            ),
            [],
            |r| r.get(0),
        )?;
        let (upto, last_eval_id): (i64, i64) = conn.query_row(
            &format!(
                "SELECT (SELECT coalesce(max(id), 0) FROM conveyor.outbox WHERE {RULE_ROWS}),
                        greatest((SELECT coalesce(max(last_eval_id), 0) FROM conveyor.alerts),
                                 (SELECT coalesce(max(last_value), 0) FROM duckdb_sequences()
                                   WHERE schema_name = 'conveyor' AND sequence_name = 'rule_eval_ids'))"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut st = conn.prepare(&format!(
            "SELECT key FROM conveyor.outbox WHERE {RULE_ROWS} AND delivered_at IS NULL AND dead_at IS NULL ORDER BY id"
        ))?;
        let keys = st
            .query_map([], |r| r.get(0))?
            .collect::<duckdb::Result<Vec<String>>>()?;
        Ok::<_, anyhow::Error>(EvaluatorState {
            alerts,
            outbox,
            images,
            last_eval_id,
            upto,
            keys,
        })
    })
    .context("cannot read the evaluator's state out of the warehouse")
}

/// What an import changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub alerts: usize,
    /// Notifications handed over that this warehouse did not have.
    pub queued: usize,
    /// Notifications of this warehouse the handed-over state no longer
    /// holds (delivered by another daemon, or evaluated again there): kept,
    /// marked, never sent.
    pub superseded: usize,
}

/// Makes the warehouse's evaluator state the one handed over, in one
/// transaction: the alerts replaced, the undelivered rule notifications
/// made the handed-over ones (matched by key), and the evaluation ids
/// continued past the state's.
pub fn import(conn: &Connection, state: &EvaluatorState, now: &str) -> Result<Imported> {
    let alert_types: String = conn.query_row(
        "SELECT json_group_object(column_name, data_type) FROM information_schema.columns
          WHERE table_schema = 'conveyor' AND table_name = 'alerts'",
        [],
        |r| r.get(0),
    )?;
    let outbox_types = format!(
        "{{{}}}",
        OUTBOX_COLUMNS
            .iter()
            .map(|(c, t)| format!("\"{c}\":\"{t}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let last_local: i64 = conn.query_row(
        "SELECT greatest((SELECT coalesce(max(eval_id), 0) FROM conveyor.rule_results),
                         (SELECT coalesce(max(last_value), 0) FROM duckdb_sequences()
                           WHERE schema_name = 'conveyor' AND sequence_name = 'rule_eval_ids'))",
        [],
        |r| r.get(0),
    )?;
    let columns: Vec<&str> = OUTBOX_COLUMNS
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !matches!(*c, "id" | "headers" | "chart_png"))
        .collect();
    crate::warehouse::transaction::in_transaction(conn, || {
        let mut done = Imported::default();
        conn.execute("DELETE FROM conveyor.alerts", [])?;
        done.alerts = conn.execute(
            "INSERT INTO conveyor.alerts BY NAME
             SELECT unnest(from_json(CAST(? AS JSON), '[' || ? || ']'), recursive := true)",
            duckdb::params![state.alerts, alert_types],
        )?;
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE handover_o AS
             SELECT unnest(from_json(CAST(? AS JSON), ?), recursive := true)",
            duckdb::params![state.outbox, format!("[{outbox_types}]")],
        )?;
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE handover_i AS
             SELECT unnest(from_json(CAST(? AS JSON), '[{\"outbox_id\":\"BIGINT\",\"cid\":\"VARCHAR\",\"png\":\"VARCHAR\",\"n\":\"BIGINT\"}]'), recursive := true)",
            [&state.images],
        )?;
        done.superseded = conn.execute(
            &format!(
                "UPDATE conveyor.outbox SET dead_at = CAST(?1 AS TIMESTAMP), reported_at = CAST(?1 AS TIMESTAMP),
                        last_error = 'not sent: the cluster''s evaluator state no longer holds it (delivered or evaluated again by another daemon)'
                  WHERE {RULE_ROWS} AND delivered_at IS NULL AND dead_at IS NULL
                    AND key NOT IN (SELECT key FROM handover_o)"
            ),
            [now],
        )?;
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE handover_ids AS
             SELECT id AS old_id, nextval('conveyor.outbox_ids') AS new_id FROM handover_o
              WHERE key NOT IN (SELECT key FROM conveyor.outbox)",
            [],
        )?;
        done.queued = conn.execute(
            &format!(
                "INSERT INTO conveyor.outbox (id, {cols}, headers, chart_png)
                 SELECT i.new_id, {ocols}, CAST(o.headers AS JSON), from_base64(o.chart_png)
                   FROM handover_o o JOIN handover_ids i ON i.old_id = o.id",
                cols = columns.join(", "),
                ocols = columns
                    .iter()
                    .map(|c| format!("o.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            [],
        )?;
        conn.execute(
            "INSERT INTO conveyor.outbox_images (outbox_id, cid, png)
             SELECT i.new_id, m.cid, from_base64(m.png)
               FROM handover_i m JOIN handover_ids i ON i.old_id = m.outbox_id ORDER BY m.outbox_id, m.n",
            [],
        )?;
        conn.execute_batch(
            "DROP TABLE handover_o; DROP TABLE handover_i; DROP TABLE handover_ids;",
        )?;
        // The next evaluation id follows both this warehouse's and the
        // handed-over state's, so no key is ever made twice in the cluster.
        let next = last_local.max(state.last_eval_id) + 1;
        conn.execute_batch(&format!(
            "CREATE OR REPLACE SEQUENCE conveyor.rule_eval_ids START {next}"
        ))?;
        Ok::<_, anyhow::Error>(done)
    })
    .context("cannot take the evaluator's state into the warehouse")
}

/// Whether, and which, rule notifications this process may send: set by
/// the daemon in a cluster; with none set, every row may go.
pub struct Gate {
    /// The highest outbox id the cluster holds (handed over), or -1: none.
    upto: AtomicI64,
    /// Keys the cluster says another daemon delivered.
    delivered_elsewhere: Mutex<HashSet<String>>,
    /// Keys delivered here, to tell the cluster at the next hand-over.
    delivered_here: Mutex<Vec<String>>,
}

static GATE: OnceLock<Gate> = OnceLock::new();

/// The process's gate, created (closed) on first use: a daemon in a
/// cluster calls this before anything is delivered.
pub fn gate() -> &'static Gate {
    GATE.get_or_init(|| Gate {
        upto: AtomicI64::new(-1),
        delivered_elsewhere: Mutex::new(HashSet::new()),
        delivered_here: Mutex::new(Vec::new()),
    })
}

impl Gate {
    /// Rule notifications up to `upto` may be sent (None: none may).
    pub fn open_upto(&self, upto: Option<i64>) {
        self.upto.store(upto.unwrap_or(-1), Ordering::SeqCst);
    }

    /// The keys another daemon delivered, as the cluster last said.
    pub fn set_delivered_elsewhere(&self, keys: HashSet<String>) {
        *self
            .delivered_elsewhere
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// The keys delivered here since the last call.
    pub fn take_delivered_here(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .delivered_here
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Puts keys back that could not be told to the cluster.
    pub fn return_delivered_here(&self, mut keys: Vec<String>) {
        self.delivered_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&mut keys);
    }
}

/// The highest outbox id of a rule notification that may be sent now.
pub(super) fn sendable_upto() -> i64 {
    GATE.get()
        .map_or(i64::MAX, |g| g.upto.load(Ordering::SeqCst))
}

/// The SQL condition for the rows a delivery pass may pick: operator rows
/// always, rule rows up to `sendable_upto()`.
pub(super) fn sendable(upto: i64) -> String {
    format!("(NOT ({RULE_ROWS}) OR id <= {upto})")
}

/// Whether a rule notification about to be sent was delivered by another
/// daemon already (then it is marked delivered, not sent).
pub(super) fn delivered_elsewhere(rule: &str, key: &str) -> bool {
    !rule.starts_with("conveyor.")
        && GATE.get().is_some_and(|g| {
            g.delivered_elsewhere
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(key)
        })
}

/// Notes a rule notification delivered here, for the cluster.
pub(super) fn delivered_here(rule: &str, key: &str) {
    if let (false, Some(g)) = (rule.starts_with("conveyor."), GATE.get()) {
        g.delivered_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key.to_string());
    }
}
