//! Plugin-owned objects handed to the host: errors and byte buffers, each
//! with the release callback that frees it with the plugin's allocator.

use std::ffi::c_void;

use crate::ffi::{kind_code, FfiBytes, FfiError};
use crate::ConnectorError;

/// Fills `out` with `error`; the host releases it through `release_error`.
///
/// # Safety
/// `out` must be null or point to a writable `FfiError` that holds nothing
/// needing release.
pub(crate) unsafe fn write_error(out: *mut FfiError, error: &ConnectorError) {
    if out.is_null() {
        return;
    }
    let message: Box<Vec<u8>> = Box::new(error.message.clone().into_bytes());
    let filled = FfiError {
        kind: kind_code(error.kind),
        message: message.as_ptr(),
        message_len: message.len(),
        release: Some(release_error),
        private_data: Box::into_raw(message) as *mut c_void,
    };
    // SAFETY: the caller guarantees `out` is valid for writes; the previous
    // value owns nothing, so overwriting it leaks nothing.
    unsafe { out.write(filled) };
}

/// The `release` of errors from `write_error`.
///
/// # Safety
/// `error` must be null or an `FfiError` filled by `write_error`, released once.
unsafe extern "C" fn release_error(error: *mut FfiError) {
    if error.is_null() {
        return;
    }
    // SAFETY: `error` was filled by `write_error`, so `private_data` is the
    // `Box<Vec<u8>>` it leaked, released here once (the fields are cleared).
    unsafe {
        let e = &mut *error;
        if !e.private_data.is_null() {
            drop(Box::from_raw(e.private_data as *mut Vec<u8>));
        }
        e.private_data = std::ptr::null_mut();
        e.message = std::ptr::null();
        e.message_len = 0;
        e.release = None;
    }
}

/// Fills `out` with a copy of `bytes`; the host releases it through `release_bytes`.
///
/// # Safety
/// `out` must point to a writable `FfiBytes` that holds nothing needing release.
pub(crate) unsafe fn write_bytes(out: *mut FfiBytes, bytes: Vec<u8>) {
    let bytes = Box::new(bytes);
    let filled = FfiBytes {
        data: bytes.as_ptr(),
        len: bytes.len(),
        release: Some(release_bytes),
        private_data: Box::into_raw(bytes) as *mut c_void,
    };
    // SAFETY: the caller guarantees `out` is valid for writes and owns nothing.
    unsafe { out.write(filled) };
}

/// The `release` of buffers from `write_bytes`.
///
/// # Safety
/// `bytes` must be null or an `FfiBytes` filled by `write_bytes`, released once.
unsafe extern "C" fn release_bytes(bytes: *mut FfiBytes) {
    if bytes.is_null() {
        return;
    }
    // SAFETY: `bytes` was filled by `write_bytes`; `private_data` is the
    // leaked `Box<Vec<u8>>`, freed once (the fields are cleared after).
    unsafe {
        let b = &mut *bytes;
        if !b.private_data.is_null() {
            drop(Box::from_raw(b.private_data as *mut Vec<u8>));
        }
        b.private_data = std::ptr::null_mut();
        b.data = std::ptr::null();
        b.len = 0;
        b.release = None;
    }
}
