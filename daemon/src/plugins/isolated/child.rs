//! `conveyor plugin-host`: the child side of process isolation. The daemon
//! starts it (the same binary), sends it an `Open` frame on stdin, and it
//! loads and drives the plugin exactly as the daemon would in-process,
//! answering in frames on stdout (`frame.rs`). A plugin that segfaults,
//! aborts or runs out of memory takes only this process down.
//!
//! Before any plugin code runs it: moves the protocol to private
//! descriptors (close-on-exec) and points fd 0 at /dev/null and fd 1 at
//! stderr, so a plugin that prints cannot corrupt the frames; asks to be
//! killed if the daemon dies (Linux); and sets its own address-space limit
//! (`RLIMIT_AS`, the source's `memory_limit`) and no core dumps.

use std::fs::File;
use std::io::BufWriter;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use conveyor_plugin_api::host::{LogForward, PluginInstance, ReadEvent, Redact};
use conveyor_plugin_api::{CancelFlag, ConnectorError, ErrorKind};

use super::frame::{self, Kind};
use super::messages::{encode_batch, Failure, LogLine, Open, Opened, ReadRequest};
use crate::plugins::PluginError;

/// The frames going to the daemon: one writer shared by the read and any
/// plugin thread that logs, one whole frame at a time.
type Output = Arc<Mutex<BufWriter<File>>>;

fn send(out: &Output, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    frame::write(&mut *w, kind, payload)
}

fn send_json(out: &Output, kind: Kind, value: &impl serde::Serialize) -> std::io::Result<()> {
    send(out, kind, &serde_json::to_vec(value)?)
}

fn send_failure(out: &Output, e: &ConnectorError) {
    let _ = send_json(out, Kind::Error, &Failure::from(e));
}

/// Runs the host until the daemon closes the pipe. `parent` is the
/// daemon's pid, to notice it died before the death signal was armed.
pub fn run(parent: Option<i32>) -> ExitCode {
    let (mut input, output) = match private_stdio() {
        Ok(io) => io,
        Err(e) => {
            eprintln!("conveyor plugin-host: cannot set up its pipes: {e}");
            return ExitCode::from(crate::EXIT_FAILED);
        }
    };
    die_with_parent(parent);
    let out: Output = Arc::new(Mutex::new(BufWriter::with_capacity(1 << 16, output)));
    let open = match frame::read(&mut input) {
        Ok(Some(f)) if f.kind == Kind::Open => match serde_json::from_slice::<Open>(&f.payload) {
            Ok(open) => open,
            Err(e) => {
                eprintln!("conveyor plugin-host: a malformed open message: {e}");
                return ExitCode::from(crate::EXIT_FAILED);
            }
        },
        // Not started by a daemon (or it went away): nothing to do.
        _ => {
            eprintln!("conveyor plugin-host: expects to be started by the conveyor daemon");
            return ExitCode::from(crate::EXIT_CONFIG);
        }
    };
    limit_self(open.memory_limit);
    let instance = match open_instance(&open, &out) {
        Ok(i) => i,
        Err(e) => {
            send_failure(&out, &e);
            return ExitCode::SUCCESS;
        }
    };
    drop(open);

    let cancel = CancelFlag::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, rx) = std::sync::mpsc::channel::<ReadRequest>();
    {
        let (cancel, stop) = (cancel.clone(), stop.clone());
        std::thread::spawn(move || {
            // Until the daemon closes the pipe (or dies, or garbles it).
            while let Ok(Some(f)) = frame::read(&mut input) {
                match f.kind {
                    Kind::Read => {
                        let sent = serde_json::from_slice::<ReadRequest>(&f.payload)
                            .map(|r| requests.send(r).is_ok());
                        if !matches!(sent, Ok(true)) {
                            break;
                        }
                    }
                    Kind::Cancel => cancel.cancel(),
                    Kind::Stop => stop.store(true, Ordering::SeqCst),
                    _ => break,
                }
            }
            // Then whatever runs stops.
            cancel.cancel();
            stop.store(true, Ordering::SeqCst);
        });
    }
    while let Ok(request) = rx.recv() {
        // A Stop belongs to the read before this one (frames arrive in order).
        stop.store(false, Ordering::SeqCst);
        let mut broken: Option<ConnectorError> = None;
        let result = instance.read_blocking(
            &request.stream,
            request.state.as_ref(),
            &cancel,
            &mut |event| {
                if stop.load(Ordering::SeqCst) {
                    return false;
                }
                let sent = match event {
                    ReadEvent::Batch(b) => match encode_batch(&b) {
                        Ok(bytes) => send(&out, Kind::Batch, &bytes),
                        Err(e) => {
                            broken = Some(ConnectorError::new(
                                ErrorKind::Plugin,
                                format!(
                                    "plugin `{}`: a batch cannot be sent to the daemon: {e}",
                                    instance.library().info.name
                                ),
                            ));
                            return false;
                        }
                    },
                    ReadEvent::Checkpoint(s) => send_json(&out, Kind::Checkpoint, &s),
                };
                sent.is_ok()
            },
        );
        let sent = match (broken, result) {
            (Some(e), _) | (None, Err(e)) => send_json(&out, Kind::Error, &Failure::from(&e)),
            (None, Ok(())) => send(&out, Kind::Done, b""),
        };
        if sent.is_err() {
            break;
        }
    }
    // Closes the instance (the plugin's `close`) before exiting.
    drop(instance);
    ExitCode::SUCCESS
}

