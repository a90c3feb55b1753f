//! The blocking twin of the connector contract, for plugin authors.
//!
//! A plugin runs on a thread the host gives it (see `ffi`), so it can do
//! plain blocking I/O: no async runtime is needed on the plugin side. The
//! semantics are those of [`Connector`](crate::Connector) and
//! [`RecordSink`](crate::RecordSink): batches, each run of them followed by
//! the checkpoint that is safe once they are stored.

use crate::{CancelFlag, ConnectorError, Json, RecordBatch, StreamDescriptor};

/// Where a blocking connector's output goes.
pub trait BlockingSink {
    /// Records read since the last checkpoint.
    fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError>;
    /// The state that is safe to resume from once every batch before it is
    /// stored. An error means the host cannot go on: return it.
    fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError>;
}

/// A connector instance that reads with blocking I/O.
pub trait BlockingConnector: Send + Sync {
    fn streams(&self) -> Vec<StreamDescriptor>;

    /// Reads `stream` from `state` (`None` on the first sync), pushing
    /// batches and checkpoints into `sink` until the stream is exhausted or
    /// `cancel` is set. On error, nothing after the last checkpoint counts.
    fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn BlockingSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError>;
}

/// Collects everything a blocking connector emits, in order; for tests and
/// for using a plugin's connector natively.
#[derive(Debug, Default)]
pub struct CollectingSink {
    pub events: Vec<SinkEvent>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkEvent {
    Batch(RecordBatch),
    Checkpoint(Json),
}

impl CollectingSink {
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SinkEvent::Batch(b) => Some(b.clone()),
                SinkEvent::Checkpoint(_) => None,
            })
            .collect()
    }

    pub fn last_checkpoint(&self) -> Option<&Json> {
        self.events.iter().rev().find_map(|e| match e {
            SinkEvent::Checkpoint(s) => Some(s),
            SinkEvent::Batch(_) => None,
        })
    }
}

impl BlockingSink for CollectingSink {
    fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.events.push(SinkEvent::Batch(batch));
        Ok(())
    }
    fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.events.push(SinkEvent::Checkpoint(state));
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::RecordSink for CollectingSink {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        BlockingSink::batch(self, batch)
    }
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        BlockingSink::checkpoint(self, state)
    }
}
