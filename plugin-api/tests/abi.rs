//! Both sides of the plugin ABI in one process: a plugin exported with
//! `export_connector!` and driven through the host SDK's function table.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use conveyor_plugin_api::ffi::{self, FfiError, PluginFunctions};
use conveyor_plugin_api::host::{LoadError, PluginConnector, PluginLibrary};
use conveyor_plugin_api::plugin::{Host, Plugin};
use conveyor_plugin_api::{
    BlockingConnector, BlockingSink, CancelFlag, CollectingSink, Connector, ConnectorError,
    ErrorKind, Json, PluginInfo, RecordSink, SinkEvent, StreamDescriptor,
};
use serde_json::json;

/// The line of the `panic!` in `Scripted::read` (mode `panic`).
fn panic_line() -> usize {
    include_str!("abi.rs")
        .lines()
        .position(|l| l.contains("kaboom at {start}\"); // PANIC_LINE"))
        .expect("the marker")
        + 1
}

/// How many `counted` instances are alive: `close` must drop each one.
/// Only `dropping_the_connector_closes_the_instance` opens that mode.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A `Host` a connector kept somewhere that outlives it (mode `keep_host`).
static KEPT_HOST: std::sync::Mutex<Option<Host>> = std::sync::Mutex::new(None);

struct Scripted {
    mode: String,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if self.mode == "counted" {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

impl BlockingConnector for Scripted {
    fn streams(&self) -> Vec<StreamDescriptor> {
        vec![StreamDescriptor {
            name: "items".into(),
            primary_key: vec!["id".into()],
            cursor_field: Some("id".into()),
        }]
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn BlockingSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        assert_eq!(stream, "items");
        let start = state.and_then(|s| s["next"].as_i64()).unwrap_or(1);
        match self.mode.as_str() {
            "panic" => {
                sink.batch(batch(&[start]))?;
                panic!("kaboom at {start}"); // PANIC_LINE
            }
            "error" => Err(ConnectorError::new(ErrorKind::Auth, "token expired")),
            "cancel_aware" => {
                for i in 0..100 {
                    if cancel.is_cancelled() {
                        return sink.checkpoint(json!({"stopped_at": i}));
                    }
                    sink.batch(batch(&[i]))?;
                }
                Ok(())
            }
            _ => {
                sink.batch(batch(&[start, start + 1]))?;
                sink.checkpoint(json!({"next": start + 2}))?;
                sink.batch(batch(&[start + 2]))?;
                sink.batch(batch(&[start + 3]))?;
                sink.checkpoint(json!({"next": start + 4}))
            }
        }
    }
}

impl Plugin for Scripted {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "scripted".into(),
            version: "1.2.3".into(),
            description: "test".into(),
        }
    }
    fn open(options: Json, host: Host) -> Result<Self, ConnectorError> {
        host.info("opening");
        let mode = options["mode"].as_str().unwrap_or("ok").to_string();
        if mode == "panic_open" {
            panic!("cannot open");
        }
        if mode == "bad_options" {
            return Err(ConnectorError::new(ErrorKind::Config, "mode is wrong"));
        }
        if mode == "counted" {
            LIVE.fetch_add(1, Ordering::SeqCst);
        }
        if mode == "keep_host" {
            *KEPT_HOST.lock().unwrap() = Some(host.clone());
        }
        Ok(Scripted { mode })
    }
}

conveyor_plugin_api::export_connector!(Scripted);

fn library() -> Arc<PluginLibrary> {
    // SAFETY: the entry points are this binary's own `export_connector!` symbols.
    Arc::new(
        unsafe {
            PluginLibrary::from_entry_points(
                PathBuf::from("scripted"),
                conveyor_plugin_abi_version,
                conveyor_plugin_init,
            )
        }
        .unwrap(),
    )
}

async fn read_all(
    c: &PluginConnector,
    state: Option<Json>,
) -> (Result<(), ConnectorError>, CollectingSink) {
    let mut sink = CollectingSink::default();
    let r = c
        .read("items", state, &mut sink, &CancelFlag::default())
        .await;
    (r, sink)
}

