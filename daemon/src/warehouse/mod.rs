//! The DuckDB warehouse: one schema per source, one table per stream, and
//! Conveyor's own bookkeeping in schema `conveyor`.
//!
//! The daemon is the single writer. Each stream load works on its own
//! connection to the one database instance, and commits a batch's rows, the
//! cursor after them and the run's counters in one transaction
//! ([`load::StreamLoader::commit`]). Readers use further connections and see
//! the last committed state; DuckDB's MVCC never makes them wait.

pub mod credentials;
pub mod engine_error;
pub mod load;
pub mod transaction;
pub mod types;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use duckdb::{params, AccessMode, Config, Connection};

/// Conveyor's own tables. Created idempotently on every open. Times are
/// TIMESTAMP in UTC (see [`types`] for why not TIMESTAMPTZ).
const METADATA_DDL: &str = r#"
CREATE SCHEMA IF NOT EXISTS conveyor;
CREATE SEQUENCE IF NOT EXISTS conveyor.run_ids START 1;
CREATE TABLE IF NOT EXISTS conveyor.runs (
    run_id      BIGINT PRIMARY KEY,
    source      VARCHAR NOT NULL,
    stream      VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,          -- running | succeeded | failed | cancelled | interrupted
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    rows        BIGINT NOT NULL DEFAULT 0,    -- read and stored (a re-sent record counts again)
    inserted    BIGINT DEFAULT 0,             -- of those, new keys
    updated     BIGINT DEFAULT 0,             -- of those, keys already there, replaced
    batches     BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    error       VARCHAR,
    lease_token BIGINT                    -- [cluster]: the source lease's fencing token it ran under
);
CREATE TABLE IF NOT EXISTS conveyor.stream_state (
    source      VARCHAR NOT NULL,
    stream      VARCHAR NOT NULL,
    state       JSON,
    last_run_id BIGINT,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (source, stream)
);
CREATE TABLE IF NOT EXISTS conveyor.schema_changes (
    changed_at  TIMESTAMP NOT NULL,
    run_id      BIGINT,
    source      VARCHAR NOT NULL,
    stream      VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    change      VARCHAR NOT NULL,          -- create_table | add_column | widen
    old_type    VARCHAR,
    new_type    VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS conveyor.rejects (
    rejected_at TIMESTAMP NOT NULL,
    run_id      BIGINT,
    source      VARCHAR NOT NULL,
    stream      VARCHAR NOT NULL,
    record_key  VARCHAR,
    reason      VARCHAR NOT NULL,
    record      JSON
);
CREATE SEQUENCE IF NOT EXISTS conveyor.recon_run_ids START 1;
CREATE TABLE IF NOT EXISTS conveyor.recon_runs (
    run_id          BIGINT PRIMARY KEY,
    reconciliation  VARCHAR NOT NULL,
    trigger         VARCHAR NOT NULL,      -- manual | after:SOURCE | schedule | demo
    status          VARCHAR NOT NULL,      -- succeeded | failed
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    left_rows       BIGINT,
    right_rows      BIGINT,
    matched         BIGINT,
    matched_within_tolerance BIGINT,
    missing_left    BIGINT,
    missing_right   BIGINT,
    mismatched      BIGINT,
    duplicate       BIGINT,
    error           VARCHAR
);
CREATE TABLE IF NOT EXISTS conveyor.recon_results (
    run_id          BIGINT NOT NULL,       -- appended per run, never overwritten
    reconciliation  VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,      -- matched | matched_within_tolerance | missing_left | missing_right | mismatched | duplicate
    left_key        VARCHAR,
    right_key       VARCHAR,
    differences     JSON,                  -- [{column, left, right, delta, status}] for the columns that differ
    left_row        JSON,                  -- an exception's rows as people read them: keys as written, compared values
    right_row       JSON
);
CREATE SEQUENCE IF NOT EXISTS conveyor.rule_eval_ids START 1;
CREATE TABLE IF NOT EXISTS conveyor.rule_results (
    eval_id         BIGINT NOT NULL,       -- appended per evaluation, passes included
    rule            VARCHAR NOT NULL,
    entity          VARCHAR,
    period          VARCHAR,
    value           DOUBLE,
    level           VARCHAR NOT NULL,      -- ok | warn | critical | no_data
    context         JSON,                  -- the measure's other columns
    evaluated_at    TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS conveyor.alerts (
    rule            VARCHAR NOT NULL,      -- one row per (rule, entity), kept by the evaluator
    entity          VARCHAR NOT NULL,
    state           VARCHAR NOT NULL,      -- pending | firing | resolved
    level           VARCHAR NOT NULL,      -- warn | critical (the latest breach)
    since           TIMESTAMP NOT NULL,    -- when the current state began
    last_evaluated  TIMESTAMP NOT NULL,
    last_eval_id    BIGINT NOT NULL,
    last_period     VARCHAR,
    last_value      DOUBLE,
    consecutive     INTEGER NOT NULL,      -- breaching evaluations in a row
    fired_at        TIMESTAMP,             -- last time it started firing
    resolved_at     TIMESTAMP,
    last_notified_at TIMESTAMP,            -- last notification queued (firing, escalated, repeat, resolved)
    notified_level  VARCHAR,               -- the level that notification told of
    absent          INTEGER DEFAULT 0      -- evaluations in a row the measure did not return the entity
);
CREATE SEQUENCE IF NOT EXISTS conveyor.silence_ids START 1;
CREATE TABLE IF NOT EXISTS conveyor.silences (
    id              BIGINT NOT NULL,       -- `conveyor silence remove ID`
    rule            VARCHAR NOT NULL,
    entity          VARCHAR,               -- NULL: every entity of the rule
    reason          VARCHAR NOT NULL,
    starts_at       TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    removed_at      TIMESTAMP,             -- lifted early
    created_by      VARCHAR                -- `silence add --author`
);
CREATE SEQUENCE IF NOT EXISTS conveyor.outbox_ids START 1;
CREATE TABLE IF NOT EXISTS conveyor.outbox (
    id              BIGINT NOT NULL,       -- written with the alert transitions it announces
    key             VARCHAR NOT NULL,      -- sha256(rule|eval_id|channel|recipient): Message-ID
    rule            VARCHAR NOT NULL,
    eval_id         BIGINT NOT NULL,
    channel         VARCHAR NOT NULL,      -- email | webhook (recipient: the URL)
    recipient       VARCHAR NOT NULL,
    subject         VARCHAR NOT NULL,
    body            VARCHAR NOT NULL,      -- the text part (webhooks: the JSON)
    html_body       VARCHAR,               -- the HTML alternative, when the action has one
    created_at      TIMESTAMP NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP,             -- the server accepted it
    dead_at         TIMESTAMP,             -- gave up after max_attempts
    last_error      VARCHAR,
    reported_at     TIMESTAMP,             -- a dead letter listed in a digest to [smtp] operator …
    reported_by     BIGINT,                -- … this digest (its outbox id)
    headers         JSON                   -- extra e-mail headers {name: value} (X-Conveyor-Rule, …)
);
CREATE TABLE IF NOT EXISTS conveyor.outbox_images (
    outbox_id       BIGINT NOT NULL,       -- the e-mail (conveyor.outbox.id) it is part of
    cid             VARCHAR NOT NULL,      -- its Content-ID: the HTML shows it as cid:…
    png             BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS conveyor.credentials (
    name        VARCHAR PRIMARY KEY,
    sealed      VARCHAR NOT NULL,          -- encrypted; never the plain secret
    updated_at  TIMESTAMP NOT NULL
);
"#;

/// Creates Conveyor's tables, and brings those of a file written by an
/// older version up to date.
pub fn create_metadata(conn: &Connection) -> Result<()> {
    let had_notified: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM information_schema.columns
             WHERE table_schema = 'conveyor' AND table_name = 'alerts' AND column_name = 'last_notified_at'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(false);
    conn.execute_batch(METADATA_DDL)
        .context("cannot create Conveyor's metadata tables")?;
    conn.execute_batch(
        "ALTER TABLE conveyor.alerts ADD COLUMN IF NOT EXISTS last_notified_at TIMESTAMP;
         ALTER TABLE conveyor.alerts ADD COLUMN IF NOT EXISTS notified_level VARCHAR;
         ALTER TABLE conveyor.silences ADD COLUMN IF NOT EXISTS created_by VARCHAR;
         ALTER TABLE conveyor.runs ADD COLUMN IF NOT EXISTS inserted BIGINT DEFAULT 0;
         ALTER TABLE conveyor.runs ADD COLUMN IF NOT EXISTS updated BIGINT DEFAULT 0;
         ALTER TABLE conveyor.runs ADD COLUMN IF NOT EXISTS lease_token BIGINT;
         ALTER TABLE conveyor.outbox ADD COLUMN IF NOT EXISTS html_body VARCHAR;
         ALTER TABLE conveyor.outbox ADD COLUMN IF NOT EXISTS reported_at TIMESTAMP;
         ALTER TABLE conveyor.outbox ADD COLUMN IF NOT EXISTS reported_by BIGINT;
         ALTER TABLE conveyor.outbox ADD COLUMN IF NOT EXISTS headers JSON;
         ALTER TABLE conveyor.outbox ADD COLUMN IF NOT EXISTS chart_png BLOB;
         ALTER TABLE conveyor.alerts ADD COLUMN IF NOT EXISTS absent INTEGER DEFAULT 0;
         ALTER TABLE conveyor.recon_results ADD COLUMN IF NOT EXISTS left_row JSON;
         ALTER TABLE conveyor.recon_results ADD COLUMN IF NOT EXISTS right_row JSON;",
    )
    .context("cannot update Conveyor's metadata tables")?;
    if !had_notified {
        // Alerts that fired under an older version were announced then:
        // without this they would be announced again.
        conn.execute_batch(
            "UPDATE conveyor.alerts SET last_notified_at = fired_at, notified_level = level
             WHERE state = 'firing' AND last_notified_at IS NULL",
        )
        .context("cannot update Conveyor's metadata tables")?;
    }
    Ok(())
}

/// The read-write warehouse, held by one process at a time.
pub struct Warehouse {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Warehouse {
    /// Opens (creating the file if needed) the warehouse for writing.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, locked(base_config()?)?)
    }

    /// An in-memory warehouse that may read files, for `conveyor test`
    /// alone: its fixtures are CSV files named by the (trusted) test file,
    /// and nothing but the test itself ever queries it.
    pub fn open_scratch_with_file_access() -> Result<Self> {
        Self::open_with(Path::new(":memory:"), base_config()?)
    }

    fn open_with(path: &Path, config: Config) -> Result<Self> {
        // A missing folder is a mistake to report, not a tree to create:
        // a typo in the path would otherwise put the data somewhere unseen.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                anyhow::bail!(
                    "cannot open warehouse {}: the folder {} does not exist (create it, or fix warehouse.path)",
                    path.display(),
                    dir.display()
                );
            }
        }
        let conn = Connection::open_with_flags(path, config).map_err(|e| lock_hint(e, path))?;
        create_metadata(&conn)?;
        Ok(Warehouse {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// Opens the configured warehouse with its settings (memory limit).
    pub fn open_config(cfg: &conveyor_config::WarehouseConfig) -> Result<Self> {
        // Validated by the config as a number and a unit.
        let limit = &cfg.memory_limit;
        let mut config = base_config()?
            .max_memory(limit)
            .with_context(|| format!("cannot set warehouse.memory_limit = {limit:?}"))?;
        if let Some(threads) = cfg.threads {
            config = config.threads(threads as i64)?;
        }
        Self::open_with(&cfg.path, locked(config)?)
    }

    /// Opens the file read-only, for `query` and `status` when no daemon runs.
    pub fn open_read_only(path: &Path) -> Result<Connection> {
        if !path.exists() {
            anyhow::bail!(
                "warehouse {} does not exist yet; run `conveyor sync` first",
                path.display()
            );
        }
        let cfg = locked(base_config()?.access_mode(AccessMode::ReadOnly)?)?;
        Connection::open_with_flags(path, cfg).map_err(|e| lock_hint(e, path))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("warehouse connection lock")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another connection to the same database, for a loader or a reader.
    pub fn connection(&self) -> Result<Connection> {
        Ok(self.conn().try_clone()?)
    }

    /// Marks runs left `running` by a process that died as `interrupted`.
    pub fn recover_interrupted_runs(&self) -> Result<usize> {
        let n = self.conn().execute(
            "UPDATE conveyor.runs SET status = 'interrupted', finished_at = make_timestamp(epoch_us(now())),
                    error = 'the process stopped before this run finished'
             WHERE status = 'running'",
            [],
        )?;
        Ok(n)
    }

    /// Records a run as started; `lease_token` is the cluster lease it runs
    /// under (`[publish]` orders the runs of several daemons by it).
    pub fn begin_run(&self, source: &str, stream: &str, lease_token: Option<i64>) -> Result<i64> {
        let id: i64 = self.conn().query_row(
            "INSERT INTO conveyor.runs (run_id, source, stream, status, started_at, lease_token)
             VALUES (nextval('conveyor.run_ids'), ?, ?, 'running', make_timestamp(epoch_us(now())), ?) RETURNING run_id",
            params![source, stream, lease_token],
            |r| r.get(0),
        )?;
        Ok(id)
    }

    /// Streams of `source` that have run before, by name.
    pub fn known_streams(&self, source: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT DISTINCT stream FROM conveyor.runs WHERE source = ? ORDER BY stream",
        )?;
        let rows = st.query_map(params![source], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn finish_run(&self, run_id: i64, status: &str, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE conveyor.runs SET status = ?, error = ?, finished_at = make_timestamp(epoch_us(now())) WHERE run_id = ?",
            params![status, error, run_id],
        )?;
        Ok(())
    }

    /// The state saved after the last committed batch of `source.stream`.
    pub fn stream_state(&self, source: &str, stream: &str) -> Result<Option<serde_json::Value>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT CAST(state AS VARCHAR) FROM conveyor.stream_state WHERE source = ? AND stream = ?",
        )?;
        let mut rows = st.query(params![source, stream])?;
        match rows.next()? {
            Some(r) => {
                let text: Option<String> = r.get(0)?;
                Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
            }
            None => Ok(None),
        }
    }
}

/// Settings for every connection. Extensions are never fetched at run time:
/// daemons often run without internet, and a query should fail at once
/// rather than hang on a download.
fn base_config() -> Result<Config> {
    Ok(Config::default()
        .enable_autoload_extension(false)?
        .with("autoinstall_known_extensions", "false")?)
}

/// The lock-down every warehouse instance runs under, writer and readers
/// alike (ARCHITECTURE.md, invariant "readers cannot write"): no external
/// access — no file functions, `COPY`, `ATTACH`, `INSTALL`/`LOAD` — and the
/// configuration frozen, so no connection can turn either back on. The
/// writer needs neither: it loads through the Arrow appender and writes
/// only its own database file, which DuckDB opens before the lock applies.
fn locked(config: Config) -> Result<Config> {
    Ok(config
        .enable_external_access(false)?
        .with("lock_configuration", "true")?)
}

/// Turns DuckDB's lock error into advice.
fn lock_hint(e: duckdb::Error, path: &Path) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("lock") {
        anyhow::anyhow!(
            "the warehouse {} is in use by another process (is `conveyor run` running? \
             then use `conveyor query`, which asks the daemon): {text}",
            path.display()
        )
    } else {
        anyhow::anyhow!("cannot open warehouse {}: {text}", path.display())
    }
}

/// Quotes an identifier for DuckDB SQL.
/// Every row of `sql` (with `params`) through `map`.
pub fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn duckdb::ToSql],
    map: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> duckdb::Result<Vec<T>> {
    let mut st = conn.prepare(sql)?;
    let out = st.query_map(params, map)?.collect();
    out
}

pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for DuckDB SQL.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A UTC instant as DuckDB reads a TIMESTAMP (microseconds kept), for a
/// parameter cast to TIMESTAMP.
pub fn timestamp_text(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A UTC instant as a TIMESTAMP literal.
pub fn timestamp_literal(t: chrono::NaiveDateTime) -> String {
    format!("TIMESTAMP '{}'", timestamp_text(t))
}

#[cfg(test)]
mod lockdown_tests;
#[cfg(test)]
mod migration_tests;
