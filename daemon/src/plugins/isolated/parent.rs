//! The daemon side of process isolation: a plugin source's [`Connector`]
//! whose plugin runs in a `conveyor plugin-host` child (`child.rs`), driven
//! over its stdin/stdout (`frame.rs`). To `sync.rs` it is a connector like
//! any other: batches and checkpoints arrive in order and go into the same
//! `WarehouseSink`, so rows and cursor still commit together — here, in
//! the daemon.
//!
//! When the child dies mid-read (a signal, `exit`, the memory limit), the
//! read fails with how it ended, by name; nothing after the last
//! checkpoint is committed. The next read (the next stream, or the next
//! run) starts a fresh child. A cancelled read asks the child to stop and
//! kills it if it has not within [`CANCEL_GRACE`].

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conveyor_config::PluginSourceConfig;
use conveyor_plugin_api::ffi::level;
use conveyor_plugin_api::host::Redact;
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, ErrorKind, Json, RecordBatch, RecordSink,
    StreamDescriptor,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::process::{Child, ChildStdin};

use super::exit;
use super::frame::{self, Kind};
use super::messages::{decode_batch, Failure, LogLine, Open, Opened, ReadRequest};

/// How long a cancelled read may take to wind down before its child is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// How long a child may go on after the daemon stopped taking its records.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Decoded events in flight between the pipe and the sink: a slow
/// warehouse slows the child down (the pipe fills, its writes block).
const CHANNEL_DEPTH: usize = 2;
/// Lines of the child's stderr kept for the message if it dies.
const LAST_WORDS: usize = 5;

/// What the pipe brought, decoded.
enum Event {
    Opened(Opened),
    Batch(RecordBatch),
    Checkpoint(Json),
    Done,
    Failed(ConnectorError),
    /// The child sent something the protocol does not allow.
    Broken(String),
}

/// What a source's plugin host is started with.
struct Spec {
    plugin: String,
    /// The `Open` message, serialised once. It holds the resolved secrets:
    /// it is only ever written to the child's stdin.
    open: Vec<u8>,
    redact: Redact,
    memory_limit: u64,
}

/// One running plugin host process.
struct Host {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    events: tokio::sync::mpsc::Receiver<Event>,
    last_words: Arc<Mutex<VecDeque<String>>>,
    stderr: Option<tokio::task::JoinHandle<()>>,
}

/// A plugin source's connector under `isolation = "process"`.
pub struct IsolatedConnector {
    spec: Spec,
    streams: Vec<StreamDescriptor>,
    host: tokio::sync::Mutex<Option<Host>>,
}

impl IsolatedConnector {
    /// Verifies the source's library here (found, pinned, a complete shared
    /// object with the plugin symbols — it is never mapped in the daemon),
    /// then starts a plugin host that loads it, opens it with the source's
    /// options and reports its streams.
    pub async fn open(cfg: &PluginSourceConfig) -> Result<IsolatedConnector, ConnectorError> {
        let cfg = cfg.clone();
        let spec = tokio::task::spawn_blocking(move || {
            let path = crate::plugins::find_library(&cfg.dirs, &cfg.plugin)?;
            let (image, sha256) =
                crate::plugins::verify(&path, &cfg.plugin, cfg.sha256.as_deref())?;
            let library = std::fs::canonicalize(image.path()).unwrap_or(path);
            drop(image);
            let (options, secrets) = crate::plugins::resolve_secrets(&cfg)?;
            let open = Open {
                library,
                sha256,
                plugin: cfg.plugin.clone(),
                options,
                secrets: secrets.clone(),
                memory_limit: cfg.memory_limit,
            };
            let open = serde_json::to_vec(&open)
                .map_err(|e| ConnectorError::new(ErrorKind::Host, e.to_string()))?;
            Ok::<_, ConnectorError>(Spec {
                plugin: cfg.plugin.clone(),
                open,
                redact: Redact::new(secrets),
                memory_limit: cfg.memory_limit,
            })
        })
        .await
        .map_err(|e| {
            ConnectorError::new(ErrorKind::Host, format!("verifying the plugin failed: {e}"))
        })??;
        let (host, opened) = start(&spec).await?;
        tracing::debug!(plugin = %opened.info.name, version = %opened.info.version,
            abi = %format!("{}.{}", opened.abi.0, opened.abi.1), "plugin host started");
        Ok(IsolatedConnector {
            spec,
            streams: opened.streams,
            host: tokio::sync::Mutex::new(Some(host)),
        })
    }
}

fn host_error(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::new(ErrorKind::Host, format!("{what}: {e}"))
}

/// The only variables of the daemon's environment a plugin host sees: a
/// search path, a home and temporary folder, the locale and time zone, and
/// whether to print backtraces.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "RUST_BACKTRACE",
];

