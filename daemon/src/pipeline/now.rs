//! The pipeline's steps run now, by hand: `conveyor rules eval`, `conveyor
//! recon` and `conveyor alerts preview` in this process, or the daemon's
//! live endpoint doing the same for them while it holds the warehouse.

use anyhow::Result;
use conveyor_config::Config;

use crate::query::{self, QueryResult};
use crate::rules::{self, EvalSummary, Level};
use crate::warehouse::Warehouse;

/// What `rules eval` found: the summary table, the alerts firing or pending
/// of the rules evaluated, and each evaluation that failed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalOutcome {
    pub errors: Vec<String>,
    /// None when no evaluation succeeded.
    pub summary: Option<QueryResult>,
    pub alerts: Option<QueryResult>,
}

/// Refreshes the model, evaluates the rules (all, or `name`) now and
/// delivers what they queued: by hand in this process, or in the daemon for
/// `POST /v1/rules/eval`. Blocking.
pub fn evaluate_now(
    conn: &duckdb::Connection,
    config: &Config,
    name: Option<&str>,
) -> Result<EvalOutcome> {
    let chosen: Vec<_> = config
        .rules
        .iter()
        .filter(|r| name.is_none_or(|n| r.name == n))
        .collect();
    if let (Some(n), true) = (name, chosen.is_empty()) {
        anyhow::bail!("no rule named `{n}` in {}", config.file.display());
    }
    // Measures read the unified model's views; bring them up to date.
    crate::model::refresh(conn, config)?;
    let outcomes = rules::evaluate_all(conn, &chosen);
    crate::outbox::deliver_logged(conn, config);
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(s) => done.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let (summary, alerts) = if done.is_empty() {
        (None, None)
    } else {
        let names: Vec<&str> = done.iter().map(|s| s.rule.as_str()).collect();
        let alerts = query::run(conn, &rules::report::alerts_sql(&names))?;
        (Some(summary_table(&done)), Some(alerts))
    };
    Ok(EvalOutcome {
        errors,
        summary,
        alerts,
    })
}

/// One row per evaluation: rows per level, alerts per state, transitions.
fn summary_table(done: &[EvalSummary]) -> QueryResult {
    let mut columns = vec!["rule".to_string(), "eval_id".into(), "rows".into()];
    columns.extend(Level::ALL.iter().map(|l| l.to_string()));
    columns.extend(["pending", "firing", "new_firing", "resolved", "ms"].map(String::from));
    let rows = done
        .iter()
        .map(|s| {
            let mut row = vec![s.rule.clone(), s.eval_id.to_string(), s.rows().to_string()];
            row.extend(s.levels.iter().map(i64::to_string));
            row.extend(
                [s.pending, s.firing, s.started_firing, s.resolved, s.millis]
                    .map(|n| n.to_string()),
            );
            row.into_iter().map(Some).collect()
        })
        .collect();
    let literal = columns.iter().map(|c| c != "rule").collect();
    QueryResult {
        columns,
        literal,
        json: Vec::new(),
        rows,
    }
}

/// What a reconciliation run by the daemon did (the CLI then reads the
/// runs' summaries and exceptions with queries).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ReconResponse {
    pub ran: usize,
    pub failed: usize,
}

/// Refreshes the model and runs the reconciliations (all, or `name`) now,
/// by hand: in this process, or in the daemon for `POST /v1/recon`.
/// Blocking.
pub fn run_recons_now(
    wh: &Warehouse,
    config: &Config,
    name: Option<&str>,
) -> Result<ReconResponse> {
    let recons: Vec<_> = config
        .reconciles
        .iter()
        .filter(|r| name.is_none_or(|n| r.name == n))
        .collect();
    if let (Some(n), true) = (name, recons.is_empty()) {
        anyhow::bail!("no reconciliation named `{n}` in {}", config.file.display());
    }
    let outcomes = super::refresh_and_run(wh, config, &recons, "manual")?;
    Ok(ReconResponse {
        ran: outcomes.len(),
        failed: outcomes.iter().filter(|o| o.is_err()).count(),
    })
}

/// The rule named `name`, or the names configured (for the error).
pub fn find_rule<'c>(
    config: &'c Config,
    name: &str,
) -> std::result::Result<&'c conveyor_config::RuleConfig, String> {
    find(&config.rules, name, |r| &r.name)
}

/// The report named `name`, or the names configured (for the error).
pub fn find_report<'c>(
    config: &'c Config,
    name: &str,
) -> std::result::Result<&'c conveyor_config::ReportConfig, String> {
    find(&config.reports, name, |r| &r.name)
}

/// The entry of `all` named `name`, or every name (`none` without any).
fn find<'c, T>(
    all: &'c [T],
    name: &str,
    name_of: impl Fn(&T) -> &String,
) -> std::result::Result<&'c T, String> {
    all.iter().find(|e| name_of(e) == name).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|e| name_of(e).as_str()).collect();
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    })
}

/// Evaluates rule `name` as of `at` (default: now) in a rolled-back
/// transaction (the daemon's endpoint calls this too).
pub fn preview(
    conn: &duckdb::Connection,
    config: &Config,
    name: &str,
    at: Option<chrono::NaiveDateTime>,
) -> Result<rules::Preview> {
    let rule = find_rule(config, name)
        .map_err(|known| anyhow::anyhow!("no rule named `{name}`; configured: {known}"))?;
    Ok(rules::preview_at(
        conn,
        rule,
        at.unwrap_or_else(|| chrono::Utc::now().naive_utc()),
    )?)
}

/// What `conveyor report preview|send NAME` did: the e-mails rendered (a
/// preview) or how many were queued (a send).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ReportOutcome {
    pub report: String,
    pub period: String,
    pub rendered: Vec<crate::reports::Rendered>,
    /// With `send`: e-mails queued (recipients who already had this
    /// period's report are not sent it again).
    pub queued: Option<usize>,
}

/// Renders report `name` as of `at` (default: now) — and with `send`
/// queues and delivers it — by hand here or in the daemon for
/// `POST /v1/reports`. Blocking.
pub fn report_now(
    wh: &Warehouse,
    config: &Config,
    name: &str,
    at: Option<chrono::NaiveDateTime>,
    send: bool,
) -> Result<ReportOutcome> {
    let report = find_report(config, name)
        .map_err(|known| anyhow::anyhow!("no report named `{name}`; configured: {known}"))?;
    let at = at.unwrap_or_else(|| chrono::Utc::now().naive_utc());
    let period = crate::reports::period(at);
    if send {
        let queued = super::send_report(wh, config, report, at)?;
        crate::outbox::deliver_logged(&wh.connection()?, config);
        return Ok(ReportOutcome {
            report: name.to_string(),
            period,
            rendered: Vec::new(),
            queued: Some(queued),
        });
    }
    let rendered =
        crate::reports::render_all(&wh.connection()?, report, at).map_err(anyhow::Error::msg)?;
    Ok(ReportOutcome {
        report: name.to_string(),
        period,
        rendered,
        queued: None,
    })
}
