//! The Postgres-wire SQL endpoint (`[server.postgres]`): psql, BI tools
//! and drivers read the warehouse while the daemon runs. This module
//! listens, offers TLS on `SSLRequest` when certificates are configured
//! (answers `N` otherwise), and hands each connection to pgwire with our
//! handlers: SCRAM-SHA-256 logins (`auth.rs`), the query protocols
//! (`session.rs`), catalog answers and rewrites (`catalog.rs`), DuckDB
//! reads (`exec.rs`) and type encoding (`types.rs`).
//!
//! Read-only is enforced below the protocol: every statement that reaches
//! DuckDB passes the statement guard and runs in a transaction that is
//! rolled back, on a connection whose instance has external access off
//! and its configuration locked.

mod auth;
mod catalog;
mod exec;
mod session;
mod types;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use conveyor_config::{PostgresConfig, TlsFiles};
use futures::Sink;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;

use crate::warehouse::Warehouse;

struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<session::Handler>,
    cancels: Arc<session::Cancels>,
    errors: Arc<session::Errors>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.errors.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancels.clone()
    }
}

/// SCRAM logins, refusing a startup that names no user at once (as
/// Postgres does, SQLSTATE 28000) instead of starting a handshake.
struct Startup(SASLAuthStartupHandler<DefaultServerParameterProvider>);

#[async_trait::async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if startup.parameters.get("user").is_none_or(|u| u.is_empty()) {
                return Err(PgWireError::UserNameRequired);
            }
        }
        self.0.on_startup(client, message).await
    }
}

/// What the server tells clients about itself after login.
fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = catalog::SERVER_VERSION.to_string();
    p.date_style = "ISO, MDY".into();
    p.time_zone = "UTC".into();
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    p.search_path = "main".into();
    p
}

fn handlers(cfg: &PostgresConfig, wh: Arc<Warehouse>) -> Handlers {
    let engine = session::Engine::new(wh);
    // No SCRAM-SHA-256-PLUS: channel binding would refuse clients that
    // connect without TLS to a server that has a certificate.
    let scram = ScramAuth::new(Arc::new(auth::Users::new(cfg.users.clone())));
    Handlers {
        startup: Arc::new(Startup(
            SASLAuthStartupHandler::new(Arc::new(parameters())).with_scram(scram),
        )),
        queries: Arc::new(session::Handler::new(engine.clone())),
        cancels: Arc::new(session::Cancels(engine)),
        errors: Arc::new(session::Errors),
    }
}

/// TLS from PEM files, on the ring provider.
fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_pem = std::fs::read(&files.cert).with_context(|| {
        format!(
            "cannot read server.postgres.tls_cert {}",
            files.cert.display()
        )
    })?;
    let key_pem = std::fs::read(&files.key).with_context(|| {
        format!(
            "cannot read server.postgres.tls_key {}",
            files.key.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    // The key file's content never goes into a message.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| anyhow::anyhow!("{} holds no usable PEM private key", files.key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS setup")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .with_context(|| {
        format!(
            "server.postgres: the key {} does not fit the certificate {}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    // Direct TLS (Postgres 17 clients, `sslnegotiation=direct`) needs ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds `[server.postgres] listen` and serves until `shutdown` completes;
/// open sessions are then closed (their reads are rolled back anyway).
pub async fn serve(
    cfg: &PostgresConfig,
    wh: Arc<Warehouse>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    let tls = cfg.tls.as_ref().map(tls_acceptor).transpose()?;
    let listen = cfg.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (server.postgres.listen); is another conveyor daemon or a Postgres server using it?")
    })?;
    tracing::info!(%listen, tls = tls.is_some(), users = cfg.users.len(), "Postgres-wire SQL endpoint ready");
    let handlers = Arc::new(handlers(cfg, wh));
    Ok(tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        tracing::debug!(%peer, "Postgres-wire connection");
                        let (tls, handlers) = (tls.clone(), handlers.clone());
                        sessions.spawn(async move {
                            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                                tracing::debug!(%peer, error = %e, "Postgres-wire connection ended");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Postgres-wire endpoint cannot accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        }
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
        tracing::info!("Postgres-wire SQL endpoint stopped");
    }))
}
