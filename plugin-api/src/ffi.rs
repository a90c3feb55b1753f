//! The C ABI between Conveyor and a connector plugin: symbols, the function
//! table and the `#[repr(C)]` types that cross the boundary.
//!
//! Modelled on ADBC (a function table filled by an init function) and the
//! Arrow C Stream Interface (records travel as `FFI_ArrowArrayStream`).
//! `PLUGINS.md` at the repository root describes the same contract for C
//! authors. Rules that hold for every type here:
//!
//! - whoever allocates frees: every object a plugin hands out carries its own
//!   `release` callback, and the host calls it exactly once; the host never
//!   frees plugin memory with its own allocator (and vice versa);
//! - strings are UTF-8 with an explicit length, never NUL-terminated;
//! - functions return [`STATUS_OK`] or [`STATUS_ERROR`]; on error they fill
//!   the `FfiError` out-parameter the caller passed in;
//! - the table only ever grows at its end (minor versions); a field the host
//!   knows but the plugin did not fill stays null.

use std::ffi::c_void;

pub use arrow_array::ffi_stream::FFI_ArrowArrayStream;

/// Bumped when the ABI changes incompatibly; the host refuses any other.
pub const ABI_MAJOR: u16 = 1;
/// Bumped when functions are appended to [`PluginFunctions`].
pub const ABI_MINOR: u16 = 0;

/// `extern "C" fn() -> u32`: `(major << 16) | minor`. Read before anything else.
pub const ABI_VERSION_SYMBOL: &str = "conveyor_plugin_abi_version";
/// `extern "C" fn(*mut PluginFunctions, *mut FfiError) -> i32`.
pub const INIT_SYMBOL: &str = "conveyor_plugin_init";

pub const STATUS_OK: i32 = 0;
pub const STATUS_ERROR: i32 = 1;

/// Packs a version the way [`ABI_VERSION_SYMBOL`] returns it.
pub const fn pack_version(major: u16, minor: u16) -> u32 {
    ((major as u32) << 16) | minor as u32
}

/// Splits a packed version into `(major, minor)`.
pub const fn unpack_version(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, (v & 0xffff) as u16)
}

/// Log levels of [`HostCallbacks::log`].
pub mod level {
    pub const ERROR: u32 = 1;
    pub const WARN: u32 = 2;
    pub const INFO: u32 = 3;
    pub const DEBUG: u32 = 4;
    pub const TRACE: u32 = 5;
}

/// An error reported by the plugin. The plugin owns `message`; the host
/// reads it and then calls `release` (if non-null), exactly once.
#[repr(C)]
pub struct FfiError {
    /// An [`ErrorKind`](crate::ErrorKind) code, see [`kind_code`].
    pub kind: u32,
    /// UTF-8, `message_len` bytes, not NUL-terminated.
    pub message: *const u8,
    pub message_len: usize,
    pub release: Option<unsafe extern "C" fn(*mut FfiError)>,
    pub private_data: *mut c_void,
}

