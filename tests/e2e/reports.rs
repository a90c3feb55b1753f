//! Scorecards through the real binary and a real SMTP server (aiosmtpd):
//! `conveyor report send` killed between the server taking a report and the
//! outbox marking it resends only that one, with its Message-ID, and never
//! a period's report twice; a daemon's schedule sends one per recipient per
//! period however often it fires; `report preview` goes through it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use conveyor_mocks::smtp::Aiosmtpd as Smtp;

use crate::outbox::{conveyor, message_id};
use crate::support::{free_port, text, wait_until, Daemon, BIN};

/// Three supervisors, one report each, over a constant measure.
fn write_config(dir: &Path, smtp_port: u16, schedule: &str) -> PathBuf {
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

[[reports]]
name = "team"
title = "Team {{{{ team }}}}, week of {{{{ period }}}}"
{schedule}
recipients = "SELECT * FROM (VALUES ('s1@example.com', 'north'), ('s2@example.com', 'south'), ('s3@example.com', 'west')) AS r(email, team)"

[[reports.sections]]
type = "kpis"
only = "team"
kpis = [{{ label = "CSAT", goal = 4.0, direction = "above", measure = """
SELECT * FROM (VALUES ('a1', DATE '2026-10-26', 4.3, 'north'), ('a2', DATE '2026-10-26', 3.1, 'south'),
                      ('a3', DATE '2026-10-26', 4.8, 'west'))
         AS m(entity, period, value, team)""" }}]
"#,
        listen = free_port()
    );
    let path = dir.join("conveyor.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn reports_killed_between_send_and_mark_resend_only_that_one_and_never_a_period_twice() {
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
    // The capture SIGKILLs us once it holds the second report, before its 250.
    let mut child = Daemon::spawn(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["report", "send", "team", "--at", "2026-11-02"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::fs::write(&pid_file, child.id().to_string()).unwrap();
    let status = child.exit_within_blocking(Duration::from_secs(120));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_eq!(smtp.messages().len(), 2);

    // Again for the same period: the one in doubt goes again with its
    // Message-ID, the third for the first time, nothing else.
    let out = conveyor(
        &config,
        &["report", "send", "team", "--at", "2026-11-02T09:00:00"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("0 e-mail(s) queued"), "{stdout}");
    let all = smtp.messages();
    let ids: Vec<String> = all.iter().map(|m| message_id(m)).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[2], ids[1], "the resend is recognisably the same e-mail");
    assert!(all[3].contains("To: s3@example.com"), "{}", all[3]);
    assert!(
        all[1].contains("Subject: Team south, week of 2026-11-02"),
        "{}",
        all[1]
    );
    // South's only agent misses the goal.
    assert!(
        all[1].contains("CSAT: 0 of 1 meet the objective"),
        "{}",
        all[1]
    );

    // The next period is a new report for everyone.
    let out = conveyor(&config, &["report", "send", "team", "--at", "2026-11-09"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(smtp.messages().len(), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_a_schedule_firing_often_sends_each_recipient_one_report_a_period() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"), &[]);
    let config = write_config(dir.path(), smtp.port, "schedule = \"*/2 * * * * *\"");
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .current_dir(dir.path()),
        &dir.path().join("daemon.log"),
    );
    wait_until(
        Duration::from_secs(60),
        "three reports delivered",
        async || smtp.messages().len() >= 3,
    )
    .await;
    // Several more firings: nothing new this period.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 3, "one report per recipient per period");
    let mut to: Vec<&str> = mails
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("To: ")))
        .collect();
    to.sort_unstable();
    assert_eq!(to, ["s1@example.com", "s2@example.com", "s3@example.com"]);

    // The endpoint behind `report preview|send` wants the token like the
    // rest of /v1: without it, or with a wrong one, nothing is rendered.
    let text_config = std::fs::read_to_string(&config).unwrap();
    let listen = text_config
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let http = reqwest::Client::new();
    let body = serde_json::json!({ "name": "team", "send": true });
    let anonymous = http
        .post(format!("http://{listen}/v1/reports"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .post(format!("http://{listen}/v1/reports"))
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // A preview goes through the daemon holding the warehouse.
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || conveyor(&config, &["report", "preview", "team"])
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("--- to s2@example.com"), "{stdout}");
    assert!(stdout.contains("nothing is recorded or sent"), "{stdout}");
    let status = daemon.terminate().await;
    assert!(status.success(), "{status:?}");
}
