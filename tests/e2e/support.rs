//! Shared fixtures: a mock API, a config file pointing at it, the binary;
//! ports no other test takes; long-running children stopped on drop, with
//! the spawn / poll until ready / SIGTERM / exit status helpers; the daemon
//! run in-process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{kill_process, Pid};

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

/// A TCP port on 127.0.0.1 that no other e2e test hands out while this
/// test process lives, and that nothing held when it was handed out.
///
/// Binding port 0 and dropping the listener (what this used to do) races:
/// nextest runs tests in parallel processes, and another one binding port 0
/// — a mock server, aiosmtpd, an outgoing connection — can be given the
/// same number before our daemon binds it. So instead:
///
/// - ports come from [`PORTS`], below Linux's ephemeral range (32768–60999
///   by default), where the kernel never puts `bind(0)` or outgoing
///   connections: within it only this allocator hands out numbers;
/// - each port is claimed with an exclusive `flock` on
///   `$TMPDIR/conveyor-e2e-ports/PORT.lock`, kept open in [`CLAIMED`] until
///   the process exits. A lock, not a marker file made with `create_new`:
///   the kernel drops it when the process dies, however it dies, so a
///   killed test leaks no ports. Another process (or thread) asking
///   meanwhile gets `WouldBlock` and moves on to the next port;
/// - a claimed port must also be bindable now (a plain bind, without
///   `SO_REUSEADDR`, so a port with connections of a previous test still
///   in TIME_WAIT is skipped too; the daemon, tokio and aiosmtpd set
///   `SO_REUSEADDR`, so what passes this check they can bind).
///
/// A daemon therefore never meets "address in use" from another test; no
/// retry is needed (and `Daemon::ready_*` shows the daemon's log if it
/// ever exits instead of getting ready). The port is not held open, so a
/// test can hand it to a server it starts later (aiosmtpd) or use it as
/// "nothing listens here".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("conveyor-e2e-ports");
    std::fs::create_dir_all(&dir).unwrap();
    let span = u32::from(PORTS.end - PORTS.start);
    // Processes start at different places (by pid), so they rarely contend.
    let first = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = first.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = PORTS.start + u16::try_from(n).unwrap();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
            .unwrap();
        if lock.try_lock().is_err() {
            continue; // another test process (or thread) has it
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something outside the suite, or TIME_WAIT; the lock goes with `lock`
        }
        CLAIMED.lock().unwrap().push(lock);
        return port;
    }
    panic!("no free port in {PORTS:?}");
}

/// Where [`free_port`] allocates: below the kernel's ephemeral ports.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The lock files of the ports this process claimed, held until it exits.
static CLAIMED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A long-running child process — `conveyor run`, `conveyor demo --serve`,
/// a capture server, a browser script — stopped when the test lets go of
/// it, so a failing assertion never leaves one running: on drop it gets
/// SIGTERM, [`DROP_GRACE`] to exit, then SIGKILL, and is reaped.
///
/// The lifecycle every daemon test shares: [`Daemon::spawn`] (or
/// [`Daemon::spawn_logged`], stderr to a file shown when something goes
/// wrong), [`Daemon::ready`] to poll until it serves (failing at once, with
/// its log, if it exits instead), [`Daemon::terminate`] for tests that
/// assert how it stops. Each waiting method has a `_blocking` twin for
/// plain `#[test]`s; async tests use the async ones so the runtime (and the
/// mock servers on it) keeps running while they wait.
pub struct Daemon {
    child: Child,
    what: String,
    log: Option<PathBuf>,
}

/// How long a dropped [`Daemon`] has between SIGTERM and SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How long [`Daemon::terminate`] waits for the exit.
const STOP_WITHIN: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

impl Daemon {
    /// Spawns `cmd` (its stdio as the caller set it up).
    pub fn spawn(cmd: &mut Command) -> Daemon {
        Daemon::try_spawn(cmd).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
    }

    /// [`Daemon::spawn`], for a caller with its own word on a failure.
    pub fn try_spawn(cmd: &mut Command) -> std::io::Result<Daemon> {
        Ok(Daemon {
            child: cmd.spawn()?,
            what: format!("{cmd:?}"),
            log: None,
        })
    }

