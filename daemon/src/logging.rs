//! Tracing setup: human-readable or JSON lines on stderr. Colour only on a
//! terminal (never in a file, a pipe or the journal, nor with `NO_COLOR`);
//! JSON fields keep their types (a duration is a number of seconds).

use std::io::IsTerminal;
use std::time::Duration;

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
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Colour codes only for a person at a terminal who has not opted out
/// (<https://no-color.org>: any non-empty `NO_COLOR`).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// How often a sync off a terminal logs a progress line
/// (`CONVEYOR_PROGRESS_SECS`, default 30; 0 turns the lines off).
pub fn progress_interval() -> Option<Duration> {
    let secs = std::env::var("CONVEYOR_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(30.0);
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Seconds rounded to milliseconds, for log fields (a number, not text).
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn logging_seconds_are_rounded_numbers() {
        assert_eq!(secs(Duration::from_micros(1_482_937)), 1.483);
    }
}
