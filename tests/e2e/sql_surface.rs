//! Issue 12: the SQL surface is read-only by construction and authenticated.
//! Every bypass found by trying it as a user would — through the CLI on the
//! file, through the CLI via the daemon, and straight at the HTTP endpoint —
//! is refused and leaves the warehouse unchanged; the CLI behaves in pipes.

use std::process::Command;
use std::time::Duration;

use conveyor_mocks::rest::RestMockConfig;

use crate::support::{text, Daemon, Fixture, BIN};

/// Statements that wrote, read local files or changed settings before.
fn bypasses(dir: &std::path::Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "SELECT $$--$$ AS a; COMMIT; DROP TABLE src.items".into(),
        "WITH t AS (SELECT 1) INSERT INTO src.items (id) SELECT 99999 FROM t".into(),
        "SET GLOBAL threads = 1".into(),
        "SET enable_external_access = true".into(),
        format!("ATTACH '{d}/x.db' AS x; CREATE TABLE x.t (a INT)"),
        format!("ATTACH '{d}/x.db' AS x"),
        "SELECT content FROM read_text('/etc/passwd')".into(),
        format!("SELECT * FROM read_csv('{d}/conveyor.toml')"),
        "SELECT * FROM glob('/etc/*')".into(),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{d}/x.csv'"),
        format!("COPY (SELECT * FROM src.items) TO '{d}/x.csv'"),
        "INSTALL httpfs".into(),
        "CHECKPOINT".into(),
        "DELETE FROM src.items".into(),
    ]
}

/// What must not change: the table's rows, in order, and the list of tables.
const FINGERPRINT: &str = "SELECT (SELECT count(*) FROM src.items) AS n,
        (SELECT md5(string_agg(i::VARCHAR, '|' ORDER BY id)) FROM src.items i) AS digest,
        (SELECT string_agg(schema_name || '.' || table_name, ',' ORDER BY schema_name, table_name) FROM duckdb_tables()) AS tables";

