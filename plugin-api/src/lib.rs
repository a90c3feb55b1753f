//! The connector contract: what every connector, built in or plugin, implements.
//!
//! A connector declares its streams and reads one stream from a saved state,
//! emitting Arrow record batches, each followed by the checkpoint (state) that
//! is safe once that batch is stored. The host commits a batch's rows and the
//! checkpoint after it in one transaction, so a crash never separates them.
//!
//! Built-in connectors implement the async [`Connector`] directly. Plugins
//! (shared libraries loaded at run time) implement its blocking twin,
//! [`BlockingConnector`], and export it through the C ABI in [`ffi`] with
//! [`export_connector!`]; [`plugin`] is their side of the ABI, `host` (feature
//! `host`) the daemon's. `PLUGINS.md` at the repository root is the guide.

mod blocking;
#[cfg(feature = "test-crashes")]
#[doc(hidden)]
pub mod crash;
mod error;
pub mod ffi;
#[cfg(feature = "host")]
pub mod host;
mod info;
pub mod plugin;
pub mod secret_forms;

pub use arrow_array::RecordBatch;
pub use blocking::{BlockingConnector, BlockingSink, CollectingSink, SinkEvent};
pub use error::{ConnectorError, ErrorKind};
pub use info::PluginInfo;
pub use serde_json::Value as Json;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A stream a connector can read: it becomes one warehouse table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamDescriptor {
    pub name: String,
    /// Fields that identify a record; rows are merged on them.
    pub primary_key: Vec<String>,
    /// The field the incremental cursor follows, if any.
    pub cursor_field: Option<String>,
}

/// Where a connector's output goes. The host implements it.
#[async_trait::async_trait]
pub trait RecordSink: Send {
    /// Records read since the last checkpoint.
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError>;
    /// The state that is safe to resume from once every batch before it is
    /// stored. `state` is opaque to the host and handed back on the next read.
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError>;
}

/// Long-lived credentials a connector must keep across runs, such as a
/// rotated OAuth refresh token. The host stores them durably; `save` returns
/// only once the value is stored, so a token is never used before it is kept.
pub trait CredentialStore: Send + Sync {
    fn load(&self, key: &str) -> Result<Option<String>, ConnectorError>;
    fn save(&self, key: &str, value: &str) -> Result<(), ConnectorError>;
}

/// A store that forgets everything; for tests and one-off reads.
#[derive(Default)]
pub struct MemoryCredentials(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl CredentialStore for MemoryCredentials {
    fn load(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        Ok(self.0.lock().expect("credential lock").get(key).cloned())
    }
    fn save(&self, key: &str, value: &str) -> Result<(), ConnectorError> {
        self.0
            .lock()
            .expect("credential lock")
            .insert(key.into(), value.into());
        Ok(())
    }
}

/// Set by the host when a shutdown is requested. A connector checks it
/// between pages and returns early; the host commits what was read so far.
#[derive(Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A connector instance, configured for one source.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    fn streams(&self) -> Vec<StreamDescriptor>;

    /// Reads `stream` from `state` (`None` on the first sync), pushing
    /// batches and checkpoints into `sink` until the stream is exhausted or
    /// `cancel` is set. On error, nothing after the last checkpoint counts.
    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError>;
}
