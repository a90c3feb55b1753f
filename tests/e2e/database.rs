//! Database sources end to end: the real `conveyor` binary reading a real
//! PostgreSQL (and MariaDB) into the warehouse — kill -9 mid-read loses and
//! doubles nothing, updates land by key, upstream schema drift becomes
//! warehouse schema evolution, and the password never reaches the output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use conveyor_mocks::databases::{TestDatabase, TestServers};

use crate::support::{sql_on, text, Daemon, BIN};

struct Setup {
    dir: tempfile::TempDir,
    db: TestDatabase,
}

impl Setup {
    fn config(&self) -> PathBuf {
        self.dir.path().join("conveyor.toml")
    }
    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("w.duckdb")
    }
    fn write_config(&self, kind: &str, chunk_rows: u32) {
        std::fs::write(self.dir.path().join("db-password"), &self.db.password).unwrap();
        std::fs::write(
            self.config(),
            format!(
                r#"[warehouse]
path = "w.duckdb"

[sources.erp]
type = "{kind}"
url = "{url}"
password = "file:db-password"
tls = "disable"
chunk_rows = {chunk_rows}

[[sources.erp.streams]]
name = "orders"
table = "orders"
primary_key = "id"
cursor = "updated_at"
lookback = "1m"
"#,
                url = self.db.url()
            ),
        )
        .unwrap();
    }
    fn conveyor(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .unwrap()
    }
    fn scalar(&self, sql: &str) -> String {
        sql_on(&self.warehouse(), sql)[0][0].clone()
    }
}

fn setup(db: TestDatabase) -> Setup {
    Setup {
        dir: tempfile::tempdir().unwrap(),
        db,
    }
}

/// The same checksum on both sides: ids, customers and totals in id order.
const SOURCE_SUM: &str =
    "SELECT md5(string_agg(id || '|' || customer || '|' || total, ',' ORDER BY id)) FROM orders";
