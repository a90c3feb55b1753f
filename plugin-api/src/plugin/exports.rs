//! The exported C functions, generic over the author's [`Plugin`]: each one
//! catches panics, turns them into errors and poisons its instance.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use arrow_array::{RecordBatchIterator, RecordBatchReader};

use super::host::HostLink;
use super::owned::{write_bytes, write_error};
use super::{Host, Plugin};
use crate::ffi::{
    FFI_ArrowArrayStream, FfiBytes, FfiError, FfiSink, HostCallbacks, InstancePtr, PluginFunctions,
    STATUS_ERROR, STATUS_OK,
};
use crate::{BlockingSink, CancelFlag, ConnectorError, ErrorKind, Json, RecordBatch};

/// One open connector, behind the opaque instance pointer.
struct Instance<T> {
    connector: T,
    /// Set by a panic; every later call fails cleanly instead of touching
    /// state the panic may have left half-updated.
    poisoned: AtomicBool,
    /// The host's callbacks, disconnected on `close`.
    link: std::sync::Arc<HostLink>,
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

thread_local! {
    /// Set while this thread runs inside [`guarded`].
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic on this thread happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A plugin has its own copy of std and so its own panic hook, which would
/// print to the daemon's stderr past its log. Inside guarded calls the hook
/// only records where the panic happened (the panic becomes an error that
/// reaches the host's log and `conveyor status`); elsewhere it defers to
/// the hook that was installed before (e.g. a test harness's).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f` with the quiet panic hook armed on this thread.
fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    install_panic_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    outcome
}

/// Runs `f`, turning an error or a panic into `STATUS_ERROR` and `*err`.
fn guarded(
    what: &str,
    poison: Option<&AtomicBool>,
    err: *mut FfiError,
    f: impl FnOnce() -> Result<(), ConnectorError>,
) -> i32 {
    if poison.is_some_and(|p| p.load(Ordering::SeqCst)) {
        let e = ConnectorError::new(
            ErrorKind::Plugin,
            format!("{what} refused: the instance was poisoned by an earlier panic"),
        );
        // SAFETY: `err` is the caller's error slot, valid per the ABI.
        unsafe { write_error(err, &e) };
        return STATUS_ERROR;
    }
    let outcome = catch(f);
    let error = match outcome {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(e)) => e,
        Err(payload) => {
            if let Some(p) = poison {
                p.store(true, Ordering::SeqCst);
            }
            let at = PANIC_AT
                .with(|p| p.borrow_mut().take())
                .map(|l| format!(" (at {l})"))
                .unwrap_or_default();
            ConnectorError::new(
                ErrorKind::Plugin,
                format!("panicked in {what}: {}{at}", panic_message(payload)),
            )
        }
    };
    // SAFETY: `err` is the caller's error slot, valid per the ABI.
    unsafe { write_error(err, &error) };
    STATUS_ERROR
}

/// Fills the host's function table with `T`'s functions.
///
/// # Safety
/// `table` must point to a `PluginFunctions` whose `size` field holds the
/// number of writable bytes (at least `size_of::<usize>()`); `err` must be
/// null or a writable, empty `FfiError`.
pub unsafe fn init<T: Plugin>(table: *mut PluginFunctions, err: *mut FfiError) -> i32 {
    guarded("init", None, err, || {
        if table.is_null() {
            return Err(ConnectorError::new(
                ErrorKind::Host,
                "init called with a null function table",
            ));
        }
        // SAFETY: `table` is non-null and its first field is readable per the contract.
        let host_size = unsafe { (*table).size };
        let filled = host_size.min(std::mem::size_of::<PluginFunctions>());
        let ours = PluginFunctions {
            size: filled,
            info: Some(info_fn::<T>),
            open: Some(open_fn::<T>),
            streams: Some(streams_fn::<T>),
            read: Some(read_fn::<T>),
            close: Some(close_fn::<T>),
        };
        // SAFETY: the host made `host_size` bytes writable at `table`, and
        // `filled` is at most that and at most our table's size. Copying a
        // prefix keeps an older host's smaller table intact (append-only).
        unsafe {
            std::ptr::copy_nonoverlapping(
                &ours as *const PluginFunctions as *const u8,
                table as *mut u8,
                filled,
            );
        }
        Ok(())
    })
}

