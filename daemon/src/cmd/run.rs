//! `conveyor run`: the daemon.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::Config;
use conveyor_plugin_api::CancelFlag;

use crate::progress::Progress;
use crate::scheduler::{run_on_schedule, Clock};
use crate::sync::sync_source;
use crate::warehouse::Warehouse;

pub async fn run_command(config: Config) -> Result<ExitCode> {
    run_daemon(config, async {
        let _ = shutdown_signal().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// How often the daemon looks for outbox rows that are due.
const OUTBOX_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

/// Runs every scheduled source until `shutdown` resolves, then lets each
/// run in flight finish its current batch, commit, and stop.
pub async fn run_daemon(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let wh = Arc::new(Warehouse::open_config(&config.warehouse)?);
    let recovered = wh.recover_interrupted_runs()?;
    if recovered > 0 {
        tracing::warn!(
            runs = recovered,
            "marked runs of a stopped process as interrupted"
        );
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = crate::server::serve(
        config.server.listen,
        wh.clone(),
        Arc::new(config.clone()),
        async move {
            let _ = stop_rx.changed().await;
        },
    )
    .await?;
    // The Postgres-wire SQL endpoint stops with the HTTP one.
    let postgres = match &config.server.postgres {
        Some(pg) => {
            let mut stop = stop_tx.subscribe();
            Some(
                crate::pgwire::serve(pg, wh.clone(), async move {
                    let _ = stop.changed().await;
                })
                .await?,
            )
        }
        None => None,
    };

    let cancel = CancelFlag::default();
    let mut tasks = tokio::task::JoinSet::new();
    let clock = Clock::new();
    let shared = Arc::new(config.clone());
    for source in config
        .sources
        .iter()
        .filter(|s| s.schedule.is_some())
        .cloned()
    {
        let (wh, cancel, shared) = (wh.clone(), cancel.clone(), shared.clone());
        tasks.spawn(async move {
            let schedule = source.schedule.clone().expect("filtered on schedule");
            tracing::info!(source = %source.name, schedule = %schedule.expr, timezone = %schedule.timezone, "scheduled");
            run_on_schedule(&source.name, &schedule, clock, cancel.clone(), || {
                let (wh, cancel, source, shared) = (wh.clone(), cancel.clone(), source.clone(), shared.clone());
                async move {
                    let report = sync_source(wh.clone(), &source, &cancel, &Progress::hidden()).await;
                    tracing::info!(source = %source.name, rows = report.rows(), failed = report.failed(), "run finished");
                    if !report.failed() && !cancel.is_cancelled() {
                        crate::recon::after::after_sync(wh, shared, vec![source.name.clone()]).await;
                    }
                }
            })
            .await;
        });
    }
    for recon in config
        .reconciles
        .iter()
        .filter(|r| r.schedule.is_some())
        .cloned()
    {
        let (wh, cancel, shared) = (wh.clone(), cancel.clone(), shared.clone());
        tasks.spawn(async move {
            let schedule = recon.schedule.clone().expect("filtered on schedule");
            tracing::info!(reconciliation = %recon.name, schedule = %schedule.expr, "scheduled");
            run_on_schedule(&recon.name, &schedule, clock, cancel, || {
                let (wh, shared, recon) = (wh.clone(), shared.clone(), recon.clone());
                async move {
                    let job = tokio::task::spawn_blocking(move || {
                        crate::recon::after::refresh_and_run(&wh, &shared, &[&recon], "schedule")
                    });
                    if let Ok(Err(e)) = job.await {
                        tracing::error!(error = %format!("{e:#}"), "scheduled reconciliation could not run");
                    }
                }
            })
            .await;
        });
    }
    for rule in config
        .rules
        .iter()
        .filter(|r| r.schedule.is_some())
        .cloned()
    {
        let (wh, cancel) = (wh.clone(), cancel.clone());
        tasks.spawn(async move {
            let schedule = rule.schedule.clone().expect("filtered on schedule");
            tracing::info!(rule = %rule.name, schedule = %schedule.expr, "scheduled");
            run_on_schedule(&rule.name, &schedule, clock, cancel, || {
                let (wh, rule) = (wh.clone(), rule.clone());
                async move {
                    let job = tokio::task::spawn_blocking(move || {
                        let conn = wh.connection()?;
                        crate::rules::evaluate_all(&conn, &[&rule]);
                        Ok::<_, anyhow::Error>(())
                    });
                    if let Ok(Err(e)) = job.await {
                        tracing::error!(error = %format!("{e:#}"), "scheduled rule could not run");
                    }
                }
            })
            .await;
        });
    }
    if config.smtp.is_some() {
        // The outbox worker: retries come due on their own clock, not only
        // after an evaluation.
        let (wh, cancel, shared) = (wh.clone(), cancel.clone(), shared.clone());
        tasks.spawn(async move {
            let mut last: Option<tokio::time::Instant> = None;
            // Short naps, so a shutdown is noticed within a quarter second.
            while !cancel.is_cancelled() {
                if last.is_none_or(|l| l.elapsed() >= OUTBOX_EVERY) {
                    last = Some(tokio::time::Instant::now());
                    let (wh, shared) = (wh.clone(), shared.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Ok(conn) = wh.connection() {
                            crate::outbox::deliver_logged(&conn, &shared);
                        }
                    })
                    .await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    }
    if tasks.is_empty() {
        tracing::warn!(
            "no source, reconciliation or rule has a schedule; the daemon only serves queries"
        );
    }
    tracing::info!(warehouse = %config.warehouse.path.display(), sources = tasks.len(), "conveyor daemon started");
    shutdown.await;
    tracing::info!("shutdown requested: finishing batches in flight");
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(postgres) = postgres {
        let _ = postgres.await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}
