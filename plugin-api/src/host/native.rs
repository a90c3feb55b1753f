//! A [`BlockingConnector`] used natively, without the C ABI, as an async
//! [`Connector`]: the same thread-and-channel bridge a plugin gets, so a
//! plugin's connector compiled into the host behaves exactly as when loaded.

use std::sync::Arc;

use super::connector::bridge;
use super::instance::ReadEvent;
use crate::{
    BlockingConnector, BlockingSink, CancelFlag, Connector, ConnectorError, Json, RecordBatch,
    RecordSink, StreamDescriptor,
};

/// `T` driven on a blocking thread, its output crossing into the async sink.
pub struct NativeConnector<T>(Arc<T>);

impl<T: BlockingConnector + 'static> NativeConnector<T> {
    pub fn new(connector: T) -> Self {
        NativeConnector(Arc::new(connector))
    }
}

/// Hands each event to the bridge; `false` from it means the host stopped.
struct EventSink<'a>(&'a mut dyn FnMut(ReadEvent) -> bool);

impl BlockingSink for EventSink<'_> {
    fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        if (self.0)(ReadEvent::Batch(batch)) {
            Ok(())
        } else {
            Err(super::connector::stopped())
        }
    }
    fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        if (self.0)(ReadEvent::Checkpoint(state)) {
            Ok(())
        } else {
            Err(super::connector::stopped())
        }
    }
}

#[async_trait::async_trait]
impl<T: BlockingConnector + 'static> Connector for NativeConnector<T> {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.0.streams()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let connector = Arc::clone(&self.0);
        let stream = stream.to_string();
        bridge(sink, cancel, "native connector", move |cancel, on_event| {
            connector.read(&stream, state, &mut EventSink(on_event), &cancel)
        })
        .await
    }
}
