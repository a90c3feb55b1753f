//! Issue 14 (hardening), parts 2 and 3, over real loopback HTTP: paging
//! that always ends — next links in a circle, endless empty pages, a page
//! cap, an API ignoring the paging parameters, redirect loops — each a
//! clear error within a bounded number of requests and without moving the
//! cursor, for the REST connector and a vendor connector alike; and
//! credentials echoed back by the server (Basic, OAuth client credentials
//! at the token endpoint, API keys, bearer tokens) never appearing, raw or
//! encoded, in the connector's errors.

use crate::support;

use std::sync::Arc;

use conveyor_config::SourceConfig;
use conveyor_mocks::rest::{
    Auth, Fault, Pagination, PagingFault, RestMock, RestMockConfig, RestMockHandle,
};
use conveyor_mocks::server::MockServer;
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, ErrorKind, Json, MemoryCredentials,
};
use support::{build, read, secret_file, source, Sink};

struct Api {
    dir: tempfile::TempDir,
    server: MockServer,
    mock: RestMockHandle,
}

async fn api(cfg: RestMockConfig) -> Api {
    let (server, mock) = RestMock::new(cfg).start().await;
    Api {
        dir: tempfile::tempdir().unwrap(),
        server,
        mock,
    }
}

/// How each paging style is configured against the mock, and where its
/// records are.
fn paging(style: Pagination) -> (&'static str, &'static str) {
    match style {
        Pagination::NextUrlInBody => (r#"{ type = "next_url" }"#, "data"),
        Pagination::LinkHeader => (r#"{ type = "link_header" }"#, ""),
        Pagination::CursorToken => (
            r#"{ type = "cursor", cursor_path = "paging.next.after", cursor_param = "after" }"#,
            "results",
        ),
        Pagination::OffsetLimit => (r#"{ type = "offset", limit = 10 }"#, "items"),
        Pagination::PageNumber => (r#"{ type = "page", size = 10 }"#, "items"),
        Pagination::NeverNullNext => (
            r#"{ type = "next_url", next_path = "next_page", count_path = "count" }"#,
            "calls",
        ),
    }
}

impl Api {
    /// REST source `api` with one incremental stream `items`;
    /// `source_extra` and `stream_extra` are spliced into their tables.
    fn rest(&self, style: Pagination, source_extra: &str, stream_extra: &str) -> SourceConfig {
        let (pagination, records) = paging(style);
        source(
            "api",
            &format!(
                r#"type = "rest"
base_url = "{base}"
backoff_base_ms = 1
pagination = {pagination}
{source_extra}

[[sources.api.streams]]
name = "items"
path = "/items"
primary_key = "id"
records = "{records}"
incremental = {{ cursor_field = "updated_at", param = "updated_since" }}
{stream_extra}
"#,
                base = self.server.base_url()
            ),
        )
    }

    fn secret(&self, name: &str, value: &str) -> String {
        secret_file(self.dir.path(), name, value)
    }
}

async fn read_items(src: &SourceConfig) -> (Result<(), ConnectorError>, Sink) {
    let c = build(src, Arc::new(MemoryCredentials::default()));
    read(c.as_ref(), "items", None).await
}

/// The read failed before the end: every checkpoint kept the state the
/// read started from (no saved cursor), none moved it.
fn cursor_did_not_move(sink: &Sink) {
    assert!(
        sink.checkpoints.iter().all(|c| c["cursor"].is_null()),
        "{:?}",
        sink.checkpoints
    );
}

fn mock_cfg(style: Pagination, fault: PagingFault) -> RestMockConfig {
    RestMockConfig {
        pagination: style,
        page_size: 10,
        paging_fault: Some(fault),
        ..Default::default()
    }
}

#[tokio::test]
async fn next_links_in_a_circle_end_the_read_at_the_first_repeat() {
    for style in [
        Pagination::NextUrlInBody,
        Pagination::LinkHeader,
        Pagination::CursorToken,
        Pagination::NeverNullNext,
    ] {
        let a = api(mock_cfg(style, PagingFault::Cycle)).await;
        let (r, sink) = read_items(&a.rest(style, "", "")).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Data, "{style:?}: {e}");
        assert!(
            e.message.contains("source api, stream `items`")
                && e.message.contains("page 2 of this read again")
                && e.message.contains(&a.server.url("/items"))
                && e.message.contains("cursor stays where it was"),
            "{style:?}: {e}"
        );
        // First page → B → A → (B again: refused before it is sent).
        assert_eq!(a.mock.request_count(), 3, "{style:?}");
        cursor_did_not_move(&sink);
    }
}

#[tokio::test]
async fn endless_empty_pages_stop_after_the_configured_streak_or_the_default() {
    let a = api(mock_cfg(
        Pagination::NextUrlInBody,
        PagingFault::EndlessEmpty,
    ))
    .await;
    let (r, sink) = read_items(&a.rest(Pagination::NextUrlInBody, "", "max_empty_pages = 5")).await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("the last 5 pages held no records")
            && e.message.contains("`max_empty_pages = 50`")
            && e.message
                .contains("[[sources.api.streams]] entry named \"items\""),
        "{e}"
    );
    assert_eq!(a.mock.request_count(), 5);
    assert!(sink.batches.is_empty());
    cursor_did_not_move(&sink);

    // Unconfigured: the default streak, still bounded.
    let a = api(mock_cfg(Pagination::LinkHeader, PagingFault::EndlessEmpty)).await;
    let (r, _) = read_items(&a.rest(Pagination::LinkHeader, "", "")).await;
    assert!(r.unwrap_err().message.contains("the last 100 pages"));
    assert_eq!(
        a.mock.request_count() as u64,
        conveyor_config::PageLimits::DEFAULT_MAX_EMPTY_PAGES
    );
}

#[tokio::test]
async fn max_pages_caps_a_read_and_a_stream_may_raise_the_sources_cap() {
    // 250 records, 10 a page: 25 pages.
    let a = api(RestMockConfig {
        page_size: 10,
        ..Default::default()
    })
    .await;
    // The cap on the source's pagination table holds for every stream.
    let capped = r#"pagination = { type = "next_url", max_pages = 5 }"#;
    let text = |stream_extra: &str| {
        source(
            "api",
            &format!(
                r#"type = "rest"
base_url = "{}"
{capped}

[[sources.api.streams]]
name = "items"
path = "/items"
primary_key = "id"
records = "data"
incremental = {{ cursor_field = "updated_at", param = "updated_since" }}
{stream_extra}
"#,
                a.server.base_url()
            ),
        )
    };
    let (r, sink) = read_items(&text("")).await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("read 5 pages (max_pages)") && e.message.contains("`max_pages = 50`"),
        "{e}"
    );
    assert_eq!(a.mock.request_count(), 5);
    // The 50 rows read were handed over with the start state only.
    assert_eq!(sink.rows(), 50);
    cursor_did_not_move(&sink);

    let before = a.mock.request_count();
    let (r, sink) = read_items(&text("max_pages = 25")).await;
    r.unwrap();
    assert_eq!(sink.rows(), 250);
    assert_eq!(a.mock.request_count() - before, 25);
    assert!(
        !sink.last_cursor().is_null(),
        "read to the end: the cursor moved"
    );
}

#[tokio::test]
async fn an_api_ignoring_the_offset_is_caught_at_its_first_repeated_page() {
    for style in [Pagination::OffsetLimit, Pagination::PageNumber] {
        let a = api(mock_cfg(style, PagingFault::SamePage)).await;
        let (r, sink) = read_items(&a.rest(style, "", "")).await;
        let e = r.unwrap_err();
        assert!(
            e.message.contains("page 2 is the same as page 1")
                && e.message.contains("ignore the paging parameters"),
            "{style:?}: {e}"
        );
        assert_eq!(a.mock.request_count(), 2, "{style:?}");
        assert_eq!(sink.rows(), 10, "only the first page was handed over");
        cursor_did_not_move(&sink);
    }
}

#[tokio::test]
async fn redirect_loops_and_endless_redirects_are_permanent_not_retried() {
    let a = api(mock_cfg(
        Pagination::NextUrlInBody,
        PagingFault::RedirectLoop,
    ))
    .await;
    let (r, sink) = read_items(&a.rest(Pagination::NextUrlInBody, "", "")).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http, "{e}");
    assert!(
        e.message.contains("redirect loop") && e.message.contains("not retried"),
        "{e}"
    );
    // /items → ?hop=a → ?hop=b → (back to ?hop=a: refused). Once, no retries.
    assert_eq!(a.mock.request_count(), 3);
    assert!(sink.checkpoints.is_empty());

    let a = api(mock_cfg(
        Pagination::NextUrlInBody,
        PagingFault::EndlessRedirects,
    ))
    .await;
    let (r, _) = read_items(&a.rest(Pagination::NextUrlInBody, "", "")).await;
    let e = r.unwrap_err();
    assert!(e.message.contains("more than 10 redirects"), "{e}");
    assert_eq!(
        a.mock.request_count(),
        11,
        "the first request and 10 redirects"
    );
}

