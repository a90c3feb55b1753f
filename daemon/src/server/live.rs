//! What the running daemon shares with its HTTP endpoint: the config in
//! force (replaced as a whole by a reload), whether the daemon is ready, and
//! how to run a sync now on its behalf (`conveyor sync` while it runs).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use conveyor_config::Config;

use super::SyncResponse;

/// The outcome of a sync the endpoint asked for: the result, or why it was
/// refused (an unknown source, a shutdown under way).
pub type SyncFuture = Pin<Box<dyn Future<Output = Result<SyncResponse, String>> + Send>>;
/// Runs the named sources (all when empty) in the daemon.
pub type SyncHandler = Arc<dyn Fn(Vec<String>) -> SyncFuture + Send + Sync>;

pub struct Live {
    config: RwLock<Arc<Config>>,
    ready: AtomicBool,
    sync: OnceLock<SyncHandler>,
}

impl Live {
    pub fn new(config: Arc<Config>) -> Arc<Live> {
        Arc::new(Live {
            config: RwLock::new(config),
            ready: AtomicBool::new(false),
            sync: OnceLock::new(),
        })
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a reloaded config in force.
    pub fn replace(&self, config: Arc<Config>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Lets the endpoint run syncs (set once, by the daemon).
    pub fn set_sync_handler(&self, handler: SyncHandler) {
        let _ = self.sync.set(handler);
    }

    pub fn sync_handler(&self) -> Option<SyncHandler> {
        self.sync.get().cloned()
    }
}
