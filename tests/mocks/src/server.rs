//! Loopback HTTP harness: serves an axum `Router` on 127.0.0.1 and shuts it down when dropped.

use std::net::SocketAddr;

use axum::Router;
use tokio::{net::TcpListener, sync::oneshot};

/// A running mock server. Dropping it triggers a graceful shutdown of its task.
pub struct MockServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` (so parallel tests never collide) and serves `router` on a spawned task.
    pub async fn start(router: Router) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("listener address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            let _ = axum::serve(listener, router).with_graceful_shutdown(stop).await;
        });
        MockServer { addr, shutdown: Some(tx) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Absolute URL for `path` (a leading `/` is optional).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
