//! `[publish] type = "iceberg"`: the real binary publishes a synced table
//! to an Iceberg SQL catalog on a real Postgres; pyiceberg and stock DuckDB
//! read it back equal to the warehouse, a merge is one new snapshot, a
//! sync that changed nothing adds none, and a sync SIGKILLed at random
//! moments leaves the next run to publish the table exactly.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use conveyor_mocks::databases::{TestDatabase, TestServers};
use conveyor_mocks::rest::{dataset, RestMockConfig};

use crate::support::{text, Fixture, BIN};

fn python() -> String {
    std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

/// What pyiceberg and stock DuckDB read of `src.items`.
fn read_back(db: &TestDatabase) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/iceberg_read.py");
    let out = Command::new(python())
        .arg(script)
        .arg("src.items")
        .env("CATALOG_NAME", "conveyor")
        .env(
            "CATALOG_URI",
            format!(
                "postgresql+psycopg://{}:{}@{}:{}/{}",
                db.user, db.password, db.host, db.port, db.name
            ),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "iceberg_read.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn setup(f: &Fixture, db: &TestDatabase) {
    std::fs::write(f.path("pg-password"), &db.password).unwrap();
    std::fs::create_dir_all(f.path("iceberg")).unwrap();
    f.write_config(
        "",
        &format!(
            r#"
[publish]
type = "iceberg"
catalog = "{}"
password = "file:pg-password"
tls = "disable"
warehouse = "iceberg"
"#,
            db.url()
        ),
    );
}

/// The warehouse's count, id sum and id checksum of `src.items`.
fn warehouse_sums(f: &Fixture) -> (u64, u64, String) {
    let r = f.sql(
        "SELECT count(*), sum(id), md5(string_agg(id::VARCHAR, ',' ORDER BY id)) FROM src.items",
    );
    (
        r[0][0].parse().unwrap(),
        r[0][1].parse().unwrap(),
        r[0][2].clone(),
    )
}

fn assert_same(f: &Fixture, got: &serde_json::Value) {
    let (rows, sum, md5) = warehouse_sums(f);
    assert_eq!(got["rows"], rows, "{got}");
    assert_eq!(got["id_sum"], sum, "{got}");
    assert_eq!(got["ids_md5"], md5.as_str(), "{got}");
    assert_eq!(
        got["duckdb_rows"], rows,
        "stock DuckDB over the snapshot's files: {got}"
    );
    assert_eq!(got["duckdb_id_sum"], sum, "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_takes_over_a_catalog_row_another_tool_left_without_a_pointer() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(300),
        ..Default::default()
    })
    .await;
    setup(&f, &db);
    // The SQL catalog's table as pyiceberg makes it, with a row for
    // src.items whose creation never finished.
    db.sql(
        "CREATE TABLE iceberg_tables (
            catalog_name varchar(255) NOT NULL, table_namespace varchar(255) NOT NULL,
            table_name varchar(255) NOT NULL, metadata_location varchar(1000),
            previous_metadata_location varchar(1000),
            PRIMARY KEY (catalog_name, table_namespace, table_name));
         INSERT INTO iceberg_tables VALUES ('conveyor', 'src', 'items', NULL, NULL);",
    );
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let got = read_back(&db);
    assert_same(&f, &got);
    assert_eq!(got["rows"], 300, "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_syncs_become_iceberg_snapshots_that_pyiceberg_and_duckdb_read() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(2_500),
        ..Default::default()
    })
    .await;
    setup(&f, &db);

    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("published src.items to Iceberg"),
        "{stdout}"
    );
    let first = read_back(&db);
    assert_same(&f, &first);
    assert_eq!(first["snapshots"], 1, "{first}");
    assert_eq!(first["namespaces"], serde_json::json!(["src"]), "{first}");
    for column in [
        "id",
        "name",
        "amount",
        "active",
        "updated_at",
        "address",
        "tags",
    ] {
        assert!(
            first["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == column),
            "{first}"
        );
    }

    // Changed records merge by key in DuckDB; Iceberg gets one overwrite
    // snapshot whose files replace the previous ones.
    for id in [3, 700, 2_400] {
        f.mock.update(id, |r| {
            r["name"] = "Renamed".into();
            r["updated_at"] = "2030-01-01T00:00:00.000Z".into();
        });
    }
    let mut new = conveyor_mocks::rest::record(2_501);
    new["updated_at"] = "2030-01-01T00:00:00.000Z".into();
    f.mock.push(new);
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let second = read_back(&db);
    assert_same(&f, &second);
    assert_eq!(second["rows"], 2_501, "{second}");
    assert_eq!(second["snapshots"], 2, "{second}");
    assert_eq!(second["operation"], "overwrite", "{second}");
    assert_ne!(second["files"], first["files"], "{second}");
    assert_ne!(second["run_id"], first["run_id"], "{second}");

    // Nothing changed: no new snapshot.
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!text(&out).0.contains("published"), "{:?}", text(&out));
    assert_eq!(read_back(&db)["snapshots"], 2);

    // The catalog's password is in no output and in no metadata file.
    let (stdout, stderr) = text(&out);
    assert!(!stdout.contains(&db.password) && !stderr.contains(&db.password));
    let mut stack = vec![f.path("iceberg")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes
                        .windows(db.password.len())
                        .any(|w| w == db.password.as_bytes()),
                    "the password in {}",
                    p.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_after_a_sigkill_at_random_moments_ends_exact() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(20_000),
        ..Default::default()
    })
    .await;
    setup(&f, &db);
    const ROUNDS: u64 = 10;
    for round in 0..ROUNDS {
        // New and changed rows each round, so every sync has work and a
        // publish to do.
        for i in 0..50 {
            f.mock.update(1 + round * 1_000 + i, |r| {
                r["name"] = format!("round {round}").into();
                r["updated_at"] = format!("2030-01-{:02}T00:00:00.000Z", round + 1).into();
            });
        }
        let mut new = conveyor_mocks::rest::record(20_001 + round);
        new["updated_at"] = format!("2030-01-{:02}T00:00:00.000Z", round + 1).into();
        f.mock.push(new);
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .arg("sync")
            .current_dir(f.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Somewhere in the sync or its publish (a quick machine finishes
        // both well within a second).
        let at = Duration::from_millis(100 + (round * 7919 % 900));
        tokio::time::sleep(at).await;
        let _ = child.kill();
        child.wait().unwrap();
    }
    // The next run publishes what the killed ones committed but did not
    // publish (or merges what they did not commit), once.
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let got = read_back(&db);
    assert_same(&f, &got);
    assert_eq!(got["rows"], 20_000 + ROUNDS, "{got}");
    // A run with nothing new publishes nothing more.
    let snapshots = got["snapshots"].clone();
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(read_back(&db)["snapshots"], snapshots);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_a_run_committed_but_never_published_is_published_when_the_daemon_starts_and_a_daemon_sync_reports_a_failed_publish(
) {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(1_200),
        ..Default::default()
    })
    .await;
    // The state a crash between the DuckDB commit and the catalog swap
    // leaves: the run committed, the catalog without it.
    f.write_config("", "");
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    setup(&f, &db);
    let mut daemon = crate::support::Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .arg("run")
            .current_dir(f.dir.path()),
        &f.path("daemon.log"),
    );
    daemon
        .ready(
            Duration::from_secs(60),
            "the table published at start",
            async || {
                let log = std::fs::read_to_string(f.path("daemon.log")).unwrap_or_default();
                log.contains("published to Iceberg")
            },
        )
        .await;
    let got = read_back(&db);
    assert_eq!(got["rows"], 1_200, "{got}");
    assert_eq!(got["snapshots"], 1, "{got}");
    // `conveyor sync` sent to the daemon says when the publish after it
    // failed, and exits 1, as a sync run by hand does.
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'catalog in maintenance'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER maintenance BEFORE UPDATE ON iceberg_tables FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    f.mock.update(5, |r| {
        r["name"] = "Changed".into();
        r["updated_at"] = "2030-01-01T00:00:00.000Z".into();
    });
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("a daemon holds the warehouse"), "{stderr}");
    assert!(
        stderr.contains("cannot publish src.items to Iceberg"),
        "{stderr}"
    );
    assert!(daemon.terminate().await.success(), "{}", daemon.log());
    assert_eq!(read_back(&db)["snapshots"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_a_new_field_upstream_becomes_iceberg_schema_evolution_in_a_catalog_pyiceberg_made()
{
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(500),
        ..Default::default()
    })
    .await;
    // A catalog pyiceberg created first: its tables lack `iceberg_type`.
    db.sql(
        "CREATE TABLE iceberg_tables (catalog_name varchar(255) NOT NULL, table_namespace varchar(255) NOT NULL,
           table_name varchar(255) NOT NULL, metadata_location varchar(1000), previous_metadata_location varchar(1000),
           PRIMARY KEY (catalog_name, table_namespace, table_name))",
    );
    setup(&f, &db);
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(read_back(&db)["schemas"], 1);
    // The API starts sending a field: the warehouse adds a column, and the
    // Iceberg table a schema with it.
    for id in [10, 20] {
        f.mock.update(id, |r| {
            r["vip"] = true.into();
            r["updated_at"] = "2030-01-01T00:00:00.000Z".into();
        });
    }
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let got = read_back(&db);
    assert_same(&f, &got);
    assert_eq!(got["schemas"], 2, "{got}");
    assert_eq!(got["non_null"]["vip"], 2, "{got}");
    assert_eq!(got["non_null"]["id"], 500, "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_a_failed_publish_is_an_error_and_an_operator_alert_until_it_succeeds() {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(300),
        ..Default::default()
    })
    .await;
    setup(&f, &db);
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    // The catalog refuses commits for a while: the next publish fails.
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'catalog in maintenance'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER maintenance BEFORE UPDATE ON iceberg_tables FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    f.mock.update(7, |r| {
        r["name"] = "Changed".into();
        r["updated_at"] = "2030-01-01T00:00:00.000Z".into();
    });
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("cannot publish src.items to Iceberg")
            && stderr.contains("catalog in maintenance"),
        "{stderr}"
    );
    let alerts = text(&f.conveyor(&["alerts"]).await).0;
    assert!(
        alerts.contains("conveyor.job_failing") && alerts.contains("publish:src.items"),
        "{alerts}"
    );
    assert_eq!(
        read_back(&db)["snapshots"],
        1,
        "the published table stays as it was"
    );
    // Fixed: the next sync publishes the change and resolves the alert.
    db.sql("DROP TRIGGER maintenance ON iceberg_tables");
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    let got = read_back(&db);
    assert_eq!(got["snapshots"], 2, "{got}");
    assert_same(&f, &got);
    let alerts = text(&f.conveyor(&["alerts"]).await).0;
    assert!(!alerts.contains("publish:src.items"), "{alerts}");
}

