//! The plugin's handle on the host: logging into the daemon's log.

use crate::ffi::{level, HostCallbacks};

/// The host's callbacks as a plugin instance sees them. Valid for the life
/// of the instance it was given to; do not keep it beyond that.
#[derive(Clone, Copy)]
pub struct Host {
    callbacks: *const HostCallbacks,
}

// SAFETY: the ABI requires the host's `log` callback to be callable from any
// thread, and `HostCallbacks` itself is never written after `open`.
unsafe impl Send for Host {}
// SAFETY: as above; `Host` only reads through the pointer.
unsafe impl Sync for Host {}

impl Host {
    pub(crate) fn new(callbacks: *const HostCallbacks) -> Self {
        Host { callbacks }
    }

    /// A host that drops every message; for using a connector natively.
    pub fn detached() -> Self {
        Host { callbacks: std::ptr::null() }
    }

    fn log(&self, lvl: u32, message: &str) {
        if self.callbacks.is_null() {
            return;
        }
        // SAFETY: a non-null pointer came from the host's `open` call and
        // stays valid until `close` returns (the ABI's lifetime rule), so
        // reading the table and calling `log` with a valid slice is sound.
        unsafe {
            let cb = &*self.callbacks;
            let has_log = cb.size >= std::mem::offset_of!(HostCallbacks, log) + std::mem::size_of::<usize>();
            if let (true, Some(log)) = (has_log, cb.log) {
                log(cb.host_data, lvl, message.as_ptr(), message.len());
            }
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