fn no_files_written(dir: &std::path::Path) {
    for name in ["x.db", "x.csv"] {
        assert!(!dir.join(name).exists(), "{name} was written");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_surface_cli_refuses_every_bypass_on_the_file() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    assert!(f.conveyor(&["sync"]).await.status.success());
    let before = f.sql(FINGERPRINT);
    let file_before = std::fs::read(f.warehouse()).unwrap();
    for sql in bypasses(f.dir.path()) {
        let out = f.conveyor(&["query", &sql]).await;
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{sql} ran: {stdout}");
        assert!(!stderr.contains("Error code"), "{sql}: {stderr}");
        assert!(!stderr.contains("root:"), "{sql} leaked a file: {stderr}");
    }
    let out = f
        .conveyor(&["query", "SELECT content FROM read_text('/etc/passwd')"])
        .await;
    assert!(
        text(&out).1.contains("cannot touch the file system"),
        "{:?}",
        text(&out)
    );
    assert_eq!(f.sql(FINGERPRINT), before);
    assert!(
        std::fs::read(f.warehouse()).unwrap() == file_before,
        "the file changed"
    );
    no_files_written(f.dir.path());
}

/// A daemon with a slow schedule, and its endpoint's token.
async fn start_daemon(f: &Fixture) -> (Daemon, String, String) {
    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN).arg("--config").arg(f.config()).arg("run"),
        &f.path("daemon.log"),
    );
    let listen = listen_of(f);
    let token_file = f.path("wh.duckdb.token");
    let mut token = String::new();
    daemon
        .ready(
            Duration::from_secs(30),
            "the daemon answering",
            async || {
                let Ok(t) = std::fs::read_to_string(&token_file) else {
                    return false;
                };
                token = t.trim().to_string();
                reqwest::Client::new()
                    .get(format!("http://{listen}/v1/health"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    (daemon, listen, token)
}

/// `server.listen` from the fixture's config.
fn listen_of(f: &Fixture) -> String {
    std::fs::read_to_string(f.config())
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("listen = \"")
                .map(|l| l.trim_end_matches('"').to_string())
        })
        .unwrap()
}

async fn stop(mut daemon: Daemon) {
    daemon.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_surface_daemon_endpoint_is_authenticated_and_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    assert!(f.conveyor(&["sync"]).await.status.success());
    let before = f.sql(FINGERPRINT);
    let (daemon, listen, token) = start_daemon(&f).await;
    let mode = std::fs::metadata(f.path("wh.duckdb.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");

    let http = reqwest::Client::new();
    let url = format!("http://{listen}/v1/query");
    let drop_sql = serde_json::json!({"sql": "SELECT $$--$$ AS a; COMMIT; DROP TABLE src.items"});
    // No token, a wrong token, a foreign Host: refused before any SQL runs.
    let r = http.post(&url).json(&drop_sql).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth("not-the-token")
        .json(&drop_sql)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .header("Host", "attacker.example")
        .json(&drop_sql)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("http://{listen}/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "health says nothing to strangers either");

    // With the token: every bypass refused, straight at the endpoint…
    for sql in bypasses(f.dir.path()) {
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{sql}: {body}");
        assert!(
            !body.contains("root:") && !body.contains("Error code"),
            "{sql}: {body}"
        );
    }
    // …and through the CLI, which finds the daemon by its token file.
    for sql in bypasses(f.dir.path()) {
        let out = f.conveyor(&["query", &sql]).await;
        assert!(!out.status.success(), "{sql}: {:?}", text(&out));
    }
    let out = f
        .conveyor(&[
            "query",
            "SELECT count(*) AS n FROM src.items",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(text(&out).0, "n\n250\n", "{:?}", text(&out));

    // A silence for a rule that does not exist is refused by the daemon.
    let r = http
        .post(format!("http://{listen}/v1/silences"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"rule": "nope", "entity": null, "seconds": 60, "reason": "x", "author": "me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("no rule named `nope`"));

    stop(daemon).await;
    assert_eq!(f.sql(FINGERPRINT), before);
    no_files_written(f.dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_surface_cli_behaves_in_pipes_and_scripts() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    assert!(f.conveyor(&["sync"]).await.status.success());
    let config = f.config();
    let config = config.display();

    // A closed pipe ends the command quietly.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {BIN} --config {config} query 'SELECT * FROM range(200000)' --format csv | head -1"
        ))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "range\n");
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");

    // SQL from standard input and from a file.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "echo 'SELECT 40 + 2 AS answer' | {BIN} --config {config} query - --format csv"
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out).0, "answer\n42\n", "{:?}", text(&out));
    std::fs::write(
        f.path("q.sql"),
        "-- a saved query\nSELECT count(*) AS n FROM src.items;\n",
    )
    .unwrap();
    let q = f.path("q.sql");
    let out = f
        .conveyor(&["query", "-f", q.to_str().unwrap(), "--format", "csv"])
        .await;
    assert_eq!(text(&out).0, "n\n250\n", "{:?}", text(&out));

    // JSON columns come out as JSON; ndjson is one object per line.
    let out = f
        .conveyor(&[
            "query",
            "SELECT stream, state FROM conveyor.stream_state",
            "--format",
            "json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert!(v[0]["state"].is_object(), "{v}");
    let out = f
        .conveyor(&[
            "query",
            "SELECT id FROM src.items WHERE id <= 3 ORDER BY id",
            "--format",
            "ndjson",
        ])
        .await;
    assert_eq!(text(&out).0, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");

    // status --format json is one document.
    let out = f.conveyor(&["status", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["streams"][0]["stream"], "items", "{v}");
    // No schedule in this config: no next run, but the column is there.
    assert_eq!(v["streams"][0]["next_run"], serde_json::Value::Null, "{v}");
    assert!(v["streams"][0]
        .as_object()
        .unwrap()
        .contains_key("next_run"));
    assert!(v["notifications"].is_array() && v["dead_letters"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_surface_query_and_status_need_no_source_secrets() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config(
        "auth = { type = \"bearer\", token = \"env:SQL_SURFACE_SRC_KEY\" }",
        "",
    );
    let out = f
        .conveyor_env(&["sync"], &[("SQL_SURFACE_SRC_KEY", "k")])
        .await;
    assert!(out.status.success(), "{:?}", text(&out));
    // The variable is not set now: reading still works.
    let out = f
        .conveyor(&[
            "query",
            "SELECT count(*) AS n FROM src.items",
            "--format",
            "csv",
        ])
        .await;
    assert_eq!(text(&out).0, "n\n250\n", "{:?}", text(&out));
    let out = f.conveyor(&["status"]).await;
    assert!(out.status.success(), "{:?}", text(&out));
    // Syncing does need it, and says so.
    let out = f.conveyor(&["sync"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("SQL_SURFACE_SRC_KEY"));
}

fn python() -> String {
    std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_surface_https_endpoint_with_a_managed_token() {
    let f = Fixture::new(RestMockConfig::default()).await;
    f.write_config("", "");
    // A throwaway CA and a certificate for localhost / 127.0.0.1 (trustme).
    let made = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import trustme, sys; ca = trustme.CA(); c = ca.issue_cert('localhost', '127.0.0.1'); \
             c.private_key_pem.write_to_path(sys.argv[1] + '/key.pem'); \
             c.cert_chain_pems[0].write_to_path(sys.argv[1] + '/cert.pem'); \
             ca.cert_pem.write_to_path(sys.argv[1] + '/ca.pem')",
        )
        .arg(f.dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    let config = std::fs::read_to_string(f.config()).unwrap().replace(
        "[server]\n",
        "[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_ca = \"ca.pem\"\ntoken = \"env:SQL_SURFACE_TOKEN\"\n",
    );
    std::fs::write(f.config(), config).unwrap();
    let token = "a-token-the-team-manages";
    let env = [("SQL_SURFACE_TOKEN", token)];
    assert!(f.conveyor_env(&["sync"], &env).await.status.success());

    let mut daemon = Daemon::spawn_logged(
        Command::new(BIN)
            .arg("--config")
            .arg(f.config())
            .arg("run")
            .env("SQL_SURFACE_TOKEN", token),
        &f.path("daemon.log"),
    );
    let listen = listen_of(&f);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(f.path("ca.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let health = format!("https://{listen}/v1/health");
    daemon
        .ready(Duration::from_secs(30), "the TLS endpoint", async || {
            https.get(&health).send().await.is_ok()
        })
        .await;
    assert!(
        !f.path("wh.duckdb.token").exists(),
        "a managed token needs no token file"
    );
    assert_eq!(https.get(&health).send().await.unwrap().status(), 401);
    let ok = https.get(&health).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    // Plain HTTP gets no answer from a TLS endpoint.
    let plain = reqwest::Client::new()
        .get(format!("http://{listen}/v1/health"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // The CLI goes through the daemon over TLS with the managed token.
    let out = f
        .conveyor_env(
            &[
                "query",
                "SELECT count(*) AS n FROM src.items",
                "--format",
                "csv",
            ],
            &env,
        )
        .await;
    assert_eq!(text(&out).0, "n\n250\n", "{:?}", text(&out));
    let log = std::fs::read_to_string(f.path("daemon.log")).unwrap();
    assert!(!log.contains(token), "the token was logged");
    stop(daemon).await;
}
