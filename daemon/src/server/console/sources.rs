//! The Sources page: every configured source and its streams — last run
//! (outcome, rows, duration), last success, failure streak, the error, the
//! next scheduled run — with a run-history chart per source, the latest
//! runs, and "sync now", which goes through the daemon's own sync path
//! (the one `/v1/sync` and `conveyor sync` use).

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Form};
use duckdb::Connection;
use minijinja::context;
use serde::Serialize;

use super::chart::{self, Bar, Line};
use super::reader::{read, relation_exists, rows};
use super::session::Session;
use super::view::{self, PageResult};
use super::Console;

/// Source runs drawn per chart.
const CHART_RUNS: usize = 30;
/// Stream runs read per source to draw them (a run has one per stream).
const RUNS_READ: i64 = 400;
/// Source runs listed under "latest runs".
const LATEST_RUNS: usize = 12;

/// One stream run, as read.
struct RunRow {
    source: String,
    stream: String,
    run_id: i64,
    status: String,
    started: i64,
    finished: Option<i64>,
    rows: i64,
}

/// One run of a whole source: its streams' runs, one after the other.
#[derive(Serialize, Clone)]
struct SourceRun {
    source: String,
    first_run_id: i64,
    last_run_id: i64,
    #[serde(skip)]
    started_us: i64,
    started: String,
    outcome: String,
    rows: i64,
    seconds: String,
    #[serde(skip)]
    secs: f64,
    streams: usize,
}

/// Groups a source's stream runs (oldest first) into source runs: a stream
/// runs once per source run, so a stream seen again — or a pause of more
/// than a minute — starts the next one.
fn group_runs(runs: &[RunRow], now_us: i64) -> Vec<SourceRun> {
    let mut out: Vec<(SourceRun, HashSet<String>, i64)> = Vec::new();
    for r in runs {
        let end = r.finished.unwrap_or(now_us);
        let joins = out.last().is_some_and(|(run, seen, last_end)| {
            run.source == r.source && !seen.contains(&r.stream) && r.started - last_end < 60_000_000
        });
        if !joins {
            out.push((
                SourceRun {
                    source: r.source.clone(),
                    first_run_id: r.run_id,
                    last_run_id: r.run_id,
                    started_us: r.started,
                    started: String::new(),
                    outcome: String::new(),
                    rows: 0,
                    seconds: String::new(),
                    secs: 0.0,
                    streams: 0,
                },
                HashSet::new(),
                end,
            ));
        }
        let (run, seen, last_end) = out.last_mut().expect("pushed above");
        seen.insert(r.stream.clone());
        run.last_run_id = r.run_id;
        run.rows += r.rows;
        run.streams += 1;
        *last_end = end.max(*last_end);
        run.secs = (*last_end - run.started_us) as f64 / 1e6;
        // The worst outcome stands for the run.
        let rank = |s: &str| match s {
            "failed" => 4,
            "interrupted" => 3,
            "cancelled" => 2,
            "running" => 1,
            _ => 0,
        };
        if run.outcome.is_empty() || rank(&r.status) > rank(&run.outcome) {
            run.outcome = r.status.clone();
        }
    }
    out.into_iter().map(|(r, _, _)| r).collect()
}

