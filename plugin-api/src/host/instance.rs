//! One open plugin instance, driven with blocking calls: `open`, `streams`,
//! `read` (its sink callbacks turn the plugin's output into events), `close`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use arrow_array::ffi_stream::RecordBatchStreamReader;

use super::library::{take_bytes, take_error, PluginLibrary};
use super::log::{LogContext, LogForward};
use super::Redact;
use crate::ffi::{
    FFI_ArrowArrayStream, FfiBytes, FfiError, FfiSink, HostCallbacks, InstancePtr, STATUS_ERROR,
    STATUS_OK,
};
use crate::{CancelFlag, ConnectorError, ErrorKind, Json, RecordBatch, StreamDescriptor};

/// What a plugin's read produced, in order.
#[derive(Debug)]
pub enum ReadEvent {
    Batch(RecordBatch),
    Checkpoint(Json),
}

/// An open instance. Calls into it are serialised; it is closed on drop.
pub struct PluginInstance {
    library: Arc<PluginLibrary>,
    ptr: InstancePtr,
    /// Serialises calls: the ABI lets a plugin assume one call at a time.
    lock: Mutex<()>,
    redact: Redact,
    // The plugin holds pointers to these until `close` returns; boxed so
    // they do not move, dropped after `close` (see `Drop`).
    _callbacks: Box<HostCallbacks>,
    _log: Box<LogContext>,
}

// SAFETY: the ABI requires instances to be usable from any thread (one call
// at a time, which `lock` enforces); the boxed callbacks are read-only.
unsafe impl Send for PluginInstance {}
// SAFETY: every call into the instance takes `lock` first.
unsafe impl Sync for PluginInstance {}

impl PluginInstance {
    /// Opens an instance with `options` (the source's options as JSON);
    /// `redact` holds the secrets among them, scrubbed from all it says.
    pub fn open(
        library: Arc<PluginLibrary>,
        options: &Json,
        redact: Redact,
    ) -> Result<PluginInstance, ConnectorError> {
        Self::open_forwarding_logs(library, options, redact, None)
    }

    /// As [`open`](Self::open), with the plugin's log lines handed to
    /// `forward` (when given) instead of this process's tracing.
    pub fn open_forwarding_logs(
        library: Arc<PluginLibrary>,
        options: &Json,
        redact: Redact,
        forward: Option<LogForward>,
    ) -> Result<PluginInstance, ConnectorError> {
        let log = Box::new(LogContext {
            plugin: library.info.name.clone(),
            redact: redact.clone(),
            forward,
        });
        let callbacks = Box::new(HostCallbacks {
            size: std::mem::size_of::<HostCallbacks>(),
            host_data: &*log as *const LogContext as *mut c_void,
            log: Some(super::log::host_log),
        });
        let config = serde_json::to_vec(options)
            .map_err(|e| ConnectorError::new(ErrorKind::Config, e.to_string()))?;
        let open = library.functions.open.expect("checked at load");
        let mut ptr: InstancePtr = std::ptr::null_mut();
        let mut error = FfiError::empty();
        // SAFETY: `config` is valid for its length, `callbacks` outlives the
        // instance (owned by it below), and the out-slots are valid.
        let status = unsafe {
            open(
                config.as_ptr(),
                config.len(),
                &*callbacks,
                &mut ptr,
                &mut error,
            )
        };
        if status != STATUS_OK || ptr.is_null() {
            return Err(plugin_error(&library, &redact, "open", status, &mut error));
        }
        Ok(PluginInstance {
            library,
            ptr,
            lock: Mutex::new(()),
            redact,
            _callbacks: callbacks,
            _log: log,
        })
    }

    pub fn library(&self) -> &PluginLibrary {
        &self.library
    }

    /// The plugin's stream catalog.
    pub fn streams(&self) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let streams = self.library.functions.streams.expect("checked at load");
        let mut out = FfiBytes::empty();
        let mut error = FfiError::empty();
        // SAFETY: `ptr` is this live instance; the out-slots are valid.
        let status = unsafe { streams(self.ptr, &mut out, &mut error) };
        if status != STATUS_OK {
            return Err(plugin_error(
                &self.library,
                &self.redact,
                "streams",
                status,
                &mut error,
            ));
        }
        // SAFETY: the plugin filled `out` on success.
        let json = unsafe { take_bytes(&mut out) };
        serde_json::from_slice(&json).map_err(|e| {
            ConnectorError::new(
                ErrorKind::Plugin,
                format!(
                    "plugin `{}`: invalid stream catalog: {e}",
                    self.library.info.name
                ),
            )
        })
    }

    /// Reads `stream` on the calling thread, handing each event to `on_event`
    /// (which returns `false` to stop the read).
    pub fn read_blocking(
        &self,
        stream: &str,
        state: Option<&Json>,
        cancel: &CancelFlag,
        on_event: &mut dyn FnMut(ReadEvent) -> bool,
    ) -> Result<(), ConnectorError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let state = state
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ConnectorError::new(ErrorKind::Host, e.to_string()))?;
        let mut ctx = SinkContext {
            on_event,
            cancel: cancel.clone(),
            protocol_error: None,
        };
        let sink = FfiSink {
            size: std::mem::size_of::<FfiSink>(),
            sink_data: &mut ctx as *mut SinkContext as *mut c_void,
            batches: Some(sink_batches),
            checkpoint: Some(sink_checkpoint),
            is_cancelled: Some(sink_is_cancelled),
        };
        let read = self.library.functions.read.expect("checked at load");
        let (state_ptr, state_len) = match &state {
            Some(s) => (s.as_ptr(), s.len()),
            None => (std::ptr::null(), 0),
        };
        let mut error = FfiError::empty();
        // SAFETY: `ptr` is this live instance; every buffer is valid for its
        // length during the call; `sink` and `ctx` outlive the call.
        let status = unsafe {
            read(
                self.ptr,
                stream.as_ptr(),
                stream.len(),
                state_ptr,
                state_len,
                &sink,
                &mut error,
            )
        };
        if let Some(message) = ctx.protocol_error.take() {
            if status != STATUS_OK {
                // SAFETY: the plugin filled `error`; release it, ours is more precise.
                let _ = unsafe { take_error(&mut error) };
            }
            let message = self.redact.apply(&message);
            return Err(ConnectorError::new(
                ErrorKind::Plugin,
                format!("plugin `{}`: {message}", self.library.info.name),
            ));
        }
        if status != STATUS_OK {
            return Err(plugin_error(
                &self.library,
                &self.redact,
                "read",
                status,
                &mut error,
            ));
        }
        Ok(())
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        let close = self.library.functions.close.expect("checked at load");
        // SAFETY: `ptr` is live and closed exactly once, here; the callbacks
        // it points to are dropped only after this returns.
        unsafe { close(self.ptr) };
    }
}

