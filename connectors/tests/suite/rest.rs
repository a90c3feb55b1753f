//! The REST connector against the mock API over real loopback HTTP: every
//! paging and auth style, retries, timeouts, bad responses, incremental reads.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use conveyor_config::{ConnectorConfig, SourceConfig};
use conveyor_connectors::rest::RestConnector;
use conveyor_mocks::rest::{
    Auth, Fault, Incremental, Pagination, RestMock, RestMockConfig, RestMockHandle,
};
use conveyor_mocks::server::MockServer;
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, CredentialStore, ErrorKind, Json, MemoryCredentials,
    RecordBatch, RecordSink,
};
use serde_json::json;

/// Collects what a connector emits, in order.
#[derive(Default)]
struct CollectSink {
    batches: Vec<RecordBatch>,
    checkpoints: Vec<Json>,
}

#[async_trait::async_trait]
impl RecordSink for CollectSink {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.batches.push(batch);
        Ok(())
    }
    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.checkpoints.push(state);
        Ok(())
    }
}

impl CollectSink {
    fn ids(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for b in &self.batches {
            let idx = b.schema().index_of("id").expect("id column");
            ids.extend(b.column(idx).as_primitive::<Int64Type>().iter().flatten());
        }
        ids
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    server: MockServer,
    mock: RestMockHandle,
}

async fn start(cfg: RestMockConfig) -> Setup {
    let (server, mock) = RestMock::new(cfg).start().await;
    Setup {
        _dir: tempfile::tempdir().unwrap(),
        server,
        mock,
    }
}

impl Setup {
    fn secret(&self, name: &str, value: &str) -> String {
        let p = self._dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        format!("file:{}", p.display())
    }