/// A secret with the characters whose encodings differ: space, `+`, `/`,
/// `?`, `&`, `=`, `%`, `~`, `!`.
const PASSWORD: &str = "pa ss+w/rd?&=%~Z!9";

/// The auth modes a REST source offers: the mock's side, and the
/// config's with `{file}` (the secret's file reference) and `{token_url}`
/// to fill in.
fn auth_modes() -> Vec<(&'static str, Auth, &'static str)> {
    vec![
        (
            "basic",
            Auth::Basic {
                // `ops@example.com:` is 16 bytes, not a multiple of 3: the pair's
                // base64 does not end in the password's own, so only knowing the
                // pair as sent hides it.
                user: "ops@example.com".into(),
                pass: PASSWORD.into(),
            },
            r#"auth = { type = "basic", username = "ops@example.com", password = "{file}" }"#,
        ),
        (
            "oauth client credentials",
            Auth::OAuthClientCredentials {
                client_id: "client/7+x".into(),
                client_secret: PASSWORD.into(),
                token_ttl_secs: 3600,
            },
            r#"auth = { type = "oauth2_client_credentials", token_url = "{token_url}", client_id = "client/7+x", client_secret = "{file}" }"#,
        ),
        (
            "api key header",
            Auth::ApiKeyHeader {
                name: "x-api-key".into(),
                value: PASSWORD.into(),
            },
            r#"auth = { type = "api_key", header = "x-api-key", key = "{file}" }"#,
        ),
        (
            "api key query",
            Auth::ApiKeyQuery {
                name: "k".into(),
                value: PASSWORD.into(),
            },
            r#"auth = { type = "api_key", query_param = "k", key = "{file}" }"#,
        ),
        (
            "bearer",
            Auth::Bearer {
                token: PASSWORD.into(),
            },
            r#"auth = { type = "bearer", token = "{file}" }"#,
        ),
    ]
}

