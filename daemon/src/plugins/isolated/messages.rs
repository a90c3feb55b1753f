//! What the frames of the plugin host protocol carry (`frame.rs`): the JSON
//! messages, and record batches as Arrow IPC streams.
//!
//! [`Open`] holds the source's resolved secrets (inside `options`, and the
//! values to scrub in `secrets`): it crosses only the pipe — never the
//! command line or the environment — and has no `Debug`, so it cannot be
//! logged by accident.

use std::path::PathBuf;

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use conveyor_plugin_api::{
    ConnectorError, ErrorKind, Json, PluginInfo, RecordBatch, StreamDescriptor,
};
use serde::{Deserialize, Serialize};

/// daemon → host: which library to load and how to open it.
#[derive(Serialize, Deserialize)]
pub struct Open {
    /// The library the daemon verified.
    pub library: PathBuf,
    /// The SHA-256 of the bytes the daemon verified: the host refuses a
    /// file that changed since.
    pub sha256: String,
    /// The source's `type`: the name the library must report.
    pub plugin: String,
    /// The source's options, its secrets resolved and added.
    pub options: Json,
    /// The secret values, scrubbed from everything the plugin says.
    pub secrets: Vec<String>,
    /// The address-space limit the host sets on itself, in bytes.
    pub memory_limit: u64,
}

/// host → daemon: the library loaded and the instance opened.
#[derive(Debug, Serialize, Deserialize)]
pub struct Opened {
    pub info: PluginInfo,
    pub abi: (u16, u16),
    pub streams: Vec<StreamDescriptor>,
}

/// daemon → host: read one stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadRequest {
    pub stream: String,
    pub state: Option<Json>,
}

/// host → daemon: a plugin log line (already scrubbed).
#[derive(Debug, Serialize, Deserialize)]
pub struct LogLine {
    /// `conveyor_plugin_api::ffi::level`.
    pub level: u32,
    pub message: String,
}

/// host → daemon: an open or a read failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&ConnectorError> for Failure {
    fn from(e: &ConnectorError) -> Self {
        Failure {
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

impl From<Failure> for ConnectorError {
    fn from(f: Failure) -> Self {
        ConnectorError::new(f.kind, f.message)
    }
}

/// One batch as a self-contained Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut w = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    w.into_inner()
}

/// The batch of an IPC stream made by [`encode_batch`].
pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut r = StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    r.next().unwrap_or_else(|| {
        Err(arrow_schema::ArrowError::IpcError(
            "an IPC stream without a batch".into(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    #[test]
    fn a_batch_survives_ipc_with_its_types_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1), None]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let back = decode_batch(encode_batch(&batch).unwrap()).unwrap();
        assert_eq!(back, batch);
        assert!(decode_batch(b"not ipc".to_vec()).is_err());
    }
}
