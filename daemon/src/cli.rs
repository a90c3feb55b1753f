//! The command line, as clap sees it; and the shell completions and man
//! page generated from it (`conveyor completions SHELL`, `conveyor man`).

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::query::Format;

#[derive(Debug, Parser)]
#[command(
    name = "conveyor",
    version,
    about = "Sync ops systems into DuckDB, reconcile them, act on what you find",
    after_help = "Examples:\n  conveyor check\n  conveyor sync ats\n  conveyor run\n  conveyor query \"SELECT * FROM model.people LIMIT 5\"\n  conveyor status"
)]
pub struct Cli {
    /// Config file (commands that need none ignore it: `test` reads its own, `plugins check`, `completions` and `man` read none).
    #[arg(long, short, global = true, env = "CONVEYOR_CONFIG", default_value = conveyor_config::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,

    /// Log format on stderr: `human` lines, or one JSON object per line (numbers stay numbers).
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
    /// Readable lines (coloured on a terminal unless NO_COLOR is set).
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and the presence of the secrets it references.
    #[command(
        after_help = "Exit status: 0 valid, 2 invalid (every problem printed as FILE:LINE:COL: key: message)."
    )]
    Check,
    /// Sync sources once, now (default: all); through the daemon when it runs.
    #[command(
        after_help = "Examples:\n  conveyor sync\n  conveyor sync ats payroll\n\nExit status: 0 ok, 1 a source failed, 2 bad config or unknown source."
    )]
    Sync {
        /// Source names; all sources when omitted.
        #[arg(value_name = "SOURCE")]
        sources: Vec<String>,
    },
    /// Run the daemon: every source on its schedule, queries served locally; SIGHUP reloads the config.
    #[command(
        after_help = "SIGHUP re-reads and checks the config and applies it between runs (or keeps the running one and logs why); SIGTERM/SIGINT let each batch in flight commit, then exit 0. Refuses to start (exit 2) on a config `conveyor check` refuses.\n\nExample:\n  conveyor --log-format json run"
    )]
    Run,
    /// Run one read-only SQL statement on the warehouse (through the daemon if it runs).
    Query {
        /// The SQL; `-` reads it from standard input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        sql: Option<String>,
        /// Read the SQL from this file.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long = "format", short = 'o', value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Last run, state, rows, duration, last success, failure streak, error and cursor per source and stream; then the outbox.
    Status {
        /// Output format (`json`: one document with streams, notifications, dead_letters).
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Refresh the unified model, run the reconciliations (all, or NAME) and print what they found; through the daemon when it runs.
    Recon {
        /// One `[[reconcile]]` name; all when omitted.
        name: Option<String>,
        /// Print the latest recorded runs instead of running now.
        #[arg(long)]
        show: bool,
    },
    /// Performance rules: evaluate them now (through the daemon when it runs).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Alerts firing or pending, worst first (through the daemon if it runs); `preview RULE` renders what would be sent now.
    Alerts {
        #[command(subcommand)]
        command: Option<AlertsCommand>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Scorecards (`[[reports]]`): render one now (`preview`), or queue and send it (`send`).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Hold back a rule's notifications for a while (add, list, remove).
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// The outbox of notifications: re-queue undelivered or dead-lettered ones now.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Connector plugins: list those in `[plugins].dirs`, or check one library.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Run offline rule tests: fixtures, a simulated clock, expected alerts and e-mails (docs/rule-tests.md).
    Test {
        /// The rule-test file (TOML); it names the config it tests.
        file: PathBuf,
    },
    /// Start sandbox vendor APIs, sync them end to end, and show the result.
    Demo {
        /// Where the demo writes its config, secrets and warehouse.
        #[arg(long, default_value = "conveyor-demo")]
        dir: PathBuf,
        /// Afterwards keep the sandbox and a daemon running on the demo's data (the console and the Postgres endpoint), until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Internal: the plugin host process the daemon starts for a source with `isolation = "process"` (speaks a pipe protocol on stdin/stdout).
    #[command(name = "plugin-host", hide = true)]
    PluginHost {
        /// The daemon's process id (the host exits if it is not its parent).
        #[arg(long)]
        parent: Option<i32>,
    },
    /// Print a shell completion script to standard output.
    #[command(
        after_help = "Examples:\n  conveyor completions bash > /etc/bash_completion.d/conveyor\n  conveyor completions zsh > \"${fpath[1]}/_conveyor\"\n  conveyor completions fish > ~/.config/fish/completions/conveyor.fish"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command to a folder.
    #[command(
        after_help = "Examples:\n  conveyor man > /usr/local/share/man/man1/conveyor.1\n  conveyor man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write `conveyor.1` and one `conveyor-COMMAND.1` per command into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `conveyor completions SHELL`: the completion script on stdout (built in
/// memory first: a closed pipe is then an error, not a panic).
pub fn print_completions(shell: clap_complete::Shell) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "conveyor", &mut out);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)
}

/// `conveyor man`: `conveyor.1` on stdout, or with `dir` one page per
/// command written there (`conveyor.1`, `conveyor-sync.1`, …).
pub fn print_man(dir: Option<&std::path::Path>) -> std::io::Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), &out)
        }
    }
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
    /// Evaluate RULE now (or as of --at) without recording anything; print the alerts that would change and the e-mails and webhooks that would be sent, rendered. Sends nothing.
    #[command(
        after_help = "Examples:\n  conveyor alerts preview csat_below_target\n  conveyor alerts preview csat_below_target --at 2026-11-02T06:00:00"
    )]
    Preview {
        /// The `[[rules]]` name.
        rule: String,
        /// Evaluate as of this UTC instant (the measure's clock, `conveyor_now`), e.g. 2026-11-02 or 2026-11-02T06:00:00.
        #[arg(long, value_name = "INSTANT")]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Render report NAME as of now (or --at) for each of its recipients and print it; sends nothing.
    #[command(
        after_help = "Examples:\n  conveyor report preview supervisor_scorecard\n  conveyor report preview supervisor_scorecard --at 2026-11-02"
    )]
    Preview {
        /// The `[[reports]]` name.
        name: String,
        /// As of this UTC instant (the measures' clock), e.g. 2026-11-02 or 2026-11-02T06:00:00.
        #[arg(long, value_name = "INSTANT")]
        at: Option<String>,
    },
    /// Queue report NAME for the period of now (or --at) and deliver it; a recipient who already had that period's report is not sent it again.
    Send {
        /// The `[[reports]]` name.
        name: String,
        /// As of this UTC instant, e.g. 2026-11-02.
        #[arg(long, value_name = "INSTANT")]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence RULE (for one ENTITY, or all) for a duration: alerts still move, notifications wait until it ends.
    Add {
        /// The `[[rules]]` name.
        rule: String,
        /// One entity of the rule (an agent, a client); all its entities when omitted.
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
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Lift silence ID now.
    Remove {
        /// The silence's id (`conveyor silence list`).
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Re-queue notifications now (attempts reset, due at once, no longer dead) and deliver them; through the daemon when it runs.
    #[command(
        group(clap::ArgGroup::new("which").required(true).args(["ids", "dead", "all"])),
        after_help = "Examples:\n  conveyor outbox retry --dead\n  conveyor outbox retry 12 13\n\nDelivered notifications are never sent again. Ids are in `conveyor status` (dead letters) and conveyor.outbox."
    )]
    Retry {
        /// Outbox ids to re-queue (those not delivered yet).
        #[arg(value_name = "ID")]
        ids: Vec<i64>,
        /// Re-queue every dead-lettered notification.
        #[arg(long, conflicts_with_all = ["ids", "all"])]
        dead: bool,
        /// Re-queue every notification not delivered yet, dead or still waiting for its next attempt.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Name, version, ABI version, streams and path of every plugin in `[plugins].dirs`.
    List,
    /// Load one library, validate it as a plugin, list its streams (exit 2 on any problem).
    Check {
        /// The shared library (`lib<name>.so`).
        path: PathBuf,
        /// The options a source would give it, as a JSON object (streams often depend on them).
        #[arg(long)]
        options: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command says what it is in `--help`.
    #[test]
    fn cli_every_argument_and_command_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "conveyor", &mut missing);
        assert!(missing.is_empty(), "undescribed in --help: {missing:?}");
        cmd.debug_assert();
    }
}
