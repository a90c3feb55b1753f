//! Acting now while the daemon runs (issue 13, item 5): `conveyor recon`
//! and `conveyor rules eval` run in the daemon and print their results;
//! `conveyor outbox retry --dead` re-queues a dead letter after SMTP comes
//! back, and it is delivered exactly once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use conveyor_mocks::smtp::Aiosmtpd as Smtp;

use crate::support::{free_port, listening, text, wait_until_blocking, Daemon, BIN};

/// A config with no source: one reconciliation over constant relations and
/// one rule over a constant measure, e-mailed to each agent's supervisor
/// (given up on after one attempt) on `smtp_port`.
fn write_config(dir: &Path, smtp_port: u16) -> (PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let text = format!(
        r#"[warehouse]
path = "wh.duckdb"

[server]
listen = "{listen}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Conveyor <conveyor@example.com>"
max_attempts = 1

[[reconcile]]
name = "ledger_vs_bank"
left = {{ sql = "SELECT 1 AS id, 10 AS amount UNION ALL SELECT 2, 20" }}
right = {{ sql = "SELECT 1 AS id, 11 AS amount" }}
keys = [{{ left = "id" }}]
compare = [{{ left = "amount" }}]

[[rules]]
name = "csat_low"
measure = """
SELECT * FROM (VALUES ('a1', DATE '2026-01-05', 3.1, 'Ann', 's1@example.com'),
                      ('a2', DATE '2026-01-05', 3.2, 'Bob', 's2@example.com'))
         AS m(entity, period, value, agent_name, supervisor)"""
direction = "below"
warn = 4.0

[[rules.actions]]
type = "email"
to_column = "supervisor"
subject = "CSAT below target: {{{{ agent_name }}}}"
body = "{{{{ agent_name }}}} scored {{{{ value }}}}"
"#
    );
    let path = dir.join("conveyor.toml");
    std::fs::write(&path, text).unwrap();
    (path, listen)
}

fn conveyor(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(config.parent().unwrap())
        .output()
        .unwrap()
}

/// Starts `conveyor run` and waits until its endpoint answers (from then on
/// it holds the warehouse file).
fn start_daemon(config: &Path, listen: &str) -> Daemon {
    let mut daemon = Daemon::spawn(
        Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .current_dir(config.parent().unwrap())
            .stderr(Stdio::null()),
    );
    daemon.ready_blocking(Duration::from_secs(30), "the daemon listening", || {
        listening(listen)
    });
    daemon
}

/// One number from a query run through the daemon.
fn count(config: &Path, sql: &str) -> i64 {
    let out = conveyor(config, &["query", "--format", "csv", sql]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number in {stdout}"))
}

fn sigterm_and_wait(daemon: &mut Daemon) {
    let status = daemon.terminate_blocking();
    assert!(status.success(), "{status:?}");
}

#[test]
fn act_now_recon_and_rules_eval_run_in_the_daemon_and_print_their_results() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), &[]);
    let (config, listen) = write_config(dir.path(), smtp.port);
    let mut daemon = start_daemon(&config, &listen);

    let out = conveyor(&config, &["recon"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("a daemon holds the warehouse; it reconciles now"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("locked") && !stdout.contains("locked"),
        "{stderr}"
    );
    assert!(stdout.contains("ledger_vs_bank"), "{stdout}");
    assert!(
        stdout.contains("Top exceptions"),
        "2 is missing, 1 differs: {stdout}"
    );
    assert_eq!(
        count(
            &config,
            "SELECT count(*) AS n FROM conveyor.recon_runs WHERE trigger = 'manual'"
        ),
        1,
        "the run happened in the daemon"
    );
    let out = conveyor(&config, &["recon", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));

    let out = conveyor(&config, &["rules", "eval"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("it evaluates the rules now"), "{stderr}");
    assert!(
        !stderr.contains("locked") && !stdout.contains("locked"),
        "{stderr}"
    );
    assert!(stdout.contains("csat_low"), "{stdout}");
    assert!(stdout.contains("Alerts firing or pending"), "{stdout}");
    assert_eq!(
        count(
            &config,
            "SELECT count(*) AS n FROM conveyor.rule_results WHERE rule = 'csat_low'"
        ),
        2
    );
    // The daemon delivered what the evaluation queued, as by hand.
    wait_until_blocking(Duration::from_secs(20), "the e-mails", || {
        smtp.messages().len() >= 2
    });
    sigterm_and_wait(&mut daemon);
}

#[test]
fn act_now_outbox_retry_dead_requeues_a_dead_letter_and_it_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    // SMTP is down: nothing listens on its port yet.
    let smtp_port = free_port();
    let (config, listen) = write_config(dir.path(), smtp_port);
    let mut daemon = start_daemon(&config, &listen);

    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let dead = "SELECT count(*) AS n FROM conveyor.outbox WHERE dead_at IS NOT NULL";
    assert_eq!(
        count(&config, dead),
        2,
        "one attempt, then dead (max_attempts = 1)"
    );

    let smtp = Smtp::start(&dir.path().join("mail"), &[&smtp_port.to_string()]);
    let out = conveyor(&config, &["outbox", "retry", "--dead"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("re-queued 2 notification(s)"), "{stdout}");
    wait_until_blocking(Duration::from_secs(30), "the re-queued e-mails", || {
        smtp.messages().len() >= 2
    });
    let delivered = "SELECT count(*) AS n FROM conveyor.outbox WHERE delivered_at IS NOT NULL";
    wait_until_blocking(Duration::from_secs(10), "marked delivered", || {
        count(&config, delivered) >= 2
    });
    assert_eq!(count(&config, dead), 0);
    // Nothing left to re-queue, and nothing delivered is sent again.
    let out = conveyor(&config, &["outbox", "retry", "--all"]);
    assert!(
        text(&out).0.contains("re-queued 0 notification(s)"),
        "{:?}",
        text(&out)
    );
    let out = conveyor(&config, &["outbox", "retry", "1", "2"]);
    assert!(
        text(&out).0.contains("re-queued 0 notification(s)"),
        "{:?}",
        text(&out)
    );
    // A worker pass later, still exactly one e-mail per notification.
    std::thread::sleep(Duration::from_secs(2));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    for to in ["s1@example.com", "s2@example.com"] {
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.contains(&format!("To: {to}")))
                .count(),
            1,
            "{messages:#?}"
        );
    }
    let out = conveyor(&config, &["outbox", "retry"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an id, --dead or --all is required"
    );
    sigterm_and_wait(&mut daemon);
}
