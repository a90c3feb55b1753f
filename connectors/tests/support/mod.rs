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
