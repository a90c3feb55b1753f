//! Shared fixtures: a mock API, a config file pointing at it, the binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use conveyor_mocks::rest::{RestMock, RestMockConfig, RestMockHandle};
use conveyor_mocks::server::MockServer;

pub const BIN: &str = env!("CARGO_BIN_EXE_conveyor");

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub server: MockServer,
    pub mock: RestMockHandle,
}

impl Fixture {
    pub async fn new(cfg: RestMockConfig) -> Fixture {
        let (server, mock) = RestMock::new(cfg).start().await;
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            server,
            mock,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn warehouse(&self) -> PathBuf {
        self.path("wh.duckdb")
    }

    /// Writes `conveyor.toml` with one REST source `src` (stream `items`)
    /// against the mock; `source_extra` and `stream_extra` are spliced in.
    pub fn write_config(&self, source_extra: &str, stream_extra: &str) -> PathBuf {
        let text = format!(
            r#"[warehouse]
path = "wh.duckdb"

[server]
listen = "127.0.0.1:{port}"

[sources.src]
type = "rest"
base_url = "{base}"
backoff_base_ms = 10
pagination = {{ type = "next_url" }}
{source_extra}

[[sources.src.streams]]
name = "items"
path = "/items"
primary_key = "id"
records = "data"
incremental = {{ cursor_field = "updated_at", param = "updated_since" }}
{stream_extra}
"#,
            port = free_port(),
            base = self.server.base_url()
        );
        let p = self.path("conveyor.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn config(&self) -> PathBuf {
        self.path("conveyor.toml")
    }

    pub async fn conveyor(&self, args: &[&str]) -> Output {
        self.conveyor_env(args, &[]).await
    }

    pub async fn conveyor_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().await.unwrap()
    }

    /// Runs SQL on the warehouse file directly (read-only).
    pub fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        sql_on(&self.warehouse(), sql)
    }

    pub fn scalar(&self, sql: &str) -> String {
        self.sql(sql).remove(0).remove(0)
    }
}

pub fn sql_on(path: &Path, sql: &str) -> Vec<Vec<String>> {
    let cfg = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .unwrap();
    let conn = duckdb::Connection::open_with_flags(path, cfg).unwrap();
    // Every value as text, so tests compare strings.
    let mut st = conn
        .prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let n = r.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    duckdb::types::ValueRef::Null => "NULL".to_string(),
                    duckdb::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => panic!("expected text, got {other:?}"),
                })
                .collect(),
        );
    }
    out
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A child process killed and reaped when the test lets go of it, so a
/// failing assertion never leaves a daemon running (tokio's children use
/// `kill_on_drop` instead).
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
