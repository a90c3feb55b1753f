//! `conveyor sync`: run sources once, now, and report — in this process, or
//! in the daemon when one serves this warehouse (it holds the file; it runs
//! them as it runs its schedule and sends back the result).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use conveyor_config::{Config, SourceConfig};
use conveyor_plugin_api::CancelFlag;

use crate::cluster::{source_lease, Cluster};
use crate::progress::Progress;
use crate::publish::{PublishRun, Publisher};
use crate::sync::{sync_source_for, SourceReport};
use crate::warehouse::Warehouse;
use crate::{EXIT_CONFIG, EXIT_FAILED};

pub async fn sync_command(config: Config, names: Vec<String>) -> Result<ExitCode> {
    let selected = match select_sources(&config, &names) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    if let Some(daemon) = crate::server::find_daemon(&config.server, &config.warehouse.path).await?
    {
        eprintln!(
            "note: a daemon holds the warehouse; it runs {} now and reports back",
            if names.is_empty() {
                "every source".to_string()
            } else {
                names.join(", ")
            }
        );
        let done = match daemon.sync(&names).await {
            Ok(done) => done,
            Err(e) if e.to_string().contains("no source named") => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            Err(e) => return Err(e.context("the daemon could not run the sync")),
        };
        print_summary(&done.reports, done.seconds);
        for (name, run_id, exceptions) in &done.reconciled {
            println!("reconciled {name}: run {run_id}, {exceptions} exception(s) (conveyor recon --show {name})");
        }
        print_publish_failures(&done.publish_failed);
        return Ok(
            if done.reports.iter().any(SourceReport::failed) || !done.publish_failed.is_empty() {
                ExitCode::from(EXIT_FAILED)
            } else {
                ExitCode::SUCCESS
            },
        );
    }
    let wh = Arc::new(Warehouse::open_config(&config.warehouse)?);
    let recovered = wh.recover_interrupted_runs()?;
    if recovered > 0 {
        tracing::warn!(
            runs = recovered,
            "marked runs of a stopped process as interrupted"
        );
    }
    let cancel = CancelFlag::default();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if crate::cmd::run::shutdown_signal().await.is_ok() {
            tracing::warn!("stopping: finishing the batch in flight");
            on_signal.cancel();
        }
    });
    let cluster = match &config.cluster {
        Some(c) => Some(Arc::new(Cluster::connect(c).await?)),
        None => None,
    };
    let publisher = config.publish.as_ref().map(Publisher::new);
    let shared = Arc::new(config.clone());
    let started = Instant::now();
    let progress = Progress::for_terminal();
    let runs = selected.iter().map(|s| {
        sync_and_publish(
            &wh,
            s,
            &cancel,
            &progress,
            cluster.as_ref(),
            publisher.as_ref(),
            &shared,
        )
    });
    let (reports, published): (Vec<SourceReport>, Vec<PublishRun>) =
        futures::future::join_all(runs).await.into_iter().unzip();
    print_summary(&reports, started.elapsed().as_secs_f64());
    record_health(&wh, &config, &reports).await;
    let mut publish_failed = false;
    for run in &published {
        for t in &run.published {
            println!(
                "published {}.{} to Iceberg: run {}, {} rows in {} file(s) of {} bytes, {:.2} s",
                t.source, t.stream, t.run_id, t.rows, t.files, t.bytes, t.seconds
            );
        }
        print_publish_failures(&run.failed);
        publish_failed |= !run.failed.is_empty();
    }
    // The model's views and the reconciliations that follow these sources.
    let synced: Vec<String> = reports
        .iter()
        .filter(|r| !r.failed())
        .map(|r| r.source.clone())
        .collect();
    let recons = crate::pipeline::after_sync(wh, Arc::new(config.clone()), synced).await;
    for r in &recons {
        println!(
            "reconciled {}: run {}, {} exception(s) (conveyor recon --show {})",
            r.reconciliation,
            r.run_id,
            r.exceptions(),
            r.reconciliation
        );
    }
    Ok(
        if reports.iter().any(SourceReport::failed) || publish_failed {
            ExitCode::from(EXIT_FAILED)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Syncs `source` and publishes its tables (`[publish]`); in a cluster
/// under the source's lease, as the daemons run it — waiting while a daemon
/// holds it, and publishing nothing if the lease is lost.
async fn sync_and_publish(
    wh: &Arc<Warehouse>,
    source: &SourceConfig,
    cancel: &CancelFlag,
    progress: &Progress,
    cluster: Option<&Arc<Cluster>>,
    publisher: Option<&Publisher>,
    config: &Arc<Config>,
) -> (SourceReport, PublishRun) {
    let lease = match cluster {
        Some(c) => match c.take(&source_lease(&source.name), None, cancel).await {
            Some(lease) => Some(lease),
            None => {
                let stopped = SourceReport {
                    source: source.name.clone(),
                    streams: Vec::new(),
                    error: None,
                    cancelled: true,
                };
                return (stopped, PublishRun::default());
            }
        },
        None => None,
    };
    let stop = lease.as_ref().map_or(cancel, |l| l.stop());
    let token = lease.as_ref().map(|l| l.token());
    let report = sync_source_for(wh.clone(), source, stop, progress, "manual", token).await;
    let published = match publisher {
        Some(p) if !stop.is_cancelled() => {
            p.publish_sources(wh, config, std::slice::from_ref(&source.name))
                .await
        }
        _ => PublishRun::default(),
    };
    if let Some(lease) = lease {
        lease.release(false).await;
    }
    (report, published)
}

/// The tables `[publish]` could not publish, one error line each.
fn print_publish_failures(failed: &[(String, String)]) {
    for (table, error) in failed {
        eprintln!("error: cannot publish {table} to Iceberg (it stays as it was; retried at the next sync): {error}");
    }
}

/// Records each run for pipeline health (`[health]`), as the daemon does, so
/// a run by hand counts towards a failure streak and ends one; an operator
/// e-mail it queues goes out with the delivery after the sync.
async fn record_health(wh: &Arc<Warehouse>, config: &Config, reports: &[SourceReport]) {
    let (wh, config, reports) = (wh.clone(), config.clone(), reports.to_vec());
    let done = tokio::task::spawn_blocking(move || {
        let conn = wh.connection()?;
        let now = chrono::Utc::now().naive_utc();
        for r in &reports {
            for (rule, source, state) in
                crate::pipeline::health::record_run(&conn, &config, r, now)?
            {
                tracing::warn!(rule, source = %source, state = %state, "pipeline-health alert");
            }
        }
        Ok::<_, anyhow::Error>(())
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::error!(error = %format!("{e:#}"), "cannot record the runs for pipeline health");
    }
}

/// Syncs sources concurrently; one failing does not stop the others (the
/// demo's sandbox; `conveyor sync` goes through [`sync_and_publish`]).
#[cfg(feature = "demo")]
pub async fn sync_sources(
    wh: Arc<Warehouse>,
    sources: &[&SourceConfig],
    cancel: &CancelFlag,
    progress: &Progress,
) -> Vec<SourceReport> {
    let runs = sources
        .iter()
        .map(|s| crate::sync::sync_source(wh.clone(), s, cancel, progress));
    futures::future::join_all(runs).await
}

fn select_sources<'c>(
    config: &'c Config,
    names: &[String],
) -> Result<Vec<&'c SourceConfig>, String> {
    if names.is_empty() {
        return Ok(config.sources.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            config.source(n).ok_or_else(|| {
                let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "no source named `{n}` in {}; configured: {}",
                    config.file.display(),
                    known.join(", ")
                )
            })
        })
        .collect()
}

pub fn print_summary(reports: &[SourceReport], seconds: f64) {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "source", "stream", "status", "rows", "new", "updated", "rejected", "seconds", "error",
    ]);
    let mut rows = 0;
    let mut streams = 0;
    for r in reports {
        if let Some(e) = &r.error {
            t.add_row([
                r.source.as_str(),
                "-",
                "failed",
                "0",
                "0",
                "0",
                "0",
                "0",
                e.as_str(),
            ]);
        }
        for s in &r.streams {
            rows += s.rows;
            streams += 1;
            t.add_row([
                r.source.clone(),
                s.stream.clone(),
                s.status.as_str().to_string(),
                s.rows.to_string(),
                s.inserted.to_string(),
                s.updated.to_string(),
                s.rejected.to_string(),
                format!("{:.2}", s.duration.as_secs_f64()),
                s.error.clone().unwrap_or_default(),
            ]);
        }
    }
    println!("{t}");
    println!(
        "{} source(s), {streams} stream(s), {rows} rows in {seconds:.1}s ({:.0} rows/s)",
        reports.len(),
        rows as f64 / seconds.max(1e-3)
    );
}
