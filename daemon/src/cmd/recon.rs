//! `conveyor recon [NAME]`: refresh the unified model, run the
//! reconciliations (all, or the one named) now, and print each run's summary
//! and its top exceptions — through the daemon when one holds the
//! warehouse. `--show` prints the latest recorded runs instead.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use conveyor_config::Config;
use duckdb::Connection;

use crate::query::{self, Format};
use crate::recon::report::{exceptions_sql, summary_sql, Runs};
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG, EXIT_FAILED};

pub async fn recon_command(config: Config, name: Option<String>, show: bool) -> Result<ExitCode> {
    if config.reconciles.is_empty() {
        eprintln!(
            "error: {} has no [[reconcile]] entries",
            config.file.display()
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    if let Some(n) = &name {
        if !config.reconciles.iter().any(|r| &r.name == n) {
            let known: Vec<&str> = config.reconciles.iter().map(|r| r.name.as_str()).collect();
            eprintln!(
                "error: no reconciliation named `{n}`; configured: {}",
                known.join(", ")
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    let daemon = server::find_daemon(&config.server, &config.warehouse.path).await?;
    if let (false, Some(d)) = (show, &daemon) {
        // The daemon holds the file: it runs them, as by hand, and the
        // results are read back through it.
        eprintln!("note: a daemon holds the warehouse; it reconciles now and reports back");
        let done = d
            .recon(name.as_deref())
            .await
            .map_err(|e| e.context("the daemon could not run the reconciliations"))?;
        let runs = Runs::Latest(name.as_deref());
        let summary = d.query(&summary_sql(&runs)).await?;
        let exceptions = d.query(&exceptions_sql(&runs)).await?;
        print_results(&summary, &exceptions);
        return Ok(if done.failed > 0 {
            ExitCode::from(EXIT_FAILED)
        } else {
            ExitCode::SUCCESS
        });
    }
    if show {
        let runs = Runs::Latest(name.as_deref());
        let (summary, exceptions) = (summary_sql(&runs), exceptions_sql(&runs));
        let results = match daemon {
            Some(d) => (d.query(&summary).await?, d.query(&exceptions).await?),
            None => {
                let path = config.warehouse.path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = Warehouse::open_read_only(&path)?;
                    Ok::<_, anyhow::Error>((
                        query::run(&conn, &summary)?,
                        query::run(&conn, &exceptions)?,
                    ))
                })
                .await??
            }
        };
        print_results(&results.0, &results.1);
        return Ok(ExitCode::SUCCESS);
    }
    let config = Arc::new(config);
    tokio::task::spawn_blocking(move || {
        let wh = Warehouse::open_config(&config.warehouse)?;
        let done = crate::pipeline::run_recons_now(&wh, &config, name.as_deref())?;
        print_runs(&wh.connection()?, &Runs::Latest(name.as_deref()))?;
        Ok(if done.failed > 0 {
            ExitCode::from(EXIT_FAILED)
        } else {
            ExitCode::SUCCESS
        })
    })
    .await?
}

/// Prints the summary of `runs` and their top exceptions.
pub fn print_runs(conn: &Connection, runs: &Runs) -> Result<()> {
    let summary = query::run(conn, &summary_sql(runs))?;
    let exceptions = query::run(conn, &exceptions_sql(runs))?;
    print_results(&summary, &exceptions);
    Ok(())
}

fn print_results(summary: &query::QueryResult, exceptions: &query::QueryResult) {
    println!("{}", query::render(summary, Format::Table));
    if exceptions.rows.is_empty() {
        println!("No exceptions.");
    } else {
        println!(
            "\nTop exceptions (at most {} per reconciliation; all in conveyor.recon_results):",
            crate::recon::report::TOP_EXCEPTIONS
        );
        println!("{}", query::render(exceptions, Format::Table));
    }
}
