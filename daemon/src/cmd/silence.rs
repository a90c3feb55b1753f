//! `conveyor silence add|list|remove`: hold back a rule's notifications for
//! a while — through the daemon when it runs (it holds the warehouse),
//! straight in the file otherwise.

use std::process::ExitCode;

use anyhow::Result;
use conveyor_config::Config;

use crate::cli::SilenceCommand;
use crate::rules::silence::{self, NewSilence};
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG, EXIT_FAILED};

pub async fn silence_command(config: Config, command: SilenceCommand) -> Result<ExitCode> {
    match command {
        SilenceCommand::List { format } => {
            let sql = super::query::SqlSource::Text(silence::LIST_SQL.to_string());
            super::query::query_command(config, sql, format).await
        }
        SilenceCommand::Add {
            rule,
            entity,
            duration,
            reason,
            author,
        } => {
            let seconds = match humantime::parse_duration(&duration) {
                Ok(d) if d.as_secs() >= 1 => d.as_secs(),
                _ => {
                    eprintln!("error: --for `{duration}` is not a duration (e.g. 2h, 7d)");
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
            };
            let new = NewSilence {
                rule,
                entity,
                seconds,
                reason,
                author,
            };
            if let Err(e) = silence::validate(&config, &new) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let id = match server::find_daemon(&config.server, &config.warehouse.path).await? {
                Some(daemon) => daemon.add_silence(&new).await?,
                None => {
                    let new = new.clone();
                    on_file(&config, move |c| Ok(silence::add(c, &new, now())?)).await?
                }
            };
            println!(
                "Silence {id}: rule `{}`, {}, for {duration} ({}). Lift it early with `conveyor silence remove {id}`.",
                new.rule,
                new.entity.as_deref().map_or("every entity".to_string(), |e| format!("entity `{e}`")),
                new.reason
            );
            Ok(ExitCode::SUCCESS)
        }
        SilenceCommand::Remove { id } => {
            let removed = match server::find_daemon(&config.server, &config.warehouse.path).await? {
                Some(daemon) => daemon.remove_silence(id).await?,
                None => on_file(&config, move |c| Ok(silence::remove(c, id, now())?)).await?,
            };
            if removed {
                println!("Silence {id} lifted; its alerts are announced at the next evaluation if still firing.");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no silence {id} in force (see `conveyor silence list`)");
                Ok(ExitCode::from(EXIT_FAILED))
            }
        }
    }
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

async fn on_file<T: Send + 'static>(
    config: &Config,
    f: impl FnOnce(&duckdb::Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let cfg = config.warehouse.clone();
    tokio::task::spawn_blocking(move || f(&Warehouse::open_config(&cfg)?.connection()?)).await?
}
