//! The daemon's local HTTP endpoint: read-only SQL and health, so that ops
//! can query the warehouse while the daemon holds it open and writes to it;
//! the few things ops do by hand while it runs (silences, a sync, a
//! reconciliation or rule evaluation now, notifications re-queued) plus
//! rule previews, which need the warehouse the daemon holds; and
//! `/metrics` for Prometheus. Every request is authenticated ([`auth`])
//! except `GET /health` and `GET /ready`, which answer `ok` and nothing
//! else; the CLI's side is [`client`].

pub mod auth;
pub mod client;
pub mod console;
pub mod live;
pub mod metrics;

pub use client::find_daemon;
pub use live::Live;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::query::{self, QueryResult};
use crate::warehouse::Warehouse;

#[derive(Clone)]
struct AppState {
    wh: Arc<Warehouse>,
    live: Arc<Live>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub pid: u32,
    pub warehouse: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct QueryRequest {
    pub sql: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct PreviewRequest {
    pub rule: String,
    /// Evaluate as of this UTC instant (`alerts preview --at`); now when absent.
    #[serde(default)]
    pub at: Option<chrono::NaiveDateTime>,
}

/// `POST /v1/reports`: render a report now (or as of `at`); with `send`,
/// queue and deliver it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ReportRequest {
    pub name: String,
    #[serde(default)]
    pub at: Option<chrono::NaiveDateTime>,
    #[serde(default)]
    pub send: bool,
}

/// `POST /v1/sync`: sync these sources now (all when empty).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SyncRequest {
    pub sources: Vec<String>,
}

/// What a sync run by the daemon did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SyncResponse {
    pub reports: Vec<crate::sync::SourceReport>,
    /// The reconciliations that followed: (name, run id, exceptions).
    pub reconciled: Vec<(String, i64, i64)>,
    pub seconds: f64,
    /// `[publish]`: (source.stream, error) of each table that could not be
    /// published.
    #[serde(default)]
    pub publish_failed: Vec<(String, String)>,
}

/// `POST /v1/recon`: run the reconciliations (all, or the one named) now.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ReconRequest {
    pub name: Option<String>,
}

/// `POST /v1/rules/eval`: evaluate the rules (all, or the one named) now.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RulesEvalRequest {
    pub name: Option<String>,
}

pub fn router(wh: Arc<Warehouse>, live: Arc<Live>, gate: auth::Gate) -> Router {
    let guarded = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/query", post(run_query))
        .route("/v1/silences", post(add_silence))
        .route("/v1/silences/{id}/remove", post(remove_silence))
        .route("/v1/preview", post(preview))
        .route("/v1/sync", post(sync_now))
        .route("/v1/recon", post(recon_now))
        .route("/v1/rules/eval", post(rules_eval_now))
        .route("/v1/reports", post(report_now))
        .route("/v1/outbox/retry", post(outbox_retry))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            gate.clone(),
            auth::require_token,
        ));
    // Probes for a supervisor or load balancer: they say "ok" or "not
    // ready" and nothing else, so they need no token.
    let open = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready));
    // The console (`/console`) has its own login and sessions.
    let console = console::router(wh.clone(), live.clone(), gate);
    guarded
        .merge(open)
        .with_state(AppState { wh, live })
        .merge(console)
}

/// Binds `listen` and serves until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    wh: Arc<Warehouse>,
    live: Arc<Live>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    let config = live.config();
    // The token file first: a client that sees the port open must find the
    // token, or it takes the daemon for absent and opens the warehouse
    // itself (the lock error an e2e test met under load).
    let gate = auth::Gate::new(auth::daemon_token(&config.server)?, &config.server);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (server.listen); is another conveyor daemon running?"
            )
        })?;
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()
        .context("server.tls_cert / server.tls_key")?;
    let app = router(wh, live, gate);
    tracing::info!(%listen, tls = tls.is_some(), "query endpoint ready");
    Ok(tokio::spawn(async move {
        let served = match tls {
            Some(tls) => match crate::tls::TlsListener::new(listener, tls) {
                Ok(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
                Err(e) => Err(e),
            },
            None => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "query endpoint failed");
        }
    }))
}

async fn health(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        pid: std::process::id(),
        warehouse: s.wh.path().to_path_buf(),
    })
}