/// `conveyor.toml` beside `base` for the daemon `name` of a cluster: the
/// same source, catalog and Iceberg folder, its own warehouse file.
fn cluster_member(f: &Fixture, db: &TestDatabase, name: &str) -> std::path::PathBuf {
    let base = std::fs::read_to_string(f.config()).unwrap();
    let text = base.replace("path = \"wh.duckdb\"", &format!("path = \"{name}.duckdb\""))
        + &format!(
            r#"
[cluster]
catalog = "{}"
password = "file:pg-password"
tls = "disable"
lease = "6s"
name = "{name}"
"#,
            db.url()
        );
    let p = f.path(&format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn conveyor_with(config: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_in_a_cluster_is_ordered_by_the_source_lease_so_an_older_run_never_replaces_a_newer_table(
) {
    let servers = TestServers::start();
    let db = servers.postgres();
    let f = Fixture::new(RestMockConfig {
        records: dataset(800),
        ..Default::default()
    })
    .await;
    setup(&f, &db);
    let (a, b) = (
        cluster_member(&f, &db, "alpha"),
        cluster_member(&f, &db, "beta"),
    );
    let dir = f.dir.path();
    let token = |who: &str| -> i64 {
        crate::support::sql_on(
            &f.path(&format!("{who}.duckdb")),
            "SELECT max(lease_token) FROM conveyor.runs WHERE source = 'src'",
        )[0][0]
            .parse()
            .unwrap()
    };

    // alpha syncs and publishes under the source lease.
    let out = conveyor_with(&a, dir, &["sync"]);
    assert!(out.status.success(), "{:?}", out);
    let first = read_back(&db);
    assert_eq!(first["rows"], 800, "{first}");
    assert_eq!(first["lease_token"], token("alpha").to_string(), "{first}");

    // alpha's next run commits, then cannot publish (the catalog refuses
    // commits): the state a crash between the two commits leaves.
    db.sql(
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'catalog in maintenance'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER maintenance BEFORE UPDATE ON iceberg_tables FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    f.mock.push({
        let mut r = conveyor_mocks::rest::record(801);
        r["updated_at"] = "2030-01-01T00:00:00.000Z".into();
        r
    });
    let out = conveyor_with(&a, dir, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    let alpha_unpublished = token("alpha");
    db.sql("DROP TRIGGER maintenance ON iceberg_tables");

    // beta syncs later, under a later lease, and publishes more rows.
    f.mock.push({
        let mut r = conveyor_mocks::rest::record(802);
        r["updated_at"] = "2030-01-02T00:00:00.000Z".into();
        r
    });
    let out = conveyor_with(&b, dir, &["sync"]);
    assert!(out.status.success(), "{:?}", out);
    assert!(token("beta") > alpha_unpublished);
    let newer = read_back(&db);
    assert_eq!(newer["rows"], 802, "{newer}");
    assert_eq!(newer["lease_token"], token("beta").to_string(), "{newer}");

    // alpha starts: its committed but unpublished run is older than beta's
    // table, so it is left alone; once alpha syncs again under a newer
    // lease, its table is published.
    let mut daemon = crate::support::Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(&a)
            .arg("run")
            .current_dir(dir),
        &f.path("alpha.log"),
    );
    daemon
        .ready(
            Duration::from_secs(60),
            "alpha's start-up publish round",
            async || {
                let log = std::fs::read_to_string(f.path("alpha.log")).unwrap_or_default();
                log.contains("joined the cluster")
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_start = read_back(&db);
    assert_eq!(
        after_start["snapshots"], newer["snapshots"],
        "{after_start}"
    );
    assert_eq!(after_start["rows"], 802, "{after_start}");
    assert!(daemon.terminate().await.success(), "{}", daemon.log());
    let out = conveyor_with(&a, dir, &["sync"]);
    assert!(out.status.success(), "{:?}", out);
    let last = read_back(&db);
    assert_eq!(last["rows"], 802, "{last}");
    // alpha's table now holds beta's rows too: the same content, so no
    // new snapshot was needed.
    assert_eq!(last["snapshots"], newer["snapshots"], "{last}");
}
