//! Loading through `conveyor sync`: merge by key, incremental updates in
//! place, schema drift, rejects, failure atomicity, and the file opening in
//! the stock DuckDB engine.

use conveyor_mocks::rest::{Fault, Incremental, RestMockConfig};
use serde_json::json;

use crate::support::{text, Fixture};

fn incremental_mock() -> RestMockConfig {
    RestMockConfig {
        incremental: Some(Incremental::QueryParam {
            name: "updated_since".into(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_merges_by_key_and_incremental_updates_in_place() {
    let f = Fixture::new(incremental_mock()).await;
    f.write_config("", "");
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "250");
    assert_eq!(f.scalar("SELECT count(DISTINCT id) FROM src.items"), "250");
    let (stdout, _) = text(&out);
    assert!(stdout.contains("250 rows"), "{stdout}");

    f.mock.update(7, |r| {
        r["name"] = json!("Renamed");
        r["updated_at"] = json!("2030-01-01T00:00:00.000Z");
    });
    let before = f.mock.request_count();
    let out = f.conveyor(&["sync", "src"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    // One page: only record 7 and the record at the cursor came back.
    assert_eq!(f.mock.request_count() - before, 1);
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "250");
    assert_eq!(
        f.scalar("SELECT name FROM src.items WHERE id = 7"),
        "Renamed"
    );
    assert_eq!(
        f.scalar("SELECT rows FROM conveyor.runs ORDER BY run_id DESC LIMIT 1"),
        "2"
    );
    assert_eq!(
        f.scalar("SELECT json_extract_string(state, '$.cursor') FROM conveyor.stream_state"),
        "2030-01-01T00:00:00.000Z"
    );
    // Types were inferred; nested values kept as JSON.
    let types = f.sql("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'src' ORDER BY column_index");
    let t = |c: &str| {
        types
            .iter()
            .find(|r| r[0] == c)
            .map(|r| r[1].clone())
            .unwrap()
    };
    assert_eq!(t("id"), "BIGINT");
    assert_eq!(t("amount"), "DOUBLE");
    assert_eq!(t("active"), "BOOLEAN");
    assert_eq!(t("updated_at"), "TIMESTAMP");
    assert_eq!(t("address"), "JSON");
    assert_eq!(
        f.scalar("SELECT address->>'city' FROM src.items WHERE id = 1"),
        "Austin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_drift_adds_widens_and_rejects_with_records() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.mock.set_records(vec![
        json!({"id": 1, "score": 5, "day": "2024-06-01"}),
        json!({"id": 2, "score": 7, "day": "2024-06-02"}),
    ]);
    f.write_config("", "");
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    f.mock.set_records(vec![
        json!({"id": 1, "score": 5.5, "day": "2024-06-01T10:00:00Z", "extra": "new"}),
        json!({"id": 2, "score": "n/a", "day": "2024-06-02"}),
        json!({"id": null, "score": 1}),
    ]);
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    let changes = f.sql("SELECT column_name, change, coalesce(old_type, ''), new_type FROM conveyor.schema_changes WHERE change <> 'create_table' ORDER BY changed_at, column_name, new_type");
    let has = |c: &str, kind: &str, old: &str, new: &str| {
        changes
            .iter()
            .any(|r| r[0] == c && r[1] == kind && r[2] == old && r[3] == new)
    };
    assert!(has("extra", "add_column", "", "VARCHAR"), "{changes:?}");
    assert!(has("day", "widen", "DATE", "TIMESTAMP"), "{changes:?}");
    // One batch holds 5.5 and "n/a": the column goes straight to VARCHAR.
    assert!(has("score", "widen", "BIGINT", "VARCHAR"), "{changes:?}");
    assert_eq!(
        f.sql("SELECT id, score, extra FROM src.items ORDER BY id"),
        vec![
            vec!["1".to_string(), "5.5".into(), "new".into()],
            vec!["2".to_string(), "n/a".into(), "NULL".into()],
        ]
    );
    // The record without a key is kept aside, with its content and why.
    let rejects = f.sql("SELECT source, stream, reason, record FROM conveyor.rejects");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(
        (rejects[0][0].as_str(), rejects[0][1].as_str()),
        ("src", "items")
    );
    assert!(rejects[0][2].contains("primary key id"), "{rejects:?}");
    assert!(
        rejects[0][3].contains("\"score\":\"1\"") || rejects[0][3].contains("\"score\":1"),
        "{rejects:?}"
    );
    assert_eq!(
        f.scalar("SELECT rejected FROM conveyor.runs ORDER BY run_id DESC LIMIT 1"),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_response_commits_nothing_and_keeps_the_cursor() {
    let f = Fixture::new(incremental_mock()).await;
    f.write_config("", "");
    f.mock.set_faults(vec![Fault::MalformedJson]);
    let out = f.conveyor(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("not valid JSON"), "{stdout}");
    assert_eq!(
        f.scalar("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'src'"),
        "0"
    );
    assert_eq!(f.scalar("SELECT count(*) FROM conveyor.stream_state"), "0");
    assert_eq!(f.scalar("SELECT status FROM conveyor.runs"), "failed");
    assert!(f
        .scalar("SELECT error FROM conveyor.runs")
        .contains(&f.server.url("/items")));

    // A failure after the first page: the pages before it stay, merged, but
    // the cursor does not advance, so the next sync re-reads them.
    f.mock.set_faults(vec![
        Fault::Delay(std::time::Duration::ZERO),
        Fault::Status(500, "{}".into()),
        Fault::Status(500, "{}".into()),
        Fault::Status(500, "{}".into()),
    ]);
    f.write_config("max_retries = 2", "");
    let out = f.conveyor(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "100");
    assert_eq!(f.scalar("SELECT coalesce(json_extract_string(state, '$.cursor'), 'none') FROM conveyor.stream_state"), "none");
    let out = f.conveyor(&["sync"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "250");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_source_does_not_stop_the_others() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let cfg = f.write_config("", "");
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str(&format!(
        "\n[sources.down]\ntype = \"rest\"\nbase_url = \"http://127.0.0.1:{}\"\nmax_retries = 0\n[[sources.down.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n",
        crate::support::free_port()
    ));
    std::fs::write(&cfg, text_cfg).unwrap();
    let out = f.conveyor(&["sync"]).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "250");
    assert_eq!(
        f.scalar("SELECT status FROM conveyor.runs WHERE source = 'down'"),
        "failed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_warehouse_opens_in_the_stock_duckdb_engine() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    assert!(f.conveyor(&["sync"]).await.status.success());
    let python = std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    let script = "import duckdb, sys\ncon = duckdb.connect(sys.argv[1], read_only=True)\nprint(duckdb.__version__, con.execute('select count(*), sum(id) from src.items').fetchall()[0])";
    let out = std::process::Command::new(&python)
        .args(["-c", script, f.warehouse().to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}); run scripts/setup-test-tools"));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.trim().ends_with("(250, 31375)"), "{stdout}");
    // Same engine version as the one Conveyor bundles.
    let ours = f.scalar("SELECT version()");
    assert!(
        ours.trim_start_matches('v')
            .starts_with(stdout.split_whitespace().next().unwrap()),
        "ours {ours}, stock {stdout}"
    );
}
