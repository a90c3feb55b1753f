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
    let result = match server::find_daemon(config.server.listen, &config.warehouse.path).await {
        Some(daemon) => daemon.query(&sql).await?,
        None => {
            let path = config.warehouse.path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = Warehouse::open_read_only(&path)?;
                query::run(&conn, &sql)
            })
            .await??
        }
    };
    println!("{}", query::render(&result, format));
    Ok(ExitCode::SUCCESS)
}