/// Starts a plugin host for `spec` and waits until its plugin is open.
async fn start(spec: &Spec) -> Result<(Host, Opened), ConnectorError> {
    let exe = std::env::current_exe()
        .map_err(|e| host_error("cannot find the conveyor binary to run the plugin in", e))?;
    let mut child = tokio::process::Command::new(&exe)
        .arg("plugin-host")
        .arg("--parent")
        .arg(std::process::id().to_string())
        // The daemon's environment holds other sources' `env:` secrets
        // (and the SMTP password's); the plugin gets its own over the pipe
        // and, from the environment, only what a process needs to run.
        .env_clear()
        .envs(
            PASSED_ENV
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (k, v))),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A safety net: `Host`'s drop lets it close first (see there).
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| host_error(&format!("cannot start {} plugin-host", exe.display()), e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (tx, events) = tokio::sync::mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(pump(stdout, tx, spec.plugin.clone(), spec.redact.clone()));
    let last_words = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = tokio::spawn(relay_stderr(
        stderr,
        last_words.clone(),
        spec.plugin.clone(),
        spec.redact.clone(),
    ));
    let mut host = Host {
        child: Some(child),
        stdin: None,
        events,
        last_words,
        stderr: Some(stderr),
    };
    if frame::write_async(&mut stdin, Kind::Open, &spec.open)
        .await
        .is_err()
    {
        return Err(host.ended(spec).await);
    }
    host.stdin = Some(stdin);
    match host.events.recv().await {
        Some(Event::Opened(opened)) => Ok((host, opened)),
        Some(Event::Failed(e)) => Err(e),
        Some(Event::Broken(m)) => Err(host.killed(m).await),
        Some(_) => Err(host
            .killed(format!(
                "plugin `{}`: its host sent records before it was open",
                spec.plugin
            ))
            .await),
        None => Err(host.ended(spec).await),
    }
}

/// Reads frames from the child until its stdout closes: log lines go to
/// the log, the rest (decoded) to the connector.
async fn pump(
    mut stdout: tokio::process::ChildStdout,
    tx: tokio::sync::mpsc::Sender<Event>,
    plugin: String,
    redact: Redact,
) {
    let broken =
        |what: String| Event::Broken(format!("plugin `{plugin}`: its host process {what}"));
    loop {
        let frame = match frame::read_async(&mut stdout).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(broken(format!("broke the protocol: {e}"))).await;
                return;
            }
        };
        let json = |payload: &[u8]| serde_json::from_slice::<Json>(payload);
        let event = match frame.kind {
            Kind::Log => {
                if let Ok(line) = serde_json::from_slice::<LogLine>(&frame.payload) {
                    log_line(&plugin, line.level, &redact.apply(&line.message));
                }
                continue;
            }
            Kind::Batch => match decode_batch(frame.payload) {
                Ok(b) => Event::Batch(b),
                Err(e) => broken(format!("sent a batch that is not Arrow IPC: {e}")),
            },
            Kind::Checkpoint => match json(&frame.payload) {
                Ok(state) => Event::Checkpoint(state),
                Err(e) => broken(format!("sent a checkpoint that is not JSON: {e}")),
            },
            Kind::Opened => match serde_json::from_slice(&frame.payload) {
                Ok(o) => Event::Opened(o),
                Err(e) => broken(format!("sent a malformed catalog: {e}")),
            },
            Kind::Done => Event::Done,
            Kind::Error => match serde_json::from_slice::<Failure>(&frame.payload) {
                Ok(f) => {
                    let mut e = ConnectorError::from(f);
                    e.message = redact.apply(&e.message);
                    Event::Failed(e)
                }
                Err(e) => broken(format!("sent a malformed error: {e}")),
            },
            other => broken(format!(
                "sent a {other:?} message, which only the daemon sends"
            )),
        };
        let stop = matches!(event, Event::Broken(_));
        if tx.send(event).await.is_err() || stop {
            return;
        }
    }
}

/// A plugin log line into the daemon's log, tagged with the plugin's name
/// (as an in-process plugin's are).
fn log_line(plugin: &str, lvl: u32, text: &str) {
    match lvl {
        level::ERROR => tracing::error!(plugin, "{text}"),
        level::WARN => tracing::warn!(plugin, "{text}"),
        level::INFO => tracing::info!(plugin, "{text}"),
        level::DEBUG => tracing::debug!(plugin, "{text}"),
        _ => tracing::trace!(plugin, "{text}"),
    }
}

/// The longest piece of one stderr line read at a time.
const MAX_STDERR_LINE: u64 = 16 << 10;

