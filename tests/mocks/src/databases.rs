//! Real database servers for the database-source tests: Debian's PostgreSQL
//! and MariaDB started by `scripts/test-databases` on free loopback ports.
//!
//! `scripts/test` starts one pair per run and exports their admin URLs
//! (`CONVEYOR_TEST_POSTGRES`, `CONVEYOR_TEST_MARIADB`); each test then gets
//! a database and a login role of its own, so tests run in parallel without
//! seeing each other. Run alone, a test starts a private pair that its
//! [`TestServers`] stops on drop. Seeding and inspection go through the
//! servers' own clients (`psql`, `mariadb`), not the code under test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The admin endpoints of a Postgres and a MariaDB server.
pub struct TestServers {
    postgres: url::Url,
    mariadb: url::Url,
    /// The certificate the Postgres server presents for TLS (self-signed,
    /// for `localhost` and 127.0.0.1): a client's CA file.
    pub postgres_ca: PathBuf,
    /// A private pair this value started (and stops on drop).
    private: Option<PathBuf>,
}

/// Which server a [`TestDatabase`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
}

/// A database and a role that owns it, with a password of its own.
pub struct TestDatabase {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-databases")
}

impl TestServers {
    /// The run's shared servers, or a private pair when none is exported.
    pub fn start() -> TestServers {
        if let (Ok(pg), Ok(ca), Ok(my)) = (
            std::env::var("CONVEYOR_TEST_POSTGRES"),
            std::env::var("CONVEYOR_TEST_POSTGRES_CA"),
            std::env::var("CONVEYOR_TEST_MARIADB"),
        ) {
            return TestServers {
                postgres: url::Url::parse(&pg).expect("CONVEYOR_TEST_POSTGRES is a URL"),
                postgres_ca: PathBuf::from(ca),
                mariadb: url::Url::parse(&my).expect("CONVEYOR_TEST_MARIADB is a URL"),
                private: None,
            };
        }
        let dir = std::env::temp_dir().join(format!(
            "conveyor-test-db-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/test-databases");
        assert!(
            out.status.success(),
            "scripts/test-databases start failed (is scripts/setup-test-tools run?)"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_string()
        };
        let url = |key: &str| url::Url::parse(&get(key)).expect("a URL");
        TestServers {
            postgres: url("CONVEYOR_TEST_POSTGRES"),
            postgres_ca: PathBuf::from(get("CONVEYOR_TEST_POSTGRES_CA")),
            mariadb: url("CONVEYOR_TEST_MARIADB"),
            private: Some(dir),
        }
    }

    /// A fresh database on the Postgres server.
    pub fn postgres(&self) -> TestDatabase {
        let db = TestDatabase::fresh(Engine::Postgres, &self.postgres);
        admin_sql(
            Engine::Postgres,
            &self.postgres,
            &format!(
                "CREATE ROLE {u} LOGIN PASSWORD '{p}'; CREATE DATABASE {d} OWNER {u};",
                u = db.user,
                p = db.password,
                d = db.name
            ),
        );
        db
    }

    /// A fresh database on the MariaDB server.
    pub fn mariadb(&self) -> TestDatabase {
        let db = TestDatabase::fresh(Engine::MariaDb, &self.mariadb);
        admin_sql(
            Engine::MariaDb,
            &self.mariadb,
            &format!(
                "CREATE DATABASE {d}; CREATE USER '{u}'@'127.0.0.1' IDENTIFIED BY '{p}'; \
                 GRANT ALL ON {d}.* TO '{u}'@'127.0.0.1';",
                u = db.user,
                p = db.password,
                d = db.name
            ),
        );
        db
    }
}

impl Drop for TestServers {
    fn drop(&mut self) {
        if let Some(dir) = &self.private {
            let _ = Command::new(script()).arg("stop").arg(dir).status();
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    fn fresh(engine: Engine, admin: &url::Url) -> TestDatabase {
        // Unique across the parallel test processes of one run.
        let tag = format!(
            "{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        TestDatabase {
            engine,
            host: admin.host_str().expect("a host").to_string(),
            port: admin.port().expect("a port"),
            name: format!("t_{tag}"),
            user: format!("u_{tag}"),
            password: format!("pw-{}-{}", rand_suffix(), rand_suffix()),
        }
    }

    /// The URL a Conveyor config names (no password: that goes by secret).
    pub fn url(&self) -> String {
        let scheme = match self.engine {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mysql",
        };
        format!("{scheme}://{}@{}:{}/{}", self.user, self.host, self.port, self.name)
    }

    /// Runs `sql` as the database's owner through the server's own client;
    /// returns what it printed (tab-separated, no headers). Panics on error.
    pub fn sql(&self, sql: &str) -> String {
        let mut cmd = match self.engine {
            Engine::Postgres => {
                let mut c = Command::new("psql");
                c.args(["-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
                    .args(["-h", &self.host, "-p", &self.port.to_string()])
                    .args(["-U", &self.user, "-d", &self.name])
                    .env("PGPASSWORD", &self.password);
                c
            }
            Engine::MariaDb => {
                let mut c = Command::new("mariadb");
                c.args(["--no-defaults", "-N", "-B"])
                    .args(["-h", &self.host, "-P", &self.port.to_string()])
                    .args(["-u", &self.user, &self.name])
                    .env("MYSQL_PWD", &self.password);
                c
            }
        };
        run_client(&mut cmd, sql)
    }
}

fn admin_sql(engine: Engine, admin: &url::Url, sql: &str) {
    let host = admin.host_str().expect("a host").to_string();
    let port = admin.port().expect("a port").to_string();
    let mut cmd = match engine {
        Engine::Postgres => {
            let mut c = Command::new("psql");
            c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", &host, "-p", &port, "-U", admin.username(), "-d", "postgres"])
                .env("PGPASSWORD", admin.password().unwrap_or_default());
            c
        }
        Engine::MariaDb => {
            let mut c = Command::new("mariadb");
            c.args(["--no-defaults", "-N", "-B"])
                .args(["-h", &host, "-P", &port, "-u", admin.username()])
                .env("MYSQL_PWD", admin.password().unwrap_or_default());
            c
        }
    };
    run_client(&mut cmd, sql);
}

fn run_client(cmd: &mut Command, sql: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the database client (scripts/setup-test-tools installs it)");
    child.stdin.take().expect("stdin").write_all(sql.as_bytes()).expect("write SQL");
    let out = child.wait_with_output().expect("client output");
    assert!(out.status.success(), "SQL failed: {}\n{sql}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{:x}", nanos ^ std::process::id().rotate_left(16))
}
