//! A plugin instance as an async [`Connector`]: the plugin runs on a
//! blocking thread the host gives it; its events cross a small bounded
//! channel into the async sink, so a slow warehouse slows the plugin down.

use std::sync::Arc;

use super::instance::{PluginInstance, ReadEvent};
use super::library::PluginLibrary;
use crate::{CancelFlag, Connector, ConnectorError, ErrorKind, Json, RecordSink, StreamDescriptor};

/// Events in flight between the plugin thread and the sink.
const CHANNEL_DEPTH: usize = 4;

pub struct PluginConnector {
    instance: Arc<PluginInstance>,
    streams: Vec<StreamDescriptor>,
}

impl PluginConnector {
    /// Opens an instance with the source's `options` and reads its catalog.
    pub fn open(library: Arc<PluginLibrary>, options: &Json) -> Result<PluginConnector, ConnectorError> {
        let instance = PluginInstance::open(library, options)?;
        let streams = instance.streams()?;
        Ok(PluginConnector { instance: Arc::new(instance), streams })
    }

    pub fn library(&self) -> &PluginLibrary {
        self.instance.library()
    }
}

#[async_trait::async_trait]
impl Connector for PluginConnector {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.streams.clone()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadEvent>(CHANNEL_DEPTH);
        let instance = Arc::clone(&self.instance);
        let stream = stream.to_string();
        let cancel = cancel.clone();
        let plugin = tokio::task::spawn_blocking(move || {
            instance.read_blocking(&stream, state.as_ref(), &cancel, &mut |event| tx.blocking_send(event).is_ok())
        });
        let mut sink_error = None;
        while let Some(event) = rx.recv().await {
            let delivered = match event {
                ReadEvent::Batch(b) => sink.batch(b).await,
                ReadEvent::Checkpoint(s) => sink.checkpoint(s).await,
            };
            if let Err(e) = delivered {
                sink_error = Some(e);
                break;
            }
        }
        // Closing the channel makes the plugin's next delivery fail, so it stops.
        drop(rx);
        let result = plugin.await.map_err(|e| {
            ConnectorError::new(ErrorKind::Plugin, format!("plugin `{}`: its read thread failed: {e}", self.library().info.name))
        })?;
        match sink_error {
            Some(e) => Err(e),
            None => result,
        }
    }
}
