//! The plugin's options (a source's `options` table), validated on open.

use std::path::PathBuf;

use conveyor_plugin_api::{ConnectorError, ErrorKind, Json};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The folder files are dropped into.
    pub dir: PathBuf,
    pub streams: Vec<StreamOptions>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    /// Also the warehouse table name.
    pub name: String,
    /// File names this stream reads; `*` matches any run of characters,
    /// e.g. `hours_*.csv`. The extension picks the format: `.csv`, or
    /// `.ndjson` / `.jsonl` for one JSON object per line.
    pub pattern: String,
    /// Column(s) that identify a row; rows are merged on them.
    pub primary_key: Vec<String>,
}

impl Options {
    pub fn parse(options: Json) -> Result<Options, ConnectorError> {
        let o: Options = serde_json::from_value(options).map_err(|e| {
            ConnectorError::new(ErrorKind::Config, format!("file_drop options: {e}"))
        })?;
        if o.streams.is_empty() {
            return Err(ConnectorError::new(
                ErrorKind::Config,
                "file_drop options: `streams` is empty",
            ));
        }
        for s in &o.streams {
            if s.primary_key.is_empty() {
                return Err(ConnectorError::new(
                    ErrorKind::Config,
                    format!("file_drop stream `{}`: `primary_key` is empty", s.name),
                ));
            }
            crate::formats::Format::of(&s.pattern)?;
        }
        Ok(o)
    }
}
