//! `conveyor query` and `conveyor status`: through the daemon when it runs,
//! straight from the file (read-only) when it does not.

use std::process::ExitCode;

use anyhow::Result;
use conveyor_config::Config;

use crate::query::{self, Format};
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG};

pub async fn query_command(config: Config, sql: String, format: Format) -> Result<ExitCode> {
    if let Err(e) = query::check_read_only(&sql) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let result = run_read_only(&config, vec![sql]).await?.remove(0);
    println!("{}", query::render(&result, format));
    Ok(ExitCode::SUCCESS)
}

/// `conveyor status`: the streams, then the outbox and its dead letters.
pub async fn status_command(config: Config, format: Format) -> Result<ExitCode> {
    let sqls = [
        crate::status::STATUS_SQL,
        crate::status::OUTBOX_SQL,
        crate::status::DEAD_LETTERS_SQL,
    ];
    let results = run_read_only(&config, sqls.map(String::from).to_vec()).await?;
    let table = format == Format::Table;
    for (i, result) in results.iter().enumerate() {
        match i {
            1 if result.rows.is_empty() => continue,
            1 if table => println!("\nNotifications:"),
            2 if result.rows.is_empty() => continue,
            2 if table => println!(
                "\nDead letters (given up after the last attempt; see last_error{}):",
                config
                    .smtp
                    .as_ref()
                    .and_then(|s| s.operator.as_deref())
                    .map_or(String::new(), |o| format!("; {o} was told"))
            ),
            _ => {}
        }
        println!("{}", query::render(result, format));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs read-only `sqls` through the daemon when it runs, else on the file.
async fn run_read_only(config: &Config, sqls: Vec<String>) -> Result<Vec<query::QueryResult>> {
    match server::find_daemon(config.server.listen, &config.warehouse.path).await {
        Some(daemon) => {
            let mut out = Vec::new();
            for sql in &sqls {
                out.push(daemon.query(sql).await?);
            }
            Ok(out)
        }
        None => {
            let path = config.warehouse.path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = Warehouse::open_read_only(&path)?;
                sqls.iter().map(|sql| query::run(&conn, sql)).collect()
            })
            .await?
        }
    }
}
