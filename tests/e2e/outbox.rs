//! Notifications through the real binary and a real SMTP server (aiosmtpd):
//! the process killed between the server taking an e-mail and the outbox
//! marking it; `conveyor alerts preview`; silences from the command line;
//! dead letters in `conveyor status` and reported to the operator.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, listening, sql_on, text, Daemon, BIN};

use conveyor_mocks::smtp::Aiosmtpd as Smtp;

/// The Message-ID header of a received e-mail.
pub(crate) fn message_id(eml: &str) -> String {
    eml.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_else(|| panic!("no Message-ID in {eml}"))
        .trim()
        .to_string()
}

/// A config with no source to sync: three agents breach a constant
/// measure, each e-mailed to their own supervisor.
fn write_config(dir: &Path, smtp_port: u16, extra: &str) -> PathBuf {
    let text = format!(
        r#"[warehouse]
path = "wh.duckdb"

[server]
listen = "127.0.0.1:{listen}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Conveyor <conveyor@example.com>"
max_attempts = 2
{extra}

[[rules]]
name = "csat_low"
measure = """
SELECT * FROM (VALUES ('a1', DATE '2026-01-05', 3.1, 'Ann', 's1@example.com'),
                      ('a2', DATE '2026-01-05', 3.2, 'Bob', 's2@example.com'),
                      ('a3', DATE '2026-01-05', 3.3, 'Cy',  's3@example.com'))
         AS m(entity, period, value, agent_name, supervisor)"""
direction = "below"
warn = 4.0

[[rules.actions]]
type = "email"
to_column = "supervisor"
subject = "CSAT below target: {{{{ agent_name }}}}"
body = "{{{{ agent_name }}}} scored {{{{ value }}}}"
"#,
        listen = free_port()
    );
    let path = dir.join("conveyor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `conveyor --config CONFIG ARGS…` run to completion in the config's folder.
pub(crate) fn conveyor(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(config.parent().unwrap())
        .output()
        .unwrap()
}

#[test]
fn outbox_killed_between_send_and_mark_resends_only_that_email_with_its_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("conveyor.pid");
    let smtp = Smtp::start(
        &dir.path().join("mail"),
        &[
            "0",
            "--kill-on",
            "2",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let config = write_config(dir.path(), smtp.port, "");
    // The capture SIGKILLs us once it holds the second e-mail, before its 250.
    let mut child = Daemon::spawn(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["rules", "eval"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    let status = child.exit_within_blocking(Duration::from_secs(120));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let first = smtp.messages();
    assert_eq!(first.len(), 2);
    let wh = dir.path().join("wh.duckdb");
    // The evaluation committed; the first e-mail is marked, the second not.
    let marks = sql_on(
        &wh,
        "SELECT recipient, delivered_at IS NOT NULL FROM conveyor.outbox ORDER BY id",
    );
    assert_eq!(
        marks,
        [
            ["s1@example.com", "true"],
            ["s2@example.com", "false"],
            ["s3@example.com", "false"]
        ]
    );

    // Restarted: nothing new fires (the alerts are already announced); the
    // unmarked e-mails go out — the one in doubt again, with the same
    // Message-ID, the third for the first time.
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let all = smtp.messages();
    let ids: Vec<String> = all.iter().map(|m| message_id(m)).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[2], ids[1], "the resend is recognisably the same e-mail");
    assert!(
        ids[0] != ids[1] && ids[3] != ids[1] && ids[3] != ids[0],
        "{ids:?}"
    );
    assert!(all[3].contains("To: s3@example.com"), "{}", all[3]);
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success());
    assert_eq!(smtp.messages().len(), 4, "nothing is sent a third time");
}

#[test]
fn outbox_preview_renders_without_recording_and_silences_hold_back_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), &[]);
    let config = write_config(dir.path(), smtp.port, "");
    // Creates the warehouse (nothing to sync, nothing fires yet).
    let out = conveyor(&config, &["sync"]);
    assert!(out.status.success(), "{:?}", text(&out));

    let out = conveyor(&config, &["alerts", "preview", "csat_low"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("a1: (none) → firing"), "{stdout}");
    assert!(stdout.contains("--- email to s2@example.com"), "{stdout}");
    assert!(
        stdout.contains("Subject: CSAT below target: Bob"),
        "{stdout}"
    );
    let wh = dir.path().join("wh.duckdb");
    let count = |sql: &str| sql_on(&wh, sql)[0][0].clone();
    assert_eq!(count("SELECT count(*) FROM conveyor.rule_results"), "0");
    assert_eq!(count("SELECT count(*) FROM conveyor.outbox"), "0");
    assert!(smtp.messages().is_empty(), "a preview sends nothing");

    let out = conveyor(&config, &["alerts", "preview", "nope"]);
    assert_eq!(out.status.code(), Some(2));

    let out = conveyor(
        &config,
        &[
            "silence", "add", "csat_low", "a2", "--for", "7d", "--reason", "on leave",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("Silence 1: rule `csat_low`, entity `a2`, for 7d"),
        "{stdout}"
    );
    let out = conveyor(&config, &["silence", "list", "--format", "csv"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("1,csat_low,a2,on leave"), "{stdout}");
    let out = conveyor(
        &config,
        &["silence", "add", "nope", "--for", "1h", "--reason", "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = conveyor(
        &config,
        &[
            "silence", "add", "csat_low", "--for", "soon", "--reason", "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));

    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let to: Vec<String> = smtp
        .messages()
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("To: ")).map(String::from))
        .collect();
    assert_eq!(
        to,
        ["To: s1@example.com", "To: s3@example.com"],
        "a2 is silenced"
    );

    // Lifted: a2, still firing, is announced at the next evaluation.
    let out = conveyor(&config, &["silence", "remove", "1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = conveyor(&config, &["silence", "remove", "1"]);
    assert_eq!(out.status.code(), Some(1), "already lifted");
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success());
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    assert!(
        messages[2].contains("To: s2@example.com"),
        "{}",
        messages[2]
    );
}

#[test]
fn outbox_dead_letters_show_in_status_and_are_reported_to_the_operator_once() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), &[]);
    // The rule also posts to a webhook that refuses (400): dead at once.
    let hook = free_port();
    let refusing = std::net::TcpListener::bind(("127.0.0.1", hook)).unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in refusing.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 21\r\nconnection: close\r\n\r\nunknown learner id 7\n",
            );
        }
    });
    let config = write_config(
        dir.path(),
        smtp.port,
        "operator = \"ops-oncall@example.com\"",
    );
    let text_config = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[[rules.actions]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/enrol\"\n"
        );
    std::fs::write(&config, text_config).unwrap();

    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = conveyor(&config, &["status"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Dead letters"), "{stdout}");
    assert!(
        stdout.contains("reported to ops-oncall@example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("unknown learner id 7"), "{stdout}");
    let operator: Vec<String> = smtp
        .messages()
        .into_iter()
        .filter(|m| m.contains("To: ops-oncall@example.com"))
        .map(|m| m.replace("=\r\n", ""))
        .collect();
    assert_eq!(operator.len(), 1, "one digest for the pass: {operator:#?}");
    assert!(
        operator[0].contains("Subject: Conveyor: 3 notification(s) could not be delivered"),
        "{}",
        operator[0]
    );
    assert_eq!(
        operator[0].matches("unknown learner id 7").count(),
        3,
        "each dead webhook listed with its error: {}",
        operator[0]
    );
    // Reported once: the next pass finds nothing new to report.
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success());
    let again = smtp
        .messages()
        .into_iter()
        .filter(|m| m.contains("To: ops-oncall@example.com"))
        .count();
    assert_eq!(again, 1);
}

#[test]
fn outbox_silences_and_previews_go_through_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), &[]);
    let config = write_config(dir.path(), smtp.port, "");
    let mut daemon = Daemon::spawn(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stderr(Stdio::null()),
    );
    // Once its endpoint answers, the daemon holds the warehouse file: the
    // commands below can only work through that endpoint.
    let toml = std::fs::read_to_string(&config).unwrap();
    let listen = toml
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    daemon.ready_blocking(Duration::from_secs(30), "the daemon listening", || {
        listening(&listen)
    });
    let added = conveyor(
        &config,
        &[
            "silence", "add", "csat_low", "a1", "--for", "2h", "--reason", "training",
        ],
    );
    assert!(added.status.success(), "{:?}", text(&added));
    let out = conveyor(&config, &["silence", "list", "--format", "csv"]);
    assert!(
        text(&out).0.contains("1,csat_low,a1,training"),
        "{:?}",
        text(&out)
    );
    let out = conveyor(&config, &["alerts", "preview", "csat_low"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("a1: (none) → firing"), "{stdout}");
    assert!(
        !stdout.contains("e-mail to s1@example.com")
            && stdout.contains("--- email to s2@example.com"),
        "a1 is silenced, a2 is not: {stdout}"
    );
    let out = conveyor(&config, &["silence", "remove", "1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Stopped as a service manager would.
    let status = daemon.terminate_blocking();
    assert!(status.success(), "{status:?}");
    assert!(smtp.messages().is_empty(), "a preview sends nothing");
}

#[test]
fn outbox_smtp_credentials_by_reference_log_in_and_a_wrong_password_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(
        &dir.path().join("mail"),
        &["0", "--auth", "conveyor:s3cret-smtp-pw"],
    );
    let secret = dir.path().join("smtp_password");
    std::fs::write(&secret, "wrong-pw-7731").unwrap();
    let config = write_config(
        dir.path(),
        smtp.port,
        &format!(
            "username = \"conveyor\"\npassword = \"file:{}\"",
            secret.display()
        ),
    );
    let out = conveyor(&config, &["rules", "eval"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        smtp.messages().is_empty(),
        "refused without the right password"
    );
    let wh = dir.path().join("wh.duckdb");
    let errors = sql_on(&wh, "SELECT DISTINCT last_error FROM conveyor.outbox");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0][0].contains("535"),
        "the server's answer: {errors:?}"
    );
    let status = conveyor(&config, &["status"]);
    for shown in [stdout, stderr, errors[0][0].clone(), text(&status).0] {
        assert!(!shown.contains("wrong-pw-7731"), "{shown}");
    }
    // The right password, read again at delivery: the queued e-mails go out
    // once their backoff is over (moved into the past here).
    std::fs::write(&secret, "s3cret-smtp-pw").unwrap();
    duckdb::Connection::open(&wh)
        .unwrap()
        .execute_batch("UPDATE conveyor.outbox SET next_attempt_at = TIMESTAMP '2000-01-01'")
        .unwrap();
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(smtp.messages().len(), 3);
}

