//! The lock-down every warehouse instance runs under: no connection — the
//! writer's included — can read or write local files, attach databases,
//! load extensions or change settings, while the daemon's own work (loading,
//! evaluation variables, spilling big queries to disk) still runs.

use super::Warehouse;

fn open() -> (tempfile::TempDir, Warehouse) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = conveyor_config::WarehouseConfig {
        path: dir.path().join("w.duckdb"),
        memory_limit: "64MB".into(),
        threads: Some(1),
    };
    let wh = Warehouse::open_config(&cfg).unwrap();
    (dir, wh)
}

#[test]
fn warehouse_threads_is_the_engines_thread_count() {
    let (_dir, wh) = open();
    let threads: i64 = wh
        .connection()
        .unwrap()
        .query_row("SELECT current_setting('threads')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(threads, 1);
}

#[test]
fn lockdown_no_connection_touches_files_or_settings() {
    let (dir, wh) = open();
    let conn = wh.connection().unwrap();
    let target = dir.path().join("out.csv");
    let t = target.display();
    for sql in [
        "SELECT content FROM read_text('/etc/passwd')".to_string(),
        "SELECT * FROM read_csv('/etc/passwd')".to_string(),
        "SELECT * FROM glob('/etc/*')".to_string(),
        format!("COPY (SELECT 1) TO '{t}'"),
        format!("ATTACH '{}' AS other", dir.path().join("x.db").display()),
        "INSTALL httpfs".to_string(),
        "LOAD httpfs".to_string(),
        "SET memory_limit = '8GB'".to_string(),
        "SET GLOBAL threads = 1".to_string(),
        "SET enable_external_access = true".to_string(),
        "SELECT getenv('HOME')".to_string(),
    ] {
        assert!(conn.execute_batch(&sql).is_err(), "{sql} ran");
    }
    assert!(!target.exists());
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn lockdown_leaves_the_daemons_own_work_running() {
    let (_dir, wh) = open();
    let conn = wh.connection().unwrap();
    // Evaluation clocks are variables, not settings.
    conn.execute_batch("SET VARIABLE conveyor_now = TIMESTAMP '2026-01-01 00:00:00'")
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS h FROM range(2000000)",
    )
    .unwrap();
    // Sorting ~100 MB of strings under a 64 MB limit spills to the temp folder.
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT h, i FROM t ORDER BY h, i DESC)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2_000_000);
    conn.execute_batch("CHECKPOINT").unwrap();
}
