//! Test plugin that crashes the way no `catch_unwind` can contain: it
//! dereferences null, calls `abort()`, calls `exit()`, or allocates without
//! bound — so the tests can check that process isolation keeps the daemon
//! alive. The mode is read at every `read`, from `options.mode_file` when
//! given (a test flips it between runs without reloading the config), else
//! `options.mode`.

use std::sync::Arc;
use std::time::Duration;

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
    /// One checkpointed batch, then a read through a null pointer.
    Segfault,
    /// One checkpointed batch, then `abort()`.
    Abort,
    /// One checkpointed batch, then `exit(3)`.
    Exit,
    /// Allocates and touches 16 MiB blocks until the allocator fails (an
    /// rlimit) — or, if nothing stops it, gives up at 4 GiB with an error.
    ExhaustMemory,
    /// Writes junk to its stdout, then behaves as `ok`: a plugin printing
    /// must not corrupt what the host reads.
    Chatty,
    /// One checkpointed batch, then sleeps forever, ignoring cancellation.
    Hang,
    /// One checkpointed batch, then a second whose names are its process's
    /// environment (`KEY=VALUE`, ids from 100): a plugin hunting for the
    /// daemon's secrets.
    Snoop,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    mode_file: Option<std::path::PathBuf>,
}

pub struct Crashing {
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

impl Crashing {
    fn mode(&self) -> Result<Mode, ConnectorError> {
        let config = |e: String| ConnectorError::new(ErrorKind::Config, e);
        match (&self.options.mode_file, self.options.mode) {
            (Some(file), _) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| config(format!("{}: {e}", file.display())))?;
                serde_json::from_value(Json::String(text.trim().to_string()))
                    .map_err(|e| config(format!("{}: {e}", file.display())))
            }
            (None, Some(mode)) => Ok(mode),
            (None, None) => Err(config("set options.mode or options.mode_file".into())),
        }
    }
}

impl BlockingConnector for Crashing {
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
        let mode = self.mode()?;
        self.host
            .info(&format!("crashing read starts in mode {mode:?}"));
        if mode == Mode::Chatty {
            println!("junk on stdout that is not a frame");
            print!("\x0b\x00\x00\x00\x7f");
        }
        sink.batch(batch(&[1, 2, 3]))?;
        sink.checkpoint(serde_json::json!({"page": 1}))?;
        match mode {
            Mode::Ok | Mode::Chatty => {
                sink.batch(batch(&[4, 5]))?;
                sink.checkpoint(serde_json::json!({"page": 2}))
            }
            Mode::Segfault => conveyor_plugin_api::crash::dereference_null(),
            Mode::Abort => std::process::abort(),
            Mode::Exit => std::process::exit(3),
            Mode::ExhaustMemory => {
                let mut kept: Vec<Vec<u8>> = Vec::new();
                while kept.len() < 256 {
                    // Touched page by page, so the memory is really used.
                    let mut block = vec![0u8; 16 << 20];
                    for i in (0..block.len()).step_by(4096) {
                        block[i] = 1;
                    }
                    kept.push(block);
                }
                Err(ConnectorError::new(
                    ErrorKind::Plugin,
                    "allocated 4 GiB and nothing stopped it",
                ))
            }
            Mode::Hang => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            Mode::Snoop => {
                let seen: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                let ids: Vec<i64> = (100..).take(seen.len()).collect();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("name", DataType::Utf8, true),
                ]));
                let snooped = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(StringArray::from(seen)),
                    ],
                )
                .expect("valid batch");
                sink.batch(snooped)?;
                sink.checkpoint(serde_json::json!({"page": 2}))
            }
        }
    }
}

impl Plugin for Crashing {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "crashing".into(),
            version: "0.0.1".into(),
            description: "crashes on demand".into(),
        }
    }

    fn open(options: Json, host: Host) -> Result<Self, ConnectorError> {
        let options: Options = serde_json::from_value(options)
            .map_err(|e| ConnectorError::new(ErrorKind::Config, e.to_string()))?;
        Ok(Crashing { options, host })
    }
}

conveyor_plugin_api::export_connector!(Crashing);
