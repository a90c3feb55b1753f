//! Performance rules through the real binary: evaluated after `conveyor
//! sync`, by hand with `conveyor rules eval`, and on their schedule in the
//! daemon (run in-process); `conveyor alerts` lists what fires, from the
//! file or the daemon.

use std::time::Duration;

use crate::support::{holds_within, text, Daemon, Fixture, InProcess};
use conveyor_mocks::rest::RestMockConfig;

/// Fires after `src` syncs (every item counts); `needs_two` fires only on
/// its second breaching evaluation.
const RULES: &str = r#"
[[rules]]
name = "items_seen"
after = ["src"]
measure = "SELECT 'src' AS entity, 1 AS period, count(*) AS value, 'ops@example.com' AS owner_email FROM src.items"
direction = "above"
warn = 0

[[rules]]
name = "needs_two"
measure = "SELECT 'ann' AS entity, DATE '2026-01-05' AS period, 3.5 AS value"
direction = "below"
warn = 4
for = 2
"#;

#[tokio::test(flavor = "multi_thread")]
async fn rules_run_after_sync_and_by_hand_and_alerts_lists_them() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{base}{RULES}")).unwrap();

    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        f.scalar("SELECT rule || ':' || state FROM conveyor.alerts"),
        "items_seen:firing"
    );
    assert_eq!(
        f.scalar("SELECT context->>'owner_email' FROM conveyor.rule_results"),
        "ops@example.com"
    );

    let out = f.conveyor(&["rules", "eval", "needs_two"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("needs_two") && stdout.contains("pending"),
        "{stdout}"
    );
    let out = f.conveyor(&["rules", "eval"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    let out = f.conveyor(&["alerts", "--format", "csv"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<String> = stdout
        .lines()
        .skip(1)
        .map(|l| l.splitn(4, ',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        rows,
        ["items_seen,src,firing", "needs_two,ann,firing"],
        "{stdout}"
    );
    // Each alert carries the measure's context columns, so it says who.
    assert!(
        stdout.lines().next().unwrap().ends_with(",context") && stdout.contains("ops@example.com"),
        "{stdout}"
    );
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.rule_results"),
        "4",
        "history kept: 1 + 1 + 2"
    );

    let out = f.conveyor(&["rules", "eval", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("no rule named `nope`; configured: items_seen, needs_two"),
        "{:?}",
        text(&out)
    );

    // `check` binds each measure against the warehouse and locates one that does not run.
    let broken = "\n[[rules]]\nname = \"broken\"\nmeasure = \"SELECT id AS entity, 1 AS period, nope AS value FROM src.items\"\ndirection = \"above\"\nwarn = 1\n";
    let text_before = format!("{base}{RULES}");
    let line = text_before.lines().count() + 2;
    std::fs::write(&config, format!("{text_before}{broken}")).unwrap();
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{}:{line}:1: rules[2].measure: `broken` does not run: ",
        config.display()
    );
    assert!(
        stdout.contains(&want) && stdout.contains("nope"),
        "want {want}\n got {stdout}"
    );
    assert!(
        !stdout.contains("rules[0]") && !stdout.contains("rules[1]"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_evaluates_rules_on_their_schedule() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    let rules = RULES.replace("for = 2", "for = 2\nschedule = \"* * * * * *\"");
    std::fs::write(&config, format!("{base}{rules}")).unwrap();
    // In this process: what is tested is the schedule, not the binary's
    // signals (`tests/e2e/daemon.rs` stops the real binary with SIGTERM).
    let daemon = InProcess::start(&config);
    let mut seen = String::new();
    let fired = holds_within(Duration::from_secs(60), async || {
        let out = f.conveyor(&["alerts", "--format", "csv"]).await;
        seen = text(&out).0;
        seen.contains("needs_two,ann,firing")
    })
    .await;
    assert!(fired, "{seen}");
    // By hand while the daemon holds the file: refused, with the reason.
    let out = f.conveyor(&["rules", "eval"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("a daemon holds the warehouse"),
        "{:?}",
        text(&out)
    );

    daemon
        .stop(Duration::from_secs(30))
        .await
        .expect("the daemon stops cleanly");
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.rule_results WHERE rule = 'items_seen'"),
        "0",
        "no sync ran"
    );
}

/// The SMTP capture server (`tests/smtp_capture.py`, aiosmtpd) writing into
/// `dir`, and its port; stopped on drop.
struct Smtp {
    _capture: Daemon,
    port: u16,
}

fn smtp_capture(dir: &std::path::Path) -> Smtp {
    use std::io::BufRead;
    let python = std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/smtp_capture.py");
    let mut child = Daemon::try_spawn(
        std::process::Command::new(&python)
            .arg(script)
            .arg(dir)
            .stdout(std::process::Stdio::piped()),
    )
    .unwrap_or_else(|e| panic!("cannot start {python} (run scripts/setup-test-tools): {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.child_mut().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("smtp_capture printed {line:?}"));
    Smtp {
        _capture: child,
        port,
    }
}

fn emails(dir: &std::path::Path) -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_email_action_is_sent_once_through_the_binary_and_checked() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let mail = f.path("mail");
    let smtp = smtp_capture(&mail);
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    let action = r#"
[[rules.actions]]
type = "email"
to_column = "owner_email"
subject = "{{ rule }}: {{ entity }} is {{ level }}"
body = "Owner {{ owner_email }} saw {{ value }} items"
"#;
    let rules = RULES.replacen("warn = 0\n", &format!("warn = 0\n{action}"), 1);
    let smtp_section = format!("\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"conveyor@example.com\"\n", smtp.port);
    std::fs::write(&config, format!("{base}{rules}{smtp_section}")).unwrap();

    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let sent = emails(&mail);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(
        sent[0].contains("Subject: items_seen: src is warn")
            && sent[0].contains("To: ops@example.com"),
        "{}",
        sent[0]
    );
    let key = f.scalar("SELECT key FROM conveyor.outbox WHERE delivered_at IS NOT NULL");
    assert!(
        sent[0].contains(&format!("Message-ID: <{key}@conveyor>")),
        "{}",
        sent[0]
    );

    // Still firing: evaluating again queues and sends nothing new.
    let out = f.conveyor(&["rules", "eval"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(emails(&mail).len(), 1);
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.outbox"), "1");

    // A template variable the measure does not return is a located check error.
    let bad = format!(
        "{base}{}{smtp_section}",
        rules.replace("Owner {{ owner_email }}", "Owner {{ owner_mail }}")
    );
    std::fs::write(&config, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("body = \"Owner"))
        .unwrap()
        + 1;
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{}:{line}:8: rules[0].actions[0].body: unknown template variable `owner_mail`",
        config.display()
    );
    assert!(stdout.contains(&want), "want {want}\n got {stdout}");
}

/// Breaching only before 2001: a preview finds it at `--at 2000-06-05`,
/// never at the real clock.
const AS_OF: &str = r#"
[smtp]
host = "127.0.0.1"
port = 9
tls = "none"
from = "Conveyor <conveyor@example.com>"

[[rules]]
name = "y2k_csat"
title = "CSAT below target"
entity_label = "agent_name"
measure = """
SELECT 'a1' AS entity, CAST(date_trunc('week', getvariable('conveyor_now')) AS DATE) AS period,
       CASE WHEN getvariable('conveyor_now') < TIMESTAMP '2001-01-01' THEN 2.5 ELSE 4.5 END AS value,
       'Ann Lee' AS agent_name"""
direction = "below"
warn = 3

[[rules.actions]]
type = "email"
to = ["sup@example.com"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn alerts_preview_at_evaluates_as_of_the_instant_and_records_nothing() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{base}{AS_OF}")).unwrap();

    let out = f
        .conveyor(&[
            "alerts",
            "preview",
            "y2k_csat",
            "--at",
            "2000-06-05T06:00:00",
        ])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Rule `y2k_csat` as of 2000-06-05 06:00:00 UTC: 1 breaching row(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("a1: (none) → firing"), "{stdout}");
    // The e-mail that would go out, rendered: the period is the
    // evaluation's week, the threshold the rule's.
    assert!(
        stdout.contains("Subject: [FIRING warn] CSAT below target: Ann Lee"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Ann Lee (a1) is at 2.5 for 2000-06-05, below the warn threshold of 3."),
        "{stdout}"
    );
    assert!(
        stdout.contains("conveyor -c ") && stdout.contains(" silence add y2k_csat a1 --for 7d"),
        "{stdout}"
    );
    // At the real clock nothing breaches.
    let out = f.conveyor(&["alerts", "preview", "y2k_csat"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(": 0 breaching row(s)"), "{stdout}");
    // Nothing was recorded by either.
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.rule_results"), "0");
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.outbox"), "0");

    let out = f
        .conveyor(&["alerts", "preview", "y2k_csat", "--at", "June 5th"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("--at: `June 5th` is not an instant (UTC)"),
        "{:?}",
        text(&out)
    );
}
