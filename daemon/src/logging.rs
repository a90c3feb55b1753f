//! Tracing setup: human-readable or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// `quiet` commands (query, status, check) log warnings only by default, so
/// their stdout stays clean for pipes.
pub fn init(format: LogFormat, verbose: u8, quiet: bool) {
    let level = match (verbose, quiet) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("warn,conveyor={level},conveyor_connectors={level}"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