    /// Spawns `cmd` with its stderr written to `log` (created), which
    /// [`Daemon::log`] reads and failures print.
    pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Daemon {
        cmd.stderr(std::fs::File::create(log).unwrap());
        let mut d = Daemon::spawn(cmd);
        d.log = Some(log.to_path_buf());
        d
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, e.g. to take a piped stdout or stdin.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What it wrote to its log so far ("" without one).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn alive(&mut self) -> bool {
        self.exited().is_none()
    }

    /// Sends `sig`; it must still be running (a reaped pid may be reused).
    pub fn signal(&mut self, sig: Signal) {
        assert!(
            self.alive(),
            "{} exited already:\n{}",
            self.what,
            self.log()
        );
        kill_process(self.pid(), sig).unwrap();
    }

    fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    /// Polls `probe` until it holds; panics with the log after `timeout`,
    /// or at once if the process exits first.
    pub async fn ready(
        &mut self,
        timeout: Duration,
        what: &str,
        mut probe: impl AsyncFnMut() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if probe().await {
                return;
            }
            self.still_waiting(deadline, what);
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Daemon::ready`] for plain `#[test]`s.
    pub fn ready_blocking(
        &mut self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !probe() {
            self.still_waiting(deadline, what);
            std::thread::sleep(POLL);
        }
    }

    fn still_waiting(&mut self, deadline: Instant, what: &str) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}) before {what}:\n{}",
                self.what,
                self.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} from {}:\n{}",
            self.what,
            self.log()
        );
    }

    /// Waits for it to exit by itself, for at most `timeout`.
    pub async fn exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            self.still_running(deadline);
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`Daemon::exit_within`] for plain `#[test]`s.
    pub fn exit_within_blocking(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            self.still_running(deadline);
            std::thread::sleep(POLL);
        }
    }

    fn still_running(&self, deadline: Instant) {
        assert!(
            Instant::now() < deadline,
            "{} did not exit in time:\n{}",
            self.what,
            self.log()
        );
    }

    /// SIGTERM, as a service manager stops it, then its exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.stop_with(Signal::TERM).await
    }

    /// [`Daemon::terminate`] for plain `#[test]`s.
    pub fn terminate_blocking(&mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        self.exit_within_blocking(STOP_WITHIN)
    }

    /// `sig` (SIGTERM, SIGINT), then its exit status.
    pub async fn stop_with(&mut self, sig: Signal) -> ExitStatus {
        self.signal(sig);
        self.exit_within(STOP_WITHIN).await
    }

    /// SIGKILL (unless it exited already), then its exit status.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        let _ = kill_process(self.pid(), Signal::KILL);
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return; // exited and reaped (or not ours to wait for)
        }
        let _ = kill_process(self.pid(), Signal::TERM);
        let deadline = Instant::now() + DROP_GRACE;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How often [`wait_until`] and [`holds_within`] ask: their checks often
/// run the CLI, a process each time.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Polls `check` until it holds, for at most `timeout`; panics naming `what`.
pub async fn wait_until(timeout: Duration, what: &str, check: impl AsyncFnMut() -> bool) {
    assert!(
        holds_within(timeout, check).await,
        "timed out waiting for {what}"
    );
}

/// Polls `check` until it holds, for at most `timeout`: whether it did (for
/// tests that print what they saw when it did not).
#[must_use]
pub async fn holds_within(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// [`wait_until`] for plain `#[test]`s.
pub fn wait_until_blocking(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(CHECK_EVERY);
    }
}

/// Whether something accepts TCP connections on `addr` (a probe for
/// [`Daemon::ready`]).
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// The daemon in this process: `conveyor::run_daemon` on a
/// thread with its own multi-threaded runtime (as the binary's `main` runs
/// it), stopped by the shutdown future it was given — a oneshot channel —
/// instead of a signal. For tests of what the daemon does, not of how the
/// process behaves (signals, exit codes and logs stay with [`Daemon`]).
/// Dropped without [`InProcess::stop`], it is asked to stop and given
/// [`DROP_GRACE`].
pub struct InProcess {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<anyhow::Result<()>>,
    result: std::cell::OnceCell<Result<(), String>>,
    pub config: conveyor_config::Config,
}

impl InProcess {
    /// Loads `config` (as `conveyor run --config` does, secrets resolved)
    /// and starts the daemon on it.
    pub fn start(config: &Path) -> InProcess {
        let config = conveyor_config::load(config).unwrap_or_else(|e| panic!("{e}"));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let (finished, done) = std::sync::mpsc::channel();
        let daemon_config = config.clone();
        std::thread::Builder::new()
            .name("in-process daemon".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let result = runtime.block_on(conveyor::run_daemon(daemon_config, async move {
                    let _ = stop.await;
                }));
                // What the daemon left running ends with its runtime, before
                // the result says it stopped.
                runtime.shutdown_timeout(Duration::from_secs(10));
                let _ = finished.send(result);
            })
            .unwrap();
        InProcess {
            shutdown: Some(shutdown),
            done,
            result: std::cell::OnceCell::new(),
            config,
        }
    }

    /// Whether it stopped by itself (an error, e.g. the listen address
    /// taken), and how.
    pub fn exited(&self) -> Option<Result<(), String>> {
        if let Some(r) = self.result.get() {
            return Some(r.clone());
        }
        let r = match self.done.try_recv() {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(std::sync::mpsc::TryRecvError::Empty) => return None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err("the daemon thread panicked".into())
            }
        };
        Some(self.result.get_or_init(|| r).clone())
    }

    /// `POST /v1/query` on its endpoint with the token from its token file,
    /// as the CLI asks a running daemon: the rows, or `None` while it cannot
    /// answer (not up yet, or the SQL refused — e.g. a table not synced yet).
    pub async fn query(&self, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        let server = &self.config.server;
        let token = std::fs::read_to_string(&server.token_file).ok()?;
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/query", server.listen))
            .bearer_auth(token.trim())
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let body: serde_json::Value = r.json().await.ok()?;
        let rows = body["rows"].as_array()?;
        Some(
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|cells| cells.iter().map(|c| c.as_str().map(String::from)).collect())
                        .unwrap_or_default()
                })
                .collect(),
        )
    }

    /// Polls `probe` until it holds; panics after `timeout`, or at once if
    /// the daemon returns first.
    pub async fn ready(&self, timeout: Duration, what: &str, mut probe: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !probe().await {
            if let Some(r) = self.exited() {
                panic!("the in-process daemon returned {r:?} before {what}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Resolves the shutdown future, then waits at most `timeout` for
    /// `run_daemon` to return; its result.
    pub async fn stop(mut self, timeout: Duration) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.exited() {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "run_daemon did not return within {timeout:?} of the shutdown"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
            // Not joined past the grace: a daemon that hangs is left to the
            // end of the test process rather than hanging the test.
            let _ = self.done.recv_timeout(DROP_GRACE);
        }
    }
}