/// `PluginFunctions::info`.
///
/// # Safety
/// `out` must be an empty, writable `FfiBytes`; `err` null or an empty `FfiError`.
unsafe extern "C" fn info_fn<T: Plugin>(out: *mut FfiBytes, err: *mut FfiError) -> i32 {
    guarded("info", None, err, || {
        let json = serde_json::to_vec(&T::info())
            .map_err(|e| ConnectorError::new(ErrorKind::Plugin, e.to_string()))?;
        // SAFETY: `out` is the host's empty, writable slot.
        unsafe { write_bytes(out, json) };
        Ok(())
    })
}

/// # Safety
/// `ptr` must be null (with `len` 0) or valid for `len` bytes.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null and valid for `len` bytes per the caller.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// `PluginFunctions::open`.
///
/// # Safety
/// `config` valid for `config_len` bytes; `host` null or valid until `close`;
/// `out` writable; `err` null or an empty `FfiError`.
unsafe extern "C" fn open_fn<T: Plugin>(
    config: *const u8,
    config_len: usize,
    host: *const HostCallbacks,
    out: *mut InstancePtr,
    err: *mut FfiError,
) -> i32 {
    guarded("open", None, err, || {
        // SAFETY: the host passes `config_len` readable bytes.
        let config = unsafe { bytes(config, config_len) };
        let options: Json = if config.is_empty() {
            Json::Object(Default::default())
        } else {
            serde_json::from_slice(config).map_err(|e| {
                ConnectorError::new(ErrorKind::Config, format!("options are not JSON: {e}"))
            })?
        };
        // SAFETY: the host passes null or callbacks valid until `close`.
        let link = unsafe { HostLink::new(host) };
        let connector = T::open(options, Host::new(link.clone()))?;
        let instance = Box::new(Instance {
            connector,
            poisoned: AtomicBool::new(false),
            link,
        });
        // SAFETY: `out` is the host's writable instance slot.
        unsafe { out.write(Box::into_raw(instance) as InstancePtr) };
        Ok(())
    })
}

/// # Safety
/// `ptr` must be an instance `open_fn::<T>` returned and not yet closed.
unsafe fn instance<'a, T>(ptr: InstancePtr) -> &'a Instance<T> {
    // SAFETY: per the caller, `ptr` is a live `Box<Instance<T>>`.
    unsafe { &*(ptr as *const Instance<T>) }
}

/// `PluginFunctions::streams`.
///
/// # Safety
/// `ptr` an open instance of this plugin; `out` an empty, writable `FfiBytes`;
/// `err` null or an empty `FfiError`.
unsafe extern "C" fn streams_fn<T: Plugin>(
    ptr: InstancePtr,
    out: *mut FfiBytes,
    err: *mut FfiError,
) -> i32 {
    // SAFETY: the host passes an instance this plugin opened.
    let inst = unsafe { instance::<T>(ptr) };
    guarded("streams", Some(&inst.poisoned), err, || {
        let json = serde_json::to_vec(&inst.connector.streams())
            .map_err(|e| ConnectorError::new(ErrorKind::Plugin, e.to_string()))?;
        // SAFETY: `out` is the host's empty, writable slot.
        unsafe { write_bytes(out, json) };
        Ok(())
    })
}

/// The host's sink as a [`BlockingSink`].
struct FfiSinkAdapter<'a> {
    sink: &'a FfiSink,
    cancel: CancelFlag,
}