    /// A source from TOML: `extra` goes into the source table, `stream`
    /// into the one stream's table.
    fn source(&self, extra: &str, stream: &str) -> SourceConfig {
        let text = format!(
            r#"[warehouse]
path = "x.duckdb"
[sources.t]
type = "rest"
base_url = "{base}"
backoff_base_ms = 10
{extra}
[[sources.t.streams]]
name = "items"
path = "/items"
primary_key = "id"
{stream}
"#,
            base = self.server.base_url()
        );
        let cfg = conveyor_config::parse(&text, Path::new("/tmp/conveyor.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        cfg.sources.into_iter().next().unwrap()
    }
}

fn connector(source: &SourceConfig, store: Arc<dyn CredentialStore>) -> RestConnector {
    let ConnectorConfig::Rest(rest) = &source.connector else {
        panic!("a rest source")
    };
    RestConnector::new(&source.name, rest.clone(), store).unwrap()
}

async fn read(
    source: &SourceConfig,
    state: Option<Json>,
) -> (Result<(), ConnectorError>, CollectSink) {
    read_with(source, state, Arc::new(MemoryCredentials::default())).await
}

async fn read_with(
    source: &SourceConfig,
    state: Option<Json>,
    store: Arc<dyn CredentialStore>,
) -> (Result<(), ConnectorError>, CollectSink) {
    let c = connector(source, store);
    let mut sink = CollectSink::default();
    let r = c
        .read("items", state, &mut sink, &CancelFlag::default())
        .await;
    (r, sink)
}

fn all_ids() -> Vec<i64> {
    (1..=250).collect()
}

#[tokio::test]
async fn every_pagination_style_reads_each_record_once() {
    let styles: [(Pagination, &str, &str); 6] = [
        (
            Pagination::NextUrlInBody,
            r#"pagination = { type = "next_url", next_path = "next" }"#,
            r#"records = "data""#,
        ),
        (
            Pagination::LinkHeader,
            r#"pagination = { type = "link_header" }"#,
            "params = { per_page = 40 }",
        ),
        (
            Pagination::CursorToken,
            r#"pagination = { type = "cursor", cursor_path = "paging.next.after", cursor_param = "after" }"#,
            r#"records = "results""#,
        ),
        (
            Pagination::OffsetLimit,
            r#"pagination = { type = "offset", limit = 60 }"#,
            r#"records = "items""#,
        ),
        (
            Pagination::PageNumber,
            r#"pagination = { type = "page", size = 70, total_pages_header = "X-Total-Pages" }"#,
            r#"records = "items""#,
        ),
        (
            Pagination::NeverNullNext,
            r#"pagination = { type = "next_url", next_path = "next_page", count_path = "count", min_count = 1 }"#,
            r#"records = "calls""#,
        ),
    ];
    for (style, pagination, stream) in styles {
        let s = start(RestMockConfig {
            pagination: style,
            ..Default::default()
        })
        .await;
        let (r, sink) = read(&s.source(pagination, stream), None).await;
        r.unwrap_or_else(|e| panic!("{style:?}: {e}"));
        assert_eq!(sink.ids(), all_ids(), "{style:?}");
        assert!(
            s.mock.request_count() >= 3,
            "{style:?} should take several pages"
        );
    }
}

#[tokio::test]
async fn every_static_auth_style_is_accepted() {
    let cases = [
        (
            Auth::ApiKeyHeader {
                name: "X-Api-Key".into(),
                value: "k-123456".into(),
            },
            r#"type = "api_key", header = "X-Api-Key", key = "SECRET""#,
        ),
        (
            Auth::ApiKeyQuery {
                name: "api_key".into(),
                value: "k-123456".into(),
            },
            r#"type = "api_key", query_param = "api_key", key = "SECRET""#,
        ),
        (
            Auth::Basic {
                user: "ops".into(),
                pass: "k-123456".into(),
            },
            r#"type = "basic", username = "ops", password = "SECRET""#,
        ),
        (
            Auth::Bearer {
                token: "k-123456".into(),
            },
            r#"type = "bearer", token = "SECRET""#,
        ),
    ];
    for (auth, toml) in cases {
        let s = start(RestMockConfig {
            auth: auth.clone(),
            ..Default::default()
        })
        .await;
        let toml = toml.replace("SECRET", &s.secret("k", "k-123456"));
        let src = s.source(
            &format!("pagination = {{ type = \"next_url\" }}\nauth = {{ {toml} }}"),
            r#"records = "data""#,
        );
        let (r, sink) = read(&src, None).await;
        r.unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(sink.ids().len(), 250, "{auth:?}");
        // And the wrong secret is refused with a clear, secret-free error.
        std::fs::write(s._dir.path().join("wrong"), "not-the-key").unwrap();
        let bad = s.source(
            &format!(
                "pagination = {{ type = \"next_url\" }}\nauth = {{ {} }}",
                toml.replace("/k\"", "/wrong\"")
            ),
            r#"records = "data""#,
        );
        let (r, _) = read(&bad, None).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{auth:?}: {e}");
        assert!(e.message.contains("401"), "{e}");
        assert!(!e.message.contains("not-the-key"), "secret leaked: {e}");
    }
}

#[tokio::test]
async fn oauth_client_credentials_refreshes_an_expired_token_mid_sync() {
    let s = start(RestMockConfig {
        auth: Auth::OAuthClientCredentials {
            client_id: "cid".into(),
            client_secret: "csecret-1".into(),
            token_ttl_secs: 3600,
        },
        page_size: 25,
        ..Default::default()
    })
    .await;
    let auth = format!(
        "auth = {{ type = \"oauth2_client_credentials\", token_url = \"{}\", client_id = \"cid\", client_secret = \"{}\" }}\npagination = {{ type = \"next_url\" }}\nprefetch_pages = 1",
        s.server.url("/oauth/token"),
        s.secret("cs", "csecret-1")
    );
    let src = s.source(&auth, r#"records = "data""#);
    let c = connector(&src, Arc::new(MemoryCredentials::default()));
    // A sink that expires every token after the third page.
    struct ExpiringSink<'a> {
        inner: CollectSink,
        mock: &'a RestMockHandle,
    }
    #[async_trait::async_trait]
    impl RecordSink for ExpiringSink<'_> {
        async fn batch(&mut self, b: RecordBatch) -> Result<(), ConnectorError> {
            self.inner.batches.push(b);
            if self.inner.batches.len() == 3 {
                self.mock.expire_tokens();
            }
            Ok(())
        }
        async fn checkpoint(&mut self, s: Json) -> Result<(), ConnectorError> {
            self.inner.checkpoints.push(s);
            Ok(())
        }
    }
    let mut sink = ExpiringSink {
        inner: CollectSink::default(),
        mock: &s.mock,
    };
    c.read("items", None, &mut sink, &CancelFlag::default())
        .await
        .unwrap();
    assert_eq!(sink.inner.ids(), all_ids());
    let token_calls = s
        .mock
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .count();
    assert_eq!(token_calls, 2, "one token at start, one after expiry");
}

#[tokio::test]
async fn rotated_refresh_token_is_stored_before_use_and_survives_a_restart() {
    let s = start(RestMockConfig {
        auth: Auth::OAuthRefreshToken {
            client_id: "cid".into(),
            client_secret: "csecret-2".into(),
            initial_refresh_token: "rt-initial".into(),
            rotate: true,
            token_ttl_secs: 3600,
        },
        ..Default::default()
    })
    .await;
    let auth = format!(
        "auth = {{ type = \"oauth2_refresh_token\", token_url = \"{}\", client_id = \"cid\", client_secret = \"{}\", refresh_token = \"{}\" }}\npagination = {{ type = \"next_url\" }}",
        s.server.url("/oauth/token"),
        s.secret("cs", "csecret-2"),
        s.secret("rt", "rt-initial")
    );
    let src = s.source(&auth, r#"records = "data""#);
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let (r, _) = read_with(&src, None, store.clone()).await;
    r.unwrap();
    let stored = store
        .load("t.refresh_token")
        .unwrap()
        .expect("rotated token stored");
    assert_eq!(Some(stored.clone()), s.mock.current_refresh_token());
    assert_ne!(stored, "rt-initial");
    // A new process (new connector, same store): the configured token is
    // revoked now, so only the stored one can work.
    let (r, sink) = read_with(&src, None, store.clone()).await;
    r.unwrap();
    assert_eq!(sink.ids().len(), 250);
    assert_ne!(
        store.load("t.refresh_token").unwrap().unwrap(),
        stored,
        "rotated again"
    );
}

#[tokio::test]
async fn rate_limit_and_server_errors_are_retried() {
    let s = start(RestMockConfig::default()).await;
    s.mock.set_faults(vec![
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::ServerError,
        Fault::ServerError,
    ]);
    let src = s.source(
        r#"pagination = { type = "next_url" }"#,
        r#"records = "data""#,
    );
    let started = std::time::Instant::now();
    let (r, sink) = read(&src, None).await;
    r.unwrap();
    assert_eq!(sink.ids(), all_ids());
    // Retry-After: 1 was honoured (backoff alone is 10-40 ms here).
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(s.mock.request_count(), 3 + 3, "3 pages + 3 failed attempts");
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported() {
    let s = start(RestMockConfig::default()).await;
    s.mock
        .set_faults(vec![Fault::Delay(Duration::from_secs(3))]);
    let src = s.source(
        "timeout_secs = 1\npagination = { type = \"next_url\" }",
        r#"records = "data""#,
    );
    let (r, sink) = read(&src, None).await;
    r.unwrap();
    assert_eq!(sink.ids().len(), 250);

    s.mock
        .set_faults(vec![Fault::Delay(Duration::from_secs(3))]);
    let src = s.source(
        "timeout_secs = 1\nmax_retries = 0\npagination = { type = \"next_url\" }",
        r#"records = "data""#,
    );
    let (r, sink) = read(&src, None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(
        e.message.contains("/items") && e.message.to_lowercase().contains("timed out"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}

#[tokio::test]
async fn malformed_json_fails_clearly_without_a_checkpoint() {
    let s = start(RestMockConfig::default()).await;
    s.mock.set_faults(vec![Fault::MalformedJson]);
    let src = s.source(
        r#"pagination = { type = "next_url" }"#,
        r#"records = "data""#,
    );
    let (r, sink) = read(&src, None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("not valid JSON") && e.message.contains(&s.server.url("/items")),
        "{e}"
    );
    assert!(e.message.contains("body starts: {\"data\""), "{e}");
    assert!(sink.checkpoints.is_empty() && sink.batches.is_empty());
}

#[tokio::test]
async fn a_record_that_is_not_an_object_fails_the_read_from_the_parse_without_a_checkpoint() {
    // The page is scanned (envelope, count) and the next request may be on
    // its way before the parse finds the bad record: the read must still
    // fail with the parse's error and move no cursor.
    let mut records = conveyor_mocks::rest::dataset(250);
    records.push(serde_json::json!(5));
    let s = start(RestMockConfig {
        records,
        ..RestMockConfig::default()
    })
    .await;
    let src = s.source(
        r#"pagination = { type = "next_url" }"#,
        r#"records = "data""#,
    );
    let (r, sink) = read(&src, None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("cannot read records")
            && e.message.contains("to be an object")
            && e.message.contains(&s.server.url("/items")),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty() && sink.batches.is_empty());
}

#[tokio::test]
async fn client_errors_quote_status_and_body_but_never_the_key() {
    let s = start(RestMockConfig {
        auth: Auth::ApiKeyQuery {
            name: "api_key".into(),
            value: "qk-98765".into(),
        },
        ..Default::default()
    })
    .await;
    s.mock.set_faults(vec![Fault::Status(
        403,
        r#"{"message":"plan does not include this endpoint"}"#.into(),
    )]);
    let key = s.secret("k", "qk-98765");
    let src = s.source(&format!("auth = {{ type = \"api_key\", query_param = \"api_key\", key = \"{key}\" }}\npagination = {{ type = \"next_url\" }}"), r#"records = "data""#);
    let (r, _) = read(&src, None).await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("HTTP 403") && e.message.contains("plan does not include this endpoint"),
        "{e}"
    );
    assert!(!e.message.contains("qk-98765"), "{e}");
}

#[tokio::test]
async fn incremental_reads_only_changes_and_moves_the_cursor_at_the_end() {
    let s = start(RestMockConfig {
        incremental: Some(Incremental::QueryParam {
            name: "updated_since".into(),
        }),
        ..Default::default()
    })
    .await;
    let src = s.source(
        r#"pagination = { type = "next_url" }"#,
        "records = \"data\"\nincremental = { cursor_field = \"updated_at\", param = \"updated_since\" }",
    );
    let (r, first) = read(&src, None).await;
    r.unwrap();
    assert_eq!(first.ids().len(), 250);
    // Mid-read checkpoints keep the starting cursor; the last one advances.
    assert!(first.checkpoints[..first.checkpoints.len() - 1]
        .iter()
        .all(|c| c["cursor"].is_null()));
    let state = first.checkpoints.last().unwrap().clone();
    let cursor = state["cursor"].as_str().unwrap().to_string();
    assert_eq!(
        cursor,
        s.mock.records()[249]["updated_at"].as_str().unwrap()
    );

    s.mock.update(7, |r| {
        r["name"] = json!("Renamed");
        r["updated_at"] = json!("2030-01-01T00:00:00.000Z");
    });
    let (r, second) = read(&src, Some(state)).await;
    r.unwrap();
    // Record 250 has updated_at == cursor (inclusive filter) and record 7 changed.
    assert_eq!(second.ids(), vec![7, 250]);
    let last = s.mock.requests().last().unwrap().clone();
    assert!(
        last.query.contains("updated_since=2024"),
        "{:?}",
        last.query
    );
    assert_eq!(
        second.checkpoints.last().unwrap()["cursor"],
        json!("2030-01-01T00:00:00.000Z")
    );
}
