//! The CLI's side of the HTTP endpoint: find the daemon serving this
//! warehouse and send it queries, silences, previews, syncs,
//! reconciliations, rule evaluations and outbox retries with the token.

use std::path::Path;

use anyhow::{Context, Result};
use conveyor_config::{Secret, ServerConfig};

use super::{
    auth, ErrorBody, Health, PreviewRequest, QueryRequest, ReconRequest, RulesEvalRequest,
    SyncRequest, SyncResponse,
};
use crate::query::QueryResult;

/// The daemon serving this warehouse on `server.listen`, if one runs.
/// `Ok(None)` when none answers (or none has left a token here); an error
/// when one answers but refuses the token.
pub async fn find_daemon(server: &ServerConfig, warehouse: &Path) -> Result<Option<DaemonClient>> {
    let Some(token) = auth::client_token(server)? else {
        return Ok(None);
    };
    let listen = server.listen;
    let (base, builder) = endpoint(server)?;
    let probe = builder()?
        .timeout(std::time::Duration::from_secs(2))
        .build()?;
    let Ok(resp) = probe
        .get(format!("{base}/v1/health"))
        .bearer_auth(token.expose())
        .send()
        .await
    else {
        return Ok(None);
    };
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        anyhow::bail!(
            "the daemon on {listen} refused this token; is server.token (or {}) the one it was started with?",
            server.token_file.display()
        );
    }
    let Ok(health) = resp.json::<Health>().await else {
        return Ok(None);
    };
    let same = |a: &Path| std::fs::canonicalize(a).ok();
    if same(&health.warehouse) != same(warehouse) {
        tracing::warn!(%listen, theirs = %health.warehouse.display(), "a daemon on server.listen serves another warehouse; not using it");
        return Ok(None);
    }
    // Queries may run long; only the health probe has a short timeout.
    Ok(Some(DaemonClient {
        http: builder()?.build()?,
        base,
        token,
    }))
}

type Builder = Box<dyn Fn() -> Result<reqwest::ClientBuilder>>;

/// The endpoint's base URL and how to build a client for it: plain HTTP on
/// loopback, or HTTPS trusting the configured certificate, under the first
/// `allowed_hosts` name (mapped to the listen address) or the address.
fn endpoint(server: &ServerConfig) -> Result<(String, Builder)> {
    let mut addr = server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Some(tls) = &server.tls else {
        return Ok((
            format!("http://{addr}"),
            Box::new(|| Ok(reqwest::Client::builder())),
        ));
    };
    let trusted = server.tls_ca.as_ref().unwrap_or(&tls.cert);
    let pem =
        std::fs::read(trusted).with_context(|| format!("cannot read {}", trusted.display()))?;
    let host = server.allowed_hosts.first().cloned();
    let base = match &host {
        Some(h) => format!("https://{h}:{}", addr.port()),
        None => format!("https://{addr}"),
    };
    let builder = move || {
        let mut b = reqwest::Client::builder().use_rustls_tls();
        for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
            b = b.add_root_certificate(cert);
        }
        if let Some(h) = &host {
            b = b.resolve(h, addr);
        }
        Ok(b)
    };
    Ok((base, Box::new(builder)))
}

pub struct DaemonClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
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

    pub async fn preview(
        &self,
        rule: &str,
        at: Option<chrono::NaiveDateTime>,
    ) -> Result<crate::rules::Preview> {
        self.post(
            "/v1/preview",
            &PreviewRequest {
                rule: rule.to_string(),
                at,
            },
        )
        .await
    }

    /// Asks the daemon to sync `sources` (all when empty) now and waits for
    /// the result (the daemon runs them as it runs its schedule: never two
    /// runs of one source at once).
    pub async fn sync(&self, sources: &[String]) -> Result<SyncResponse> {
        self.post(
            "/v1/sync",
            &SyncRequest {
                sources: sources.to_vec(),
            },
        )
        .await
    }

    /// Asks the daemon to run the reconciliations (all, or `name`) now and
    /// waits for them.
    pub async fn recon(&self, name: Option<&str>) -> Result<crate::pipeline::ReconResponse> {
        self.post(
            "/v1/recon",
            &ReconRequest {
                name: name.map(str::to_string),
            },
        )
        .await
    }

    /// Asks the daemon to evaluate the rules (all, or `name`) now and waits
    /// for what they found.
    /// Asks the daemon to render (and with `send` queue and deliver) a report.
    pub async fn report(
        &self,
        name: &str,
        at: Option<chrono::NaiveDateTime>,
        send: bool,
    ) -> Result<crate::pipeline::ReportOutcome> {
        self.post(
            "/v1/reports",
            &super::ReportRequest {
                name: name.to_string(),
                at,
                send,
            },
        )
        .await
    }

    pub async fn rules_eval(&self, name: Option<&str>) -> Result<crate::pipeline::EvalOutcome> {
        self.post(
            "/v1/rules/eval",
            &RulesEvalRequest {
                name: name.map(str::to_string),
            },
        )
        .await
    }

    /// Asks the daemon to re-queue notifications; how many it re-queued.
    pub async fn outbox_retry(&self, selection: &crate::outbox::retry::Selection) -> Result<usize> {
        self.post("/v1/outbox/retry", selection).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
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
