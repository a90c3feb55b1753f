//! The daemon run in this process through the library, as ARCHITECTURE.md
//! promises: `conveyor::run_daemon` takes its shutdown future, so
//! a test hands it a oneshot channel instead of sending a signal, watches
//! it serve and sync, resolves the future, and finds `run_daemon` returned
//! `Ok`, its endpoints closed and the warehouse free for the next writer.

use std::time::Duration;

use conveyor_mocks::rest::{dataset, Fault, RestMockConfig};

use crate::support::{text, Fixture, InProcess};

/// The first cell of a query answered by the daemon, if it answered.
async fn cell(daemon: &InProcess, sql: &str) -> Option<String> {
    daemon.query(sql).await?.first()?.first()?.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_daemon_syncs_on_schedule_serves_and_returns_ok_when_its_shutdown_resolves() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("schedule = \"*/1 * * * * *\"", "");
    let daemon = InProcess::start(&config);
    let listen = daemon.config.server.listen;

    // Its HTTP endpoint answers on the configured address…
    daemon
        .ready(Duration::from_secs(30), "/ready", async || {
            reqwest::get(format!("http://{listen}/ready"))
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
    // …and it syncs on its schedule, as its own endpoint tells.
    daemon
        .ready(Duration::from_secs(60), "a scheduled sync", async || {
            cell(&daemon, "SELECT count(*) FROM src.items")
                .await
                .as_deref()
                == Some("250")
        })
        .await;
    assert_eq!(
        cell(
            &daemon,
            "SELECT min(status) FROM conveyor.runs WHERE run_id = 1"
        )
        .await
        .as_deref(),
        Some("succeeded")
    );
    // Another process finds it as it finds the binary: the CLI's query goes
    // through the endpoint (the file is held by this process).
    let out = f
        .conveyor(&[
            "query",
            "SELECT count(*) AS n FROM src.items",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(text(&out).0, "n\n250\n", "{:?}", text(&out));

    daemon
        .stop(Duration::from_secs(30))
        .await
        .expect("run_daemon returns Ok");

    // The endpoints are gone with it.
    assert!(reqwest::get(format!("http://{listen}/health"))
        .await
        .is_err());
}

/// After `run_daemon` returns, the warehouse is free for the next writer.
/// (It was not: the sync handler set on `Live` held the `Daemon`, which
/// held that `Live` and the `Warehouse` — a reference cycle that kept
/// DuckDB's lock on the file; the binary hid it by exiting.)
#[tokio::test(flavor = "multi_thread")]
async fn in_process_daemon_releases_the_warehouse_when_it_returns() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let config = f.write_config("schedule = \"*/1 * * * * *\"", "");
    let daemon = InProcess::start(&config);
    daemon
        .ready(Duration::from_secs(60), "a scheduled sync", async || {
            cell(&daemon, "SELECT count(*) FROM src.items")
                .await
                .as_deref()
                == Some("250")
        })
        .await;
    daemon
        .stop(Duration::from_secs(30))
        .await
        .expect("run_daemon returns Ok");
    // A writer in another process syncs on its own…
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("a daemon holds"), "{stderr}");
    // …and this process opens the file read-write again.
    let conn = duckdb::Connection::open(f.warehouse()).unwrap();
    let running: i64 = conn
        .query_row(
            "SELECT count(*) FROM conveyor.runs WHERE status IN ('running', 'interrupted')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(running, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_daemon_shut_down_mid_sync_commits_what_it_loaded_and_returns_ok() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(20_000),
        ..Default::default()
    })
    .await;
    // Slow pages: a sync is in flight when the shutdown comes.
    f.mock
        .set_faults(vec![Fault::Delay(Duration::from_millis(40)); 2_000]);
    let config = f.write_config("schedule = \"*/2 * * * * *\"", "");
    let daemon = InProcess::start(&config);
    daemon
        .ready(Duration::from_secs(60), "a sync loading", async || {
            cell(
                &daemon,
                "SELECT count(*) FROM conveyor.runs WHERE status = 'running' AND rows > 0",
            )
            .await
            .as_deref()
                == Some("1")
        })
        .await;

    daemon
        .stop(Duration::from_secs(30))
        .await
        .expect("run_daemon returns Ok");

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
