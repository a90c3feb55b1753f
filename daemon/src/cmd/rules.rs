//! `conveyor rules eval [NAME]`: refresh the unified model, evaluate the
//! rules (all, or the one named) now, and print what each found and the
//! alerts now firing or pending — through the daemon when one holds the
//! warehouse; and `conveyor alerts preview`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::Config;

use crate::query::{self, Format};
use crate::rules;
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
        let outcome = crate::pipeline::evaluate_now(&conn, &config, name.as_deref())?;
        Ok(print_outcome(&outcome))
    })
    .await?
}

/// Prints an [`EvalOutcome`] (errors on stderr); the exit status.
fn print_outcome(outcome: &crate::pipeline::EvalOutcome) -> ExitCode {
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

/// `conveyor alerts preview RULE [--at INSTANT]`: what an evaluation now
/// (or as of `at`, UTC) would change and send, rendered, with nothing
/// recorded or sent.
pub async fn preview_command(config: Config, name: String, at: Option<String>) -> Result<ExitCode> {
    if let Err(known) = crate::pipeline::find_rule(&config, &name) {
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
                crate::pipeline::preview(&wh.connection()?, &config, &name, at)
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
        println!("  notify about {entity}: {}", why.describe());
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
