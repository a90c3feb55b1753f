//! `conveyor run`: scheduled syncs, queries answered while loading, writes
//! refused, and a graceful stop on SIGTERM.

use std::process::Command;
use std::time::Duration;

use conveyor_mocks::rest::{dataset, Fault, RestMockConfig};

use crate::support::{text, Daemon, Fixture, BIN};

#[tokio::test(flavor = "multi_thread")]
async fn daemon_answers_queries_while_loading_and_stops_gracefully() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(20_000),
        ..Default::default()
    })
    .await;
    // Slow pages keep a sync in flight long enough to query during it.
    f.mock
        .set_faults(vec![Fault::Delay(Duration::from_millis(40)); 2_000]);
    f.write_config("schedule = \"*/2 * * * * *\"", "");
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .args(["--log-format", "json", "run"]),
        &f.path("daemon.log"),
    );

    // Wait for a run to be loading, asking through the CLI as ops would.
    daemon
        .ready(Duration::from_secs(60), "a query answered during a load", async || {
            let out = f.conveyor(&["query", "SELECT count(*) FILTER (WHERE status = 'running') AS r, coalesce(sum(rows), 0) AS n FROM conveyor.runs", "--format", "csv"]).await;
            let (stdout, stderr) = text(&out);
            if !out.status.success() {
                assert!(
                    stderr.contains("does not exist yet") || stderr.contains("daemon"),
                    "{stderr}"
                );
                return false;
            }
            let vals: Vec<u64> = stdout
                .lines()
                .nth(1)
                .unwrap()
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect();
            vals[0] == 1 && vals[1] > 0
        })
        .await;

    let out = f.conveyor(&["query", "DROP TABLE src.items"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("read-only"));
    // `conveyor sync` while the daemon runs is run by the daemon (no second writer).
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out)
            .1
            .contains("a daemon holds the warehouse; it runs every source now"),
        "{:?}",
        text(&out)
    );

    let status = daemon.terminate().await;
    assert!(status.success(), "exit status {status:?}");

    let log = std::fs::read_to_string(f.path("daemon.log")).unwrap();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "non-JSON log line in:\n{log}"
    );
    assert!(log.contains("stopped cleanly"), "{log}");
    // The run in flight committed its last batch and recorded how it ended.
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE status IN ('running', 'interrupted')"),
        "0"
    );
    let last = f.sql("SELECT status, rows FROM conveyor.runs ORDER BY run_id DESC LIMIT 1");
    assert!(
        last[0][0] == "cancelled" || last[0][0] == "succeeded",
        "{last:?}"
    );
    let rows: u64 = f.scalar("SELECT count(*) FROM src.items").parse().unwrap();
    assert!(rows > 0);
}