#[tokio::test]
async fn records_and_checkpoints_cross_in_order_and_match_native() {
    let lib = library();
    assert_eq!(lib.info.name, "scripted");
    assert_eq!(lib.info.version, "1.2.3");
    assert_eq!(lib.abi, (ffi::ABI_MAJOR, ffi::ABI_MINOR));
    let c = PluginConnector::open(lib, &json!({"mode": "ok"})).unwrap();
    assert_eq!(c.streams()[0].cursor_field.as_deref(), Some("id"));

    let (r, via_abi) = read_all(&c, Some(json!({"next": 10}))).await;
    r.unwrap();
    let mut native = CollectingSink::default();
    Scripted { mode: "ok".into() }
        .read(
            "items",
            Some(json!({"next": 10})),
            &mut native,
            &CancelFlag::default(),
        )
        .unwrap();
    assert_eq!(via_abi.events, native.events);
    assert_eq!(via_abi.events.len(), 5);
    assert!(matches!(via_abi.events[1], SinkEvent::Checkpoint(ref s) if s == &json!({"next": 12})));
}

#[tokio::test]
async fn a_panic_becomes_an_error_and_poisons_the_instance() {
    let c = PluginConnector::open(library(), &json!({"mode": "panic"})).unwrap();
    let (r, sink) = read_all(&c, None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Plugin);
    assert!(
        e.message
            .starts_with("plugin `scripted`: panicked in read: kaboom at 1 (at "),
        "{}",
        e.message
    );
    assert!(
        e.message.ends_with(&format!("abi.rs:{})", panic_line())),
        "the panic's location: {}",
        e.message
    );
    assert_eq!(
        sink.batches().len(),
        1,
        "what was delivered before the panic still arrives; the host decides"
    );
    let (again, _) = read_all(&c, None).await;
    assert!(again
        .unwrap_err()
        .message
        .contains("poisoned by an earlier panic"));
}

#[test]
fn open_failures_name_the_plugin_and_keep_their_kind() {
    let e = PluginConnector::open(library(), &json!({"mode": "panic_open"}))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Plugin);
    assert!(
        e.message
            .starts_with("plugin `scripted`: panicked in open: cannot open (at "),
        "{}",
        e.message
    );
    let e = PluginConnector::open(library(), &json!({"mode": "bad_options"}))
        .err()
        .unwrap();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Config, "plugin `scripted`: mode is wrong")
    );
}

#[tokio::test]
async fn read_errors_keep_kind_and_text() {
    let c = PluginConnector::open(library(), &json!({"mode": "error"})).unwrap();
    let e = read_all(&c, None).await.0.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Auth, "plugin `scripted`: token expired")
    );
}

