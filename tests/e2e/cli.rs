//! The CLI's contract: `check` output and exit codes, `query` formats and
//! its read-only guard, `status`.

use conveyor_mocks::rest::RestMockConfig;

use crate::support::{text, Fixture};

#[tokio::test(flavor = "multi_thread")]
async fn check_lists_every_problem_with_location_and_exits_2() {
    let f = Fixture::new(RestMockConfig::default()).await;
    std::fs::write(
        f.config(),
        r#"[warehouse]
path = "wh.duckdb"
retention = 3

[sources.crm]
type = "rest"
schedule = "*/61 * * * *"
base_url = "not a url"
[[sources.crm.streams]]
name = "deals"
path = "/deals"
primary_key = "id"
"#,
    )
    .unwrap();
    let out = f.conveyor(&["check"]).await;
    assert_eq!(out.status.code(), Some(2));
    let (stdout, _) = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    let file = f.config().display().to_string();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{file}:3:1: warehouse: unknown field `retention`")),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:7:12: sources.crm.schedule: invalid cron expression"
        )),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!("{file}:8:12: sources.crm.base_url: invalid URL")),
        "{stdout}"
    );
    // Other commands refuse the same config with the same status.
    assert_eq!(f.conveyor(&["sync"]).await.status.code(), Some(2));

    f.write_config("", "");
    let out = f.conveyor(&["check"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("ok — 1 source(s), 1 stream(s)"),
        "{:?}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_inline_secrets_and_a_warehouse_it_cannot_write() {
    let f = Fixture::new(RestMockConfig::default()).await;
    // An inline secret is an error (located, exit 2) that does not repeat
    // the value; sync refuses the same config before any request.
    f.write_config(
        r#"auth = { type = "basic", username = "ops", password = "hunter2-inline-pw" }"#,
        "",
    );
    for cmd in ["check", "sync"] {
        let out = f.conveyor(&[cmd]).await;
        assert_eq!(out.status.code(), Some(2), "{cmd}: {:?}", text(&out));
        let (stdout, stderr) = text(&out);
        // `check` lists problems on stdout; other commands on stderr.
        let stdout = format!("{stdout}{stderr}");
        assert!(
            stdout.contains(":12:")
                && stdout.contains("sources.src.auth.password: a secret must be a reference"),
            "{cmd}: {stdout}"
        );
        assert!(!stdout.contains("hunter2"), "{cmd} repeated the secret");
    }
    assert_eq!(f.mock.request_count(), 0);

    // A warehouse in a missing folder: check names the folder and how to
    // make it, and nothing (check or sync) creates it.
    let config = std::fs::read_to_string(f.write_config("", "")).unwrap();
    std::fs::write(
        f.config(),
        config.replace("path = \"wh.duckdb\"", "path = \"data/wh/wh.duckdb\""),
    )
    .unwrap();
    for cmd in ["check", "sync"] {
        let out = f.conveyor(&[cmd]).await;
        assert_eq!(out.status.code(), Some(2), "{cmd}: {:?}", text(&out));
        let (stdout, stderr) = text(&out);
        let stdout = format!("{stdout}{stderr}");
        assert!(
            stdout.contains("warehouse.path: the folder")
                && stdout.contains("data/wh does not exist")
                && stdout.contains("mkdir -p"),
            "{cmd}: {stdout}"
        );
    }
    assert!(
        !f.path("data").exists(),
        "a missing folder tree was created"
    );

    // A folder nobody may create files in (even root: /proc).
    std::fs::write(
        f.config(),
        config.replace("path = \"wh.duckdb\"", "path = \"/proc/wh.duckdb\""),
    )
    .unwrap();
    let out = f.conveyor(&["check"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("cannot create files in /proc"),
        "{:?}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_formats_refuses_writes_and_status_reports() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    assert!(f.conveyor(&["sync"]).await.status.success());

    let out = f
        .conveyor(&[
            "query",
            "SELECT id, name FROM src.items WHERE id <= 2 ORDER BY id",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(text(&out).0, "id,name\n1,Person 1\n2,Person 2\n");
    let out = f
        .conveyor(&[
            "query",
            "SELECT id, active FROM src.items WHERE id = 4",
            "--format",
            "json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v, serde_json::json!([{"id": 4, "active": false}]));

    let out = f.conveyor(&["query", "DELETE FROM src.items"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("read-only"), "{:?}", text(&out));
    assert_eq!(f.scalar("SELECT count(*) FROM src.items"), "250");

    let out = f.conveyor(&["query", "SELECT nope FROM src.items"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("nope"), "{:?}", text(&out));

    let out = f.conveyor(&["status", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let v = &v["streams"];
    assert_eq!(v[0]["source"], "src");
    assert_eq!(v[0]["stream"], "items");
    assert_eq!(v[0]["state"], "succeeded");
    assert_eq!(v[0]["rows"], 250);
    assert!(
        v[0]["cursor"].as_str().unwrap().contains("2024-06-01"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_config_is_valid() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../conveyor.example.toml");
    std::fs::copy(example, f.config()).unwrap();
    std::fs::create_dir_all(f.path("secrets")).unwrap();
    std::fs::write(f.path("secrets/qbo_client_secret"), "x-secret").unwrap();
    std::fs::write(f.path("secrets/qbo_refresh_token"), "x-refresh").unwrap();
    let out = f
        .conveyor_env(&["check"], &[("GREENHOUSE_CLIENT_SECRET", "gh-secret")])
        .await;
    assert!(out.status.success(), "{:?}", text(&out));
    let summary = "3 source(s), 2 stream(s) (+ those of 1 plugin source(s): `conveyor plugins list`), 3 scheduled";
    assert!(text(&out).0.contains(summary), "{:?}", text(&out));
    // Without the environment variable, check names it.
    let out = f.conveyor(&["check"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).0.contains("GREENHOUSE_CLIENT_SECRET is not set"),
        "{:?}",
        text(&out)
    );
}