/// Loads the library the daemon verified (refusing it if its bytes
/// changed since: the SHA-256 is pinned to the daemon's), checks its name,
/// opens the instance and reports its catalog.
fn open_instance(open: &Open, out: &Output) -> Result<PluginInstance, ConnectorError> {
    let library = crate::plugins::load(&open.library, &open.plugin, Some(&open.sha256))?;
    if library.info.name != open.plugin {
        return Err(PluginError::WrongName {
            path: open.library.clone(),
            wanted: open.plugin.clone(),
            actual: library.info.name.clone(),
        }
        .into());
    }
    let forward: LogForward = {
        let out = out.clone();
        Arc::new(move |level, message| {
            let line = LogLine {
                level,
                message: message.to_string(),
            };
            let _ = send_json(&out, Kind::Log, &line);
        })
    };
    let redact = Redact::new(open.secrets.iter().cloned());
    let instance = PluginInstance::open_forwarding_logs(
        library.clone(),
        &open.options,
        redact,
        Some(forward),
    )?;
    let opened = Opened {
        info: library.info.clone(),
        abi: library.abi,
        streams: instance.streams()?,
    };
    send_json(out, Kind::Opened, &opened)
        .map_err(|e| ConnectorError::new(ErrorKind::Host, e.to_string()))?;
    Ok(instance)
}

/// The protocol's ends on descriptors of their own (close-on-exec, so a
/// process the plugin starts does not hold the daemon's pipe open), and
/// fds 0 and 1 taken away from the plugin: stdin reads nothing, stdout goes
/// to stderr (which the daemon logs).
#[cfg(unix)]
fn private_stdio() -> std::io::Result<(File, File)> {
    use rustix::io::fcntl_dupfd_cloexec;
    let input = File::from(fcntl_dupfd_cloexec(std::io::stdin(), 3)?);
    let output = File::from(fcntl_dupfd_cloexec(std::io::stdout(), 3)?);
    let null = File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    Ok((input, output))
}

#[cfg(not(unix))]
fn private_stdio() -> std::io::Result<(File, File)> {
    Err(std::io::Error::other(
        "process isolation needs a Unix system",
    ))
}

/// Linux: killed with the daemon (otherwise a plugin stuck in a loop would
/// outlive it). Elsewhere the closed pipe stops it at its next delivery.
fn die_with_parent(parent: Option<i32>) {
    #[cfg(target_os = "linux")]
    {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        let now = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
        if parent.is_some() && now != parent {
            std::process::exit(i32::from(crate::EXIT_FAILED));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
}

/// The source's memory limit on this whole process, and no core dumps (a
/// crashing plugin would otherwise leave one per run). The hard limits are
/// lowered too, so plugin code cannot lift them again.
fn limit_self(memory_limit: u64) {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let lowered = |resource, n: u64| {
            // Never above a hard limit someone already set (raising it needs privileges).
            let n = getrlimit(resource).maximum.map_or(n, |hard| hard.min(n));
            setrlimit(
                resource,
                Rlimit {
                    current: Some(n),
                    maximum: Some(n),
                },
            )
        };
        if let Err(e) = lowered(Resource::As, memory_limit) {
            eprintln!("conveyor plugin-host: cannot set the memory limit: {e}");
        }
        let _ = lowered(Resource::Core, 0);
    }
    #[cfg(not(unix))]
    let _ = memory_limit;
}
