//! Performance rules through the real binary: evaluated after `conveyor
//! sync`, by hand with `conveyor rules eval`, and on their schedule in the
//! daemon; `conveyor alerts` lists what fires, from the file or the daemon.

use crate::support::{text, Fixture, BIN};
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
    assert_eq!(f.scalar("SELECT rule || ':' || state FROM conveyor.alerts"), "items_seen:firing");
    assert_eq!(f.scalar("SELECT context->>'owner_email' FROM conveyor.rule_results"), "ops@example.com");

    let out = f.conveyor(&["rules", "eval", "needs_two"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("needs_two") && stdout.contains("pending"), "{stdout}");
    let out = f.conveyor(&["rules", "eval"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    let out = f.conveyor(&["alerts", "--format", "csv"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<String> = stdout.lines().skip(1).map(|l| l.splitn(4, ',').take(3).collect::<Vec<_>>().join(",")).collect();
    assert_eq!(rows, ["items_seen,src,firing", "needs_two,ann,firing"], "{stdout}");
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.rule_results"), "4", "history kept: 1 + 1 + 2");

    let out = f.conveyor(&["rules", "eval", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no rule named `nope`; configured: items_seen, needs_two"), "{:?}", text(&out));

    // `check` binds each measure against the warehouse and locates one that does not run.
    let broken = "\n[[rules]]\nname = \"broken\"\nmeasure = \"SELECT id AS entity, 1 AS period, nope AS value FROM src.items\"\ndirection = \"above\"\nwarn = 1\n";
    let text_before = format!("{base}{RULES}");
    let line = text_before.lines().count() + 2;
    std::fs::write(&config, format!("{text_before}{broken}")).unwrap();
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!("{}:{line}:1: rules[2].measure: `broken` does not run: ", config.display());
    assert!(stdout.contains(&want) && stdout.contains("nope"), "want {want}\n got {stdout}");
    assert!(!stdout.contains("rules[0]") && !stdout.contains("rules[1]"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_evaluates_rules_on_their_schedule() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    let rules = RULES.replace("for = 2", "for = 2\nschedule = \"* * * * * *\"");
    std::fs::write(&config, format!("{base}{rules}")).unwrap();
    let mut daemon = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = String::new();
    while std::time::Instant::now() < deadline {
        let out = f.conveyor(&["alerts", "--format", "csv"]).await;
        seen = text(&out).0;
        if seen.contains("needs_two,ann,firing") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(seen.contains("needs_two,ann,firing"), "{seen}");
    // By hand while the daemon holds the file: refused, with the reason.
    let out = f.conveyor(&["rules", "eval"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("a daemon holds the warehouse"), "{:?}", text(&out));

    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), daemon.wait()).await.expect("daemon stops").unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.rule_results WHERE rule = 'items_seen'"), "0", "no sync ran");
}
