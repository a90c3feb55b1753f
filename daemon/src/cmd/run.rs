//! `conveyor run`: the daemon. It refuses to start on a config `check`
//! refuses; then runs each source, and the reconciliations and rules with a
//! `schedule`, on their cron, serves the endpoints, delivers the outbox and
//! watches pipeline health. SIGHUP re-reads and fully checks the config and
//! applies it between runs (or keeps the running one and says why not);
//! SIGTERM/SIGINT let each batch in flight commit, then exit 0.
//!
//! Every scheduled thing is a *job* (a task looping on its schedule) keyed
//! by kind and name, with a fingerprint of its config. A reload compares
//! fingerprints: an unchanged job keeps running untouched; a changed or
//! removed one is *retired* — it starts no new run, and a run it has in
//! flight finishes normally — and a changed or new one is spawned. One lock
//! per source keeps two runs of a source (old and new job, the schedule
//! and a `conveyor sync` sent to the daemon) from ever overlapping.
//!
//! With `[cluster]`, each run of a source also takes the source's lease in
//! the shared catalog (`crate::cluster`), and only the daemon holding the
//! evaluator lease runs reconciliations, rules and reports.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use conveyor_config::{Config, SourceConfig};
use conveyor_plugin_api::CancelFlag;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::cluster::{evaluation_lease, source_lease, Cluster, Taken};
use crate::progress::Progress;
use crate::scheduler::{run_on_schedule_with, Clock};
use crate::server::{Live, SyncResponse};
use crate::sync::{sync_source_for, SourceReport};
use crate::warehouse::Warehouse;
use crate::EXIT_CONFIG;

/// How often the daemon looks for outbox rows that are due.
const OUTBOX_EVERY: Duration = Duration::from_secs(15);
/// How often the cluster's evaluator hands its state over (when changed):
/// the longest a rule notification waits for the cluster to hold it.
const HANDOVER_EVERY: Duration = Duration::from_secs(2);
/// How often scheduled sources are checked for staleness (`[health]`).
const STALE_EVERY: Duration = Duration::from_secs(60);

pub async fn run_command(config: Config) -> Result<ExitCode> {
    // First of all, so that a SIGHUP during start-up is a reload request,
    // not the default "terminate".
    let (shutdown, reloads) = signals()?;
    let wh = Arc::new(Warehouse::open_config(&config.warehouse)?);
    // The daemon runs only what `conveyor check` accepts, checked against
    // the warehouse it is about to write.
    let findings = {
        let (wh, config) = (wh.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            Ok::<_, anyhow::Error>(crate::checks::warehouse_findings(
                &wh.connection()?,
                &config,
            ))
        })
        .await??
    };
    for n in &findings.notes {
        eprintln!("{n}");
    }
    if !findings.problems.is_empty() {
        for p in &findings.problems {
            eprintln!("{p}");
        }
        eprintln!(
            "conveyor: {} problem(s) in {}; the daemon did not start (`conveyor check` lists them too)",
            findings.problems.len(),
            config.file.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    for w in &config.warnings {
        tracing::warn!(warning = %w, "config");
    }
    run_daemon_with(wh, config, shutdown, reloads).await?;
    Ok(ExitCode::SUCCESS)
}

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

/// Installs the daemon's signal handlers now: a future that resolves on
/// SIGTERM or SIGINT, and a channel that yields each SIGHUP.
#[cfg(unix)]
fn signals() -> std::io::Result<(impl Future<Output = ()>, mpsc::UnboundedReceiver<()>)> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        }
    };
    Ok((shutdown, rx))
}

#[cfg(not(unix))]
fn signals() -> std::io::Result<(impl Future<Output = ()>, mpsc::UnboundedReceiver<()>)> {
    let (_tx, rx) = mpsc::unbounded_channel();
    Ok((
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
        rx,
    ))
}

/// Runs every scheduled source until `shutdown` resolves, then lets each
/// run in flight finish its current batch, commit, and stop. (No reloads:
/// [`run_daemon_with`] takes those.)
pub async fn run_daemon(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let wh = Arc::new(Warehouse::open_config(&config.warehouse)?);
    let (_never, reloads) = mpsc::unbounded_channel();
    run_daemon_with(wh, config, shutdown, reloads).await
}

