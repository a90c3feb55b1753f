//! Invariant 1: kill -9 the real binary mid-sync, several times, then let it
//! finish: every source row is in the warehouse exactly once.

use std::process::{Command, Stdio};
use std::time::Duration;

use conveyor_mocks::rest::{dataset, RestMockConfig};
use sha2::{Digest, Sha256};

use crate::support::{text, Daemon, Fixture, BIN};

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    const N: u64 = 30_000;
    let f = Fixture::new(RestMockConfig {
        records: dataset(N),
        page_size: 250,
        ..Default::default()
    })
    .await;
    f.write_config("", "params = { limit = 250 }");
    let mut killed_mid_run = 0;
    for round in 0..5u64 {
        let mut child = Daemon::spawn(
            Command::new(BIN)
                .arg("--config")
                .arg(f.config())
                .arg("sync")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        // Pseudo-random but reproducible moments across the sync.
        let wait = 150 + (round * 7919 % 5) * 170;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if child.alive() {
            child.kill(); // SIGKILL, reaped
            killed_mid_run += 1;
        }
    }
    assert!(
        killed_mid_run >= 3,
        "the kills should land during syncs (only {killed_mid_run} did)"
    );
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), N.to_string());
    assert_eq!(
        f.scalar("SELECT count(DISTINCT id) FROM src.items"),
        N.to_string()
    );
    // A checksum over ids and contents, computed the same way on both sides.
    let ours = f.scalar(
        "SELECT sha256(string_agg(id::VARCHAR || '|' || name || '|' || email || '|' || amount::VARCHAR, ',' ORDER BY id)) FROM src.items",
    );
    let expected: Vec<String> = dataset(N)
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}",
                r["id"],
                r["name"].as_str().unwrap(),
                r["email"].as_str().unwrap(),
                r["amount"]
            )
        })
        .collect();
    let want = format!("{:x}", Sha256::digest(expected.join(",").as_bytes()));
    assert_eq!(ours, want, "contents differ from the source");
    // Runs cut off by SIGKILL are marked, not left running.
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE status = 'running'"),
        "0"
    );
    assert!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE status = 'interrupted'")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
}
