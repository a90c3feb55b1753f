//! `conveyor report preview|send NAME [--at INSTANT]`: a scorecard rendered
//! for each of its recipients and printed, or queued and delivered —
//! through the daemon when one holds the warehouse.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::Config;

use crate::cli::ReportCommand;
use crate::pipeline::ReportOutcome;
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG};

pub async fn report_command(config: Config, command: ReportCommand) -> Result<ExitCode> {
    let (name, at, send) = match command {
        ReportCommand::Preview { name, at } => (name, at, false),
        ReportCommand::Send { name, at } => (name, at, true),
    };
    if let Err(known) = crate::pipeline::find_report(&config, &name) {
        eprintln!("error: no report named `{name}`; configured: {known}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let at = match at.as_deref().map(super::rules::parse_instant).transpose() {
        Ok(at) => at,
        Err(e) => {
            eprintln!("error: --at: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let outcome = match server::find_daemon(&config.server, &config.warehouse.path).await? {
        Some(daemon) => daemon.report(&name, at, send).await?,
        None => {
            let config = Arc::new(config);
            tokio::task::spawn_blocking(move || {
                let wh = Warehouse::open_config(&config.warehouse)?;
                crate::pipeline::report_now(&wh, &config, &name, at, send)
            })
            .await??
        }
    };
    print_outcome(&outcome);
    Ok(ExitCode::SUCCESS)
}

fn print_outcome(o: &ReportOutcome) {
    if let Some(queued) = o.queued {
        println!(
            "Report `{}` for the period of {}: {queued} e-mail(s) queued and handed to delivery (`conveyor status` lists the outbox).",
            o.report, o.period
        );
        if queued == 0 {
            println!("Every recipient already has this period's report: none is sent twice.");
        }
        return;
    }
    println!(
        "Report `{}` for the period of {}: {} e-mail(s); nothing is recorded or sent.",
        o.report,
        o.period,
        o.rendered.len()
    );
    for r in &o.rendered {
        println!(
            "\n--- to {}\nSubject: {}\n\n{}",
            r.recipient, r.subject, r.text
        );
        if !r.charts.is_empty() {
            println!(
                "\n[the HTML part embeds {} chart(s): {}]",
                r.charts.len(),
                r.charts.join(", ")
            );
        }
    }
}