/// Ready once the daemon has started its work with a loaded config, while
/// the warehouse answers.
async fn ready(State(s): State<AppState>) -> Response {
    let answers = s.live.is_ready() && {
        let wh = s.wh.clone();
        tokio::task::spawn_blocking(move || {
            wh.connection()
                .and_then(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i32>(0))?))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    };
    if answers {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Result<Response, Failure> {
    let config = s.live.config();
    let text = on_warehouse(s.wh, move |c| metrics::render(c, &config))
        .await
        .map_err(|(_, body)| (StatusCode::INTERNAL_SERVER_ERROR, body))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

async fn sync_now(
    State(s): State<AppState>,
    Json(req): Json<SyncRequest>,
) -> Result<Json<SyncResponse>, Failure> {
    let Some(run) = s.live.sync_handler() else {
        return Err(failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "this daemon is not ready to run syncs yet",
        ));
    };
    run(req.sources)
        .await
        .map(Json)
        .map_err(|e| failure(StatusCode::BAD_REQUEST, e))
}

async fn run_query(
    State(s): State<AppState>,
    Json(req): Json<QueryRequest>,
) -> Result<Json<QueryResult>, (StatusCode, Json<ErrorBody>)> {
    let bad = |code: StatusCode, e: String| (code, Json(ErrorBody { error: e }));
    let wh = s.wh.clone();
    let result = tokio::task::spawn_blocking(move || {
        let conn = wh.connection()?;
        query::run_isolated(&conn, &req.sql)
    })
    .await
    .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    result.map(Json).map_err(|e| {
        bad(
            StatusCode::BAD_REQUEST,
            query::clean_error(&format!("{e:#}")),
        )
    })
}

type Failure = (StatusCode, Json<ErrorBody>);

fn failure(code: StatusCode, e: impl std::fmt::Display) -> Failure {
    (
        code,
        Json(ErrorBody {
            error: format!("{e:#}"),
        }),
    )
}

/// Runs `f` on a connection of its own on a blocking thread.
async fn on_warehouse<T: Send + 'static>(
    wh: Arc<Warehouse>,
    f: impl FnOnce(&duckdb::Connection) -> Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(move || f(&wh.connection()?))
        .await
        .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|e| failure(StatusCode::BAD_REQUEST, e))
}

async fn add_silence(
    State(s): State<AppState>,
    Json(req): Json<crate::rules::silence::NewSilence>,
) -> Result<Json<i64>, Failure> {
    crate::rules::silence::validate(&s.live.config(), &req)
        .map_err(|e| failure(StatusCode::BAD_REQUEST, e))?;
    let now = chrono::Utc::now().naive_utc();
    on_warehouse(s.wh, move |c| Ok(crate::rules::silence::add(c, &req, now)?))
        .await
        .map(Json)
}

async fn remove_silence(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<bool>, Failure> {
    let now = chrono::Utc::now().naive_utc();
    on_warehouse(s.wh, move |c| {
        Ok(crate::rules::silence::remove(c, id, now)?)
    })
    .await
    .map(Json)
}

async fn preview(
    State(s): State<AppState>,
    Json(req): Json<PreviewRequest>,
) -> Result<Json<crate::rules::Preview>, Failure> {
    let config = s.live.config();
    on_warehouse(s.wh, move |c| {
        crate::pipeline::preview(c, &config, &req.rule, req.at)
    })
    .await
    .map(Json)
}

/// Runs the reconciliations as `conveyor recon` does by hand, on a blocking
/// thread (serialised with the daemon's own runs).
async fn recon_now(
    State(s): State<AppState>,
    Json(req): Json<ReconRequest>,
) -> Result<Json<crate::pipeline::ReconResponse>, Failure> {
    let config = s.live.config();
    let wh = s.wh.clone();
    tokio::task::spawn_blocking(move || {
        crate::pipeline::run_recons_now(&wh, &config, req.name.as_deref())
    })
    .await
    .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map(Json)
    .map_err(|e| failure(StatusCode::BAD_REQUEST, e))
}

/// Evaluates the rules as `conveyor rules eval` does by hand (then delivers
/// what they queued), on a blocking thread.
async fn rules_eval_now(
    State(s): State<AppState>,
    Json(req): Json<RulesEvalRequest>,
) -> Result<Json<crate::pipeline::EvalOutcome>, Failure> {
    let config = s.live.config();
    on_warehouse(s.wh, move |c| {
        crate::pipeline::evaluate_now(c, &config, req.name.as_deref())
    })
    .await
    .map(Json)
}

/// Renders (and with `send` queues and delivers) a report as `conveyor
/// report` does by hand, on a blocking thread.
async fn report_now(
    State(s): State<AppState>,
    Json(req): Json<ReportRequest>,
) -> Result<Json<crate::pipeline::ReportOutcome>, Failure> {
    let config = s.live.config();
    let wh = s.wh.clone();
    tokio::task::spawn_blocking(move || {
        crate::pipeline::report_now(&wh, &config, &req.name, req.at, req.send)
    })
    .await
    .map_err(|e| failure(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map(Json)
    .map_err(|e| failure(StatusCode::BAD_REQUEST, e))
}

/// Re-queues notifications (`conveyor outbox retry`), answers how many,
/// and starts a delivery pass for them at once.
async fn outbox_retry(
    State(s): State<AppState>,
    Json(selection): Json<crate::outbox::retry::Selection>,
) -> Result<Json<usize>, Failure> {
    let now = chrono::Utc::now().naive_utc();
    let n = on_warehouse(s.wh.clone(), move |c| {
        Ok(crate::outbox::retry::retry(c, &selection, now)?)
    })
    .await?;
    if n > 0 {
        let (wh, config) = (s.wh, s.live.config());
        tokio::task::spawn_blocking(move || {
            if let Ok(conn) = wh.connection() {
                crate::outbox::deliver_logged(&conn, &config);
            }
        });
    }
    Ok(Json(n))
}
