//! The generic REST connector, fully declarative in TOML.
//!
//! Per stream: pages are fetched by a task of their own up to
//! `prefetch_pages` ahead; each page is scanned for what the pager needs
//! (envelope, record count) and its records are turned into an Arrow batch
//! on a blocking thread while the next page is fetched; batches are handed
//! to the sink in page order.
//!
//! Checkpoints: APIs rarely promise to return records in cursor order, so
//! the cursor only moves when a stream has been read to the end. Every
//! batch is followed by a checkpoint holding the cursor the read started
//! from; after a crash the read restarts there and the warehouse's merge by
//! primary key absorbs the pages seen twice. Nothing is skipped, nothing is
//! doubled.

mod cursor;
pub(crate) mod pager;
mod select;

use std::sync::Arc;

use arrow_array::RecordBatch;
use conveyor_config::{KeyLocation, RestSourceConfig, RestStreamConfig};
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
    StreamDescriptor,
};
use serde_json::Value;
use tokio::sync::mpsc;
use url::Url;

use crate::http::client::HttpRequest;
use crate::http::{AuthProvider, HttpClient, PageGuard, PageScope, Redactor};
use crate::json_arrow::records_to_batch;
pub use cursor::CursorValue;
use pager::Pager;

pub struct RestConnector {
    source: String,
    cfg: RestSourceConfig,
    client: Arc<HttpClient>,
}

impl RestConnector {
    pub fn new(
        source: &str,
        cfg: RestSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let redactor = Redactor::default();
        let auth = AuthProvider::from_config(
            &cfg.auth,
            format!("{source}.refresh_token"),
            credentials,
            &redactor,
        )?;
        let host = crate::http::ratelimit::budget_key(&cfg.base_url);
        let client = HttpClient::new(cfg.http.clone(), &host, auth, cfg.headers.clone(), redactor)?;
        Ok(RestConnector {
            source: source.to_string(),
            cfg,
            client: Arc::new(client),
        })
    }

    fn stream(&self, name: &str) -> Result<&RestStreamConfig, ConnectorError> {
        self.cfg
            .streams
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorKind::Config,
                    format!("source {} has no stream `{name}`", self.source),
                )
            })
    }

    fn stream_url(&self, path: &str) -> Result<Url, ConnectorError> {
        if path.starts_with("http://") || path.starts_with("https://") {
            return Url::parse(path).map_err(|e| {
                ConnectorError::new(ErrorKind::Config, format!("bad stream URL {path}: {e}"))
            });
        }
        // Join as text: Url::join would drop the last segment of a base
        // URL without a trailing slash ("…/api/v2" + "users").
        let base = self.cfg.base_url.as_str().trim_end_matches('/');
        let url = format!("{base}/{}", path.trim_start_matches('/'));
        Url::parse(&url).map_err(|e| {
            ConnectorError::new(ErrorKind::Config, format!("bad stream URL {url}: {e}"))
        })
    }
}

#[async_trait::async_trait]
impl Connector for RestConnector {
    fn streams(&self) -> Vec<StreamDescriptor> {
        self.cfg
            .streams
            .iter()
            .map(|s| StreamDescriptor {
                name: s.name.clone(),
                primary_key: s.primary_key.clone(),
                cursor_field: s.incremental.as_ref().map(|i| i.cursor_field.clone()),
            })
            .collect()
    }

    async fn read(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let s = self.stream(stream)?.clone();
        let saved_json = state
            .as_ref()
            .and_then(|st| st.get("cursor"))
            .cloned()
            .unwrap_or(Value::Null);
        let saved = CursorValue::from_json(&saved_json).or_else(|| {
            let start = s.incremental.as_ref()?.start.as_ref()?;
            CursorValue::from_json(&Value::String(start.clone()))
        });

        let rendered = match (&s.incremental, &saved) {
            (Some(inc), Some(c)) => Some(cursor::render(inc, c)),
            _ => None,
        };
        let mut filter = Vec::new();
        let mut headers = Vec::new();
        if let (Some(inc), Some(value)) = (&s.incremental, &rendered) {
            match &inc.location {
                Some(KeyLocation::Query(p)) => filter.push((p.clone(), value.clone())),
                Some(KeyLocation::Header(h)) => headers.push((h.clone(), value.clone())),
                None => {}
            }
        }
        let cursor_text = rendered.clone().unwrap_or_default();
        let params = s
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{cursor}", &cursor_text)))
            .collect();
        let pagination = s
            .pagination
            .clone()
            .unwrap_or_else(|| self.cfg.pagination.clone());
        let pager = Pager::new(pagination, self.stream_url(&s.path)?, params, filter);
        let guard = PageGuard::new(
            PageScope::rest(&self.source, &s.name),
            s.page_limits,
            self.client.redactor().clone(),
        );

        let (tx, mut rx) = mpsc::channel(self.cfg.http.prefetch_pages.max(1));
        let fetcher = tokio::spawn(fetch_pages(
            self.client.clone(),
            pager,
            guard,
            headers,
            s.record_selector.clone(),
            tx,
            cancel.clone(),
        ));

        let cursor_field = s
            .incremental
            .as_ref()
            .map(|i| conveyor_config::JsonPath::parse(&i.cursor_field));
        let mut newest = saved.clone();
        let resume_state =
            serde_json::json!({ "cursor": saved.as_ref().map(CursorValue::to_json) });
        let result = async {
            while let Some(page) = rx.recv().await {
                let Some(batch) = page?.batch().await? else {
                    continue;
                };
                if let Some(c) = cursor_field
                    .as_ref()
                    .and_then(|field| CursorValue::newest_in(&batch, field))
                {
                    newest = Some(match newest.take() {
                        Some(n) => n.max(c),
                        None => c,
                    });
                }
                sink.batch(batch).await?;
                sink.checkpoint(resume_state.clone()).await?;
            }
            Ok::<_, ConnectorError>(())
        }
        .await;
        drop(rx);
        // A page task that panicked closed the channel as if the stream had
        // ended: that must fail the read, or the final checkpoint would move
        // the cursor past pages never read.
        let fetched = fetcher.await.map_err(|e| {
            ConnectorError::new(
                ErrorKind::Data,
                format!(
                    "{}.{}: the page reader stopped unexpectedly ({e}); the cursor stays where it was",
                    self.source, s.name
                ),
            )
        });
        // Whatever went wrong, nothing secret leaves with the error.
        result
            .and(fetched)
            .map_err(|e| self.client.redactor().error(e))?;
        if cancel.is_cancelled() {
            // Not read to the end: the cursor must not move.
            return Ok(());
        }
        sink.checkpoint(serde_json::json!({ "cursor": newest.as_ref().map(CursorValue::to_json) }))
            .await
    }
}

