//! SQL database sources (`type = "postgres"`, `"mysql"`): each stream is a
//! table or a query, read in keyset-paginated chunks straight into Arrow,
//! each chunk followed by the checkpoint of its last row's position.
//!
//! The state is the paging position (cursor, then primary key, as the server
//! prints them) and whether the last read reached the end. An interrupted
//! read resumes strictly after the position, so a crash neither loses nor
//! repeats a chunk; a finished one starts the next sync at the cursor less
//! the look-back (rows re-read are merged by primary key). Without a cursor
//! every sync reads the whole relation again.

mod columns;
mod engine;
mod plan;

use std::sync::Arc;

use conveyor_config::{DatabaseSourceConfig, DatabaseStream};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, ErrorKind, Json, RecordSink, StreamDescriptor,
};
use serde::{Deserialize, Serialize};

pub use columns::DELETED_COLUMN;
use columns::{kind_of, ChunkBuilder, Column};
use engine::{describe_target, query_error, Conn};
use plan::{Start, POSITION_PREFIX};

use crate::http::redact::Redactor;

/// What a database stream's checkpoint holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Position {
    /// The last row read: its cursor (if the stream has one), then its
    /// primary key, as text.
    after: Vec<String>,
    /// Whether that read went to the end of the relation.
    done: bool,
}

pub struct DatabaseConnector {
    source: String,
    cfg: DatabaseSourceConfig,
    redactor: Arc<Redactor>,
}

impl DatabaseConnector {
    pub fn new(source: &str, cfg: DatabaseSourceConfig) -> Self {
        DatabaseConnector {
            source: source.to_string(),
            cfg,
            redactor: Arc::new(Redactor::default()),
        }
    }

    fn stream(&self, name: &str) -> Result<&DatabaseStream, ConnectorError> {
        self.cfg
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("source {} has no stream {name}", self.source),
                )
            })
    }

    /// Connects with the password read now (a rotated secret is picked up
    /// on the next sync); every message leaving here is scrubbed of it.
    async fn connect(&self) -> Result<Conn, ConnectorError> {
        let password = match &self.cfg.password {
            None => None,
            Some(r) => Some(r.resolve().map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("source {}: password: {e}", self.source),
                )
            })?),
        };
        if let Some(p) = &password {
            self.redactor.add_secret(p.expose());
        }
        Conn::open(&self.cfg, password.as_ref())
            .await
            .map_err(|e| self.scrub(e))
    }

    fn scrub(&self, mut e: ConnectorError) -> ConnectorError {
        e.message = self.redactor.scrub(&e.message);
        e
    }

    /// The stream's columns with their kinds, learnt from the server on
    /// every read: a column added or dropped upstream is schema drift the
    /// warehouse absorbs, not an error.
    async fn columns(
        &self,
        conn: &mut Conn,
        stream: &DatabaseStream,
    ) -> Result<Vec<Column>, ConnectorError> {
        let probe = plan::probe(self.cfg.engine, &stream.relation);
        let described = conn
            .columns(&probe)
            .await
            .map_err(|e| query_error(&stream.name, &e))?;
        let numeric = conn
            .numeric_precision(&stream.relation)
            .await
            .map_err(|e| query_error(&stream.name, &e))?;
        let columns: Vec<Column> = described
            .iter()
            .map(|(name, t)| {
                Column::new(
                    name,
                    t,
                    kind_of(self.cfg.engine, t, numeric.get(name).copied()),
                )
            })
            .collect();
        let needed = plan::paging_columns(stream)
            .into_iter()
            .chain(stream.soft_delete.as_deref());
        for want in needed {
            if !columns.iter().any(|c| c.name == want) {
                let have: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                return Err(ConnectorError::new(
                    ErrorKind::Config,
                    format!(
                        "stream {}: the relation has no column `{want}` (it has: {})",
                        stream.name,
                        have.join(", ")
                    ),
                ));
            }
        }
        if let Some(c) = columns.iter().find(|c| c.name.starts_with(POSITION_PREFIX)) {
            return Err(ConnectorError::new(
                ErrorKind::Config,
                format!(
                    "stream {}: column `{}` uses a name Conveyor reserves",
                    stream.name, c.name
                ),
            ));
        }
        Ok(columns)
    }
}

/// Where this read starts, from the saved state.
fn start_of(stream: &DatabaseStream, state: Option<&Position>) -> Start {
    match state {
        None => Start::Beginning,
        Some(p) if p.after.is_empty() => Start::Beginning,
        Some(p) if !p.done => Start::After(p.after.clone()),
        Some(p) => match &stream.cursor {
            Some(_) => Start::Since {
                cursor: p.after[0].clone(),
                lookback_secs: stream.lookback.as_secs(),
            },
            // A full refresh: every sync reads it all again.
            None => Start::Beginning,
        },
    }
}