/// A sink that fails on its first batch, like a warehouse that went away.
struct FailingSink;
#[async_trait::async_trait]
impl RecordSink for FailingSink {
    async fn batch(&mut self, _: RecordBatch) -> Result<(), ConnectorError> {
        Err(ConnectorError::new(ErrorKind::Host, "disk full"))
    }
    async fn checkpoint(&mut self, _: Json) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_sink_stops_the_plugin_with_the_sinks_error() {
    let c = PluginConnector::open(library(), &json!({"mode": "cancel_aware"})).unwrap();
    let e = c
        .read("items", None, &mut FailingSink, &CancelFlag::default())
        .await
        .unwrap_err();
    assert_eq!(e.message, "disk full");
}

#[tokio::test]
async fn the_plugin_sees_the_hosts_cancellation() {
    let c = PluginConnector::open(library(), &json!({"mode": "cancel_aware"})).unwrap();
    let cancel = CancelFlag::default();
    cancel.cancel();
    let mut sink = CollectingSink::default();
    c.read("items", None, &mut sink, &cancel).await.unwrap();
    assert_eq!(
        sink.events,
        vec![SinkEvent::Checkpoint(json!({"stopped_at": 0}))]
    );
}

#[test]
fn dropping_the_connector_closes_the_instance() {
    let c = PluginConnector::open(library(), &json!({"mode": "counted"})).unwrap();
    assert_eq!(LIVE.load(Ordering::SeqCst), 1);
    drop(c);
    assert_eq!(LIVE.load(Ordering::SeqCst), 0);
}

#[test]
fn an_older_host_gets_only_the_table_prefix_it_knows() {
    // A host whose table ends after `open` (two functions).
    let known = std::mem::offset_of!(PluginFunctions, streams);
    let mut table = PluginFunctions::empty();
    table.size = known;
    let mut err = FfiError::empty();
    // SAFETY: `table` is writable for its full size, which exceeds `known`.
    let status = unsafe { conveyor_plugin_init(&mut table, &mut err) };
    assert_eq!(status, ffi::STATUS_OK);
    assert_eq!(table.size, known);
    assert!(table.info.is_some() && table.open.is_some());
    assert!(
        table.streams.is_none() && table.read.is_none() && table.close.is_none(),
        "nothing written past the host's size"
    );
}

unsafe extern "C" fn version_2_0() -> u32 {
    ffi::pack_version(2, 0)
}

#[test]
fn another_major_version_is_refused_naming_both() {
    // SAFETY: `version_2_0` is a valid version function; init is never reached.
    let e = unsafe {
        PluginLibrary::from_entry_points(
            PathBuf::from("/plugins/libnext.so"),
            version_2_0,
            conveyor_plugin_init,
        )
    }
    .unwrap_err();
    assert!(matches!(
        e,
        LoadError::AbiMismatch {
            plugin_major: 2,
            host_major: 1,
            ..
        }
    ));
    let text = e.to_string();
    assert!(text.contains("plugin ABI 2.0 is not supported"), "{text}");
    assert!(
        text.contains("this conveyor speaks plugin ABI 1.0"),
        "{text}"
    );
    assert!(text.contains("rebuild the plugin"), "{text}");
}

/// Log lines that reached `counting_log`, by the `host_data` it was given.
static LOGGED_WHILE_OPEN: AtomicUsize = AtomicUsize::new(0);

/// A host log callback that counts the lines it receives into the
/// `AtomicUsize` its `host_data` points to (a static: never freed).
unsafe extern "C" fn counting_log(data: *mut std::ffi::c_void, _: u32, _: *const u8, _: usize) {
    // SAFETY: `data` is `&LOGGED_WHILE_OPEN`, a static that lives forever.
    let counter = unsafe { &*(data as *const AtomicUsize) };
    counter.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_host_kept_past_close_goes_quiet_instead_of_touching_freed_callbacks() {
    // Driven through the raw table with a log callback of our own whose
    // `host_data` is never freed, so what reaches the host is observable:
    // after `close` the host may free `host_data`, and no call may come.
    let mut table = PluginFunctions::empty();
    let mut err = FfiError::empty();
    // SAFETY: `table` is writable for its full size.
    let status = unsafe { conveyor_plugin_init(&mut table, &mut err) };
    assert_eq!(status, ffi::STATUS_OK);
    let callbacks = ffi::HostCallbacks {
        size: std::mem::size_of::<ffi::HostCallbacks>(),
        host_data: &LOGGED_WHILE_OPEN as *const AtomicUsize as *mut std::ffi::c_void,
        log: Some(counting_log),
    };
    let options = br#"{"mode": "keep_host"}"#;
    let mut instance: ffi::InstancePtr = std::ptr::null_mut();
    // SAFETY: the options are valid UTF-8 JSON for their length, the
    // callbacks and out-pointers are valid for the call.
    let status = unsafe {
        (table.open.expect("open"))(
            options.as_ptr(),
            options.len(),
            &callbacks,
            &mut instance,
            &mut err,
        )
    };
    assert_eq!(status, ffi::STATUS_OK);
    assert_eq!(
        LOGGED_WHILE_OPEN.load(Ordering::SeqCst),
        1,
        "`opening` reached the host"
    );
    let host = KEPT_HOST.lock().unwrap().take().expect("kept in open");
    host.info("while open: reaches the host's log");
    assert_eq!(LOGGED_WHILE_OPEN.load(Ordering::SeqCst), 2);
    // SAFETY: `instance` came from `open` and is closed once.
    unsafe { (table.close.expect("close"))(instance) };
    for _ in 0..1_000 {
        host.warn("after close: dropped");
    }
    host.clone().error("and from a clone");
    assert_eq!(
        LOGGED_WHILE_OPEN.load(Ordering::SeqCst),
        2,
        "no log call reaches the host after close"
    );
}
