//! The flow after data lands: refresh the unified model, run the
//! reconciliations, evaluate the rules, deliver what they queued. One place
//! owns that order — `sync`, the daemon (after syncs, on schedules, for the
//! live endpoint's "now" requests) and the demo all call it — so `recon`,
//! `rules` and `outbox` each do their own step and never call each other's.
//! [`health`] records how each step went (the pipeline-health alerts).

pub mod health;
mod now;

use std::sync::{Arc, Mutex};

use conveyor_config::{Config, ReconcileConfig, RuleConfig};

pub use now::{
    evaluate_now, find_report, find_rule, preview, report_now, run_recons_now, EvalOutcome,
    ReconResponse, ReportOutcome,
};

use crate::recon::{run_all, ReconError, RunSummary};
use crate::warehouse::Warehouse;

/// Two sources finishing at once in the daemon would otherwise replace the
/// same views in two transactions (a DuckDB catalog write-write conflict).
static SERIAL: Mutex<()> = Mutex::new(());

/// Refreshes the model views, then runs `recons` one after another on a
/// connection of their own. Blocking: call it off the async threads.
pub fn refresh_and_run(
    wh: &Warehouse,
    config: &Config,
    recons: &[&ReconcileConfig],
    trigger: &str,
) -> anyhow::Result<Vec<Result<RunSummary, ReconError>>> {
    refresh_and_run_at(wh, config, recons, trigger, None)
}

/// [`refresh_and_run`] as of `as_of` (the demo runs as of its sandbox's today).
pub fn refresh_and_run_at(
    wh: &Warehouse,
    config: &Config,
    recons: &[&ReconcileConfig],
    trigger: &str,
    as_of: Option<chrono::NaiveDateTime>,
) -> anyhow::Result<Vec<Result<RunSummary, ReconError>>> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let conn = wh.connection()?;
    crate::model::refresh(&conn, config)?;
    let results = run_all(&conn, recons, trigger, as_of);
    for (recon, result) in recons.iter().zip(&results) {
        health::observe(
            &conn,
            config,
            "reconciliation",
            &recon.name,
            result.as_ref().map(drop),
        );
    }
    Ok(results)
}

/// Evaluates one rule on its own schedule and records how that went; the
/// outbox worker delivers what it queued. Blocking.
pub fn evaluate_scheduled_rule(
    wh: &Warehouse,
    config: &Config,
    rule: &RuleConfig,
) -> anyhow::Result<()> {
    let conn = wh.connection()?;
    let result = crate::rules::evaluate_all(&conn, &[rule]).remove(0);
    health::observe(&conn, config, "rule", &rule.name, result.as_ref().map(drop));
    Ok(())
}

/// Renders `report` as of `at` and queues it for each recipient that has
/// not had this period's; the outbox worker (or the caller) delivers it.
/// A report that cannot be rendered fires `conveyor.job_failing` like a
/// failed rule evaluation. Blocking.
pub fn send_report(
    wh: &Warehouse,
    config: &Config,
    report: &conveyor_config::ReportConfig,
    at: chrono::NaiveDateTime,
) -> anyhow::Result<usize> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let conn = wh.connection()?;
    crate::model::refresh(&conn, config)?;
    let result = crate::reports::enqueue(&conn, report, at);
    health::observe(
        &conn,
        config,
        "report",
        &report.name,
        result.as_ref().map(drop),
    );
    result.map_err(anyhow::Error::msg)
}

/// The reconciliations that follow any of `synced`, each with the trigger
/// naming the sources that set it off (`after:ats,accounting`).
pub fn following<'c>(config: &'c Config, synced: &[String]) -> Vec<(&'c ReconcileConfig, String)> {
    config
        .reconciles
        .iter()
        .filter_map(|r| {
            let by: Vec<&str> = r
                .after
                .iter()
                .filter(|s| synced.contains(s))
                .map(String::as_str)
                .collect();
            (!by.is_empty()).then(|| (r, format!("after:{}", by.join(","))))
        })
        .collect()
}

/// After `synced` sources finished (without failing): refresh the model,
/// run the reconciliations that follow them, then the rules that follow
/// either. Problems are logged, never raised: a sync that worked stays a
/// sync that worked.
pub async fn after_sync(
    wh: Arc<Warehouse>,
    config: Arc<Config>,
    synced: Vec<String>,
) -> Vec<RunSummary> {
    let job = tokio::task::spawn_blocking(move || {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let conn = wh.connection()?;
        crate::model::refresh(&conn, &config)?;
        let mut out = Vec::new();
        for (recon, trigger) in following(&config, &synced) {
            for result in run_all(&conn, &[recon], &trigger, None) {
                health::observe(
                    &conn,
                    &config,
                    "reconciliation",
                    &recon.name,
                    result.as_ref().map(drop),
                );
                out.extend(result);
            }
        }
        // Then the rules that follow those sources or the reconciliations
        // that just succeeded, so they measure fresh data (logged only).
        let done: Vec<String> = synced
            .iter()
            .cloned()
            .chain(out.iter().map(|s| s.reconciliation.clone()))
            .collect();
        let rules = crate::rules::following(&config, &done);
        for (rule, result) in rules.iter().zip(crate::rules::evaluate_all(&conn, &rules)) {
            health::observe(
                &conn,
                &config,
                "rule",
                &rule.name,
                result.as_ref().map(drop),
            );
        }
        // Send what those evaluations queued (and anything still due).
        crate::outbox::deliver_logged(&conn, &config);
        Ok::<_, anyhow::Error>(out)
    });
    match job.await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "cannot refresh the unified model after a sync");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "model refresh panicked");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconciliation_follows_only_the_sources_it_names() {
        let text = r#"
[warehouse]
path = "wh.duckdb"
[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"
[sources.accounting]
type = "rest"
base_url = "https://qbo.example.com"
[[sources.accounting.streams]]
name = "invoices"
path = "/invoices"
primary_key = "id"
[[reconcile]]
name = "both"
after = ["ats", "accounting"]
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]
[[reconcile]]
name = "manual_only"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]
"#;
        let config = conveyor_config::parse(text, std::path::Path::new("c.toml")).unwrap();
        let hit = following(&config, &["accounting".to_string()]);
        assert_eq!(hit.len(), 1);
        assert_eq!(
            (hit[0].0.name.as_str(), hit[0].1.as_str()),
            ("both", "after:accounting")
        );
        let hit = following(&config, &["ats".to_string(), "accounting".to_string()]);
        assert_eq!(hit[0].1, "after:ats,accounting");
        assert!(following(&config, &["payroll".to_string()]).is_empty());
    }
}