impl FfiError {
    /// An empty error for the callee to fill.
    pub const fn empty() -> Self {
        FfiError {
            kind: 0,
            message: std::ptr::null(),
            message_len: 0,
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }
}

/// Bytes owned by whoever allocated them (JSON documents: plugin info, the
/// stream catalog). The receiver calls `release` when done.
#[repr(C)]
pub struct FfiBytes {
    pub data: *const u8,
    pub len: usize,
    pub release: Option<unsafe extern "C" fn(*mut FfiBytes)>,
    pub private_data: *mut c_void,
}

impl FfiBytes {
    pub const fn empty() -> Self {
        FfiBytes {
            data: std::ptr::null(),
            len: 0,
            release: None,
            private_data: std::ptr::null_mut(),
        }
    }
}

/// What the host offers an instance for its whole life: logging into the
/// host's log with the plugin's name. Valid from `open` until `close` returns.
#[repr(C)]
pub struct HostCallbacks {
    /// `size_of::<HostCallbacks>()` as the host knows it; fields past it are absent.
    pub size: usize,
    pub host_data: *mut c_void,
    /// `log(host_data, level, message, message_len)`; callable from any thread.
    pub log: Option<unsafe extern "C" fn(*mut c_void, u32, *const u8, usize)>,
}

/// Where one `read` delivers its output, in order: record streams and the
/// checkpoints that follow them. Valid only during that `read` call.
#[repr(C)]
pub struct FfiSink {
    pub size: usize,
    pub sink_data: *mut c_void,
    /// Takes ownership of `*stream` (moves it out, leaving a released
    /// stream behind): every batch in it precedes the next checkpoint.
    /// Returns [`STATUS_ERROR`] when the host cannot take more (e.g. its
    /// warehouse failed or the run stopped); the plugin must then return.
    pub batches: Option<unsafe extern "C" fn(*mut c_void, *mut FFI_ArrowArrayStream) -> i32>,
    /// The state (UTF-8 JSON) that is safe to resume from once every batch
    /// delivered before it is stored. The host copies it before returning.
    pub checkpoint: Option<unsafe extern "C" fn(*mut c_void, *const u8, usize) -> i32>,
    /// Non-zero once the host asks the read to stop early (shutdown).
    pub is_cancelled: Option<unsafe extern "C" fn(*mut c_void) -> u8>,
}

/// An opaque plugin instance.
pub type InstancePtr = *mut c_void;

/// The function table `init` fills. The host sets `size` to the size it
/// knows and zeroes the rest; the plugin fills the fields that fit and sets
/// `size` to the size it filled. New functions are only ever appended.
#[repr(C)]
pub struct PluginFunctions {
    pub size: usize,
    /// `info(out, err)`: JSON `{"name", "version", "description"}`.
    pub info: Option<unsafe extern "C" fn(*mut FfiBytes, *mut FfiError) -> i32>,
    /// `open(config, config_len, host, out_instance, err)`: `config` is the
    /// source's `options` as UTF-8 JSON.
    pub open: Option<
        unsafe extern "C" fn(
            *const u8,
            usize,
            *const HostCallbacks,
            *mut InstancePtr,
            *mut FfiError,
        ) -> i32,
    >,
    /// `streams(instance, out, err)`: the catalog, a JSON array of
    /// `{"name", "primary_key": [..], "cursor_field": null | ".."}`.
    pub streams: Option<unsafe extern "C" fn(InstancePtr, *mut FfiBytes, *mut FfiError) -> i32>,
    /// `read(instance, stream, stream_len, state, state_len, sink, err)`:
    /// blocks on the caller's thread until the stream is read, cancelled or
    /// failed. `state` is null on the first sync, else UTF-8 JSON.
    pub read: Option<
        unsafe extern "C" fn(
            InstancePtr,
            *const u8,
            usize,
            *const u8,
            usize,
            *const FfiSink,
            *mut FfiError,
        ) -> i32,
    >,
    /// `close(instance)`: frees the instance; never called twice.
    pub close: Option<unsafe extern "C" fn(InstancePtr)>,
}

impl PluginFunctions {
    /// A table for `init` to fill, sized as this build knows it.
    pub fn empty() -> Self {
        PluginFunctions {
            size: std::mem::size_of::<PluginFunctions>(),
            info: None,
            open: None,
            streams: None,
            read: None,
            close: None,
        }
    }
}

/// `ErrorKind` ↔ its stable code on the wire.
pub fn kind_code(kind: crate::ErrorKind) -> u32 {
    use crate::ErrorKind::*;
    match kind {
        Config => 1,
        Auth => 2,
        Transient => 3,
        Http => 4,
        Data => 5,
        Host => 6,
        Plugin => 7,
        Unavailable => 8,
    }
}

/// The kind for a code; unknown codes (a newer plugin) read as `Plugin`.
pub fn kind_from_code(code: u32) -> crate::ErrorKind {
    use crate::ErrorKind::*;
    match code {
        1 => Config,
        2 => Auth,
        3 => Transient,
        4 => Http,
        5 => Data,
        6 => Host,
        8 => Unavailable,
        _ => Plugin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind::*;

    #[test]
    fn every_kind_survives_the_wire_and_codes_never_move() {
        // Codes are ABI: an existing kind never changes its number.
        let all = [
            (Config, 1),
            (Auth, 2),
            (Transient, 3),
            (Http, 4),
            (Data, 5),
            (Host, 6),
            (Plugin, 7),
            (Unavailable, 8),
        ];
        for (kind, code) in all {
            assert_eq!(kind_code(kind), code);
            assert_eq!(kind_from_code(code), kind);
        }
        assert_eq!(kind_from_code(99), Plugin, "a newer plugin's kind");
    }
}