/// The child's stderr (what the plugin prints, a Rust panic message, an
/// allocator's last words) into the log, scrubbed, keeping the last lines
/// for the message if it dies.
async fn relay_stderr(
    stderr: tokio::process::ChildStderr,
    last_words: Arc<Mutex<VecDeque<String>>>,
    plugin: String,
    redact: Redact,
) {
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // At most MAX_STDERR_LINE bytes at a time: a child that never writes
        // a newline must not make the daemon buffer without end (a longer
        // line arrives as several).
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let line = redact.apply(line);
        tracing::warn!(plugin = %plugin, "plugin host stderr: {line}");
        let mut tail = last_words.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == LAST_WORDS {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

impl Host {
    async fn send(&mut self, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => frame::write_async(stdin, kind, payload).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// The child's stdout closed: wait for it to end and say how it did.
    async fn ended(&mut self, spec: &Spec) -> ConnectorError {
        let Some(mut child) = self.child.take() else {
            return ConnectorError::new(
                ErrorKind::Plugin,
                format!("plugin `{}`: its host is gone", spec.plugin),
            );
        };
        let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) => status,
            // Closed its stdout but lives on: it is of no use any more.
            _ => {
                let _ = child.kill().await;
                match child.wait().await {
                    Ok(status) => status,
                    Err(e) => {
                        return host_error(
                            &format!("plugin `{}`: its host vanished", spec.plugin),
                            e,
                        )
                    }
                }
            }
        };
        // Its last lines on stderr arrive just after its end.
        if let Some(relay) = self.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), relay).await;
        }
        let last: Vec<String> = self
            .last_words
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        ConnectorError::new(
            ErrorKind::Plugin,
            exit::describe(&spec.plugin, status, spec.memory_limit, &last),
        )
    }

    /// Kills the child (it broke the protocol or would not stop); `why` is
    /// the read's error.
    async fn killed(&mut self, why: String) -> ConnectorError {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        ConnectorError::new(ErrorKind::Plugin, why)
    }
}

impl Drop for Host {
    /// Closing stdin asks the child to close its instance (the plugin's
    /// `close`) and exit; one that has not within a few seconds is killed.
    fn drop(&mut self) {
        self.stdin.take();
        let Some(mut child) = self.child.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(Duration::from_secs(5), child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.kill().await;
                    }
                });
            }
            Err(_) => {
                let _ = child.start_kill();
            }
        }
    }
}

/// How one read through the pipe ended.
enum Outcome {
    /// The child answered Done or Error (and lives on).
    Finished(Result<(), ConnectorError>),
    /// The child's stdout closed: it died.
    Ended,
    /// The child must be killed; the read fails with this.
    Kill(String),
}

/// Forwards one read's events into `sink` until the child finishes it.
async fn drive(
    host: &mut Host,
    spec: &Spec,
    sink: &mut dyn RecordSink,
    cancel: &CancelFlag,
) -> Outcome {
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cancel_sent = false;
    let mut sink_error: Option<ConnectorError> = None;
    let mut deadline: Option<(tokio::time::Instant, String)> = None;
    loop {
        let wait = async {
            match &deadline {
                Some((at, _)) => tokio::time::sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = host.events.recv() => {
                let delivered = match event {
                    None => return Outcome::Ended,
                    Some(Event::Done) => return Outcome::Finished(sink_error.map_or(Ok(()), Err)),
                    Some(Event::Failed(e)) => return Outcome::Finished(Err(sink_error.unwrap_or(e))),
                    Some(Event::Broken(m)) => return Outcome::Kill(m),
                    Some(Event::Opened(_)) => return Outcome::Kill(format!("plugin `{}`: its host opened twice", spec.plugin)),
                    // After a sink error the rest is drained, not delivered.
                    Some(_) if sink_error.is_some() => continue,
                    Some(Event::Batch(b)) => sink.batch(b).await,
                    Some(Event::Checkpoint(s)) => sink.checkpoint(s).await,
                };
                if let Err(e) = delivered {
                    // The plugin's next delivery fails, so it returns.
                    let _ = host.send(Kind::Stop, b"").await;
                    deadline = Some((
                        tokio::time::Instant::now() + STOP_GRACE,
                        format!("plugin `{}` went on after the daemon stopped taking its records ({e}); it was killed", spec.plugin),
                    ));
                    sink_error = Some(e);
                }
            }
            _ = poll.tick(), if !cancel_sent => {
                if cancel.is_cancelled() {
                    cancel_sent = true;
                    let _ = host.send(Kind::Cancel, b"").await;
                    if deadline.is_none() {
                        deadline = Some((
                            tokio::time::Instant::now() + CANCEL_GRACE,
                            format!("plugin `{}` did not stop within {} s of the shutdown; it was killed (rows after its last checkpoint are not committed)", spec.plugin, CANCEL_GRACE.as_secs()),
                        ));
                    }
                }
            }
            _ = wait => {
                let why = deadline.take().map(|(_, why)| why).unwrap_or_default();
                return Outcome::Kill(why);
            }
        }
    }
}

#[async_trait::async_trait]
impl Connector for IsolatedConnector {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.streams.clone()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let mut slot = self.host.lock().await;
        // The child died in an earlier read: this one gets a fresh one.
        if slot.is_none() {
            *slot = Some(start(&self.spec).await?.0);
        }
        let host = slot.as_mut().expect("just set");
        let request = serde_json::to_vec(&ReadRequest {
            stream: stream.to_string(),
            state,
        })
        .map_err(|e| host_error("cannot encode the read", e))?;
        let outcome = match host.send(Kind::Read, &request).await {
            Ok(()) => drive(host, &self.spec, sink, cancel).await,
            Err(_) => Outcome::Ended,
        };
        match outcome {
            Outcome::Finished(result) => result,
            Outcome::Ended => {
                let mut host = slot.take().expect("present");
                Err(host.ended(&self.spec).await)
            }
            Outcome::Kill(why) => {
                let mut host = slot.take().expect("present");
                Err(host.killed(why).await)
            }
        }
    }
}
