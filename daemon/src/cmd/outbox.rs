//! `conveyor outbox retry [ID…] [--dead] [--all]`: re-queue notifications
//! now (after SMTP or a webhook receiver came back) — through the daemon
//! when it runs (it holds the warehouse, and starts a delivery pass at
//! once), straight on the file otherwise (then delivered by this process).

use std::process::ExitCode;

use anyhow::Result;
use conveyor_config::Config;

use crate::outbox::retry::{self, Selection};
use crate::server;
use crate::warehouse::Warehouse;

pub async fn retry_command(
    config: Config,
    ids: Vec<i64>,
    dead: bool,
    all: bool,
) -> Result<ExitCode> {
    let selection = if all {
        Selection::All
    } else if dead {
        Selection::Dead
    } else {
        Selection::Ids(ids.clone())
    };
    let n = match server::find_daemon(&config.server, &config.warehouse.path).await? {
        Some(daemon) => daemon
            .outbox_retry(&selection)
            .await
            .map_err(|e| e.context("the daemon could not re-queue the notifications"))?,
        None => {
            let sel = selection.clone();
            tokio::task::spawn_blocking(move || {
                let wh = Warehouse::open_config(&config.warehouse)?;
                let conn = wh.connection()?;
                let n = retry::retry(&conn, &sel, chrono::Utc::now().naive_utc())?;
                if n > 0 {
                    crate::outbox::deliver_logged(&conn, &config);
                }
                Ok::<_, anyhow::Error>(n)
            })
            .await??
        }
    };
    println!("re-queued {n} notification(s)");
    if let Selection::Ids(ids) = &selection {
        if n < ids.len() {
            eprintln!(
                "note: {} of the {} id(s) given were not re-queued (delivered already, or no such id; see `conveyor status`)",
                ids.len() - n,
                ids.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
