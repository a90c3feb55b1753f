//! Conveyor, the library behind the `conveyor` binary: CLI commands,
//! scheduler, warehouse, sync engine and the local query endpoint.

pub mod cli;
pub mod cmd;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod pgwire;
pub mod plugins;
pub mod progress;
pub mod query;
pub mod recon;
pub mod rules;
pub mod ruletest;
pub mod scheduler;
pub mod server;
pub mod status;
pub mod sync;
pub mod tls;
pub mod warehouse;

use std::process::ExitCode;

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
