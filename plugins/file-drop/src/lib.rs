//! File drop: a Conveyor connector plugin that reads CSV and NDJSON files
//! dropped into a folder (payroll and timekeeping exports often arrive so).
//!
//! Each stream names a file pattern; every new or rewritten file becomes
//! one typed record batch followed by a checkpoint (its mtime and name), so
//! a crash never re-reads a stored file and never skips an unstored one.
//! Built as a `cdylib` it is loaded through the plugin ABI; as an `rlib` the
//! same connector can be used natively (the tests compare the two).

pub mod formats;
pub mod options;
pub mod scan;
pub mod typed;

use conveyor_plugin_api::plugin::{Host, Plugin};
use conveyor_plugin_api::{
    BlockingConnector, BlockingSink, CancelFlag, ConnectorError, ErrorKind, Json, PluginInfo,
    StreamDescriptor,
};

use crate::formats::Format;
use crate::options::Options;
use crate::scan::Cursor;

pub struct FileDrop {
    options: Options,
    host: Host,
}

impl FileDrop {
    /// The connector without a host (logs go nowhere); for native use.
    pub fn new(options: Json) -> Result<FileDrop, ConnectorError> {
        Ok(FileDrop {
            options: Options::parse(options)?,
            host: Host::detached(),
        })
    }
}

impl BlockingConnector for FileDrop {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.options
            .streams
            .iter()
            .map(|s| StreamDescriptor {
                name: s.name.clone(),
                primary_key: s.primary_key.clone(),
                cursor_field: None,
            })
            .collect()
    }

    fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn BlockingSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let opts = self
            .options
            .streams
            .iter()
            .find(|s| s.name == stream)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("file_drop has no stream `{stream}`"),
                )
            })?;
        let after = Cursor::from_state(state)?;
        let files = scan::files_after(&self.options.dir, &opts.pattern, after.as_ref())?;
        self.host.debug(&format!(
            "{stream}: {} new file(s) in {}",
            files.len(),
            self.options.dir.display()
        ));
        for file in files {
            if cancel.is_cancelled() {
                break;
            }
            let format = Format::of(&file.cursor.file)?;
            let table = formats::read(&file.path, format)?;
            if !table.rows.is_empty() {
                sink.batch(typed::to_batch(table)?)?;
            }
            let state = serde_json::to_value(&file.cursor)
                .map_err(|e| ConnectorError::new(ErrorKind::Data, e.to_string()))?;
            sink.checkpoint(state)?;
            self.host
                .info(&format!("{stream}: read {}", file.cursor.file));
        }
        Ok(())
    }
}

impl Plugin for FileDrop {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "file_drop".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "CSV and NDJSON files dropped into a folder".into(),
        }
    }

    fn open(options: Json, host: Host) -> Result<Self, ConnectorError> {
        Ok(FileDrop {
            options: Options::parse(options)?,
            host,
        })
    }
}

conveyor_plugin_api::export_connector!(FileDrop);
