//! The lease protocol against a real Postgres (`conveyor_mocks::databases`):
//! a firing runs once, a dead holder's firing is taken over after the lease
//! time, and a holder whose lease changed hands is told to stop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use conveyor_config::{ClusterConfig, DatabaseTlsMode, PostgresEndpoint, SecretRef};
use conveyor_mocks::databases::{TestDatabase, TestServers};
use conveyor_plugin_api::CancelFlag;

use super::{Cluster, Taken};

const LEASE: Duration = Duration::from_secs(2);

async fn member(db: &TestDatabase, dir: &std::path::Path, name: &str) -> Arc<Cluster> {
    let password = dir.join("pw");
    std::fs::write(&password, &db.password).unwrap();
    let cfg = ClusterConfig {
        db: PostgresEndpoint {
            host: db.host.clone(),
            port: db.port,
            database: db.name.clone(),
            user: db.user.clone(),
            password: Some(SecretRef::File(password)),
            tls: DatabaseTlsMode::Disable,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
        },
        lease: LEASE,
        name: name.into(),
    };
    Arc::new(Cluster::connect(&cfg).await.unwrap())
}

fn describe(t: &Taken) -> String {
    match t {
        Taken::Held(_) => "held".into(),
        Taken::Busy { owner, .. } => format!("busy ({owner})"),
        Taken::Done { owner } => format!("done ({owner})"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_runs_a_firing_once_and_takes_over_a_dead_holders() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        member(&db, dir.path(), "a").await,
        member(&db, dir.path(), "b").await,
    );
    let never = CancelFlag::default();
    let t1 = Utc.with_ymd_and_hms(2026, 12, 4, 7, 0, 0).unwrap();
    let t2 = Utc.with_ymd_and_hms(2026, 12, 4, 7, 15, 0).unwrap();

    let Taken::Held(held) = a.try_take("source:crm", Some(t1), &never).await.unwrap() else {
        panic!("a free lease is taken");
    };
    let busy = b.try_take("source:crm", Some(t1), &never).await.unwrap();
    assert!(
        matches!(busy, Taken::Busy { ref owner, .. } if owner == a.owner()),
        "{}",
        describe(&busy)
    );
    held.release(true).await;
    // Released and recorded: b skips the firing a ran, and takes the next.
    let done = b.try_take("source:crm", Some(t1), &never).await.unwrap();
    assert!(matches!(done, Taken::Done { .. }), "{}", describe(&done));
    let Taken::Held(held) = b.try_take("source:crm", Some(t2), &never).await.unwrap() else {
        panic!("the next firing is free");
    };
    // b "dies" mid-run: the lease is neither renewed nor released.
    drop(held);
    let started = std::time::Instant::now();
    let taken = a
        .take("source:crm", Some(t2), &never)
        .await
        .expect("taken over");
    let waited = started.elapsed();
    assert!(
        waited >= LEASE / 2 && waited < LEASE + Duration::from_secs(3),
        "taken over after {waited:?}, the lease being {LEASE:?}"
    );
    taken.release(true).await;
    let tokens = db.sql("SELECT token, done_firing = '2026-12-04 07:15:00+00' FROM conveyor_leases WHERE name = 'source:crm'");
    assert_eq!(tokens, "3\tt", "three takes, the last firing done");
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_holder_stops_when_its_lease_changed_hands() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let dir = tempfile::tempdir().unwrap();
    let a = member(&db, dir.path(), "a").await;
    let never = CancelFlag::default();
    let Taken::Held(held) = a.try_take("evaluator", None, &never).await.unwrap() else {
        panic!("a free lease is taken");
    };
    // Renewals keep it: past two lease times it is still a's.
    tokio::time::sleep(LEASE * 2).await;
    assert!(!held.stop().is_cancelled());
    let owner = db.sql("SELECT owner FROM conveyor_leases");
    assert_eq!(owner, a.owner());
    // Another daemon took it (as after a pause longer than the lease).
    db.sql("UPDATE conveyor_leases SET owner = 'b:1:1', token = token + 1");
    let deadline = std::time::Instant::now() + LEASE;
    while !held.stop().is_cancelled() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        held.stop().is_cancelled(),
        "the next renewal finds the lease gone"
    );
    // Its release does not free the new holder's lease.
    held.release(true).await;
    assert_eq!(
        db.sql("SELECT owner, expires_at > now() FROM conveyor_leases"),
        "b:1:1\tt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_lease_follows_the_daemons_stop() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let dir = tempfile::tempdir().unwrap();
    let a = member(&db, dir.path(), "a").await;
    let stopping = CancelFlag::default();
    let Taken::Held(held) = a.try_take("source:crm", None, &stopping).await.unwrap() else {
        panic!("a free lease is taken");
    };
    stopping.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        held.stop().is_cancelled(),
        "the run under the lease stops with the daemon"
    );
}
