//! Built-in pipeline-health alerts (`[health]`): a source failing
//! `failed_runs` runs in a row fires `conveyor.source_failing`, a scheduled
//! source without a successful run for `stale_after` fires
//! `conveyor.source_stale`; each fires and resolves like a rule's alert (a
//! row in `conveyor.alerts`, so `conveyor alerts` lists it) and tells
//! `[smtp] operator` through the outbox, in the same transaction as the
//! state change — so an e-mail is queued once per transition, survives a
//! restart, and is retried like any other.
//!
//! Per source, `conveyor.source_health` keeps the streak: consecutive
//! failed runs, since when, the last error and the last success. A run
//! stopped by a shutdown counts as neither.

use std::sync::Mutex;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use conveyor_config::Config;
use duckdb::{params, Connection, OptionalExt};

use crate::rules::{AlertState, Level};
use crate::sync::{RunStatus, SourceReport};
use crate::warehouse::timestamp_text;
use crate::warehouse::transaction::in_transaction;

/// The alert of a source failing `[health] failed_runs` runs in a row.
pub const FAILING_RULE: &str = "conveyor.source_failing";
/// The alert of a scheduled source without a success for `stale_after`.
pub const STALE_RULE: &str = "conveyor.source_stale";
/// The alert of a reconciliation or rule evaluation that fails (entity
/// `reconciliation:NAME` or `rule:NAME`): it fires on the first failure and
/// resolves on the next success.
pub const JOB_RULE: &str = "conveyor.job_failing";

const DDL: &str = "CREATE TABLE IF NOT EXISTS conveyor.source_health (
    source               VARCHAR PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL,   -- failed runs since the last success
    failing_since        TIMESTAMP,          -- the first failure of that streak
    last_outcome         VARCHAR,            -- succeeded | failed
    last_error           VARCHAR,            -- of the last failed run (no secrets)
    last_run_at          TIMESTAMP,
    last_success_at      TIMESTAMP,
    first_seen_at        TIMESTAMP NOT NULL  -- staleness counts from here before a first success
)";

/// Two sources ending at once would otherwise race for the same alert rows.
static SERIAL: Mutex<()> = Mutex::new(());

