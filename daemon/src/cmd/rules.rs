//! `conveyor rules eval [NAME]`: refresh the unified model, evaluate the
//! rules (all, or the one named) now, and print what each found and the
//! alerts now firing or pending — through the daemon when one holds the
//! warehouse. Also the warehouse part of `conveyor check`
//! for rule measures.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::Config;

use crate::query::{self, Format, QueryResult};
use crate::rules::{self, EvalSummary, LEVELS};
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG, EXIT_FAILED};

pub async fn eval_command(config: Config, name: Option<String>) -> Result<ExitCode> {
    if config.rules.is_empty() {
        eprintln!("error: {} has no [[rules]] entries", config.file.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    if let Some(n) = &name {
        if !config.rules.iter().any(|r| &r.name == n) {
            let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
            eprintln!(
                "error: no rule named `{n}`; configured: {}",
                known.join(", ")
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    // Evaluating writes results and alert state; the daemon is the single
    // writer while it runs, so it evaluates them and sends back the result.
    if let Some(daemon) = server::find_daemon(&config.server, &config.warehouse.path).await? {
        eprintln!(
            "note: a daemon holds the warehouse; it evaluates the rules now and reports back"
        );
        let outcome = daemon
            .rules_eval(name.as_deref())
            .await
            .map_err(|e| e.context("the daemon could not evaluate the rules"))?;
        return Ok(print_outcome(&outcome));
    }
    let config = Arc::new(config);
    tokio::task::spawn_blocking(move || {
        let wh = Warehouse::open_config(&config.warehouse)?;
        let conn = wh.connection()?;
        let outcome = evaluate_now(&conn, &config, name.as_deref())?;
        Ok(print_outcome(&outcome))
    })
    .await?
}

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

/// Prints an [`EvalOutcome`] (errors on stderr); the exit status.
fn print_outcome(outcome: &EvalOutcome) -> ExitCode {
    for e in &outcome.errors {
        eprintln!("error: {e}");
    }
    if let Some(summary) = &outcome.summary {
        println!("{}", query::render(summary, Format::Table));
        match &outcome.alerts {
            Some(alerts) if !alerts.rows.is_empty() => {
                println!("\nAlerts firing or pending:");
                println!("{}", query::render(alerts, Format::Table));
            }
            _ => println!("No alerts firing or pending."),
        }
    }
    if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// One row per evaluation: rows per level, alerts per state, transitions.
fn summary_table(done: &[EvalSummary]) -> QueryResult {
    let mut columns = vec!["rule".to_string(), "eval_id".into(), "rows".into()];
    columns.extend(LEVELS.iter().map(|l| l.to_string()));
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

/// Each template variable of `rule`'s actions that is neither a measure
/// column nor a built-in (and a `to_column` or `peer.group` the measure
/// lacks), located.
pub fn check_templates(rule: &conveyor_config::RuleConfig, columns: &[String]) -> Vec<String> {
    let mut wrong = Vec::new();
    // The built-in subject and body need nothing the measure might lack.
    let email = rule
        .actions
        .iter()
        .flat_map(|a| [a.subject.as_ref(), a.body.as_ref(), a.html.as_ref()])
        .flatten();
    let webhook = rule.webhooks.iter().filter_map(|w| w.body.as_ref());
    for t in email.chain(webhook).chain(rule.next_step.as_ref()) {
        for v in &t.variables {
            if conveyor_config::BUILTIN_VARIABLES.contains(&v.as_str())
                || columns.iter().any(|c| c == v)
            {
                continue;
            }
            let at = &t.at;
            wrong.push(format!(
                "{}:{}:{}: {}: unknown template variable `{v}` (hint: the measure returns {}; also {})",
                at.file.display(), at.line, at.col, at.key, columns.join(", "), conveyor_config::BUILTIN_VARIABLES.join(", ")
            ));
        }
    }
    if let Some(group) = rule
        .peer
        .as_ref()
        .and_then(|p| p.group.as_ref())
        .filter(|g| !columns.contains(g))
    {
        let at = &rule.at;
        wrong.push(format!(
            "{}:{}:{}: {}.peer.group: the measure has no column `{group}` (hint: it returns {})",
            at.file.display(),
            at.line,
            at.col,
            at.key,
            columns.join(", ")
        ));
    }
    if let Some(col) = rule.entity_label.as_ref().filter(|c| !columns.contains(c)) {
        let at = &rule.at;
        wrong.push(format!(
            "{}:{}:{}: {}.entity_label: the measure has no column `{col}` (hint: it returns {})",
            at.file.display(),
            at.line,
            at.col,
            at.key,
            columns.join(", ")
        ));
    }
    for action in &rule.actions {
        if let Some(col) = action.to_column.as_ref().filter(|c| !columns.contains(c)) {
            let at = &action.at;
            wrong.push(format!(
                "{}:{}:{}: {}.to_column: the measure has no column `{col}` (hint: it returns {})",
                at.file.display(),
                at.line,
                at.col,
                at.key,
                columns.join(", ")
            ));
        }
    }
    wrong
}

/// `conveyor alerts preview RULE [--at INSTANT]`: what an evaluation now
/// (or as of `at`, UTC) would change and send, rendered, with nothing
/// recorded or sent.
pub async fn preview_command(config: Config, name: String, at: Option<String>) -> Result<ExitCode> {
    if let Err(known) = find_rule(&config, &name) {
        eprintln!("error: no rule named `{name}`; configured: {known}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let at = match at.as_deref().map(parse_instant).transpose() {
        Ok(at) => at,
        Err(e) => {
            eprintln!("error: --at: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let preview = match server::find_daemon(&config.server, &config.warehouse.path).await? {
        Some(daemon) => daemon.preview(&name, at).await?,
        None => {
            tokio::task::spawn_blocking(move || {
                let wh = Warehouse::open_config(&config.warehouse)?;
                preview(&wh.connection()?, &config, &name, at)
            })
            .await??
        }
    };
    print_preview(&preview, at);
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-02`, `2026-11-02T06:00`, `2026-11-02 06:00:00` or with a
/// trailing `Z`: a UTC instant (a bare date is its midnight).
pub fn parse_instant(text: &str) -> std::result::Result<chrono::NaiveDateTime, String> {
    let t = text.trim().trim_end_matches('Z');
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return Ok(at);
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| {
            format!("`{text}` is not an instant (UTC), e.g. 2026-11-02 or 2026-11-02T06:00:00")
        })
}

fn find_rule<'c>(
    config: &'c Config,
    name: &str,
) -> std::result::Result<&'c conveyor_config::RuleConfig, String> {
    config.rules.iter().find(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
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

fn print_preview(p: &rules::Preview, at: Option<chrono::NaiveDateTime>) {
    let when = match at {
        Some(at) => format!("as of {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        None => "now".to_string(),
    };
    println!(
        "Rule `{}` {when}: {} breaching row(s); nothing is recorded or sent.",
        p.rule, p.breaching
    );
    if p.transitions.is_empty() {
        println!("No alert would change state.");
    }
    for (entity, from, to) in &p.transitions {
        let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
        println!("  {entity}: {} → {}", name(from), name(to));
    }
    for (entity, why) in &p.due {
        let why = match why.as_str() {
            "firing" => "started firing, not announced yet",
            "repeat" => "still firing: a reminder is due (`repeat`)",
            "escalated" => "escalated from warn to critical since it was announced",
            "resolved" => "resolved (`notify_resolved`)",
            other => other,
        };
        println!("  notify about {entity}: {why}");
    }
    if p.notifications.is_empty() {
        println!("\nNo notification would be sent (none due: not newly firing, already announced, silenced or cooling down).");
    }
    for n in &p.notifications {
        println!("\n--- {} to {}", n.channel, n.recipient);
        if n.channel == "email" {
            println!("Subject: {}\n", n.subject);
        }
        println!("{}", n.body);
        if let Some(html) = &n.html {
            println!("\n[HTML part]\n{html}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn rules_preview_at_reads_dates_and_instants_as_utc() {
        let at = |s: &str| parse_instant(s).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
        assert_eq!(at("2026-11-02").as_deref(), Ok("2026-11-02 00:00:00"));
        assert_eq!(at("2026-11-02T06:30").as_deref(), Ok("2026-11-02 06:30:00"));
        assert_eq!(
            at("2026-11-02 06:30:15Z").as_deref(),
            Ok("2026-11-02 06:30:15")
        );
        assert!(at("02/11/2026").unwrap_err().contains("is not an instant"));
    }
}
