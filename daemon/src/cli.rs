//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::query::Format;

#[derive(Debug, Parser)]
#[command(
    name = "conveyor",
    version,
    about = "Sync ops systems into DuckDB, reconcile them, act on what you find"
)]
pub struct Cli {
    /// Config file.
    #[arg(long, short, global = true, env = "CONVEYOR_CONFIG", default_value = conveyor_config::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and the presence of the secrets it references.
    Check,
    /// Sync sources once, now (default: all).
    Sync {
        /// Source names; all sources when omitted.
        sources: Vec<String>,
    },
    /// Run the daemon: every source on its schedule, queries served locally.
    Run,
    /// Run one read-only SQL statement on the warehouse (through the daemon if it runs).
    Query {
        /// The SQL; `-` reads it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        sql: Option<String>,
        /// Read the SQL from this file.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        #[arg(long = "format", short = 'o', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Last run, state, rows, duration, error and cursor per source and stream.
    Status {
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Refresh the unified model, run the reconciliations (all, or NAME) and print what they found.
    Recon {
        /// One `[[reconcile]]` name; all when omitted.
        name: Option<String>,
        /// Print the latest recorded runs instead of running now.
        #[arg(long)]
        show: bool,
    },
    /// Performance rules: evaluate them now.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Alerts firing or pending, worst first (through the daemon if it runs); `preview RULE` renders what would be sent now.
    Alerts {
        #[command(subcommand)]
        command: Option<AlertsCommand>,
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Hold back a rule's notifications for a while (add, list, remove).
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Connector plugins: list those in `[plugins].dirs`, or check one library.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Run offline rule tests: fixtures, a simulated clock, expected alerts and e-mails (docs/rule-tests.md).
    Test { file: PathBuf },
    /// Start sandbox vendor APIs, sync them end to end, and show the result.
    Demo {
        /// Where the demo writes its config, secrets and warehouse.
        #[arg(long, default_value = "conveyor-demo")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Refresh the unified model, evaluate the rules (all, or NAME), record results and alert state, print a summary.
    Eval {
        /// One `[[rules]]` name; all when omitted.
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Evaluate RULE now without recording anything; print the alerts that would change and the e-mails and webhooks that would be sent, rendered. Sends nothing.
    Preview { rule: String },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence RULE (for one ENTITY, or all) for a duration: alerts still move, notifications wait until it ends.
    Add {
        rule: String,
        entity: Option<String>,
        /// How long, e.g. 2h, 7d.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why (shown by `silence list`).
        #[arg(long)]
        reason: String,
        /// Who is silencing (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        author: String,
    },
    /// Silences in force.
    List {
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Lift silence ID now.
    Remove { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Name, version, ABI version, streams and path of every plugin in `[plugins].dirs`.
    List,
    /// Load one library, validate it as a plugin, list its streams (exit 2 on any problem).
    Check {
        path: PathBuf,
        /// The options a source would give it, as a JSON object (streams often depend on them).
        #[arg(long)]
        options: Option<String>,
    },
}