/// A fetched page's records: parsed already, or being parsed on a blocking
/// thread while the next page is fetched.
enum PageBatch {
    Ready(Option<RecordBatch>),
    Parsing(tokio::task::JoinHandle<Result<Option<RecordBatch>, ConnectorError>>),
}

impl PageBatch {
    /// The page's batch (`None`: it held no records), once parsed.
    async fn batch(self) -> Result<Option<RecordBatch>, ConnectorError> {
        match self {
            PageBatch::Ready(batch) => Ok(batch),
            PageBatch::Parsing(task) => task.await.map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Data,
                    format!("a page's parse stopped unexpectedly ({e})"),
                )
            })?,
        }
    }
}

/// Why a body could not be read, said without a secret: what the records
/// were, or (broken JSON) how the body starts.
fn not_json(redactor: &Redactor, shown: &str, body: &[u8], e: serde_json::Error) -> ConnectorError {
    let message = if e.is_data() {
        format!("GET {shown}: cannot read records: {e}")
    } else {
        let body = redactor.snippet(body);
        format!("GET {shown}: response is not valid JSON ({e}); body starts: {body}")
    };
    // A parse error may quote a value from the body.
    ConnectorError::new(ErrorKind::Data, redactor.scrub(&message))
}

/// Fetches pages in order and sends each page's records down `tx` as a
/// batch (straight from the bytes, see [`json_columns`](crate::json_columns);
/// `None` for a page without records); an error is sent as the last item.
/// The pager needs only a page's envelope and record count, so a page is
/// scanned for those, the next request goes out, and the records are parsed
/// meanwhile on a blocking thread: fetching and parsing overlap.
async fn fetch_pages(
    client: Arc<HttpClient>,
    mut pager: Pager,
    mut guard: PageGuard,
    headers: Vec<(String, String)>,
    selector: conveyor_config::JsonPath,
    tx: mpsc::Sender<Result<PageBatch, ConnectorError>>,
    cancel: CancelFlag,
) {
    while !cancel.is_cancelled() {
        let Some(url) = pager.next_url() else { break };
        let mut req = HttpRequest::get(url);
        req.headers = headers.clone();
        let page = async {
            guard.check(&req)?;
            let resp = client.send(&req).await?;
            let shown = client.redactor().url(&resp.url);
            let unreadable =
                |e: serde_json::Error| not_json(client.redactor(), &shown, &resp.body, e);
            let (envelope, count, batch) =
                match crate::json_columns::scan_page(&resp.body, &selector.0) {
                    Some(scanned) => {
                        let page = scanned.map_err(unreadable)?;
                        let (body, selector) = (resp.body.clone(), selector.0.clone());
                        let (redactor, shown) = (client.redactor().clone(), shown.clone());
                        let parse = tokio::task::spawn_blocking(move || {
                            let parsed = crate::json_columns::parse_page(&body, &selector)
                                .expect("the scan took the same selector");
                            parsed
                                .map(|page| page.batch)
                                .map_err(|e| not_json(&redactor, &shown, &body, e))
                        });
                        (page.envelope, page.records, PageBatch::Parsing(parse))
                    }
                    // A selector through an array: the slower `Value` path.
                    None => {
                        let mut body: Value =
                            serde_json::from_slice(&resp.body).map_err(unreadable)?;
                        let records = match select::take(&mut body, &selector) {
                            Some(Value::Array(v)) => v,
                            None | Some(Value::Null) => Vec::new(),
                            Some(Value::Object(o)) => vec![Value::Object(o)],
                            Some(other) => {
                                return Err(ConnectorError::new(
                                    ErrorKind::Data,
                                    format!(
                                "GET {shown}: `{selector}` holds {other}, not a list of records"
                            ),
                                ))
                            }
                        };
                        let batch = if records.is_empty() {
                            None
                        } else {
                            Some(records_to_batch(&records)?)
                        };
                        (body, records.len(), PageBatch::Ready(batch))
                    }
                };
            tracing::debug!(url = %shown, records = count, "page");
            guard.page(&req, count, &resp.body)?;
            pager.advance(&resp, &envelope, count);
            Ok(batch)
        }
        .await;
        let failed = page.is_err();
        if tx.send(page).await.is_err() || failed {
            break;
        }
    }
}