#[async_trait::async_trait]
impl Connector for DatabaseConnector {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.cfg
            .streams
            .iter()
            .map(|s| StreamDescriptor {
                name: s.name.clone(),
                primary_key: s.primary_key.clone(),
                cursor_field: s.cursor.clone(),
            })
            .collect()
    }

    async fn read(
        &self,
        stream_name: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let stream = self.stream(stream_name)?;
        let saved: Option<Position> = match state {
            None => None,
            // A state this connector did not write (say, the stream used to
            // be another type) is not trusted to be a position: start over.
            Some(s) => serde_json::from_value(s).ok(),
        };
        let mut conn = self.connect().await?;
        let result = self
            .read_chunks(&mut conn, stream, saved, sink, cancel)
            .await;
        conn.close().await;
        result.map_err(|e| self.scrub(e))
    }
}

impl DatabaseConnector {
    async fn read_chunks(
        &self,
        conn: &mut Conn,
        stream: &DatabaseStream,
        saved: Option<Position>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let columns = self.columns(conn, stream).await?;
        let engine = self.cfg.engine;
        let limit = self.cfg.chunk_rows;
        let paging = plan::paging_columns(stream);
        let mut start = start_of(stream, saved.as_ref());
        let mut last = saved.map(|p| p.after).unwrap_or_default();
        let mut chunk = ChunkBuilder::new(&columns, stream.soft_delete.as_deref(), limit as usize);
        tracing::debug!(source = %self.source, stream = %stream.name, target = %describe_target(&self.cfg), ?start, "reading");
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let sql = plan::chunk(engine, stream, &columns, &start, limit);
            let rows = conn
                .fetch(&sql, &plan::bindings(&start))
                .await
                .map_err(|e| query_error(&stream.name, &e))?;
            for i in 0..rows.len() {
                let row = rows.get(i);
                chunk.push(row)?;
                if i + 1 == rows.len() {
                    last = position_of(row, columns.len(), &paging, &stream.name)?;
                }
            }
            let done = rows.len() < limit as usize;
            if rows.len() > 0 {
                sink.batch(chunk.finish()?).await?;
            }
            if rows.len() > 0 || done {
                let state = Position {
                    after: last.clone(),
                    done,
                };
                sink.checkpoint(serde_json::to_value(state).expect("a position serialises"))
                    .await?;
            }
            if done {
                return Ok(());
            }
            start = Start::After(last.clone());
        }
    }
}

/// The paging position of a row: the text columns after the stream's own.
/// A NULL there would make every later comparison unknown and silently end
/// the read, so it is an error that names the column.
fn position_of(
    row: &dyn columns::Cells,
    offset: usize,
    paging: &[&str],
    stream: &str,
) -> Result<Vec<String>, ConnectorError> {
    paging
        .iter()
        .enumerate()
        .map(|(i, name)| match row.text(offset + i) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(ConnectorError::new(
                ErrorKind::Data,
                format!("stream {stream}: a row has NULL in `{name}`, which the stream pages by; make it NOT NULL, or COALESCE it in a query stream"),
            )),
            Err(e) => Err(ConnectorError::new(ErrorKind::Data, format!("stream {stream}: `{name}`: {e}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conveyor_config::DatabaseRelation;
    use std::time::Duration;

    fn stream(cursor: Option<&str>) -> DatabaseStream {
        DatabaseStream {
            name: "orders".into(),
            relation: DatabaseRelation::Table {
                schema: None,
                table: "orders".into(),
            },
            primary_key: vec!["id".into()],
            cursor: cursor.map(str::to_string),
            lookback: Duration::from_secs(60),
            soft_delete: None,
        }
    }

    #[test]
    fn an_interrupted_read_resumes_after_its_position_and_a_finished_one_looks_back() {
        let pos = |done| Position {
            after: vec!["2024-05-01 10:00:00+00".into(), "42".into()],
            done,
        };
        let s = stream(Some("updated_at"));
        assert_eq!(start_of(&s, None), Start::Beginning);
        assert_eq!(
            start_of(&s, Some(&pos(false))),
            Start::After(pos(false).after)
        );
        assert_eq!(
            start_of(&s, Some(&pos(true))),
            Start::Since {
                cursor: "2024-05-01 10:00:00+00".into(),
                lookback_secs: 60
            }
        );
        // A full-refresh stream reads everything again once it finished.
        assert_eq!(start_of(&stream(None), Some(&pos(true))), Start::Beginning);
    }
}