#[derive(Serialize)]
struct StreamView {
    stream: String,
    run_id: i64,
    state: String,
    started: String,
    rows: i64,
    rejected: i64,
    seconds: String,
    last_success: String,
    failures: i64,
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct HealthView {
    failures: i64,
    failing_since: String,
    last_error: Option<String>,
    last_success: String,
}

#[derive(Serialize)]
struct SourceView {
    name: String,
    kind: String,
    schedule: Option<String>,
    next_run: String,
    health: Option<HealthView>,
    streams: Vec<StreamView>,
    rows_chart: minijinja::Value,
    seconds_chart: minijinja::Value,
    syncing: bool,
}

/// What the page reads, in one snapshot.
struct Data {
    streams: Vec<(String, StreamView)>,
    health: BTreeMap<String, HealthView>,
    runs: Vec<RunRow>,
    now_us: i64,
}

const STREAMS_SQL: &str = "
WITH latest AS (
    SELECT *, row_number() OVER (PARTITION BY source, stream ORDER BY run_id DESC) AS rn
    FROM conveyor.runs
),
ok AS (
    SELECT source, stream,
           epoch_us(max(finished_at) FILTER (WHERE status = 'succeeded')) AS last_success,
           coalesce(max(run_id) FILTER (WHERE status = 'succeeded'), 0) AS last_ok_id
    FROM conveyor.runs GROUP BY source, stream
),
streak AS (
    SELECT r.source, r.stream, count(*) AS failures
    FROM conveyor.runs r JOIN ok USING (source, stream)
    WHERE r.status = 'failed' AND r.run_id > ok.last_ok_id
    GROUP BY r.source, r.stream
)
SELECT l.source, l.stream, l.run_id, l.status, epoch_us(l.started_at), l.rows, l.rejected,
       epoch(coalesce(l.finished_at, CAST(now() AS TIMESTAMP))) - epoch(l.started_at),
       ok.last_success, coalesce(streak.failures, 0), l.error
FROM latest l JOIN ok USING (source, stream) LEFT JOIN streak USING (source, stream)
WHERE l.rn = 1
ORDER BY l.source, l.stream";

fn load(conn: &Connection, tz: chrono_tz::Tz) -> Result<Data> {
    let streams = rows(conn, STREAMS_SQL, &[], |r| {
        Ok((
            r.get::<_, String>(0)?,
            StreamView {
                stream: r.get(1)?,
                run_id: r.get(2)?,
                state: r.get(3)?,
                started: view::time(r.get(4)?, tz),
                rows: r.get(5)?,
                rejected: r.get(6)?,
                seconds: view::duration(r.get::<_, Option<f64>>(7)?.unwrap_or(0.0)),
                last_success: view::time(r.get(8)?, tz),
                failures: r.get(9)?,
                error: r.get(10)?,
            },
        ))
    })?;
    let mut health = BTreeMap::new();
    if relation_exists(conn, "conveyor", "source_health")? {
        for (source, h) in rows(
            conn,
            "SELECT source, consecutive_failures, epoch_us(failing_since), last_error, epoch_us(last_success_at)
             FROM conveyor.source_health",
            &[],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    HealthView {
                        failures: r.get(1)?,
                        failing_since: view::time(r.get(2)?, tz),
                        last_error: r.get(3)?,
                        last_success: view::time(r.get(4)?, tz),
                    },
                ))
            },
        )? {
            health.insert(source, h);
        }
    }
    let runs = rows(
        conn,
        "SELECT source, stream, run_id, status, epoch_us(started_at), epoch_us(finished_at), rows
         FROM conveyor.runs
         QUALIFY row_number() OVER (PARTITION BY source ORDER BY run_id DESC) <= ?
         ORDER BY source, run_id",
        &[&RUNS_READ],
        |r| {
            Ok(RunRow {
                source: r.get(0)?,
                stream: r.get(1)?,
                run_id: r.get(2)?,
                status: r.get(3)?,
                started: r.get(4)?,
                finished: r.get(5)?,
                rows: r.get(6)?,
            })
        },
    )?;
    let now_us = conn.query_row("SELECT epoch_us(CAST(now() AS TIMESTAMP))", [], |r| {
        r.get(0)
    })?;
    Ok(Data {
        streams,
        health,
        runs,
        now_us,
    })
}

fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "succeeded" => "ok",
        "running" => "running",
        "failed" | "interrupted" => "bad",
        _ => "muted",
    }
}

