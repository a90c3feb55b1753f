//! The daemon's local HTTP endpoint: read-only SQL and health, so that ops
//! can query the warehouse while the daemon holds it open and writes to it;
//! and the few writes ops make by hand while it runs (silences) plus rule
//! previews, which need the warehouse the daemon holds.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::query::{self, QueryResult};
use crate::warehouse::Warehouse;

#[derive(Clone)]
struct AppState {
    wh: Arc<Warehouse>,
    config: Arc<conveyor_config::Config>,
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
}

pub fn router(wh: Arc<Warehouse>, config: Arc<conveyor_config::Config>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/query", post(run_query))
        .route("/v1/silences", post(add_silence))
        .route("/v1/silences/{id}/remove", post(remove_silence))
        .route("/v1/preview", post(preview))
        .with_state(AppState { wh, config })
}

/// Binds `listen` and serves until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    wh: Arc<Warehouse>,
    config: Arc<conveyor_config::Config>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (server.listen); is another conveyor daemon running?"
            )
        })?;
    tracing::info!(%listen, "query endpoint ready");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(wh, config))
            .with_graceful_shutdown(shutdown)
            .await
        {
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

async fn run_query(
    State(s): State<AppState>,
    Json(req): Json<QueryRequest>,
) -> Result<Json<QueryResult>, (StatusCode, Json<ErrorBody>)> {
    let bad = |code: StatusCode, e: String| (code, Json(ErrorBody { error: e }));
    if let Err(e) = query::check_read_only(&req.sql) {
        return Err(bad(StatusCode::BAD_REQUEST, e));
    }
    let wh = s.wh.clone();
    let result = tokio::task::spawn_blocking(move || {
        let conn = wh.connection()?;
        query::run_isolated(&conn, &req.sql)
    })
    .await
    .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    result
        .map(Json)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("{e:#}")))
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
    let config = s.config.clone();
    on_warehouse(s.wh, move |c| {
        crate::cmd::rules::preview(c, &config, &req.rule)
    })
    .await
    .map(Json)
}

/// Client side: a daemon serving this warehouse on `listen`, if one runs.
pub async fn find_daemon(listen: SocketAddr, warehouse: &std::path::Path) -> Option<DaemonClient> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    let base = format!("http://{listen}");
    let health: Health = http
        .get(format!("{base}/v1/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let same = |a: &std::path::Path| std::fs::canonicalize(a).ok();
    if same(&health.warehouse) != same(warehouse) {
        tracing::warn!(%listen, theirs = %health.warehouse.display(), "a daemon on server.listen serves another warehouse; not using it");
        return None;
    }
    // Queries may run long; only the health probe has a short timeout.
    Some(DaemonClient {
        http: reqwest::Client::new(),
        base,
    })
}

pub struct DaemonClient {
    http: reqwest::Client,
    base: String,
}

impl DaemonClient {
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        self.post(
            "/v1/query",
            &QueryRequest {
                sql: sql.to_string(),
            },
        )
        .await
    }

    pub async fn add_silence(&self, s: &crate::rules::silence::NewSilence) -> Result<i64> {
        self.post("/v1/silences", s).await
    }

    pub async fn remove_silence(&self, id: i64) -> Result<bool> {
        self.post(&format!("/v1/silences/{id}/remove"), &()).await
    }

    pub async fn preview(&self, rule: &str) -> Result<crate::rules::Preview> {
        self.post(
            "/v1/preview",
            &PreviewRequest {
                rule: rule.to_string(),
            },
        )
        .await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .context("the daemon did not answer")?;
        if resp.status().is_success() {
            Ok(resp.json().await?)
        } else {
            let body: ErrorBody = resp.json().await.unwrap_or(ErrorBody {
                error: "unknown error".into(),
            });
            anyhow::bail!(body.error)
        }
    }
}
