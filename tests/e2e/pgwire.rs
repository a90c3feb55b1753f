//! The Postgres-wire SQL endpoint through real clients — psql, psycopg,
//! SQLAlchemy, node-postgres — against the real daemon on 127.0.0.1:
//! SCRAM logins, catalog introspection, parameters and types, COPY to the
//! client, cancel, and every write bypass refused with the warehouse
//! unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use conveyor_mocks::rest::{dataset, RestMockConfig};
use serde_json::Value;

use crate::support::{free_port, text, Daemon, Fixture, BIN};

/// The password the tests log in with; it must never show up in output.
const PASSWORD: &str = "pg-e2e-Secret-4711";
const ROWS: u64 = 40;

fn python() -> String {
    std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

fn node_modules() -> String {
    std::env::var("CONVEYOR_TEST_NODE_MODULES").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-node/node_modules",
            std::env::var("HOME").unwrap()
        )
    })
}

fn client_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(name)
}

/// A synced warehouse served by `conveyor run` with `[server.postgres]`.
struct PgDaemon {
    // First, so that it stops before the fixture's folder goes.
    child: Daemon,
    f: Fixture,
    port: u16,
}

impl PgDaemon {
    async fn start() -> PgDaemon {
        Self::start_with(false).await
    }

    /// With `tls`, a throwaway CA signs the endpoint's certificate
    /// (`ca.pem` in the fixture's folder).
    async fn start_with(tls: bool) -> PgDaemon {
        let f = Fixture::new(RestMockConfig {
            records: dataset(ROWS),
            ..Default::default()
        })
        .await;
        f.write_config("", "");
        let port = free_port();
        let mut config = std::fs::read_to_string(f.config()).unwrap();
        config.push_str(&format!(
            "\n[server.postgres]\nlisten = \"127.0.0.1:{port}\"\nusers = {{ ops = \"env:CONVEYOR_E2E_PG_OPS\" }}\n"
        ));
        if tls {
            let out = std::process::Command::new(python())
                .arg(client_script("pg_tls.py"))
                .arg("gen")
                .arg(f.dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{:?}", text(&out));
            config.push_str("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n");
        }
        std::fs::write(f.config(), config).unwrap();
        let out = f
            .conveyor_env(&["sync"], &[("CONVEYOR_E2E_PG_OPS", PASSWORD)])
            .await;
        assert!(out.status.success(), "{:?}", text(&out));
        let mut child = Daemon::spawn_logged(
            Command::new(BIN)
                .arg("--config")
                .arg(f.config())
                .args(["-v", "run"])
                .env("CONVEYOR_E2E_PG_OPS", PASSWORD)
                .current_dir(f.dir.path()),
            &f.path("daemon.log"),
        );
        child
            .ready(
                Duration::from_secs(60),
                "the endpoint listening",
                async || {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                },
            )
            .await;
        PgDaemon { f, port, child }
    }

    fn log(&self) -> String {
        self.child.log()
    }

    /// `psql -c` for each command, as user `user` with `password`.
    async fn psql_as(&self, user: &str, password: &str, commands: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new("psql");
        cmd.args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            user,
            "-d",
            "warehouse",
        ])
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-P",
            "pager=off",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .current_dir(self.f.dir.path());
        for c in commands {
            cmd.args(["-c", c]);
        }
        cmd.output().await.unwrap()
    }

    async fn psql(&self, commands: &[&str]) -> (String, String, bool) {
        let out = self.psql_as("ops", PASSWORD, commands).await;
        let (o, e) = text(&out);
        (o, e, out.status.success())
    }

    /// A psql query's rows, unaligned, tuples only.
    async fn rows(&self, sql: &str) -> Vec<String> {
        let (o, e, ok) = self
            .psql(&["\\pset format unaligned", "\\pset tuples_only on", sql])
            .await;
        assert!(ok, "{sql}: {e}");
        o.lines()
            .filter(|l| {
                !l.is_empty() && !l.starts_with("Output format") && !l.starts_with("Tuples only")
            })
            .map(String::from)
            .collect()
    }

    /// Runs a client script and parses the JSON it prints.
    async fn script(&self, program: &str, script: &str, extra_env: &[(&str, String)]) -> Value {
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg(client_script(script))
            .args([self.port.to_string(), "ops".into(), PASSWORD.into()]);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("client finished")
            .unwrap();
        let (o, e) = text(&out);
        assert!(
            out.status.success(),
            "{script} failed:\n{o}\n{e}\ndaemon log:\n{}",
            self.log()
        );
        assert!(!o.contains(PASSWORD) && !e.contains(PASSWORD));
        serde_json::from_str(o.trim()).unwrap_or_else(|err| panic!("{script}: {err}: {o}"))
    }

    async fn stop(&mut self) -> String {
        let status = self.child.terminate().await;
        let log = self.log();
        assert!(status.success(), "{status:?}\n{log}");
        assert!(!log.contains(PASSWORD), "the password is in the daemon log");
        log
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_psql_lists_describes_joins_and_copies() {
    let mut d = PgDaemon::start().await;
    let (o, e, ok) = d.psql(&["\\dt src.*"]).await;
    assert!(ok, "{e}\n{}", d.log());
    assert!(o.contains("src    | items | table"), "{o}");
    let (o, e, ok) = d.psql(&["\\d src.items"]).await;
    assert!(ok, "{e}\n{}", d.log());
    assert!(o.contains("Table \"src.items\""), "{o}");
    for col in ["id", "name", "amount", "updated_at", "address"] {
        assert!(
            o.lines().any(|l| l.trim_start().starts_with(col)),
            "{col} in {o}"
        );
    }
    assert!(
        o.contains("timestamp without time zone")
            && o.contains("double precision")
            && o.contains("bigint"),
        "{o}"
    );
    let (o, e, ok) = d.psql(&["\\dn"]).await;
    assert!(ok && o.contains("src") && o.contains("conveyor"), "{o}{e}");
    let (o, _, ok) = d.psql(&["\\l"]).await;
    assert!(ok && o.contains("UTF8"), "{o}");

    assert_eq!(
        d.rows(
            "SELECT count(*) FROM src.items a JOIN src.items b ON a.id = b.id + 1 WHERE b.active"
        )
        .await,
        vec![(ROWS - 1 - (ROWS - 1) / 4).to_string()]
    );
    assert_eq!(
        d.rows("SELECT version() LIKE 'PostgreSQL 15.0 (Conveyor%'")
            .await,
        vec!["t"]
    );
    assert_eq!(
        d.rows("SHOW server_version").await,
        vec!["15.0 (Conveyor, DuckDB)"]
    );
    assert_eq!(
        d.rows("SELECT current_setting('standard_conforming_strings'), current_user, pg_backend_pid() > 0").await,
        vec!["on|ops|t"]
    );
    // psql's own session statements.
    // Session settings last for the session (one psql, several commands).
    let (o, e, ok) = d
        .psql(&[
            "\\pset tuples_only on",
            "SET application_name = 'x'",
            "SHOW application_name",
            "BEGIN",
            "SELECT 42",
            "COMMIT",
        ])
        .await;
    assert!(ok, "{e}");
    let lines: Vec<&str> = o.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, ["SET", "x", "BEGIN", "42", "COMMIT"], "{o}");

    // \copy: the client writes the file; the server only reads.
    let (o, e, ok) = d
        .psql(&["\\copy (SELECT id, name FROM src.items ORDER BY id LIMIT 3) TO STDOUT"])
        .await;
    assert!(ok, "{e}");
    assert_eq!(o, "1\tPerson 1\n2\tPerson 2\n3\tPerson 3\n");
    let out = d.f.path("items.csv");
    let (_, e, ok) = d
        .psql(&[&format!("\\copy (SELECT id, address FROM src.items WHERE id <= 2 ORDER BY id) TO '{}' CSV HEADER", out.display())])
        .await;
    assert!(ok, "{e}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.starts_with("id,address\n1,\"{\"\"city\"\":\"\"Austin\"\""),
        "{csv}"
    );

    // A wrong password and an unknown user are refused alike.
    for user in ["ops", "nobody"] {
        let out = d.psql_as(user, "not-the-password", &["SELECT 1"]).await;
        let (o, e) = text(&out);
        assert!(!out.status.success());
        assert!(
            e.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{e}"
        );
        assert!(!o.contains(PASSWORD) && !e.contains(PASSWORD));
    }
    // An unknown user who knows a real password learns nothing either.
    let out = d.psql_as("nobody", PASSWORD, &["SELECT 1"]).await;
    assert!(!out.status.success());
    assert!(!text(&out).1.contains(PASSWORD));
    let log = d.stop().await;
    assert!(log.contains("Postgres-wire login refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_psql_write_bypasses_are_refused_and_change_nothing() {
    let mut d = PgDaemon::start().await;
    let before = d.rows("SELECT count(*) FROM src.items").await;
    assert_eq!(before, vec![ROWS.to_string()]);
    let attached = d.f.path("x.db");
    let copied = d.f.path("copied.out");
    let cases = [
        (
            "SELECT $$--$$ AS a; COMMIT; DROP TABLE src.items".to_string(),
            "25006",
        ),
        (
            "WITH t AS (SELECT 1) INSERT INTO src.items (id) SELECT 999 FROM t".into(),
            "25006",
        ),
        ("DELETE FROM src.items".into(), "25006"),
        ("DROP TABLE src.items".into(), "25006"),
        ("CREATE TABLE src.evil AS SELECT 1".into(), "25006"),
        ("SET GLOBAL threads = 1".into(), "25006"),
        ("SET threads TO 1; DROP TABLE src.items".into(), "25006"),
        (format!("ATTACH '{}' AS x", attached.display()), "25006"),
        (
            "SELECT content FROM read_text('/etc/passwd')".into(),
            "42501",
        ),
        (
            format!("COPY (SELECT 1) TO '{}'", copied.display()),
            "25006",
        ),
        ("COPY src.items FROM STDIN".into(), "25006"),
        ("PRAGMA enable_profiling".into(), "25006"),
        ("CALL pragma_version()".into(), "25006"),
        ("INSTALL httpfs".into(), "25006"),
        ("BEGIN; DELETE FROM src.items; COMMIT".into(), "25006"),
    ];
    for (sql, code) in &cases {
        let (o, e, ok) = d.psql(&[sql]).await;
        assert!(!ok, "{sql} was accepted: {o}");
        assert!(e.contains(code), "{sql}: expected {code} in {e}");
        assert!(
            !o.contains("root:") && !e.contains("root:"),
            "{sql}: {o}{e}"
        );
        // Nothing of a refused message ran: not even its harmless part.
        assert!(!o.contains("--"), "{sql}: {o}");
    }
    assert!(!attached.exists() && !copied.exists());
    assert_eq!(d.rows("SELECT count(*) FROM src.items").await, before);
    let f_path = d.f.warehouse();
    let log = d.stop().await;
    assert!(log.contains("stopped cleanly"), "{log}");
    // The file itself, read after the daemon stopped: all rows, no new table.
    assert_eq!(
        crate::support::sql_on(&f_path, "SELECT count(*) FROM src.items"),
        vec![vec![ROWS.to_string()]]
    );
    assert_eq!(
        crate::support::sql_on(
            &f_path,
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'evil'"
        ),
        vec![vec!["0".to_string()]]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_psycopg_binds_on_the_server_and_types_come_back_right() {
    let mut d = PgDaemon::start().await;
    let v = d.script(&python(), "pg_psycopg.py", &[]).await;
    assert_eq!(v["row"][0], 7);
    assert_eq!(v["row"][1], "Person 7");
    assert_eq!(v["row"][2], "17.50");
    assert_eq!(v["row"][3], "2024-06-01T00:00:07");
    assert_eq!(v["row"][4]["city"], "Nairobi");
    assert_eq!(v["row"][5], true);
    assert_eq!(v["decimal"], true, "{v}");
    assert_eq!(v["datetime"], true, "{v}");
    assert_eq!(v["dict"], true, "{v}");
    assert_eq!(v["status_in_tx"], "INTRANS");
    assert_eq!(
        v["prepared"],
        serde_json::json!([[["Person 2"]], [["Person 3"]]])
    );
    assert_eq!(
        v["binary"],
        serde_json::json!([
            42,
            1.5,
            "2024-02-29",
            "2024-06-01T12:30:00.250000",
            "12.34",
            "x",
            true
        ])
    );
    assert_eq!(v["client_cursor"], 11);
    let more = serde_json::json!([
        "01234567-89ab-cdef-0123-456789abcdef",
        93600.0,
        "dead",
        [1, 2],
        {"a": 1},
        "12:34:56.500000",
        "123456789012345678901234567890",
        2,
        1.25
    ]);
    assert_eq!(v["more"]["text"], more, "{v}");
    assert_eq!(v["more"]["binary"], more, "{v}");
    // uuid, interval, bytea, json, json, time, numeric, int2, float4
    assert_eq!(
        v["more"]["oids"],
        serde_json::json!([2950, 1186, 17, 114, 114, 1083, 1700, 21, 700])
    );
    assert_eq!(v["errors"]["missing_table"][0], "42P01", "{v}");
    assert_eq!(v["errors"]["missing_column"][0], "42703", "{v}");
    assert_eq!(v["errors"]["write"][0], "25006", "{v}");
    assert_eq!(v["errors"]["drop_with_param"][0], "25006", "{v}");
    assert_eq!(v["status_after"], "IDLE");
    assert_eq!(v["cancel"], "57014", "{v}");
    assert!(v["cancel_secs"].as_f64().unwrap() < 10.0, "{v}");
    assert_eq!(v["after_cancel"], 1);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_sqlalchemy_inspects_schemas_tables_and_columns() {
    let mut d = PgDaemon::start().await;
    let v = d.script(&python(), "pg_sqlalchemy.py", &[]).await;
    let schemas: Vec<&str> = v["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        schemas.contains(&"src") && schemas.contains(&"conveyor"),
        "{v}"
    );
    assert_eq!(v["tables"], serde_json::json!(["items"]));
    assert!(
        v["conveyor_tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "runs"),
        "{v}"
    );
    let columns = v["columns"].as_array().unwrap();
    let col = |name: &str| {
        columns
            .iter()
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
    };
    assert_eq!(col("id")[1], "BIGINT");
    assert_eq!(col("amount")[1], "DOUBLE PRECISION");
    assert_eq!(col("updated_at")[1], "TIMESTAMP");
    assert_eq!(col("address")[1], "JSON");
    assert_eq!(v["has_table"], true);
    assert_eq!(v["has_missing"], false);
    assert_eq!(v["count"], ROWS - 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_node_postgres_runs_a_parameterised_query() {
    let mut d = PgDaemon::start().await;
    let v = d
        .script("node", "pg_node.js", &[("NODE_PATH", node_modules())])
        .await;
    assert_eq!(
        v["rows"][0][0], "3",
        "int8 comes back as text in node-postgres: {v}"
    );
    assert_eq!(v["rows"][0][1], "Person 3");
    assert_eq!(v["rows"][0][2], 13.5);
    assert_eq!(v["rows"][0][3], true);
    assert_eq!(v["rows"][0][4]["city"], "Nairobi");
    assert_eq!(v["rows"][1][1], "Person 5");
    assert_eq!(v["fields"][0], serde_json::json!(["id", 20]));
    assert_eq!(v["fields"][4], serde_json::json!(["address", 114]));
    assert!(
        v["version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 15.0"),
        "{v}"
    );
    assert_eq!(v["update"][0], "25006");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_refuses_a_startup_without_a_user_and_offers_no_tls_it_lacks() {
    let mut d = PgDaemon::start().await;
    let v = d.script(&python(), "pg_startup.py", &[]).await;
    assert_eq!(v["no_user"][0], "E", "{v}");
    assert_eq!(v["no_user"][1]["C"], "28000", "{v}");
    assert_eq!(v["ssl_answer"], "N");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgwire_serves_tls_when_configured() {
    let mut d = PgDaemon::start_with(true).await;
    let ca = d.f.path("ca.pem");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(client_script("pg_tls.py"))
        .arg("check")
        .args([d.port.to_string(), "ops".into(), PASSWORD.into()])
        .arg(&ca);
    let out = cmd.output().await.unwrap();
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}{e}\n{}", d.log());
    let v: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(v["ssl"], true, "{v}");
    assert_eq!(v["one"], 1);
    assert!(
        v["wrong"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{v}"
    );
    assert!(!o.contains(PASSWORD));
    // psql negotiates TLS too (sslmode=require refuses a plain answer).
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-At", "-c", "SELECT 1"])
        .arg(format!(
            "host=127.0.0.1 port={} user=ops dbname=warehouse sslmode=require",
            d.port
        ))
        .env("PGPASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    assert_eq!(text(&out).0, "1\n", "{:?}", text(&out));
    d.stop().await;
}
