//! One module per CLI command; `dispatch` picks the one asked for.

mod check;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod demo_alerts;
mod outbox;
pub mod plugins;
pub mod query;
pub mod recon;
mod report;
pub mod rules;
pub mod run;
mod silence;
pub mod sync;
mod test;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{AlertsCommand, Cli, Command, OutboxCommand, PluginsCommand, RulesCommand};
use crate::{logging, EXIT_CONFIG};

pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let quiet = matches!(
        cli.command,
        Command::Query { .. }
            | Command::Status { .. }
            | Command::Alerts { .. }
            | Command::Silence { .. }
            | Command::Report { .. }
            | Command::Check
            | Command::Demo { .. }
            | Command::Plugins { .. }
            | Command::Test { .. }
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::PluginHost { .. }
    );
    logging::init(cli.log_format, cli.verbose, quiet);
    match cli.command {
        Command::Check => Ok(check::check(&cli.config)),
        Command::Sync { sources } => {
            with_config(&cli.config, |c| sync::sync_command(c, sources)).await
        }
        Command::Run => with_config(&cli.config, run::run_command).await,
        Command::Query { sql, file, format } => {
            let sql = query::SqlSource::from_args(sql, file);
            with_config_offline(&cli.config, |c| query::query_command(c, sql, format)).await
        }
        Command::Status { format } => {
            with_config_offline(&cli.config, |c| query::status_command(c, format)).await
        }
        Command::Recon { name, show } => {
            with_config(&cli.config, |c| recon::recon_command(c, name, show)).await
        }
        Command::Rules {
            command: RulesCommand::Eval { name },
        } => with_config(&cli.config, |c| rules::eval_command(c, name)).await,
        Command::Outbox {
            command: OutboxCommand::Retry { ids, dead, all },
        } => with_config(&cli.config, |c| outbox::retry_command(c, ids, dead, all)).await,
        Command::Alerts {
            command: None,
            format,
        } => {
            with_config_offline(&cli.config, |c| {
                let sql = query::SqlSource::Text(crate::rules::report::alerts_sql(&[]));
                query::query_command(c, sql, format)
            })
            .await
        }
        Command::Alerts {
            command: Some(AlertsCommand::Preview { rule, at }),
            ..
        } => with_config_offline(&cli.config, |c| rules::preview_command(c, rule, at)).await,
        // Sending delivers: the [smtp] password must resolve.
        Command::Report { command } => {
            with_config(&cli.config, |c| report::report_command(c, command)).await
        }
        Command::Silence { command } => {
            with_config_offline(&cli.config, |c| silence::silence_command(c, command)).await
        }
        Command::Test { file } => Ok(test::test_command(&file)),
        #[cfg(feature = "demo")]
        Command::Demo { dir, serve } => demo::demo_command(&dir, serve).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => {
            eprintln!(
                "error: this conveyor was built without its demo; `scripts/demo` builds and runs it \
                 (cargo build -p conveyor --features demo)"
            );
            Ok(std::process::ExitCode::from(EXIT_CONFIG))
        }
        Command::Completions { shell } => {
            crate::cli::print_completions(shell)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            crate::cli::print_man(dir.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins {
            command: PluginsCommand::List,
        } => with_config(&cli.config, plugins::list_command).await,
        Command::PluginHost { parent } => {
            Ok(
                tokio::task::spawn_blocking(move || crate::plugins::isolated::plugin_host(parent))
                    .await?,
            )
        }
        Command::Plugins {
            command: PluginsCommand::Check { path, options },
        } => plugins::check_command(&path, options).await,
    }
}

/// Loads the config, or prints every problem and exits with status 2.
async fn with_config<F, Fut>(path: &Path, f: F) -> Result<ExitCode>
where
    F: FnOnce(conveyor_config::Config) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    loaded(path, conveyor_config::load(path), f).await
}

/// Like [`with_config`], but secret references are only parsed, never read:
/// for commands that only read the warehouse (a person who queries needs no
/// source's credentials).
async fn with_config_offline<F, Fut>(path: &Path, f: F) -> Result<ExitCode>
where
    F: FnOnce(conveyor_config::Config) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    loaded(path, conveyor_config::load_offline(path), f).await
}

async fn loaded<F, Fut>(
    path: &Path,
    config: Result<conveyor_config::Config, conveyor_config::ConfigErrors>,
    f: F,
) -> Result<ExitCode>
where
    F: FnOnce(conveyor_config::Config) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    match config {
        Ok(c) => f(c).await,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "conveyor: {} problem(s) in {}; nothing was run",
                errors.0.len(),
                path.display()
            );
            Ok(ExitCode::from(EXIT_CONFIG))
        }
    }
}