const WAREHOUSE_SUM: &str = "SELECT md5(string_agg(id::VARCHAR || '|' || customer || '|' || total::VARCHAR, ',' ORDER BY id)) FROM erp.orders";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_sigkill_mid_read_then_a_full_sync_holds_every_row_once() {
    const N: u32 = 1_000_000;
    let servers = TestServers::start();
    let s = setup(servers.postgres());
    s.db.sql(&format!(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2) NOT NULL,
           updated_at timestamptz NOT NULL);
         INSERT INTO orders SELECT g, 'customer ' || (g % 977), round((g * 1.37)::numeric, 2),
           TIMESTAMPTZ '2024-01-01 00:00:00+00' + (g / 10) * INTERVAL '1 second'
           FROM generate_series(1, {N}) g;"
    ));
    s.write_config("postgres", 5_000);
    let mut killed_mid_run = 0;
    for round in 0..4u64 {
        let mut child = Daemon::spawn(
            Command::new(BIN)
                .arg("--config")
                .arg(s.config())
                .arg("sync")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        // A full read of N rows takes about a second here: kill inside it.
        tokio::time::sleep(Duration::from_millis(250 + round * 150)).await;
        if child.alive() {
            child.kill();
            killed_mid_run += 1;
        }
    }
    assert!(
        killed_mid_run >= 2,
        "the kills should land during reads (only {killed_mid_run} did)"
    );
    // Rows change and arrive between the kills and the last sync.
    s.db.sql(&format!(
        "UPDATE orders SET total = 0.01, updated_at = TIMESTAMPTZ '2025-01-01 00:00:00+00' WHERE id % 50000 = 0;
         INSERT INTO orders VALUES ({}, 'late', 9.99, TIMESTAMPTZ '2025-01-01 00:00:01+00');",
        N + 1
    ));
    let out = s.conveyor(&["sync"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // That sync finished the interrupted full read (every row once, the new
    // one too). Rows changed behind its position — read before a kill —
    // are at or past the high-water mark noted before the full read began,
    // so the next sync, the first incremental one, brings them.
    assert_eq!(
        s.scalar("SELECT count(DISTINCT id) FROM erp.orders"),
        (N + 1).to_string()
    );
    let out = s.conveyor(&["sync"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        s.scalar("SELECT count(*) FROM erp.orders"),
        (N + 1).to_string()
    );
    assert_eq!(
        s.scalar("SELECT count(DISTINCT id) FROM erp.orders"),
        (N + 1).to_string()
    );
    assert_eq!(
        s.scalar(WAREHOUSE_SUM),
        s.db.sql(SOURCE_SUM),
        "contents differ"
    );
    assert_eq!(
        s.scalar("SELECT typeof(total) || ' ' || typeof(updated_at) FROM erp.orders LIMIT 1"),
        "DECIMAL(12,2) TIMESTAMP"
    );
    assert_eq!(
        s.scalar("SELECT count(*) FROM conveyor.runs WHERE status = 'running'"),
        "0"
    );
    assert!(
        s.scalar("SELECT count(*) FROM conveyor.runs WHERE status = 'interrupted'")
            .parse::<u32>()
            .unwrap()
            >= 1,
        "the killed runs are marked interrupted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_columns_added_and_dropped_upstream_evolve_the_warehouse_table() {
    let servers = TestServers::start();
    let s = setup(servers.mariadb());
    s.db.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer varchar(40) NOT NULL, total decimal(12,2) NOT NULL,
           memo varchar(40), updated_at datetime(6) NOT NULL);
         INSERT INTO orders VALUES (1, 'a', 1.50, 'first', '2024-01-01 00:00:01'), (2, 'b', 2.50, 'second', '2024-01-01 00:00:02');",
    );
    s.write_config("mariadb", 100);
    let out = s.conveyor(&["sync"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(s.scalar("SELECT count(*) FROM erp.orders"), "2");

    s.db.sql(
        "ALTER TABLE orders DROP COLUMN memo, ADD COLUMN region varchar(8) NOT NULL DEFAULT 'eu';
         UPDATE orders SET total = 3.25, updated_at = '2024-02-01 00:00:00' WHERE id = 2;
         INSERT INTO orders (id, customer, total, updated_at, region) VALUES (3, 'c', 4.00, '2024-02-01 00:00:01', 'us');",
    );
    let out = s.conveyor(&["sync"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let rows = sql_on(
        &s.warehouse(),
        "SELECT id, total::VARCHAR, coalesce(memo, '-'), coalesce(region, '-') FROM erp.orders ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            // The one-minute look-back re-read row 1 too: rows read again have
            // no value for the dropped column and the added one's value.
            ["1", "1.50", "-", "eu"],
            ["2", "3.25", "-", "eu"],
            ["3", "4.00", "-", "us"],
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_password_fails_the_sync_clearly_and_never_prints_the_secret() {
    let servers = TestServers::start();
    let mut s = setup(servers.postgres());
    s.db.sql("CREATE TABLE orders (id int PRIMARY KEY, updated_at timestamptz NOT NULL);");
    s.db.password = "Sup3r-s3cret/value+x=".into();
    s.write_config("postgres", 100);
    let out = s.conveyor(&["sync"]);
    assert!(!out.status.success());
    let (stdout, stderr) = text(&out);
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("password authentication failed"), "{all}");
    assert!(!all.contains("Sup3r-s3cret"), "{all}");
    let status = s.conveyor(&["status"]);
    let (stdout, stderr) = text(&status);
    assert!(!format!("{stdout}{stderr}").contains("Sup3r-s3cret"));
    let stored = s.scalar("SELECT count(*) FROM conveyor.runs WHERE error LIKE '%Sup3r%'");
    assert_eq!(stored, "0", "the secret is not in the warehouse");
    assert!(Path::new(&s.warehouse()).exists());
}
