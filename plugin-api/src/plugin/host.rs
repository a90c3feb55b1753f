//! The plugin's handle on the host: logging into the daemon's log.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use crate::ffi::{level, HostCallbacks};

/// The host's log callback as one instance received it, until it is closed.
pub(crate) struct HostLink {
    /// `(log, host_data)`; `None` once the instance is closed, because the
    /// host frees what `host_data` points to after `close` returns.
    log: Mutex<Option<(LogFn, *mut c_void)>>,
}

type LogFn = unsafe extern "C" fn(*mut c_void, u32, *const u8, usize);

// SAFETY: the ABI requires the host's `log` callback to be callable from any
// thread with its `host_data`; the pair is only read under the mutex.
unsafe impl Send for HostLink {}
// SAFETY: as above.
unsafe impl Sync for HostLink {}

impl HostLink {
    /// Copies the log callback out of the host's table.
    ///
    /// # Safety
    /// `callbacks` must be null or point to a `HostCallbacks` whose `size`
    /// covers the fields it claims, valid for this call.
    pub(crate) unsafe fn new(callbacks: *const HostCallbacks) -> Arc<HostLink> {
        let log = if callbacks.is_null() {
            None
        } else {
            // SAFETY: non-null and valid for this call per the caller.
            let cb = unsafe { &*callbacks };
            let has_log =
                cb.size >= std::mem::offset_of!(HostCallbacks, log) + std::mem::size_of::<usize>();
            cb.log.filter(|_| has_log).map(|f| (f, cb.host_data))
        };
        Arc::new(HostLink {
            log: Mutex::new(log),
        })
    }

    /// Called when the instance is closed: later log calls do nothing.
    pub(crate) fn disconnect(&self) {
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The host as a plugin instance sees it. Cloning it is cheap; a clone kept
/// past the instance's `close` (in a stray thread, say) only stops logging.
#[derive(Clone)]
pub struct Host {
    link: Option<Arc<HostLink>>,
}

impl Host {
    pub(crate) fn new(link: Arc<HostLink>) -> Self {
        Host { link: Some(link) }
    }

    /// A host that drops every message; for using a connector natively.
    pub fn detached() -> Self {
        Host { link: None }
    }

    fn log(&self, lvl: u32, message: &str) {
        let Some(link) = &self.link else { return };
        // Held during the call, so `close` cannot complete under a log call.
        let guard = link.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((log, data)) = *guard {
            // SAFETY: the instance is not closed (the link is connected), so
            // `data` is still valid, and the message is valid for its length.
            unsafe { log(data, lvl, message.as_ptr(), message.len()) };
        }
    }

    pub fn error(&self, message: &str) {
        self.log(level::ERROR, message)
    }
    pub fn warn(&self, message: &str) {
        self.log(level::WARN, message)
    }
    pub fn info(&self, message: &str) {
        self.log(level::INFO, message)
    }
    pub fn debug(&self, message: &str) {
        self.log(level::DEBUG, message)
    }
}
