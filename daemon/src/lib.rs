//! Conveyor, the library behind the `conveyor` binary: CLI commands,
//! scheduler, warehouse, sync engine and the local query endpoint.

pub mod allocator;
pub(crate) mod catalog_db;
pub(crate) mod checks;
pub mod cli;
pub(crate) mod cluster;
pub(crate) mod cmd;
pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod outbox;
pub(crate) mod pgwire;
pub(crate) mod pipeline;
pub mod plugins;
pub mod progress;
pub(crate) mod publish;
pub(crate) mod query;
pub(crate) mod recon;
pub(crate) mod reports;
pub(crate) mod rules;
pub(crate) mod ruletest;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod status;
pub mod sync;
pub(crate) mod tls;
pub mod warehouse;

use std::process::ExitCode;

/// The daemon, for tests that run it in-process with a shutdown of their own.
pub use cmd::run::{run_daemon, run_daemon_with};

/// Exit status for bad config or bad usage.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when some work failed.
pub const EXIT_FAILED: u8 = 1;

/// Runs a parsed command line to completion.
pub async fn main(cli: cli::Cli) -> ExitCode {
    match cmd::dispatch(cli).await {
        Ok(code) => code,
        // The reader of our output went away (`conveyor query … | head`):
        // nothing left to say, and nobody to say it to.
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