impl FfiSinkAdapter<'_> {
    /// Mirrors the host's cancellation into the flag the connector reads.
    fn refresh_cancel(&self) {
        if let Some(is_cancelled) = self.sink.is_cancelled {
            // SAFETY: the sink and its data are valid during `read`.
            if unsafe { is_cancelled(self.sink.sink_data) } != 0 {
                self.cancel.cancel();
            }
        }
    }

    fn refused() -> ConnectorError {
        ConnectorError::new(ErrorKind::Host, "the host stopped taking records")
    }
}

impl BlockingSink for FfiSinkAdapter<'_> {
    fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        let Some(deliver) = self.sink.batches else {
            return Err(Self::refused());
        };
        let schema = batch.schema();
        let reader: Box<dyn RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new([Ok(batch)], schema));
        let mut stream = FFI_ArrowArrayStream::new(reader);
        // SAFETY: the sink is valid during `read`; the host moves the stream
        // out (or leaves it, and our `Drop` releases it).
        let status = unsafe { deliver(self.sink.sink_data, &mut stream) };
        self.refresh_cancel();
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(Self::refused())
        }
    }

    fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        let Some(deliver) = self.sink.checkpoint else {
            return Err(Self::refused());
        };
        let json = serde_json::to_vec(&state)
            .map_err(|e| ConnectorError::new(ErrorKind::Plugin, e.to_string()))?;
        // SAFETY: the sink is valid during `read`; the host copies the bytes.
        let status = unsafe { deliver(self.sink.sink_data, json.as_ptr(), json.len()) };
        self.refresh_cancel();
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(Self::refused())
        }
    }
}

/// `PluginFunctions::read`.
///
/// # Safety
/// `ptr` an open instance of this plugin; `stream` and `state` (if non-null)
/// valid for their lengths; `sink` valid for the call; `err` null or empty.
unsafe extern "C" fn read_fn<T: Plugin>(
    ptr: InstancePtr,
    stream: *const u8,
    stream_len: usize,
    state: *const u8,
    state_len: usize,
    sink: *const FfiSink,
    err: *mut FfiError,
) -> i32 {
    // SAFETY: the host passes an instance this plugin opened.
    let inst = unsafe { instance::<T>(ptr) };
    guarded("read", Some(&inst.poisoned), err, || {
        // SAFETY: the host passes `stream_len` readable bytes.
        let stream = std::str::from_utf8(unsafe { bytes(stream, stream_len) })
            .map_err(|_| ConnectorError::new(ErrorKind::Host, "stream name is not UTF-8"))?;
        let state = if state.is_null() {
            None
        } else {
            // SAFETY: non-null state comes with `state_len` readable bytes.
            let raw = unsafe { bytes(state, state_len) };
            Some(serde_json::from_slice(raw).map_err(|e| {
                ConnectorError::new(ErrorKind::Host, format!("state is not JSON: {e}"))
            })?)
        };
        if sink.is_null() {
            return Err(ConnectorError::new(
                ErrorKind::Host,
                "read called without a sink",
            ));
        }
        // SAFETY: non-null, and valid for the duration of this call per the ABI.
        let sink = unsafe { &*sink };
        let mut adapter = FfiSinkAdapter {
            sink,
            cancel: CancelFlag::default(),
        };
        adapter.refresh_cancel();
        let cancel = adapter.cancel.clone();
        inst.connector.read(stream, state, &mut adapter, &cancel)
    })
}

/// `PluginFunctions::close`.
///
/// # Safety
/// `ptr` null or an open instance of this plugin, closed only this once.
unsafe extern "C" fn close_fn<T: Plugin>(ptr: InstancePtr) {
    if ptr.is_null() {
        return;
    }
    // A panic in the connector's `Drop` must not unwind into the host; the
    // instance is gone either way.
    // SAFETY: `ptr` is the `Box<Instance<T>>` from `open_fn`, closed once.
    let instance = unsafe { Box::from_raw(ptr as *mut Instance<T>) };
    let link = instance.link.clone();
    let _ = catch(move || drop(instance));
    // The connector could log while dropping; from here on the host frees
    // the callbacks' data, so any `Host` clone left behind goes quiet.
    link.disconnect();
}