/// The daemon on an open warehouse: serves, schedules, and applies a config
/// reload each time `reloads` yields, until `shutdown` resolves.
pub async fn run_daemon_with(
    wh: Arc<Warehouse>,
    config: Config,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::UnboundedReceiver<()>,
) -> Result<()> {
    let recovered = wh.recover_interrupted_runs()?;
    if recovered > 0 {
        tracing::warn!(
            runs = recovered,
            "marked runs of a stopped process as interrupted"
        );
    }
    let live = Live::new(Arc::new(config.clone()));
    prepare_health(&wh, &config).await;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = crate::server::serve(config.server.listen, wh.clone(), live.clone(), async move {
        let _ = stop_rx.changed().await;
    })
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

    let cluster = match &config.cluster {
        Some(c) => {
            let cluster = Arc::new(Cluster::connect(c).await?);
            tracing::info!(catalog = %c.db.describe(), owner = %cluster.owner(), lease_secs = c.lease.as_secs(), "joined the cluster");
            // Closed until this daemon evaluates and has handed its state
            // over: a rule notification goes out only once the cluster
            // holds it.
            crate::outbox::handover::gate().open_upto(None);
            Some(cluster)
        }
        None => None,
    };
    let publisher = config
        .publish
        .as_ref()
        .map(|p| Arc::new(crate::publish::Publisher::new(p)));
    let daemon = Arc::new(Daemon {
        wh: wh.clone(),
        live: live.clone(),
        cancel: CancelFlag::default(),
        clock: Clock::new(),
        locks: Mutex::new(HashMap::new()),
        evaluator: Arc::new(AtomicBool::new(cluster.is_none())),
        cluster: cluster.clone(),
        publisher: publisher.clone(),
    });
    // Runs committed in DuckDB but not published (a crash between the two)
    // are published now, beside the daemon's start (a long export must not
    // hold readiness back); each source's lock keeps its syncs out meanwhile.
    if let Some(p) = publisher {
        let (d, names) = (
            daemon.clone(),
            config
                .sources
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            for name in names {
                let lock = d.lock_for(&name);
                let _running = lock.lock().await;
                d.publish_leftover(&p, &name).await;
            }
        });
    }
    let evaluator_lease = cluster.map(|c| {
        tokio::spawn(c.hold_evaluator(wh.clone(), daemon.evaluator.clone(), daemon.cancel.clone()))
    });
    {
        // Weak: `Live` outlives the daemon in the endpoint's state, and a
        // strong reference here would keep the daemon — and its warehouse,
        // with DuckDB's file lock — alive after `run_daemon` returns.
        let d = Arc::downgrade(&daemon);
        live.set_sync_handler(Arc::new(move |names| {
            let d = d.upgrade();
            Box::pin(async move {
                match d {
                    Some(d) => d.sync_now(names).await,
                    None => Err("the daemon is shutting down".into()),
                }
            })
        }));
    }
    let mut jobs = Jobs::default();
    let mut tasks = JoinSet::new();
    daemon.apply(&mut jobs, &mut tasks);
    tracing::info!(
        warehouse = %config.warehouse.path.display(),
        sources = config.sources.len(),
        scheduled_sources = config.sources.iter().filter(|s| s.schedule.is_some()).count(),
        scheduled_reconciliations = config.reconciles.iter().filter(|r| r.schedule.is_some()).count(),
        scheduled_rules = config.rules.iter().filter(|r| r.schedule.is_some()).count(),
        pid = std::process::id(),
        "conveyor daemon started"
    );
    if jobs.0.len() <= 1 {
        tracing::warn!(
            "no source, reconciliation or rule has a schedule; the daemon only serves queries and delivers notifications"
        );
    }
    live.set_ready(true);
    notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|every| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every / 2).await;
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    });

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reloads.recv() => daemon.reload(&mut jobs, &mut tasks).await,
            // Reap the jobs retired by reloads as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutdown requested: finishing batches in flight");
    live.set_ready(false);
    daemon.cancel.cancel();
    for job in jobs.0.values() {
        job.retire.cancel();
    }
    while tasks.join_next().await.is_some() {}
    if let Some(lease) = evaluator_lease {
        let _ = lease.await;
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(postgres) = postgres {
        let _ = postgres.await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Tells systemd (`Type=notify`); nothing happens outside systemd.
fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

async fn prepare_health(wh: &Arc<Warehouse>, config: &Config) {
    let (wh, config) = (wh.clone(), config.clone());
    let done = tokio::task::spawn_blocking(move || {
        crate::pipeline::health::prepare(&wh.connection()?, &config, chrono::Utc::now().naive_utc())
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::error!(error = %format!("{e:#}"), "cannot prepare pipeline-health bookkeeping");
    }
}

/// What the daemon's jobs share.
struct Daemon {
    wh: Arc<Warehouse>,
    live: Arc<Live>,
    /// Set on shutdown: syncs stop after the batch in flight.
    cancel: CancelFlag,
    clock: Clock,
    /// One per source, held for the length of a run.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// `[cluster]`: the shared lease catalog.
    cluster: Option<Arc<Cluster>>,
    /// Whether this daemon evaluates: always alone, while it holds the
    /// evaluator lease in a cluster.
    evaluator: Arc<AtomicBool>,
    /// `[publish]`: tables published as Iceberg after their syncs.
    publisher: Option<Arc<crate::publish::Publisher>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum JobKey {
    Source(String),
    Recon(String),
    Rule(String),
    Report(String),
    /// The outbox and pipeline-health worker (always one).
    Worker,
}

struct Job {
    fingerprint: String,
    /// Set to stop the job after the run it may have in flight.
    retire: CancelFlag,
}

#[derive(Default)]
struct Jobs(BTreeMap<JobKey, Job>);

/// What one job is to run.
enum Spec {
    Source(SourceConfig),
    Recon(conveyor_config::ReconcileConfig),
    Rule(conveyor_config::RuleConfig),
    Report(conveyor_config::ReportConfig),
    Worker,
}

/// The jobs `config` asks for, each with its fingerprint.
fn wanted(config: &Config) -> BTreeMap<JobKey, (String, Spec)> {
    let mut out = BTreeMap::new();
    for s in config.sources.iter().filter(|s| s.schedule.is_some()) {
        out.insert(
            JobKey::Source(s.name.clone()),
            (fingerprint(s), Spec::Source(s.clone())),
        );
    }
    for r in config.reconciles.iter().filter(|r| r.schedule.is_some()) {
        out.insert(
            JobKey::Recon(r.name.clone()),
            (fingerprint(r), Spec::Recon(r.clone())),
        );
    }
    for r in config.rules.iter().filter(|r| r.schedule.is_some()) {
        out.insert(
            JobKey::Rule(r.name.clone()),
            (fingerprint(r), Spec::Rule(r.clone())),
        );
    }
    for r in config.reports.iter().filter(|r| r.schedule.is_some()) {
        out.insert(
            JobKey::Report(r.name.clone()),
            (fingerprint(r), Spec::Report(r.clone())),
        );
    }
    out.insert(JobKey::Worker, (String::new(), Spec::Worker));
    out
}

/// What a config entry says, ignoring where in the file it is written (a
/// line added above an entry does not change it).
fn fingerprint(v: &impl std::fmt::Debug) -> String {
    let text = format!("{v:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let hit = ["line: ", "col: "]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, p.len())))
            .min();
        let Some((i, len)) = hit else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i + len]);
        rest = rest[i + len..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out
}

impl Daemon {
    fn lock_for(&self, source: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(source.to_string())
            .or_default()
            .clone()
    }

    /// Starts the jobs the config in force wants and retires those it no
    /// longer wants (or wants changed). Returns nothing: the caller logs
    /// the config diff.
    fn apply(self: &Arc<Self>, jobs: &mut Jobs, tasks: &mut JoinSet<()>) {
        let config = self.live.config();
        let mut want = wanted(&config);
        let current: Vec<JobKey> = jobs.0.keys().cloned().collect();
        for key in current {
            let keep = want
                .get(&key)
                .is_some_and(|(fp, _)| *fp == jobs.0[&key].fingerprint);
            if keep {
                want.remove(&key);
                continue;
            }
            if let Some(job) = jobs.0.remove(&key) {
                job.retire.cancel();
            }
            if let (JobKey::Source(name), false) = (&key, want.contains_key(&key)) {
                crate::metrics::global().next_run(name, None);
            }
        }
        for (key, (fingerprint, spec)) in want {
            let retire = CancelFlag::default();
            self.spawn(spec, retire.clone(), tasks);
            jobs.0.insert(
                key,
                Job {
                    fingerprint,
                    retire,
                },
            );
        }
    }

    fn spawn(self: &Arc<Self>, spec: Spec, retire: CancelFlag, tasks: &mut JoinSet<()>) {
        let d = self.clone();
        let clock = self.clock;
        match spec {
            Spec::Source(source) => {
                tasks.spawn(async move {
                    let schedule = source.schedule.clone().expect("wanted() keeps scheduled sources");
                    tracing::info!(source = %source.name, schedule = %schedule.expr, timezone = %schedule.timezone, "scheduled");
                    let name = source.name.clone();
                    let on_next = |at| crate::metrics::global().next_run(&name, Some(at));
                    run_on_schedule_with(&source.name, &schedule, clock, retire, on_next, |firing| {
                        let (d, source) = (d.clone(), source.clone());
                        async move {
                            d.scheduled_run(&source, firing).await;
                        }
                    })
                    .await;
                });
            }
            Spec::Recon(recon) => {
                let schedule = recon
                    .schedule
                    .clone()
                    .expect("wanted() keeps scheduled ones");
                tracing::info!(reconciliation = %recon.name, schedule = %schedule.expr, "scheduled");
                let name = recon.name.clone();
                tasks.spawn(d.evaluate_on_schedule(
                    "recon",
                    name,
                    schedule,
                    retire,
                    move |wh, config| {
                        crate::pipeline::refresh_and_run(&wh, &config, &[&recon], "schedule")
                            .map(|_| ())
                    },
                ));
            }
            Spec::Rule(rule) => {
                let schedule = rule
                    .schedule
                    .clone()
                    .expect("wanted() keeps scheduled ones");
                tracing::info!(rule = %rule.name, schedule = %schedule.expr, "scheduled");
                let name = rule.name.clone();
                tasks.spawn(d.evaluate_on_schedule(
                    "rule",
                    name,
                    schedule,
                    retire,
                    move |wh, config| {
                        crate::pipeline::evaluate_scheduled_rule(&wh, &config, &rule).map(|_| ())
                    },
                ));
            }
            Spec::Report(report) => {
                let schedule = report
                    .schedule
                    .clone()
                    .expect("wanted() keeps scheduled ones");
                tracing::info!(report = %report.name, schedule = %schedule.expr, "scheduled");
                let name = report.name.clone();
                tasks.spawn(d.evaluate_on_schedule(
                    "report",
                    name,
                    schedule,
                    retire,
                    move |wh, config| {
                        let now = chrono::Utc::now().naive_utc();
                        crate::pipeline::send_report(&wh, &config, &report, now).map(|_| ())
                    },
                ));
            }
            Spec::Worker => {
                tasks.spawn(async move { d.worker(retire).await });
            }
        }
    }

    /// The outbox worker (retries come due on their own clock, not only
    /// after an evaluation) and the staleness check, with the config in
    /// force at each pass.
    async fn worker(self: Arc<Self>, retire: CancelFlag) {
        let mut last_outbox: Option<tokio::time::Instant> = None;
        let mut last_stale: Option<tokio::time::Instant> = None;
        let mut last_handover: Option<tokio::time::Instant> = None;
        let mut handed: Option<crate::outbox::handover::EvaluatorState> = None;
        // Short naps, so a shutdown is noticed within a quarter second.
        while !retire.is_cancelled() {
            let config = self.live.config();
            if let (Some(c), true) = (
                &self.cluster,
                last_handover.is_none_or(|l| l.elapsed() >= HANDOVER_EVERY),
            ) {
                last_handover = Some(tokio::time::Instant::now());
                let before = handed.as_ref().map(|s| s.upto);
                match c.hand_over(&self.wh, handed.as_ref()).await {
                    Ok(state) => {
                        // Notifications the cluster now holds go out now,
                        // not at the next delivery pass.
                        if state.is_some() && state.as_ref().map(|s| s.upto) != before {
                            last_outbox = None;
                        }
                        handed = state;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot hand the evaluator's state over; its notifications wait");
                    }
                }
            }
            if last_outbox.is_none_or(|l| l.elapsed() >= OUTBOX_EVERY) {
                last_outbox = Some(tokio::time::Instant::now());
                let (wh, config) = (self.wh.clone(), config.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(conn) = wh.connection() {
                        crate::outbox::deliver_logged(&conn, &config);
                    }
                })
                .await;
            }
            // A warehouse in a cluster holds only the runs of its own
            // daemon, so its view of staleness would be wrong.
            if self.cluster.is_none() && last_stale.is_none_or(|l| l.elapsed() >= STALE_EVERY) {
                last_stale = Some(tokio::time::Instant::now());
                let wh = self.wh.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let conn = wh.connection()?;
                    let now = chrono::Utc::now().naive_utc();
                    let fired = crate::pipeline::health::check_stale(&conn, &config, now)?;
                    log_transitions(&fired);
                    if !fired.is_empty() {
                        crate::outbox::deliver_logged(&conn, &config);
                    }
                    Ok::<_, anyhow::Error>(())
                })
                .await
                .map(|r| {
                    if let Err(e) = r {
                        tracing::error!(error = %format!("{e:#}"), "cannot check sources for staleness");
                    }
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `work` at each firing of `schedule` (a reconciliation, rule or
    /// report: `kind` and `name` as for [`Self::evaluate_at_firing`]) until
    /// `retire` is set.
    async fn evaluate_on_schedule(
        self: Arc<Self>,
        kind: &'static str,
        name: String,
        schedule: conveyor_config::Schedule,
        retire: CancelFlag,
        work: impl Fn(Arc<Warehouse>, Arc<Config>) -> Result<()> + Clone + Send + Sync + 'static,
    ) {
        let clock = self.clock;
        run_on_schedule_with(
            &name,
            &schedule,
            clock,
            retire.clone(),
            |_| {},
            |firing| {
                let (d, name, schedule, retire, work) = (
                    self.clone(),
                    name.clone(),
                    schedule.clone(),
                    retire.clone(),
                    work.clone(),
                );
                async move {
                    d.evaluate_at_firing(kind, &name, &schedule, firing, &retire, work)
                        .await
                }
            },
        )
        .await
    }

    /// One firing of a scheduled reconciliation, rule or report (`kind`:
    /// `recon`, `rule`, `report`). Alone, it runs. In a cluster the
    /// evaluator runs it under the firing's lease, once; a standby waits on
    /// it until it is done elsewhere — or until this daemon becomes the
    /// evaluator and runs it, so a firing that came due while the last
    /// evaluator was dying is not lost. Waiting ends before the next firing.
    async fn evaluate_at_firing(
        self: &Arc<Self>,
        kind: &'static str,
        name: &str,
        schedule: &conveyor_config::Schedule,
        firing: chrono::DateTime<chrono::Utc>,
        retire: &CancelFlag,
        work: impl FnOnce(Arc<Warehouse>, Arc<Config>) -> Result<()> + Send + 'static,
    ) {
        let Some(c) = self.cluster.clone() else {
            return self.run_evaluation(kind, name, work).await;
        };
        let lease = evaluation_lease(kind, name);
        let until = crate::scheduler::next_fire(schedule, firing)
            .map(|next| next - chrono::Duration::milliseconds(500));
        while !retire.is_cancelled() && !self.cancel.is_cancelled() {
            let evaluator = self.evaluator.load(Ordering::SeqCst);
            if evaluator {
                match c.try_take(&lease, Some(firing), &self.cancel).await {
                    Ok(Taken::Held(held)) => {
                        self.run_evaluation(kind, name, work).await;
                        held.release(true).await;
                        return;
                    }
                    Ok(Taken::Done { .. }) => return,
                    // The last evaluator's run of it: wait for its end, or
                    // its lease to expire and the firing to be ours.
                    Ok(Taken::Busy { .. }) => {}
                    Err(e) => {
                        tracing::warn!(lease = %lease, error = %format!("{e:#}"), "cannot reach the cluster catalog; retrying")
                    }
                }
            } else if let Ok(true) = c.firing_done(&lease, firing).await {
                return;
            }
            if until.is_some_and(|u| self.clock.now() >= u) {
                tracing::warn!(kind, name, firing = %firing, "firing not run: no daemon of the cluster evaluated it before the next one");
                return;
            }
            let nap = if evaluator { 250 } else { 1_000 };
            tokio::time::sleep(Duration::from_millis(nap)).await;
        }
    }

    /// Runs one evaluation on a blocking thread, logging its failure.
    async fn run_evaluation(
        &self,
        kind: &'static str,
        name: &str,
        work: impl FnOnce(Arc<Warehouse>, Arc<Config>) -> Result<()> + Send + 'static,
    ) {
        let (wh, config) = (self.wh.clone(), self.live.config());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || work(wh, config)).await {
            tracing::error!(kind, name, error = %format!("{e:#}"), "scheduled {kind} could not run");
        }
    }

    /// Whether this daemon runs the reconciliation, rule or report `name`
    /// now (in a cluster: only while it holds the evaluator lease).
    fn evaluates(&self, name: &str) -> bool {
        let yes = self.evaluator.load(Ordering::SeqCst);
        if !yes {
            tracing::debug!(
                name,
                "firing skipped: another daemon of the cluster evaluates"
            );
        }
        yes
    }

    /// A run at a firing of the source's schedule. Skipped (not queued)
    /// when a run of the source is still going — one started by hand, or by
    /// the job a reload replaced — and, in a cluster, when another daemon
    /// ran this firing.
    async fn scheduled_run(
        self: &Arc<Self>,
        source: &SourceConfig,
        firing: chrono::DateTime<chrono::Utc>,
    ) {
        let lock = self.lock_for(&source.name);
        let Ok(_running) = lock.try_lock() else {
            tracing::info!(source = %source.name, "firing skipped: a run of this source is still going");
            return;
        };
        let Some((report, _)) = self.run_leased(source, "schedule", Some(firing)).await else {
            return;
        };
        if !report.failed() && !self.cancel.is_cancelled() && self.evaluates("after sync") {
            crate::pipeline::after_sync(
                self.wh.clone(),
                self.live.config(),
                vec![source.name.clone()],
            )
            .await;
        }
    }

    /// [`Daemon::run_locked`] under the source's cluster lease for `firing`
    /// (None: a run by hand), when in a cluster. None when another daemon
    /// ran the firing, or this one stopped while waiting for the lease.
    async fn run_leased(
        &self,
        source: &SourceConfig,
        trigger: &str,
        firing: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<(SourceReport, Vec<(String, String)>)> {
        let Some(cluster) = &self.cluster else {
            return Some(self.run_locked(source, trigger, &self.cancel, None).await);
        };
        let lease = cluster
            .take(&source_lease(&source.name), firing, &self.cancel)
            .await?;
        let done = self
            .run_locked(source, trigger, lease.stop(), Some(lease.token()))
            .await;
        // Stopped by a shutdown or a lost lease, the firing is not done:
        // another daemon takes it over.
        let finished = !lease.stop().is_cancelled();
        lease.release(finished).await;
        Some(done)
    }

    /// Publishes what `source`'s last runs left unpublished (its lock held
    /// by the caller). In a cluster only under the source's lease, and only
    /// if free now: a daemon that holds it is syncing, and publishes a
    /// table newer than this one's.
    async fn publish_leftover(&self, publisher: &crate::publish::Publisher, source: &str) {
        let config = self.live.config();
        let Some(cluster) = &self.cluster else {
            publisher
                .publish_sources(&self.wh, &config, &[source.to_string()])
                .await;
            return;
        };
        match cluster
            .try_take(&source_lease(source), None, &self.cancel)
            .await
        {
            Ok(crate::cluster::Taken::Held(lease)) => {
                publisher
                    .publish_sources(&self.wh, &config, &[source.to_string()])
                    .await;
                lease.release(false).await;
            }
            Ok(_) => tracing::info!(
                source,
                "not publishing this daemon's last runs: another daemon holds the source"
            ),
            Err(e) => {
                tracing::warn!(source, error = %format!("{e:#}"), "cannot reach the cluster catalog; this daemon's last runs are published after its next sync")
            }
        }
    }

    /// Syncs `source` (its lock held by the caller), publishes what it
    /// changed (`[publish]`), then records the outcome for pipeline health
    /// (which may queue an operator e-mail). Also returns the tables that
    /// could not be published, with why. `lease_token`: the cluster lease
    /// it runs under, recorded on its runs.
    async fn run_locked(
        &self,
        source: &SourceConfig,
        trigger: &str,
        cancel: &CancelFlag,
        lease_token: Option<i64>,
    ) -> (SourceReport, Vec<(String, String)>) {
        let report = sync_source_for(
            self.wh.clone(),
            source,
            cancel,
            &Progress::hidden(),
            trigger,
            lease_token,
        )
        .await;
        // Still under the source's lock (and lease): nothing else writes
        // its tables while they are read out. A run stopped by a shutdown or
        // a lost lease publishes nothing: the next holder does.
        let mut publish_failed = Vec::new();
        if let (Some(p), false) = (&self.publisher, cancel.is_cancelled()) {
            publish_failed = p
                .publish_sources(
                    &self.wh,
                    &self.live.config(),
                    std::slice::from_ref(&source.name),
                )
                .await
                .failed;
        }
        let (wh, config, r) = (self.wh.clone(), self.live.config(), report.clone());
        let recorded = tokio::task::spawn_blocking(move || {
            let conn = wh.connection()?;
            let now = chrono::Utc::now().naive_utc();
            let changed = crate::pipeline::health::record_run(&conn, &config, &r, now)?;
            log_transitions(&changed);
            if !changed.is_empty() {
                // Tell the operator now, not at the worker's next pass.
                crate::outbox::deliver_logged(&conn, &config);
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
        if let Ok(Err(e)) = recorded {
            tracing::error!(source = %source.name, error = %format!("{e:#}"), "cannot record the run for pipeline health");
        }
        (report, publish_failed)
    }

    /// `conveyor sync [SOURCE…]` sent to the daemon: syncs the sources (all
    /// when none is named) concurrently, each after any run of it still
    /// going, then what follows those that succeeded.
    async fn sync_now(self: Arc<Self>, names: Vec<String>) -> Result<SyncResponse, String> {
        if self.cancel.is_cancelled() {
            return Err("the daemon is shutting down".into());
        }
        let config = self.live.config();
        let mut chosen = Vec::new();
        for n in &names {
            match config.source(n) {
                Some(s) => chosen.push(s.clone()),
                None => {
                    let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
                    return Err(format!(
                        "the daemon has no source named `{n}` (its config: {}; configured: {}; after editing the file, reload it with SIGHUP)",
                        config.file.display(),
                        known.join(", ")
                    ));
                }
            }
        }
        if names.is_empty() {
            chosen = config.sources.clone();
        }
        let started = std::time::Instant::now();
        let runs = chosen.iter().map(|s| {
            let d = self.clone();
            async move {
                let lock = d.lock_for(&s.name);
                let _running = lock.lock().await;
                d.run_leased(s, "daemon", None).await
            }
        });
        // None: the daemon stopped while waiting for another's lease.
        let (reports, publish_failed): (Vec<SourceReport>, Vec<_>) =
            futures::future::join_all(runs)
                .await
                .into_iter()
                .flatten()
                .unzip();
        let synced: Vec<String> = reports
            .iter()
            .filter(|r| !r.failed())
            .map(|r| r.source.clone())
            .collect();
        let reconciled = if self.cancel.is_cancelled() || !self.evaluates("after sync") {
            Vec::new()
        } else {
            crate::pipeline::after_sync(self.wh.clone(), config, synced).await
        };
        Ok(SyncResponse {
            reports,
            reconciled: reconciled
                .iter()
                .map(|r| (r.reconciliation.clone(), r.run_id, r.exceptions()))
                .collect(),
            seconds: started.elapsed().as_secs_f64(),
            publish_failed: publish_failed.into_iter().flatten().collect(),
        })
    }

    /// SIGHUP: re-read and check the config; apply it, or keep the one in
    /// force and log every problem.
    async fn reload(self: &Arc<Self>, jobs: &mut Jobs, tasks: &mut JoinSet<()>) {
        let old = self.live.config();
        let path = old.file.clone();
        tracing::info!(file = %path.display(), "reload requested (SIGHUP): checking the config");
        if let Ok(reloading) = sd_notify::NotifyState::monotonic_usec_now() {
            notify(&[sd_notify::NotifyState::Reloading, reloading]);
        }
        let wh = self.wh.clone();
        let checked =
            tokio::task::spawn_blocking(move || -> Result<(Config, Vec<String>), Vec<String>> {
                let config = conveyor_config::load(&path)
                    .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
                let conn = wh.connection().map_err(|e| {
                    vec![format!(
                        "cannot check the config against the warehouse: {e:#}"
                    )]
                })?;
                let findings = crate::checks::warehouse_findings(&conn, &config);
                if findings.problems.is_empty() {
                    Ok((config, findings.notes))
                } else {
                    Err(findings.problem_lines())
                }
            })
            .await
            .unwrap_or_else(|e| Err(vec![format!("the config check panicked: {e}")]));
        match checked {
            Err(problems) => {
                for p in &problems {
                    tracing::error!(problem = %p, "config reload refused");
                }
                tracing::error!(
                    file = %old.file.display(),
                    problems = problems.len(),
                    "config reload failed: the running config stays in force (`conveyor check` lists the problems)"
                );
                crate::metrics::global().reload(false);
            }
            Ok((mut new, notes)) => {
                for n in &notes {
                    tracing::warn!(note = %n, "config check");
                }
                for w in &new.warnings {
                    tracing::warn!(warning = %w, "config");
                }
                let restart = restart_only(&old, &new);
                if !restart.is_empty() {
                    tracing::warn!(
                        settings = %restart.join(", "),
                        "these settings change only on a restart; the running ones stay in force"
                    );
                    new.server = old.server.clone();
                    new.warehouse = old.warehouse.clone();
                }
                let changes = describe_changes(&old, &new);
                self.live.replace(Arc::new(new.clone()));
                prepare_health(&self.wh, &new).await;
                self.apply(jobs, tasks);
                tracing::info!(
                    file = %new.file.display(),
                    changes = %if changes.is_empty() { "none".to_string() } else { changes.join("; ") },
                    "config reloaded"
                );
                crate::metrics::global().reload(true);
            }
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

fn log_transitions(changed: &[crate::pipeline::health::Transition]) {
    use crate::rules::AlertState;
    for (rule, source, state) in changed {
        match state {
            AlertState::Firing => {
                tracing::warn!(rule, source = %source, state = %state, "pipeline-health alert")
            }
            _ => tracing::info!(rule, source = %source, state = %state, "pipeline-health alert"),
        }
    }
}

/// Settings the running daemon cannot change in place (they hold open
/// files and sockets), by key.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if fingerprint(&old.warehouse) != fingerprint(&new.warehouse) {
        out.push("[warehouse]");
    }
    if fingerprint(&old.server) != fingerprint(&new.server) {
        out.push("[server]");
    }
    out
}

/// What a reload changes, one entry per section: `sources: +ats ~payroll
/// -crm`, `smtp changed`.
fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    fn named<'c, T: std::fmt::Debug>(
        what: &str,
        old: &'c [T],
        new: &'c [T],
        name: impl Fn(&T) -> &str,
    ) -> Option<String> {
        let find = |list: &'c [T], n: &str| list.iter().find(|x| name(x) == n);
        let mut parts: Vec<(String, char)> = Vec::new();
        for n in new.iter().map(&name) {
            match find(old, n) {
                None => parts.push((n.to_string(), '+')),
                Some(o) if fingerprint(o) != fingerprint(find(new, n).expect("listed")) => {
                    parts.push((n.to_string(), '~'))
                }
                Some(_) => {}
            }
        }
        for n in old.iter().map(&name) {
            if find(new, n).is_none() {
                parts.push((n.to_string(), '-'));
            }
        }
        // By name: the file's order is not the order a reader scans for.
        parts.sort();
        let parts: Vec<String> = parts.iter().map(|(n, c)| format!("{c}{n}")).collect();
        (!parts.is_empty()).then(|| format!("{what}: {}", parts.join(" ")))
    }
    let mut out: Vec<String> = [
        named("sources", &old.sources, &new.sources, |s| &s.name),
        named("reconciliations", &old.reconciles, &new.reconciles, |r| {
            &r.name
        }),
        named("rules", &old.rules, &new.rules, |r| &r.name),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (what, a, b) in [
        ("smtp", fingerprint(&old.smtp), fingerprint(&new.smtp)),
        ("health", fingerprint(&old.health), fingerprint(&new.health)),
        ("model", fingerprint(&old.model), fingerprint(&new.model)),
        (
            "plugins",
            fingerprint(&old.plugins),
            fingerprint(&new.plugins),
        ),
    ] {
        if a != b {
            out.push(format!("{what} changed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        conveyor_config::parse_offline(text, std::path::Path::new("c.toml")).unwrap()
    }

    const BASE: &str = r#"[warehouse]
path = "w.duckdb"
[sources.a]
type = "rest"
base_url = "https://a.example.com"
schedule = "0 0 2 * * *"
[[sources.a.streams]]
name = "items"
path = "/items"
primary_key = "id"
[sources.b]
type = "rest"
base_url = "https://b.example.com"
schedule = "0 0 3 * * *"
[[sources.b.streams]]
name = "items"
path = "/items"
primary_key = "id"
"#;

    #[test]
    fn run_reload_describes_added_changed_and_removed_entries() {
        let old = config(BASE);
        // b's schedule changes, a moves down the file (not a change), c is
        // new, and smtp appears.
        let text = BASE
            .replace("0 0 3 * * *", "0 30 3 * * *")
            .replace("[sources.a]", "\n\n[sources.a]")
            + "[sources.c]\ntype = \"rest\"\nbase_url = \"https://c.example.com\"\n[[sources.c.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n[smtp]\nhost = \"h\"\nfrom = \"f@example.com\"\n";
        let new = config(&text);
        assert_eq!(
            describe_changes(&old, &new),
            ["sources: ~b +c", "smtp changed"]
        );
        assert_eq!(describe_changes(&old, &old), Vec::<String>::new());
        let fewer = config(&BASE[..BASE.find("[sources.b]").unwrap()]);
        assert_eq!(describe_changes(&old, &fewer), ["sources: -b"]);
        // Only scheduled sources are jobs; the worker always is one.
        let keys: Vec<JobKey> = wanted(&new).into_keys().collect();
        assert_eq!(
            keys,
            [
                JobKey::Source("a".into()),
                JobKey::Source("b".into()),
                JobKey::Worker
            ]
        );
    }

    #[test]
    fn run_reload_leaves_server_and_warehouse_for_a_restart() {
        let old = config(BASE);
        let new = config(&BASE.replace("w.duckdb", "other.duckdb"));
        assert_eq!(restart_only(&old, &new), ["[warehouse]", "[server]"]);
        assert!(restart_only(&old, &old).is_empty());
    }

    #[test]
    fn run_fingerprint_ignores_where_an_entry_is_written() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct At {
            line: usize,
            col: usize,
            key: &'static str,
        }
        assert_eq!(
            fingerprint(&At {
                line: 3,
                col: 1,
                key: "k"
            }),
            fingerprint(&At {
                line: 30,
                col: 12,
                key: "k"
            })
        );
        assert_ne!(
            fingerprint(&At {
                line: 3,
                col: 1,
                key: "k"
            }),
            fingerprint(&At {
                line: 3,
                col: 1,
                key: "j"
            })
        );
    }
}
