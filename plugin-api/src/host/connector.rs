//! A plugin instance as an async [`Connector`]: the plugin runs on a
//! blocking thread the host gives it; its events cross a small bounded
//! channel into the async sink, so a slow warehouse slows the plugin down.

use std::sync::Arc;

use super::instance::{PluginInstance, ReadEvent};
use super::library::PluginLibrary;
use super::Redact;
use crate::{CancelFlag, Connector, ConnectorError, ErrorKind, Json, RecordSink, StreamDescriptor};

/// Events in flight between the plugin thread and the sink.
const CHANNEL_DEPTH: usize = 4;

pub struct PluginConnector {
    instance: Arc<PluginInstance>,
    streams: Vec<StreamDescriptor>,
}

impl PluginConnector {
    /// Opens an instance with the source's `options` and reads its catalog.
    pub fn open(
        library: Arc<PluginLibrary>,
        options: &Json,
    ) -> Result<PluginConnector, ConnectorError> {
        Self::open_redacting(library, options, Redact::default())
    }

    /// As [`open`](Self::open), for options that hold secrets: `redact`
    /// scrubs them from the plugin's errors and log lines.
    pub fn open_redacting(
        library: Arc<PluginLibrary>,
        options: &Json,
        redact: Redact,
    ) -> Result<PluginConnector, ConnectorError> {
        let instance = PluginInstance::open(library, options, redact)?;
        let streams = instance.streams()?;
        Ok(PluginConnector {
            instance: Arc::new(instance),
            streams,
        })
    }

    pub fn library(&self) -> &PluginLibrary {
        self.instance.library()
    }
}

/// The error a blocking reader sees once the host stopped taking events.
pub(crate) fn stopped() -> ConnectorError {
    ConnectorError::new(ErrorKind::Host, "the host stopped taking records")
}

/// Runs `read` on a blocking thread, forwarding its events into `sink` in
/// order. A sink error stops the reader (its next delivery fails) and is
/// the one returned; otherwise the reader's own result is.
pub(crate) async fn bridge<F>(
    sink: &mut dyn RecordSink,
    cancel: &CancelFlag,
    what: &str,
    read: F,
) -> Result<(), ConnectorError>
where
    F: FnOnce(CancelFlag, &mut dyn FnMut(ReadEvent) -> bool) -> Result<(), ConnectorError>
        + Send
        + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadEvent>(CHANNEL_DEPTH);
    let cancel = cancel.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read(cancel, &mut |event| tx.blocking_send(event).is_ok())
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
    // Closing the channel makes the reader's next delivery fail, so it stops.
    drop(rx);
    let result = reader.await.map_err(|e| {
        ConnectorError::new(
            ErrorKind::Plugin,
            format!("{what}: its read thread failed: {e}"),
        )
    })?;
    match sink_error {
        Some(e) => Err(e),
        None => result,
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
        let instance = Arc::clone(&self.instance);
        let stream = stream.to_string();
        let what = format!("plugin `{}`", self.library().info.name);
        bridge(sink, cancel, &what, move |cancel, on_event| {
            instance.read_blocking(&stream, state.as_ref(), &cancel, on_event)
        })
        .await
    }
}