pub async fn page(State(c): State<Console>, Extension(s): Extension<Session>) -> PageResult {
    let tz = c.tz;
    let data = read(c.wh.clone(), move |conn| load(conn, tz)).await?;
    let config = c.live.config();
    let syncing = c.syncing.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut by_source: BTreeMap<String, Vec<StreamView>> = BTreeMap::new();
    for (source, st) in data.streams {
        by_source.entry(source).or_default().push(st);
    }
    let mut health = data.health;
    let mut runs_by: BTreeMap<String, Vec<SourceRun>> = BTreeMap::new();
    let mut all_runs = Vec::new();
    for mut run in group_runs(&data.runs, data.now_us) {
        run.started = view::time(Some(run.started_us), tz);
        run.seconds = view::duration(run.secs);
        all_runs.push(run.clone());
        runs_by.entry(run.source.clone()).or_default().push(run);
    }
    let now = chrono::Utc::now();
    let mut sources = Vec::new();
    let mut configured: Vec<_> = config.sources.iter().collect();
    configured.sort_by(|a, b| a.name.cmp(&b.name));
    for src in configured {
        let runs = runs_by.remove(&src.name).unwrap_or_default();
        let recent = &runs[runs.len().saturating_sub(CHART_RUNS)..];
        let label = |r: &SourceRun| view::short_time(Some(r.started_us), tz);
        let bars: Vec<Bar> = recent
            .iter()
            .map(|r| Bar {
                label: label(r),
                parts: vec![(r.rows as f64, outcome_class(&r.outcome))],
                tip: format!(
                    "{}: {} rows, {}, {}",
                    r.started, r.rows, r.seconds, r.outcome
                ),
            })
            .collect();
        let secs = Line {
            name: "seconds".into(),
            class: "s0",
            points: recent.iter().map(|r| (label(r), Some(r.secs))).collect(),
        };
        sources.push(SourceView {
            name: src.name.clone(),
            kind: src.connector.type_name().to_string(),
            schedule: src
                .schedule
                .as_ref()
                .map(|s| format!("{} ({})", s.expr, s.timezone)),
            next_run: src
                .schedule
                .as_ref()
                .and_then(|s| crate::scheduler::next_fire(s, now))
                .map(|t| view::time(Some(t.timestamp_micros()), tz))
                .unwrap_or_default(),
            health: health.remove(&src.name),
            streams: by_source.remove(&src.name).unwrap_or_default(),
            rows_chart: view::svg(chart::bars(
                &format!("{}: rows per run", src.name),
                &bars,
                "no runs yet",
            )),
            seconds_chart: view::svg(chart::lines(
                &format!("{}: seconds per run", src.name),
                &[secs],
                &[],
                true,
                "no runs yet",
            )),
            syncing: syncing.contains(&src.name),
        });
    }
    all_runs.sort_by_key(|r| std::cmp::Reverse(r.started_us));
    all_runs.truncate(LATEST_RUNS);
    let busy = !syncing.is_empty() || all_runs.iter().any(|r| r.outcome == "running");
    Ok(view::render(
        "sources.html",
        context! {
            sources => sources,
            latest => all_runs,
            // Reload by itself while something runs (no JavaScript).
            refresh => busy,
            ready => c.live.sync_handler().is_some(),
            ..view::page(&s, "sources", "Sources", tz)
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct SyncForm {
    /// One source; empty: all of them.
    #[serde(default)]
    source: String,
}

/// "Sync now": starts the sync in the daemon (as `/v1/sync` does) and goes
/// back to the page at once; the runs appear there as they start.
pub async fn sync_now(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Form(f): Form<SyncForm>,
) -> Response {
    let config = c.live.config();
    let names: Vec<String> = if f.source.is_empty() {
        Vec::new()
    } else {
        vec![f.source.clone()]
    };
    let message = match c.live.sync_handler() {
        None => "This daemon is not ready to run syncs yet.".to_string(),
        Some(_) if !names.is_empty() && config.source(&f.source).is_none() => {
            format!("There is no source named {:?}.", f.source)
        }
        Some(run) => {
            let chosen: Vec<String> = if names.is_empty() {
                config.sources.iter().map(|s| s.name.clone()).collect()
            } else {
                names.clone()
            };
            c.syncing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(chosen.iter().cloned());
            let syncing = c.syncing.clone();
            let author = s.author.clone();
            tracing::info!(author = %author, sources = %chosen.join(", "), "console: sync now");
            tokio::spawn(async move {
                match run(names).await {
                    Ok(r) => tracing::info!(
                        sources = r.reports.len(),
                        failed = r.reports.iter().filter(|r| r.failed()).count(),
                        seconds = r.seconds,
                        "console: sync finished"
                    ),
                    Err(e) => tracing::warn!(error = %e, "console: sync refused"),
                }
                let mut set = syncing.lock().unwrap_or_else(|e| e.into_inner());
                for n in &chosen {
                    set.remove(n);
                }
            });
            if f.source.is_empty() {
                "Sync of every source started; its runs appear below.".to_string()
            } else {
                format!("Sync of {} started; its runs appear below.", f.source)
            }
        }
    };
    c.sessions.flash(&s, message);
    view::see_other("/console/sources")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(source: &str, stream: &str, id: i64, start_s: i64, secs: i64, status: &str) -> RunRow {
        RunRow {
            source: source.into(),
            stream: stream.into(),
            run_id: id,
            status: status.into(),
            started: start_s * 1_000_000,
            finished: Some((start_s + secs) * 1_000_000),
            rows: 10,
        }
    }

    #[test]
    fn console_stream_runs_group_into_source_runs() {
        let runs = vec![
            run("ats", "jobs", 1, 0, 2, "succeeded"),
            run("ats", "candidates", 2, 2, 3, "failed"),
            // The same stream again: the next source run, though close.
            run("ats", "jobs", 3, 6, 1, "succeeded"),
            run("ats", "candidates", 4, 7, 1, "succeeded"),
            // A pause of an hour: another run, even with a new stream.
            run("ats", "offers", 5, 3600, 1, "succeeded"),
            run("hr", "people", 6, 3601, 1, "running"),
        ];
        let g = group_runs(&runs, 0);
        let shape: Vec<(&str, i64, usize, &str)> = g
            .iter()
            .map(|r| {
                (
                    r.source.as_str(),
                    r.first_run_id,
                    r.streams,
                    r.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("ats", 1, 2, "failed"),
                ("ats", 3, 2, "succeeded"),
                ("ats", 5, 1, "succeeded"),
                ("hr", 6, 1, "running"),
            ]
        );
        assert_eq!(g[0].rows, 20);
        assert!((g[0].secs - 5.0).abs() < 1e-9);
    }
}
