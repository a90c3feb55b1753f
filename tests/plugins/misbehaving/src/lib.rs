//! Test plugin that misbehaves on demand (`options.mode`), so the tests can
//! check that the host survives: panics in `open` or mid-stream, errors
//! from `read`, and a well-behaved mode for comparison.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use conveyor_plugin_api::plugin::{Host, Plugin};
use conveyor_plugin_api::{
    BlockingConnector, BlockingSink, CancelFlag, ConnectorError, ErrorKind, Json, PluginInfo,
    StreamDescriptor,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// Two batches, each followed by a checkpoint.
    Ok,
    PanicOpen,
    /// One checkpointed batch, one more batch, then a panic.
    PanicMidStream,
    /// Fails `read` with an error (text in `options.message`).
    ErrorRead,
    /// Logs and fails with its secret `token` in the text, as a careless
    /// plugin might: the host must scrub it.
    EchoToken,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    mode: Mode,
    #[serde(default)]
    message: Option<String>,
    /// A secret (from the source's `secrets`).
    #[serde(default)]
    token: Option<String>,
}

pub struct Misbehaving {
    options: Options,
    host: Host,
}

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("valid batch")
}

impl BlockingConnector for Misbehaving {
    fn streams(&self) -> Vec<StreamDescriptor> {
        vec![StreamDescriptor {
            name: "items".into(),
            primary_key: vec!["id".into()],
            cursor_field: None,
        }]
    }

    fn read(
        &self,
        _: &str,
        _: Option<Json>,
        sink: &mut dyn BlockingSink,
        _: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        self.host.info("misbehaving read starts");
        match self.options.mode {
            Mode::Ok => {
                sink.batch(batch(&[1, 2, 3]))?;
                sink.checkpoint(serde_json::json!({"page": 1}))?;
                sink.batch(batch(&[4, 5]))?;
                sink.checkpoint(serde_json::json!({"page": 2}))
            }
            Mode::PanicMidStream => {
                sink.batch(batch(&[1, 2, 3]))?;
                sink.checkpoint(serde_json::json!({"page": 1}))?;
                sink.batch(batch(&[4, 5]))?;
                panic!("boom in the middle of the stream");
            }
            Mode::ErrorRead => Err(ConnectorError::new(
                ErrorKind::Http,
                self.options
                    .message
                    .clone()
                    .unwrap_or_else(|| "the vendor said no".into()),
            )),
            Mode::EchoToken => {
                let token = self.options.token.clone().unwrap_or_default();
                self.host
                    .warn(&format!("calling the vendor with token {token}"));
                Err(ConnectorError::new(
                    ErrorKind::Auth,
                    format!("token {token} was refused"),
                ))
            }
            Mode::PanicOpen => unreachable!("open panicked"),
        }
    }
}

impl Plugin for Misbehaving {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehaving".into(),
            version: "0.0.1".into(),
            description: "fails on demand".into(),
        }
    }

    fn open(options: Json, host: Host) -> Result<Self, ConnectorError> {
        let options: Options = serde_json::from_value(options)
            .map_err(|e| ConnectorError::new(ErrorKind::Config, e.to_string()))?;
        if options.mode == Mode::PanicOpen {
            panic!("boom in open");
        }
        Ok(Misbehaving { options, host })
    }
}

conveyor_plugin_api::export_connector!(Misbehaving);
