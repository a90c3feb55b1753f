//! Loopback HTTP harness: serves an axum `Router` on 127.0.0.1 (plain, or
//! HTTPS with a rustls config, e.g. one that requires a client certificate)
//! and shuts it down when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpStream;
use tokio::{net::TcpListener, sync::mpsc, sync::oneshot};
use tokio_rustls::server::TlsStream;

/// A running mock server. Dropping it triggers a graceful shutdown of its task.
pub struct MockServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    scheme: &'static str,
    /// TLS handshakes the server refused (no or an untrusted client certificate).
    refused: Arc<AtomicUsize>,
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
        MockServer { addr, shutdown: Some(tx), scheme: "http", refused: Arc::default() }
    }

    /// Like [`MockServer::start`], over TLS with `config`: a connection
    /// whose handshake fails (a client certificate the config requires is
    /// missing or untrusted) never reaches `router`; it is counted.
    pub async fn start_tls(router: Router, config: Arc<rustls::ServerConfig>) -> MockServer {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = tcp.local_addr().expect("listener address");
        let refused = Arc::new(AtomicUsize::new(0));
        let listener = TlsListener::new(tcp, config, refused.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            let _ = axum::serve(listener, router).with_graceful_shutdown(stop).await;
        });
        MockServer { addr, shutdown: Some(tx), scheme: "https", refused }
    }

    /// TLS handshakes refused so far.
    pub fn refused_handshakes(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS), without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
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

/// Hands axum connections whose TLS handshake is done; each handshake runs
/// on its own task, so a client that never finishes holds up no other.
struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>, refused: Arc<AtomicUsize>) -> Self {
        let local = tcp.local_addr().expect("listener address");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = tcp.accept().await {
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx, refused) = (acceptor.clone(), tx.clone(), refused.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsListener { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ends only when the socket fails; serve no more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
