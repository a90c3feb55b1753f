//! SQL database sources (`type = "postgres"`, `"mysql"`): each stream is a
//! table or a query, read in keyset-paginated chunks straight into Arrow,
//! each chunk followed by the checkpoint of its last row's position.
//!
//! A first sync (and every sync of a stream without a cursor) is a full read
//! paged by the primary key, which its index serves; before it starts, the
//! cursor's highest value is noted. Later syncs read the rows whose cursor is
//! at or after that value less the look-back, paged by cursor then key (rows
//! re-read are merged by primary key). The state is the phase, the paging
//! position (as the server prints the values) and whether the read reached
//! the end: an interrupted read resumes strictly after its position, so a
//! crash neither loses nor repeats a chunk.

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
use plan::{Order, Start, POSITION_PREFIX};

use crate::http::redact::Redactor;

/// What a database stream's checkpoint holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Position {
    /// How the read that wrote it was ordered.
    phase: Phase,
    /// The last row read, by the phase's paging columns (key; or cursor
    /// then key), as text. A finished full read leaves the high-water
    /// cursor value here instead.
    after: Vec<String>,
    /// Whether that read went to the end of the relation.
    done: bool,
    /// A full read's cursor high-water mark, noted before it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    high_water: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Phase {
    #[default]
    Full,
    Incremental,
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
        let needed = plan::paging_columns(stream, Order::CursorThenKey)
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

/// How this read is ordered and where it starts, from the saved state.
fn start_of(stream: &DatabaseStream, state: Option<&Position>) -> (Order, Start) {
    let Some(p) = state else {
        return (Order::Key, Start::Beginning);
    };
    match (p.phase, p.done, p.after.is_empty()) {
        (_, _, true) => (Order::Key, Start::Beginning),
        (Phase::Full, false, _) => (Order::Key, Start::After(p.after.clone())),
        // A stream without a cursor reads it all again every sync.
        (Phase::Full, true, _) => (Order::Key, Start::Beginning),
        (Phase::Incremental, false, _) => (Order::CursorThenKey, Start::After(p.after.clone())),
        (Phase::Incremental, true, _) if stream.cursor.is_some() => (
            Order::CursorThenKey,
            Start::Since {
                cursor: p.after[0].clone(),
                lookback_secs: stream.lookback.as_secs(),
            },
        ),
        // The cursor was taken out of the config: a full read.
        (Phase::Incremental, true, _) => (Order::Key, Start::Beginning),
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
        let (order, mut start) = start_of(stream, saved.as_ref());
        let phase = match order {
            Order::Key => Phase::Full,
            Order::CursorThenKey => Phase::Incremental,
        };
        let paging = plan::paging_columns(stream, order);
        let mut high_water = match (&saved, &start) {
            (Some(p), Start::After(_)) if phase == Phase::Full => p.high_water.clone(),
            _ => None,
        };
        if phase == Phase::Full && high_water.is_none() && matches!(start, Start::Beginning) {
            if let Some(sql) = plan::high_water(engine, stream) {
                let rows = conn
                    .fetch(&sql, &[])
                    .await
                    .map_err(|e| query_error(&stream.name, &e))?;
                let row = rows.get(0);
                let nulls = row.text(1).ok().flatten().unwrap_or_default();
                if nulls != "0" {
                    let cursor = stream.cursor.as_deref().unwrap_or_default();
                    return Err(ConnectorError::new(
                        ErrorKind::Data,
                        format!("stream {}: {nulls} rows have NULL in `{cursor}`, the stream's cursor, so a sync could never pick up their changes; make it NOT NULL, or COALESCE it in a query stream", stream.name),
                    ));
                }
                high_water = row.text(0).ok().flatten();
            }
        }
        let mut last = match &saved {
            Some(p) if !matches!(start, Start::Beginning) => p.after.clone(),
            _ => Vec::new(),
        };
        let mut chunk = ChunkBuilder::new(&columns, stream.soft_delete.as_deref(), limit as usize);
        tracing::debug!(source = %self.source, stream = %stream.name, target = %describe_target(&self.cfg), ?order, ?start, "reading");
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let sql = plan::chunk(engine, stream, &columns, order, &start, limit);
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
                let state = match (done, phase, &high_water) {
                    // A full read finished: the next sync starts at the
                    // cursor value noted before it began.
                    (true, Phase::Full, Some(hw)) => Position {
                        phase: Phase::Incremental,
                        after: vec![hw.clone()],
                        done: true,
                        high_water: None,
                    },
                    _ => Position {
                        phase,
                        after: last.clone(),
                        done,
                        high_water: high_water.clone(),
                    },
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
    fn a_full_read_pages_by_key_and_a_finished_one_continues_from_the_cursor() {
        let pos = |phase, after: &[&str], done| Position {
            phase,
            after: after.iter().map(|s| s.to_string()).collect(),
            done,
            high_water: None,
        };
        let s = stream(Some("updated_at"));
        assert_eq!(start_of(&s, None), (Order::Key, Start::Beginning));
        assert_eq!(
            start_of(&s, Some(&pos(Phase::Full, &["42"], false))),
            (Order::Key, Start::After(vec!["42".into()]))
        );
        let at = "2024-05-01 10:00:00+00";
        assert_eq!(
            start_of(&s, Some(&pos(Phase::Incremental, &[at, "42"], false))),
            (
                Order::CursorThenKey,
                Start::After(vec![at.into(), "42".into()])
            )
        );
        assert_eq!(
            start_of(&s, Some(&pos(Phase::Incremental, &[at], true))),
            (
                Order::CursorThenKey,
                Start::Since {
                    cursor: at.into(),
                    lookback_secs: 60
                }
            )
        );
        // A full-refresh stream reads everything again once it finished.
        assert_eq!(
            start_of(&stream(None), Some(&pos(Phase::Full, &["42"], true))),
            (Order::Key, Start::Beginning)
        );
    }
}
