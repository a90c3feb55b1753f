//! Helpers the vendor connector tests share: a collecting sink with a
//! per-batch hook, config from TOML, secret files, column readers.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use conveyor_config::{SourceConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, Json, RecordBatch, RecordSink,
};

/// Collects batches and checkpoints; `on_batch(n)` runs after the n-th batch.
#[derive(Default)]
pub struct Sink {
    pub batches: Vec<RecordBatch>,
    pub checkpoints: Vec<Json>,
    pub on_batch: Option<Box<dyn FnMut(usize) + Send>>,
}

#[async_trait::async_trait]
impl RecordSink for Sink {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.batches.push(batch);
        let n = self.batches.len();
        if let Some(f) = &mut self.on_batch {
            f(n);
        }
        Ok(())
    }
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.checkpoints.push(state);
        Ok(())
    }
}

impl Sink {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    fn columns(&self, name: &str) -> Vec<&dyn Array> {
        self.batches
            .iter()
            .map(|b| {
                b.column(
                    b.schema()
                        .index_of(name)
                        .unwrap_or_else(|_| panic!("no column {name}")),
                )
                .as_ref()
            })
            .collect()
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.columns(name)
            .into_iter()
            .flat_map(|c| {
                c.as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn strings(&self, name: &str) -> Vec<Option<String>> {
        self.columns(name)
            .into_iter()
            .flat_map(|c| {
                c.as_string::<i32>()
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Decimal column values as text with their scale, e.g. "3076.92".
    pub fn decimals(&self, name: &str) -> Vec<Option<String>> {
        self.columns(name)
            .into_iter()
            .flat_map(|c| {
                let d = c.as_primitive::<Decimal128Type>();
                (0..d.len())
                    .map(|i| d.is_valid(i).then(|| d.value_as_string(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Instant column values as RFC 3339 UTC text.
    pub fn instants(&self, name: &str) -> Vec<Option<String>> {
        self.columns(name)
            .into_iter()
            .flat_map(|c| {
                c.as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .map(|v| {
                        v.map(|us| {
                            chrono::DateTime::from_timestamp_micros(us)
                                .unwrap()
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn data_type(&self, name: &str) -> arrow_schema::DataType {
        let b = &self.batches[0];
        b.schema()
            .field_with_name(name)
            .unwrap()
            .data_type()
            .clone()
    }

    pub fn last_cursor(&self) -> Json {
        self.checkpoints.last().expect("a checkpoint")["cursor"].clone()
    }
}

/// Writes `value` to a file in `dir` and returns its `file:` reference.
pub fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    format!("file:{}", p.display())
}

/// The one source of a config whose `[sources.NAME]` body is `body`.
pub fn source(name: &str, body: &str) -> SourceConfig {
    let text = format!("[warehouse]\npath = \"x.duckdb\"\n[sources.{name}]\n{body}\n");
    let cfg = conveyor_config::parse(&text, Path::new("/tmp/conveyor.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    cfg.sources.into_iter().next().unwrap()
}

pub fn vendor_config(s: &SourceConfig) -> VendorSourceConfig {
    match &s.connector {
        conveyor_config::ConnectorConfig::Vendor(v) => v.clone(),
        other => panic!("not a vendor source: {}", other.type_name()),
    }
}

pub fn build(s: &SourceConfig, store: Arc<dyn CredentialStore>) -> Box<dyn Connector> {
    conveyor_connectors::build(s, store).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads one stream into a fresh sink.
pub async fn read(
    c: &dyn Connector,
    stream: &str,
    state: Option<Json>,
) -> (Result<(), ConnectorError>, Sink) {
    let mut sink = Sink::default();
    let r = c
        .read(stream, state, &mut sink, &CancelFlag::default())
        .await;
    (r, sink)
}

/// Reads with a sink whose hook runs after each batch.
pub async fn read_with_hook(
    c: &dyn Connector,
    stream: &str,
    state: Option<Json>,
    hook: impl FnMut(usize) + Send + 'static,
) -> (Result<(), ConnectorError>, Sink) {
    let mut sink = Sink {
        on_batch: Some(Box::new(hook)),
        ..Default::default()
    };
    let r = c
        .read(stream, state, &mut sink, &CancelFlag::default())
        .await;
    (r, sink)
}

/// Log events captured while it lives (this thread's; `#[tokio::test]`
/// runs the test, the connector and the mock on one thread).
pub struct Logs {
    events: Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Starts capturing log events, so a test can count the warnings a read gave.
pub fn capture_logs() -> Logs {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let guard = tracing::subscriber::set_default(Capture(events.clone()));
    Logs {
        events,
        _guard: guard,
    }
}

impl Logs {
    /// The text (message and fields) of each WARN event so far.
    pub fn warnings(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == tracing::Level::WARN)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The warnings that contain `text`.
    pub fn warnings_with(&self, text: &str) -> Vec<String> {
        self.warnings()
            .into_iter()
            .filter(|w| w.contains(text))
            .collect()
    }
}

/// A minimal subscriber keeping each event's level and fields as text.
struct Capture(Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", f.name(), v));
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Every value of a string column, each once, and whether any repeated.
pub fn distinct(values: &[Option<String>]) -> (std::collections::BTreeSet<String>, bool) {
    let mut set = std::collections::BTreeSet::new();
    let mut repeated = false;
    for v in values.iter().flatten() {
        repeated |= !set.insert(v.clone());
    }
    (set, repeated)
}

/// The values of a boolean column.
pub fn bools(sink: &Sink, name: &str) -> Vec<Option<bool>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b.column(b.schema().index_of(name).unwrap()).clone();
            c.as_boolean().iter().collect::<Vec<_>>()
        })
        .collect()
}

/// The names of the streams a connector offers.
pub fn stream_names(c: &dyn Connector) -> Vec<String> {
    c.streams().into_iter().map(|d| d.name).collect()
}
