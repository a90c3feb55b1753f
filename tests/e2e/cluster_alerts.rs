//! `[cluster]` and alerts: two real daemons evaluate one scheduled rule
//! through the evaluator lease in a real Postgres, e-mailing a real SMTP
//! server (aiosmtpd). The evaluator is SIGKILLed and later the other one
//! stops: each time the next evaluator takes the alert states over, so every
//! alert is e-mailed once across the cluster, not once per daemon. And a
//! firing that comes due while the evaluator is dead is run by the next
//! evaluator once it takes over, not lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use conveyor_mocks::databases::{TestDatabase, TestServers};
use conveyor_mocks::smtp::Aiosmtpd as Smtp;

use crate::support::{free_port, listening, Daemon, BIN};

/// The evaluator lease; a dead evaluator's successor starts within it.
const LEASE_SECS: u64 = 5;

/// A member evaluating `csat_low` every second: agents a1–a3 breach (and
/// a4 too once [`A4`] is put in its config).
fn member(root: &Path, name: &str, db: &TestDatabase, smtp_port: u16) -> PathBuf {
    member_on(root, name, db, smtp_port, "* * * * * *")
}

/// [`member`] with the rule on `schedule`.
fn member_on(
    root: &Path,
    name: &str,
    db: &TestDatabase,
    smtp_port: u16,
    schedule: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pg-password"), &db.password).unwrap();
    let text = format!(
        r#"[warehouse]
path = "wh.duckdb"

[server]
listen = "127.0.0.1:{listen}"

[cluster]
catalog = "{url}"
password = "file:pg-password"
tls = "disable"
lease = "{LEASE_SECS}s"
name = "{name}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Conveyor <conveyor@example.com>"

[[rules]]
name = "csat_low"
schedule = "{schedule}"
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
        listen = free_port(),
        url = db.url()
    );
    let config = dir.join("conveyor.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// The measure's last line, and the same with a fourth agent breaching.
const A3: &str = "AS m(entity, period, value, agent_name, supervisor)\"\"\"";
const A4: &str = "AS m(entity, period, value, agent_name, supervisor)
UNION ALL SELECT 'a4', DATE '2026-01-05', 3.4, 'Di', 's4@example.com'\"\"\"";

async fn start(config: &Path, tag: &str) -> Daemon {
    let dir = config.parent().unwrap();
    let log = dir.join(format!("daemon-{tag}.log"));
    let mut d = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .current_dir(dir),
        &log,
    );
    let text = std::fs::read_to_string(config).unwrap();
    let addr = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    d.ready(
        Duration::from_secs(60),
        "the daemon's endpoint",
        async || listening(&addr),
    )
    .await;
    d
}

fn recipients(smtp: &Smtp) -> Vec<String> {
    let mut to: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    to.sort();
    to
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_alerts_are_emailed_once_across_an_evaluator_killed_and_one_stopped() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let root = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&root.path().join("mail"), &[]);
    let a = member(root.path(), "a", &db, smtp.port);
    let b = member(root.path(), "b", &db, smtp.port);

    let mut da = start(&a, "1").await;
    until(Duration::from_secs(40), "a e-mails a1–a3", || {
        recipients(&smtp).len() >= 3
    })
    .await;
    let mut db_ = start(&b, "1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    da.kill();
    until(Duration::from_secs(60), "b takes over", || {
        db_.log().contains("this daemon is the cluster's evaluator")
    })
    .await;
    assert!(
        db_.log().contains("took over the evaluator's state"),
        "{}",
        db_.log()
    );
    // b evaluates a few times: a1–a3 still fire, nothing is sent. Then a4
    // breaches too (both configs edited, b told to reload).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(recipients(&smtp).len(), 3, "{}", db_.log());
    for config in [&a, &b] {
        let text = std::fs::read_to_string(config).unwrap().replace(A3, A4);
        std::fs::write(config, text).unwrap();
    }
    db_.signal(crate::support::Signal::HUP);
    until(Duration::from_secs(30), "b e-mails a4", || {
        recipients(&smtp).len() >= 4
    })
    .await;

    // a comes back; b stops; a takes the state b handed over.
    let mut da = start(&a, "2").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(db_.terminate().await.success(), "{}", db_.log());
    until(Duration::from_secs(30), "a evaluates again", || {
        da.log().contains("this daemon is the cluster's evaluator")
    })
    .await;
    // Several of a's evaluations, each still finding a1–a4 firing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let a_log = da.log();
    assert!(da.terminate().await.success(), "{a_log}");

    assert_eq!(
        recipients(&smtp),
        [
            "s1@example.com",
            "s2@example.com",
            "s3@example.com",
            "s4@example.com"
        ],
        "each alert e-mailed once\n--- a:\n{a_log}\n--- b:\n{}",
        db_.log()
    );
    let ids: std::collections::HashSet<String> = smtp
        .messages()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ids.len(), 4, "every e-mail its own Message-ID");
    for log in [a_log, db_.log()] {
        assert!(!log.contains(&db.password), "the password in a log");
    }
}

/// Polls `done` every 200 ms; panics naming `what` after `timeout`.
async fn until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_a_firing_due_while_the_evaluator_is_dead_is_run_once_by_the_next() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let root = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&root.path().join("mail"), &[]);
    // One firing, 20 s from now; the evaluator dies 2 s before it, and
    // the other daemon holds the evaluator lease only after it.
    let at = chrono::Utc::now() + chrono::Duration::seconds(20);
    let schedule = at.format("%S %M %H %d %m *").to_string();
    let a = member_on(root.path(), "a", &db, smtp.port, &schedule);
    let b = member_on(root.path(), "b", &db, smtp.port, &schedule);

    let mut da = start(&a, "1").await;
    until(Duration::from_secs(30), "a evaluates", || {
        da.log().contains("this daemon is the cluster's evaluator")
    })
    .await;
    let mut db_ = start(&b, "1").await;
    let kill_at = at - chrono::Duration::seconds(2);
    let wait = (kill_at - chrono::Utc::now())
        .to_std()
        .expect("started in time");
    tokio::time::sleep(wait).await;
    da.kill();
    until(Duration::from_secs(40), "b runs the firing", || {
        recipients(&smtp).len() >= 3
    })
    .await;
    let took_over = db_.log();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(db_.terminate().await.success(), "{}", db_.log());

    assert_eq!(
        recipients(&smtp),
        ["s1@example.com", "s2@example.com", "s3@example.com"],
        "{took_over}"
    );
    let became = took_over
        .lines()
        .find(|l| l.contains("this daemon is the cluster's evaluator"))
        .expect("b became the evaluator");
    assert!(
        became[..19] >= *at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "b became the evaluator after the firing: {became}"
    );
    assert_eq!(
        crate::support::sql_on(
            &b.parent().unwrap().join("wh.duckdb"),
            "SELECT count(DISTINCT eval_id) FROM conveyor.rule_results"
        ),
        vec![vec!["1".to_string()]],
        "the firing evaluated once"
    );
    let done =
        db.sql("SELECT done_firing = firing FROM conveyor_leases WHERE name = 'rule:csat_low'");
    assert_eq!(done.trim(), "t", "{done}");
}