/// `forms` that occur in `text`.
fn leaked<'f>(text: &str, forms: &'f [String]) -> Vec<&'f String> {
    forms.iter().filter(|f| text.contains(f.as_str())).collect()
}

async fn read_once(c: &dyn Connector) -> ConnectorError {
    let mut sink = Sink::default();
    c.read("items", None::<Json>, &mut sink, &CancelFlag::default())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn credentials_echoed_back_in_any_encoding_never_reach_an_error() {
    for (mode, auth, config) in auth_modes() {
        let a = api(RestMockConfig {
            auth,
            ..Default::default()
        })
        .await;
        let config = config.replace("{file}", &a.secret("pw", PASSWORD)).replace(
            "{token_url}",
            &a.server.url(conveyor_mocks::rest::TOKEN_PATH),
        );
        let src = a.rest(Pagination::NextUrlInBody, &config, "");
        let c = build(&src, Arc::new(MemoryCredentials::default()));
        let mut errors = Vec::new();

        // The request's own Authorization header and every form, echoed
        // in the body and headers: a client error, then a server error
        // retried until the connector gives up.
        a.mock.set_faults(vec![Fault::Echo(400)]);
        errors.push(read_once(c.as_ref()).await);
        a.mock.set_faults(vec![Fault::Echo(503); 6]);
        errors.push(read_once(c.as_ref()).await);
        // The credentials put into a next link, whose request then fails.
        a.mock
            .set_faults(vec![Fault::EchoInNextLink, Fault::Echo(400)]);
        errors.push(read_once(c.as_ref()).await);

        // Now that any token was issued, each form alone at the start of
        // an error body (inside the quoted snippet).
        let forms = a.mock.secret_forms();
        assert!(forms.len() >= 5, "{mode}: {forms:?}");
        for form in &forms {
            let body = serde_json::json!({ "error": "bad", "you_sent": form }).to_string();
            a.mock.set_faults(vec![Fault::Status(400, body)]);
            errors.push(read_once(c.as_ref()).await);
        }

        for e in &errors {
            assert!(
                e.message.contains("HTTP 40") || e.message.contains("HTTP 50"),
                "{mode}: {e}"
            );
            assert!(
                leaked(&e.message, &forms).is_empty(),
                "{mode}: {:?} in {e}",
                leaked(&e.message, &forms)
            );
        }
        // The echo was really there to be scrubbed.
        assert!(
            errors[0].message.contains("rejected credentials"),
            "{mode}: {}",
            errors[0]
        );
        assert!(errors[0].message.contains("***"), "{mode}: {}", errors[0]);
    }
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_client_credentials_leaks_nothing() {
    for (mode, grant) in [("client credentials", false), ("refresh token", true)] {
        let auth = if grant {
            Auth::OAuthRefreshToken {
                client_id: "client/7+x".into(),
                client_secret: PASSWORD.into(),
                initial_refresh_token: "rt/+ with space=".into(),
                rotate: true,
                token_ttl_secs: 3600,
            }
        } else {
            Auth::OAuthClientCredentials {
                client_id: "client/7+x".into(),
                client_secret: PASSWORD.into(),
                token_ttl_secs: 3600,
            }
        };
        let a = api(RestMockConfig {
            auth,
            ..Default::default()
        })
        .await;
        let (file, rt) = (a.secret("cs", PASSWORD), a.secret("rt", "rt/+ with space="));
        let token_url = a.server.url(conveyor_mocks::rest::TOKEN_PATH);
        let config = if grant {
            format!(
                r#"auth = {{ type = "oauth2_refresh_token", token_url = "{token_url}", client_id = "client/7+x", client_secret = "{file}", refresh_token = "{rt}" }}"#
            )
        } else {
            format!(
                r#"auth = {{ type = "oauth2_client_credentials", token_url = "{token_url}", client_id = "client/7+x", client_secret = "{file}" }}"#
            )
        };
        let src = a.rest(Pagination::NextUrlInBody, &config, "");
        for status in [401, 400, 500] {
            a.mock.echo_token_requests(Some(status));
            let c = build(&src, Arc::new(MemoryCredentials::default()));
            let e = read_once(c.as_ref()).await;
            let forms = a.mock.secret_forms();
            assert!(e.message.contains("token request"), "{mode}: {e}");
            assert!(
                e.message.contains("rejected credentials Basic ***"),
                "{mode}: the echo is quoted, scrubbed: {e}"
            );
            assert!(
                leaked(&e.message, &forms).is_empty(),
                "{mode}: {:?} in {e}",
                leaked(&e.message, &forms)
            );
        }
        a.mock.echo_token_requests(None);
        let (r, sink) = read_items(&src).await;
        r.unwrap();
        assert_eq!(sink.rows(), 250, "{mode}: works once the endpoint behaves");
    }
}

/// A vendor connector's paging goes through the same guard: HubSpot's
/// owners list (`after` cursor, `results`) against the generic mock.
async fn hubspot(fault: PagingFault, extra: &str) -> (Api, Result<(), ConnectorError>, Sink) {
    let (a, c) = hubspot_connector(Some(fault), extra).await;
    let (r, sink) = read(c.as_ref(), "owners", None).await;
    (a, r, sink)
}

/// The generic mock serving HubSpot's owners list, and a HubSpot
/// connector pointed at it.
async fn hubspot_connector(fault: Option<PagingFault>, extra: &str) -> (Api, Box<dyn Connector>) {
    let a = api(RestMockConfig {
        path: "/crm/v3/owners".into(),
        pagination: Pagination::CursorToken,
        auth: Auth::OAuthRefreshToken {
            client_id: "hub-client".into(),
            client_secret: PASSWORD.into(),
            initial_refresh_token: "hub-refresh-token".into(),
            rotate: false,
            token_ttl_secs: 3600,
        },
        paging_fault: fault,
        ..Default::default()
    })
    .await;
    let body = format!(
        "type = \"hubspot\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"hub-client\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nstreams = [\"owners\"]\nbackoff_base_ms = 1\n{extra}",
        a.server.base_url(),
        a.server.url(conveyor_mocks::rest::TOKEN_PATH),
        a.secret("cs", PASSWORD),
        a.secret("rt", "hub-refresh-token"),
    );
    let c = build(
        &source("crm", &body),
        Arc::new(MemoryCredentials::default()),
    );
    (a, c)
}

fn data_requests(a: &Api) -> usize {
    a.mock
        .requests()
        .iter()
        .filter(|r| r.path == "/crm/v3/owners")
        .count()
}

#[tokio::test]
async fn vendor_paging_ends_on_a_cycle_and_on_a_streak_of_empty_pages() {
    let (a, r, sink) = hubspot(PagingFault::Cycle, "").await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("source crm, stream `owners`")
            && e.message.contains("go round in a circle"),
        "{e}"
    );
    assert_eq!(data_requests(&a), 3);
    assert!(sink.checkpoints.iter().all(|c| c["cursor"].is_null()));

    let (a, r, _) = hubspot(PagingFault::EndlessEmpty, "max_empty_pages = 4").await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("the last 4 pages held no records")
            && e.message
                .contains("`max_empty_pages = 40` in [sources.crm]"),
        "{e}"
    );
    assert_eq!(data_requests(&a), 4);

    let (a, r, _) = hubspot(PagingFault::SamePage, "max_pages = 1").await;
    // One page allowed: the cap speaks before the repeat could be seen.
    assert!(r.unwrap_err().message.contains("read 1 pages (max_pages)"));
    assert_eq!(data_requests(&a), 1);
}

#[tokio::test]
async fn vendor_errors_quoting_an_echo_are_scrubbed_too() {
    // HubSpot quotes the vendor's `message` in full, not a snippet.
    let (a, c) = hubspot_connector(None, "").await;
    a.mock.set_faults(vec![Fault::Echo(400)]);
    let (r, _) = read(c.as_ref(), "owners", None).await;
    let e = r.unwrap_err();
    let forms = a.mock.secret_forms();
    assert!(e.message.contains("you sent: ***"), "{e}");
    assert!(
        leaked(&e.message, &forms).is_empty(),
        "{:?} in {e}",
        leaked(&e.message, &forms)
    );
}