#[test]
fn outbox_starttls_trusts_a_private_ca_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let smtp = Smtp::start(
        &dir.path().join("mail"),
        &[
            "0",
            "--starttls",
            ca.to_str().unwrap(),
            "--auth",
            "conveyor:tls-pw-5521",
        ],
    );
    std::fs::write(dir.path().join("smtp_password"), "tls-pw-5521").unwrap();
    let config = write_config(
        dir.path(),
        smtp.port,
        "username = \"conveyor\"\npassword = \"file:smtp_password\"",
    );
    let starttls = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tls = \"none\"", "tls = \"starttls\"");
    std::fs::write(&config, &starttls).unwrap();
    // The server's certificate comes from a CA the system does not know:
    // nothing is sent, the rows wait with the reason.
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(smtp.messages().is_empty());
    let wh = dir.path().join("wh.duckdb");
    let errors = sql_on(&wh, "SELECT DISTINCT last_error FROM conveyor.outbox");
    assert!(
        errors[0][0].to_lowercase().contains("certificate"),
        "{errors:?}"
    );
    // Trusting that CA (a corporate relay's), the queue drains over TLS.
    std::fs::write(
        &config,
        starttls.replace("max_attempts = 2", "max_attempts = 2\nca_file = \"ca.pem\""),
    )
    .unwrap();
    duckdb::Connection::open(&wh)
        .unwrap()
        .execute_batch("UPDATE conveyor.outbox SET next_attempt_at = TIMESTAMP '2000-01-01'")
        .unwrap();
    let out = conveyor(&config, &["rules", "eval"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(smtp.messages().len(), 3);
    assert_eq!(
        sql_on(
            &wh,
            "SELECT count(*) FROM conveyor.outbox WHERE delivered_at IS NOT NULL"
        )[0][0],
        "3"
    );
}
