//! The host's logging callback: plugin messages into the host's tracing,
//! tagged with the plugin's name — or, in a plugin host process, handed to
//! a forwarder that sends them on to the daemon.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::level;

/// Where an instance's log lines go instead of this process's tracing:
/// `(level, line)`, the line already scrubbed; called from any thread.
pub type LogForward = std::sync::Arc<dyn Fn(u32, &str) + Send + Sync>;

/// What the log callback's `host_data` points to.
pub(crate) struct LogContext {
    pub plugin: String,
    /// The source's secrets, scrubbed from every line.
    pub redact: super::Redact,
    pub forward: Option<LogForward>,
}

/// `HostCallbacks::log`.
///
/// # Safety
/// `data` must be the instance's `LogContext` (alive until `close` returns)
/// and `message` valid for `len` bytes.
pub(crate) unsafe extern "C" fn host_log(
    data: *mut c_void,
    lvl: u32,
    message: *const u8,
    len: usize,
) {
    if data.is_null() || message.is_null() {
        return;
    }
    // A broken subscriber must not unwind into the plugin.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the `LogContext` the instance owns, alive until
        // `close` returns, which is as long as the plugin may call this.
        let ctx = unsafe { &*(data as *const LogContext) };
        // SAFETY: the plugin passes `len` readable bytes for the call.
        let text = ctx.redact.apply(&String::from_utf8_lossy(unsafe {
            std::slice::from_raw_parts(message, len)
        }));
        if let Some(forward) = &ctx.forward {
            return forward(lvl, &text);
        }
        let plugin = ctx.plugin.as_str();
        match lvl {
            level::ERROR => tracing::error!(plugin, "{text}"),
            level::WARN => tracing::warn!(plugin, "{text}"),
            level::INFO => tracing::info!(plugin, "{text}"),
            level::DEBUG => tracing::debug!(plugin, "{text}"),
            _ => tracing::trace!(plugin, "{text}"),
        }
    }));
}