/// A failed plugin call as a `ConnectorError` naming the plugin.
fn plugin_error(
    library: &PluginLibrary,
    redact: &Redact,
    call: &str,
    status: i32,
    error: &mut FfiError,
) -> ConnectorError {
    if status == STATUS_OK {
        return ConnectorError::new(
            ErrorKind::Plugin,
            format!(
                "plugin `{}`: {call} returned no instance",
                library.info.name
            ),
        );
    }
    // SAFETY: the plugin filled `error` on failure (or left it empty).
    let (kind, message) = unsafe { take_error(error) };
    ConnectorError::new(
        kind,
        format!("plugin `{}`: {}", library.info.name, redact.apply(&message)),
    )
}

/// The host side of one `read`'s sink.
struct SinkContext<'a> {
    on_event: &'a mut dyn FnMut(ReadEvent) -> bool,
    cancel: CancelFlag,
    /// The plugin sent something the ABI does not allow.
    protocol_error: Option<String>,
}

/// # Safety
/// `data` must be the `SinkContext` of the `read` in progress.
unsafe fn context<'a>(data: *mut c_void) -> &'a mut SinkContext<'a> {
    // SAFETY: per the caller.
    unsafe { &mut *(data as *mut SinkContext<'a>) }
}

/// `FfiSink::batches`.
///
/// # Safety
/// `data` must be the current read's `SinkContext`; `stream` null or a valid
/// Arrow C stream, which this takes ownership of.
unsafe extern "C" fn sink_batches(data: *mut c_void, stream: *mut FFI_ArrowArrayStream) -> i32 {
    // SAFETY: the plugin passes back the sink data of the current read.
    let ctx = unsafe { context(data) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if stream.is_null() {
            ctx.protocol_error = Some("sent a null record stream".into());
            return STATUS_ERROR;
        }
        // SAFETY: a non-null stream is a valid `FFI_ArrowArrayStream`; it is
        // moved out (the plugin's copy is left released) and dropping the
        // reader calls the plugin's own release callback.
        let reader = match unsafe { RecordBatchStreamReader::from_raw(stream) } {
            Ok(r) => r,
            Err(e) => {
                ctx.protocol_error = Some(format!("sent a broken Arrow stream: {e}"));
                return STATUS_ERROR;
            }
        };
        for batch in reader {
            match batch {
                Ok(b) => {
                    if !(ctx.on_event)(ReadEvent::Batch(b)) {
                        return STATUS_ERROR;
                    }
                }
                Err(e) => {
                    ctx.protocol_error = Some(format!("sent a broken Arrow stream: {e}"));
                    return STATUS_ERROR;
                }
            }
        }
        STATUS_OK
    }));
    outcome.unwrap_or(STATUS_ERROR)
}

/// `FfiSink::checkpoint`.
///
/// # Safety
/// `data` must be the current read's `SinkContext`; `state` null or valid for `len` bytes.
unsafe extern "C" fn sink_checkpoint(data: *mut c_void, state: *const u8, len: usize) -> i32 {
    // SAFETY: the plugin passes back the sink data of the current read.
    let ctx = unsafe { context(data) };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let raw: &[u8] = if state.is_null() {
            &[]
        } else {
            // SAFETY: the plugin guarantees `len` readable bytes for the call.
            unsafe { std::slice::from_raw_parts(state, len) }
        };
        match serde_json::from_slice::<Json>(raw) {
            Ok(state) => {
                if (ctx.on_event)(ReadEvent::Checkpoint(state)) {
                    STATUS_OK
                } else {
                    STATUS_ERROR
                }
            }
            Err(e) => {
                ctx.protocol_error = Some(format!("sent a checkpoint that is not JSON: {e}"));
                STATUS_ERROR
            }
        }
    }));
    outcome.unwrap_or(STATUS_ERROR)
}

/// `FfiSink::is_cancelled`.
///
/// # Safety
/// `data` must be the current read's `SinkContext`.
unsafe extern "C" fn sink_is_cancelled(data: *mut c_void) -> u8 {
    // SAFETY: the plugin passes back the sink data of the current read.
    let ctx = unsafe { context(data) };
    ctx.cancel.is_cancelled() as u8
}