/// What changed, for the log: `(rule, source, firing or resolved)`.
pub type Transition = (&'static str, String, AlertState);

/// Creates `conveyor.source_health` and a row for each configured source
/// (its last success taken from `conveyor.runs` the first time), so that
/// staleness counts from when the source was first seen.
pub fn prepare(conn: &Connection, config: &Config, now: NaiveDateTime) -> Result<()> {
    conn.execute_batch(DDL)
        .context("cannot create conveyor.source_health")?;
    let ts = timestamp_text(now);
    // A source taken out of the config cannot recover: its alerts end
    // quietly instead of firing for ever.
    let names: Vec<String> = config
        .sources
        .iter()
        .map(|s| crate::warehouse::literal(&s.name))
        .collect();
    let kept = if names.is_empty() {
        String::new()
    } else {
        format!(" AND entity NOT IN ({})", names.join(", "))
    };
    conn.execute(
        &format!(
            "UPDATE conveyor.alerts SET state = 'resolved', since = CAST(?1 AS TIMESTAMP),
                    resolved_at = CAST(?1 AS TIMESTAMP), last_evaluated = CAST(?1 AS TIMESTAMP), consecutive = 0
             WHERE rule IN (?2, ?3) AND state = 'firing'{kept}"
        ),
        params![ts, FAILING_RULE, STALE_RULE],
    )?;
    for s in &config.sources {
        conn.execute(
            "INSERT INTO conveyor.source_health (source, consecutive_failures, first_seen_at, last_success_at)
             SELECT ?, 0, CAST(? AS TIMESTAMP),
                    (SELECT max(finished_at) FROM conveyor.runs WHERE source = ? AND status = 'succeeded')
             ON CONFLICT DO NOTHING",
            params![s.name, ts, s.name],
        )?;
    }
    Ok(())
}

/// Records how a run of `report.source` ended and fires or resolves its
/// alerts, queueing the operator's e-mails in the same transaction.
pub fn record_run(
    conn: &Connection,
    config: &Config,
    report: &SourceReport,
    now: NaiveDateTime,
) -> Result<Vec<Transition>> {
    let outcome = report.outcome();
    if outcome == RunStatus::Cancelled {
        return Ok(Vec::new());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    conn.execute_batch(DDL)?;
    in_transaction(conn, || {
        let source = report.source.as_str();
        let ts = timestamp_text(now);
        let failed = outcome == RunStatus::Failed;
        let error = report.first_error();
        conn.execute(
            "INSERT INTO conveyor.source_health (source, consecutive_failures, failing_since, last_outcome,
                     last_error, last_run_at, last_success_at, first_seen_at)
             VALUES (?1, CASE WHEN ?2 THEN 1 ELSE 0 END, CASE WHEN ?2 THEN CAST(?3 AS TIMESTAMP) END,
                     CASE WHEN ?2 THEN 'failed' ELSE 'succeeded' END, ?4, CAST(?3 AS TIMESTAMP),
                     CASE WHEN ?2 THEN NULL ELSE CAST(?3 AS TIMESTAMP) END, CAST(?3 AS TIMESTAMP))
             ON CONFLICT (source) DO UPDATE SET
                 consecutive_failures = CASE WHEN ?2 THEN consecutive_failures + 1 ELSE 0 END,
                 failing_since = CASE WHEN ?2 THEN coalesce(failing_since, CAST(?3 AS TIMESTAMP)) END,
                 last_outcome = EXCLUDED.last_outcome,
                 last_error = CASE WHEN ?2 THEN EXCLUDED.last_error ELSE last_error END,
                 last_run_at = EXCLUDED.last_run_at,
                 last_success_at = CASE WHEN ?2 THEN last_success_at ELSE EXCLUDED.last_success_at END",
            params![source, failed, ts, error],
        )?;
        let row = health_row(conn, source)?.context("source_health row just written")?;
        let h = &config.health;
        let mut out = Vec::new();
        let failing = alert_state(conn, FAILING_RULE, source)?;
        if failed {
            let threshold = h.enabled && h.failed_runs > 0;
            if threshold
                && row.failures >= i64::from(h.failed_runs)
                && failing != Some(AlertState::Firing)
            {
                let mail = operator(config).map(|to| {
                    (
                        to,
                        failing_subject(source, row.failures),
                        failing_body(source, &row, h.notify_resolved),
                    )
                });
                fire(
                    conn,
                    FAILING_RULE,
                    source,
                    Level::Critical,
                    row.failures,
                    &ts,
                    mail,
                )?;
                out.push((FAILING_RULE, source.to_string(), AlertState::Firing));
            } else if failing == Some(AlertState::Firing) {
                touch(conn, FAILING_RULE, source, row.failures, &ts)?;
            }
        } else {
            let notify = h.enabled && h.notify_resolved;
            if failing == Some(AlertState::Firing) {
                let mail = operator(config).filter(|_| notify).map(|to| {
                    (
                        to,
                        format!("Conveyor: source `{source}` recovered"),
                        recovered_body(source, &row, &ts),
                    )
                });
                resolve(conn, FAILING_RULE, source, &ts, mail)?;
                out.push((FAILING_RULE, source.to_string(), AlertState::Resolved));
            }
            if alert_state(conn, STALE_RULE, source)? == Some(AlertState::Firing) {
                let mail = operator(config).filter(|_| notify).map(|to| {
                    (
                        to,
                        format!("Conveyor: source `{source}` is fresh again"),
                        recovered_body(source, &row, &ts),
                    )
                });
                resolve(conn, STALE_RULE, source, &ts, mail)?;
                out.push((STALE_RULE, source.to_string(), AlertState::Resolved));
            }
        }
        Ok(out)
    })
}

/// Records how a reconciliation or rule evaluation (`kind` is
/// `reconciliation` or `rule`) ended: a failure fires `conveyor.job_failing`
/// for it (the operator hears which and why, once), the next success
/// resolves it.
pub fn record_job(
    conn: &Connection,
    config: &Config,
    kind: &str,
    name: &str,
    outcome: Result<(), String>,
    now: NaiveDateTime,
) -> Result<Vec<Transition>> {
    let h = &config.health;
    if !h.enabled {
        return Ok(Vec::new());
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let entity = format!("{kind}:{name}");
    in_transaction(conn, || {
        let ts = timestamp_text(now);
        let state = alert_state(conn, JOB_RULE, &entity)?;
        let firing = state == Some(AlertState::Firing);
        let mut out = Vec::new();
        match outcome {
            Err(error) if !firing => {
                let mail = operator(config).map(|to| {
                    (
                        to,
                        format!("Conveyor: {kind} `{name}` failed"),
                        format!(
                            "The {kind} `{name}` failed at {ts} UTC:\n\n  {error}\n\n\
                             Its results are not updated until it runs again successfully{}.\n",
                            if h.notify_resolved {
                                "; you will hear when it does"
                            } else {
                                ""
                            }
                        ),
                    )
                });
                fire(conn, JOB_RULE, &entity, Level::Critical, 1, &ts, mail)?;
                out.push((JOB_RULE, entity.clone(), AlertState::Firing));
            }
            Err(_) => touch(conn, JOB_RULE, &entity, 1, &ts)?,
            Ok(()) if firing => {
                let mail = operator(config).filter(|_| h.notify_resolved).map(|to| {
                    (
                        to,
                        format!("Conveyor: {kind} `{name}` runs again"),
                        format!("The {kind} `{name}` ran successfully at {ts} UTC.\n"),
                    )
                });
                resolve(conn, JOB_RULE, &entity, &ts, mail)?;
                out.push((JOB_RULE, entity.clone(), AlertState::Resolved));
            }
            Ok(()) => {}
        }
        Ok(out)
    })
}

/// Tells the pipeline-health alerts how a reconciliation or rule
/// evaluation ended (logged, never raised).
pub fn observe(
    conn: &Connection,
    config: &Config,
    kind: &str,
    name: &str,
    result: Result<(), &impl std::fmt::Display>,
) {
    let outcome = result.map_err(|e| e.to_string());
    let now = chrono::Utc::now().naive_utc();
    match record_job(conn, config, kind, name, outcome, now) {
        Ok(changed) => {
            for (rule, entity, state) in changed {
                tracing::warn!(rule, entity = %entity, state = %state, "pipeline health");
            }
        }
        Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot record pipeline health"),
    }
}

/// Fires `conveyor.source_stale` for each scheduled source whose last
/// success (or, before one, when it was first seen) is older than
/// `[health] stale_after`.
pub fn check_stale(
    conn: &Connection,
    config: &Config,
    now: NaiveDateTime,
) -> Result<Vec<Transition>> {
    let h = &config.health;
    let Some(after) = h.stale_after_secs.filter(|_| h.enabled) else {
        return Ok(Vec::new());
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    conn.execute_batch(DDL)?;
    let ts = timestamp_text(now);
    let mut out = Vec::new();
    for s in config.sources.iter().filter(|s| s.schedule.is_some()) {
        let Some(row) = health_row(conn, &s.name)? else {
            continue;
        };
        let since = row
            .last_success
            .clone()
            .unwrap_or_else(|| row.first_seen.clone());
        let age: i64 = conn.query_row(
            "SELECT epoch(CAST(? AS TIMESTAMP)) - epoch(CAST(? AS TIMESTAMP))",
            params![ts, since],
            |r| r.get::<_, f64>(0),
        )? as i64;
        if age <= after as i64
            || alert_state(conn, STALE_RULE, &s.name)? == Some(AlertState::Firing)
        {
            continue;
        }
        let name = s.name.as_str();
        in_transaction(conn, || {
            let mail = operator(config).map(|to| {
                let ago = humantime::format_duration(std::time::Duration::from_secs(
                    age as u64 / 60 * 60,
                ));
                (
                    to,
                    format!("Conveyor: source `{name}` has had no successful run for {ago}"),
                    stale_body(name, &row, &ago.to_string(), after),
                )
            });
            fire(conn, STALE_RULE, name, Level::Warn, age / 60, &ts, mail)
        })?;
        out.push((STALE_RULE, s.name.clone(), AlertState::Firing));
    }
    Ok(out)
}

struct HealthRow {
    failures: i64,
    failing_since: Option<String>,
    last_error: Option<String>,
    last_success: Option<String>,
    first_seen: String,
}

fn health_row(conn: &Connection, source: &str) -> duckdb::Result<Option<HealthRow>> {
    conn.query_row(
        "SELECT consecutive_failures, strftime(failing_since, '%Y-%m-%d %H:%M:%S'), last_error,
                strftime(last_success_at, '%Y-%m-%d %H:%M:%S'), strftime(first_seen_at, '%Y-%m-%d %H:%M:%S')
         FROM conveyor.source_health WHERE source = ?",
        [source],
        |r| {
            Ok(HealthRow {
                failures: r.get(0)?,
                failing_since: r.get(1)?,
                last_error: r.get(2)?,
                last_success: r.get(3)?,
                first_seen: r.get(4)?,
            })
        },
    )
    .optional()
}

fn alert_state(conn: &Connection, rule: &str, source: &str) -> duckdb::Result<Option<AlertState>> {
    conn.query_row(
        "SELECT state FROM conveyor.alerts WHERE rule = ? AND entity = ?",
        [rule, source],
        |r| r.get(0),
    )
    .optional()
}

fn operator(config: &Config) -> Option<String> {
    config.smtp.as_ref()?.operator.clone()
}

/// An operator e-mail: recipient, subject, body.
type Mail = (String, String, String);

fn fire(
    conn: &Connection,
    rule: &str,
    source: &str,
    level: Level,
    value: i64,
    ts: &str,
    mail: Option<Mail>,
) -> Result<()> {
    let id = queue(conn, rule, mail.as_ref(), ts)?;
    conn.execute(
        "DELETE FROM conveyor.alerts WHERE rule = ? AND entity = ?",
        [rule, source],
    )?;
    conn.execute(
        "INSERT INTO conveyor.alerts (rule, entity, state, level, since, last_evaluated, last_eval_id,
                 last_value, consecutive, fired_at, last_notified_at, notified_level)
         VALUES (?1, ?2, 'firing', ?3, CAST(?4 AS TIMESTAMP), CAST(?4 AS TIMESTAMP), ?5, ?6, ?7,
                 CAST(?4 AS TIMESTAMP), CASE WHEN ?8 THEN CAST(?4 AS TIMESTAMP) END, CASE WHEN ?8 THEN ?3 END)",
        params![rule, source, level.as_str(), ts, id, value as f64, value, mail.is_some()],
    )?;
    Ok(())
}

fn touch(conn: &Connection, rule: &str, source: &str, value: i64, ts: &str) -> Result<()> {
    conn.execute(
        "UPDATE conveyor.alerts SET last_evaluated = CAST(? AS TIMESTAMP), last_value = ?, consecutive = ?
         WHERE rule = ? AND entity = ?",
        params![ts, value as f64, value, rule, source],
    )?;
    Ok(())
}

fn resolve(
    conn: &Connection,
    rule: &str,
    source: &str,
    ts: &str,
    mail: Option<Mail>,
) -> Result<()> {
    let id = queue(conn, rule, mail.as_ref(), ts)?;
    conn.execute(
        "UPDATE conveyor.alerts SET state = 'resolved', since = CAST(?1 AS TIMESTAMP),
                last_evaluated = CAST(?1 AS TIMESTAMP), resolved_at = CAST(?1 AS TIMESTAMP), consecutive = 0,
                last_eval_id = ?2,
                last_notified_at = CASE WHEN ?3 THEN CAST(?1 AS TIMESTAMP) ELSE last_notified_at END
         WHERE rule = ?4 AND entity = ?5",
        params![ts, id, mail.is_some(), rule, source],
    )?;
    Ok(())
}

/// Queues `mail` in the outbox (inside the caller's transaction); returns
/// the id that stands for this transition (0 when nothing is sent).
fn queue(conn: &Connection, rule: &str, mail: Option<&Mail>, ts: &str) -> Result<i64> {
    let Some((to, subject, body)) = mail else {
        return Ok(0);
    };
    let id: i64 = conn.query_row("SELECT nextval('conveyor.outbox_ids')", [], |r| r.get(0))?;
    let key = crate::outbox::notification_key(rule, id, "email", to);
    conn.execute(
        "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                 created_at, attempts, next_attempt_at)
         VALUES (?, ?, ?, ?, 'email', ?, ?, ?, CAST(? AS TIMESTAMP), 0, CAST(? AS TIMESTAMP))",
        params![id, key, rule, id, to, subject, body, ts, ts],
    )?;
    Ok(id)
}

fn failing_subject(source: &str, failures: i64) -> String {
    format!("Conveyor: source `{source}` failed {failures} runs in a row")
}

const FOOTER: &str = "`conveyor status` shows each stream's last run, last success and error; \
`conveyor sync SOURCE` runs it again now (through the daemon while it runs).";

fn failing_body(source: &str, row: &HealthRow, resolved_follows: bool) -> String {
    format!(
        "Source `{source}` has failed {n} runs in a row, since {since} UTC.\n\n\
         Last error: {error}\n\
         Last successful run: {success}\n\n\
         {FOOTER}\n{next}",
        next = if resolved_follows {
            "You will get one more e-mail when it recovers.\n"
        } else {
            ""
        },
        n = row.failures,
        since = row.failing_since.as_deref().unwrap_or("?"),
        error = row.last_error.as_deref().unwrap_or("(none recorded)"),
        success = row
            .last_success
            .as_deref()
            .map_or("never".to_string(), |s| format!("{s} UTC")),
    )
}

fn recovered_body(source: &str, row: &HealthRow, ts: &str) -> String {
    format!(
        "Source `{source}` ran successfully at {at} UTC; it is no longer failing or stale.\n\n{FOOTER}\n",
        at = row.last_success.as_deref().unwrap_or(&ts[..19.min(ts.len())]),
    )
}

fn stale_body(source: &str, row: &HealthRow, ago: &str, after: u64) -> String {
    let limit = humantime::format_duration(std::time::Duration::from_secs(after));
    format!(
        "Source `{source}` has had no successful run for {ago} ([health] stale_after = {limit}).\n\n\
         Last successful run: {success}\n\
         Failed runs since: {n}{error}\n\n{FOOTER}\n",
        success = row.last_success.as_deref().map_or("never".to_string(), |s| format!("{s} UTC")),
        n = row.failures,
        error = row.last_error.as_deref().map_or(String::new(), |e| format!("\nLast error: {e}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::StreamReport;

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"[warehouse]
path = "w.duckdb"
[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "conveyor@example.com"
operator = "ops@example.com"
{extra}
[sources.src]
type = "rest"
base_url = "https://api.example.com"
schedule = "0 0 2 * * *"
[[sources.src.streams]]
name = "items"
path = "/items"
primary_key = "id"
"#
        );
        conveyor_config::parse_offline(&text, std::path::Path::new("c.toml")).unwrap()
    }

    fn report(status: RunStatus, error: Option<&str>) -> SourceReport {
        SourceReport {
            source: "src".into(),
            streams: vec![StreamReport {
                stream: "items".into(),
                status,
                rows: 0,
                inserted: 0,
                updated: 0,
                rejected: 0,
                batches: 0,
                duration: std::time::Duration::ZERO,
                error: error.map(String::from),
            }],
            error: None,
            cancelled: status == RunStatus::Cancelled,
        }
    }

    fn at(minutes: i64) -> NaiveDateTime {
        chrono::DateTime::parse_from_rfc3339("2026-03-02T02:00:00Z")
            .unwrap()
            .naive_utc()
            + chrono::Duration::minutes(minutes)
    }

    fn outbox(conn: &Connection) -> Vec<(String, String)> {
        let mut st = conn
            .prepare("SELECT rule, subject FROM conveyor.outbox ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn pipeline_health_fires_once_after_n_failures_and_resolves_once() {
        let wh = crate::warehouse::Warehouse::open(std::path::Path::new(":memory:")).unwrap();
        let conn = wh.connection().unwrap();
        let c = config("");
        prepare(&conn, &c, at(0)).unwrap();
        let fail = report(
            RunStatus::Failed,
            Some("GET https://api.example.com/items → 500"),
        );
        assert!(record_run(&conn, &c, &fail, at(1)).unwrap().is_empty());
        assert!(record_run(&conn, &c, &fail, at(2)).unwrap().is_empty());
        // A shutdown in between counts as nothing.
        let stopped = report(RunStatus::Cancelled, None);
        assert!(record_run(&conn, &c, &stopped, at(3)).unwrap().is_empty());
        let t = record_run(&conn, &c, &fail, at(4)).unwrap();
        assert_eq!(
            t,
            vec![(FAILING_RULE, "src".to_string(), AlertState::Firing)]
        );
        // A fourth failure tells nobody again.
        assert!(record_run(&conn, &c, &fail, at(5)).unwrap().is_empty());
        let mails = outbox(&conn);
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails[0].1, "Conveyor: source `src` failed 3 runs in a row");
        let body: String = conn
            .query_row("SELECT body FROM conveyor.outbox", [], |r| r.get(0))
            .unwrap();
        assert!(
            body.contains("stream items: GET https://api.example.com/items → 500"),
            "{body}"
        );
        assert!(body.contains("Last successful run: never"), "{body}");
        let state: (String, i64) = conn
            .query_row(
                "SELECT state, consecutive FROM conveyor.alerts WHERE rule = ? AND entity = 'src'",
                [FAILING_RULE],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(state, ("firing".to_string(), 4));

        let ok = report(RunStatus::Succeeded, None);
        let t = record_run(&conn, &c, &ok, at(6)).unwrap();
        assert_eq!(
            t,
            vec![(FAILING_RULE, "src".to_string(), AlertState::Resolved)]
        );
        assert!(record_run(&conn, &c, &ok, at(7)).unwrap().is_empty());
        let mails = outbox(&conn);
        assert_eq!(mails.len(), 2, "{mails:?}");
        assert_eq!(mails[1].1, "Conveyor: source `src` recovered");
        let failures: i64 = conn
            .query_row(
                "SELECT consecutive_failures FROM conveyor.source_health",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(failures, 0);
    }

    #[test]
    fn pipeline_health_off_switch_and_threshold_are_honoured() {
        let wh = crate::warehouse::Warehouse::open(std::path::Path::new(":memory:")).unwrap();
        let conn = wh.connection().unwrap();
        let fail = report(RunStatus::Failed, Some("boom"));
        let off = config("[health]\nenabled = false\n");
        for i in 0..5 {
            assert!(record_run(&conn, &off, &fail, at(i)).unwrap().is_empty());
        }
        let two = config("[health]\nfailed_runs = 7\n");
        assert_eq!(record_run(&conn, &two, &fail, at(6)).unwrap().len(), 0);
        assert_eq!(
            record_run(&conn, &two, &fail, at(7)).unwrap().len(),
            1,
            "the 7th failure in a row"
        );
        assert_eq!(outbox(&conn).len(), 1);
    }

    #[test]
    fn pipeline_health_alerts_of_a_source_taken_out_of_the_config_end() {
        let wh = crate::warehouse::Warehouse::open(std::path::Path::new(":memory:")).unwrap();
        let conn = wh.connection().unwrap();
        let c = config("[health]\nfailed_runs = 1\n");
        let fail = report(RunStatus::Failed, Some("boom"));
        assert_eq!(record_run(&conn, &c, &fail, at(1)).unwrap().len(), 1);
        let mut without = c.clone();
        without.sources.clear();
        prepare(&conn, &without, at(2)).unwrap();
        let state: String = conn
            .query_row(
                "SELECT state FROM conveyor.alerts WHERE entity = 'src'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "resolved");
        assert_eq!(outbox(&conn).len(), 1, "ended quietly");
        // While configured, it stays firing.
        record_run(&conn, &c, &fail, at(3)).unwrap();
        prepare(&conn, &c, at(4)).unwrap();
        let state: String = conn
            .query_row(
                "SELECT state FROM conveyor.alerts WHERE entity = 'src'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "firing");
    }

    #[test]
    fn pipeline_health_stale_source_fires_then_resolves_on_success() {
        let wh = crate::warehouse::Warehouse::open(std::path::Path::new(":memory:")).unwrap();
        let conn = wh.connection().unwrap();
        let c = config("[health]\nstale_after = \"2h\"\n");
        prepare(&conn, &c, at(0)).unwrap();
        assert!(check_stale(&conn, &c, at(119)).unwrap().is_empty());
        let t = check_stale(&conn, &c, at(125)).unwrap();
        assert_eq!(t, vec![(STALE_RULE, "src".to_string(), AlertState::Firing)]);
        assert!(
            check_stale(&conn, &c, at(200)).unwrap().is_empty(),
            "fires once"
        );
        let mails = outbox(&conn);
        assert_eq!(mails.len(), 1);
        assert!(
            mails[0].1.contains("no successful run for 2h 5m"),
            "{mails:?}"
        );
        let t = record_run(&conn, &c, &report(RunStatus::Succeeded, None), at(201)).unwrap();
        assert_eq!(
            t,
            vec![(STALE_RULE, "src".to_string(), AlertState::Resolved)]
        );
        assert!(check_stale(&conn, &c, at(260)).unwrap().is_empty());
        assert_eq!(outbox(&conn).len(), 2);
    }

    #[test]
    fn pipeline_health_a_failing_reconciliation_tells_the_operator_once_and_its_recovery_once() {
        let wh = crate::warehouse::Warehouse::open(std::path::Path::new(":memory:")).unwrap();
        let conn = wh.connection().unwrap();
        let c = config("");
        let failed = || Err("Binder Error: column \"fee\" not found".to_string());
        let t = record_job(&conn, &c, "reconciliation", "placements", failed(), at(1)).unwrap();
        assert_eq!(
            t,
            vec![(
                JOB_RULE,
                "reconciliation:placements".to_string(),
                AlertState::Firing
            )]
        );
        assert!(
            record_job(&conn, &c, "reconciliation", "placements", failed(), at(2))
                .unwrap()
                .is_empty()
        );
        let t = record_job(&conn, &c, "reconciliation", "placements", Ok(()), at(3)).unwrap();
        assert_eq!(
            t,
            vec![(
                JOB_RULE,
                "reconciliation:placements".to_string(),
                AlertState::Resolved
            )]
        );
        assert!(
            record_job(&conn, &c, "reconciliation", "placements", Ok(()), at(4))
                .unwrap()
                .is_empty()
        );
        let mails = outbox(&conn);
        assert_eq!(
            mails.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            [
                "Conveyor: reconciliation `placements` failed",
                "Conveyor: reconciliation `placements` runs again"
            ]
        );
        let body: String = conn
            .query_row(
                "SELECT body FROM conveyor.outbox ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(body.contains("column \"fee\" not found"), "{body}");
        // Turned off, nothing is recorded.
        let off = config("[health]\nenabled = false\n");
        assert!(record_job(&conn, &off, "rule", "csat", failed(), at(5))
            .unwrap()
            .is_empty());
    }
}
