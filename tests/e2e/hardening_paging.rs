//! Issue 14, parts 2 and 3, through the real binary: sources whose APIs
//! page forever (next links A→B→A, endless empty pages, the same page
//! whatever is asked) or redirect in a loop each fail within a bounded
//! number of requests with a clear error, the cursor unmoved, while a
//! healthy source of the same run syncs; and credentials the APIs echo
//! back (the Basic header, OAuth client credentials at the token endpoint,
//! an API key in next links, the bearer token obtained) appear in no
//! encoding in stdout, stderr, `status`, `conveyor.runs.error` or the
//! warehouse file.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use conveyor_mocks::rest::{
    Auth, Fault, Pagination, PagingFault, RestMock, RestMockConfig, RestMockHandle, TOKEN_PATH,
};
use conveyor_mocks::server::MockServer;

use crate::support::{free_port, sql_on, text, BIN};

/// One REST source against a mock of its own.
struct Src {
    name: &'static str,
    server: MockServer,
}

/// Several sources in one config, one warehouse.
struct Run {
    dir: tempfile::TempDir,
    sources: Vec<Src>,
}

impl Run {
    fn new() -> Run {
        Run {
            dir: tempfile::tempdir().unwrap(),
            sources: Vec::new(),
        }
    }

    async fn add(&mut self, name: &'static str, cfg: RestMockConfig) -> RestMockHandle {
        let (server, mock) = RestMock::new(cfg).start().await;
        self.sources.push(Src { name, server });
        mock
    }

    fn url(&self, name: &str, path: &str) -> String {
        self.src(name).server.url(path)
    }

    fn src(&self, name: &str) -> &Src {
        self.sources.iter().find(|s| s.name == name).unwrap()
    }

    fn warehouse(&self) -> PathBuf {
        self.dir.path().join("wh.duckdb")
    }

    /// Writes the config: for each `(NAME, RECORDS, BODY)` a source
    /// `[sources.NAME]` with `BODY` spliced in and one stream `items` at
    /// `/items` whose records sit at `RECORDS`.
    fn write_config(&self, sources: &[(&str, &str, String)]) {
        let mut text = format!(
            "[warehouse]\npath = \"wh.duckdb\"\n\n[server]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        );
        for (name, records, body) in sources {
            let base = self.src(name).server.base_url();
            text.push_str(&format!(
                r#"
[sources.{name}]
type = "rest"
base_url = "{base}"
backoff_base_ms = 1
{body}

[[sources.{name}.streams]]
name = "items"
path = "/items"
primary_key = "id"
records = "{records}"
incremental = {{ cursor_field = "updated_at", param = "updated_since" }}
"#
            ));
        }
        std::fs::write(self.dir.path().join("conveyor.toml"), text).unwrap();
    }

    async fn conveyor(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--config")
            .arg(self.dir.path().join("conveyor.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Paging that never ended would hang here: bound the wait.
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("conveyor {args:?} did not finish in 120 s"))
            .unwrap()
    }

    fn sql(&self, sql: &str) -> Vec<Vec<String>> {
        sql_on(&self.warehouse(), sql)
    }

    /// The error of `source`'s last run.
    fn error(&self, source: &str) -> String {
        let rows = self.sql(&format!(
            "SELECT coalesce(error, '') FROM conveyor.runs WHERE source = '{source}' \
             ORDER BY run_id DESC LIMIT 1"
        ));
        rows[0][0].clone()
    }

    fn status(&self, source: &str) -> String {
        self.sql(&format!(
            "SELECT status FROM conveyor.runs WHERE source = '{source}' ORDER BY run_id DESC LIMIT 1"
        ))[0][0]
            .clone()
    }

    /// The saved cursor of `source`'s stream, `NULL` when none.
    fn cursor(&self, source: &str) -> String {
        let rows = self.sql(&format!(
            "SELECT coalesce(json_extract_string(state, '$.cursor'), 'NULL') \
             FROM conveyor.stream_state WHERE source = '{source}'"
        ));
        rows.first()
            .map(|r| r[0].clone())
            .unwrap_or_else(|| "NULL".into())
    }
}

fn paged(pagination: Pagination, fault: PagingFault) -> RestMockConfig {
    RestMockConfig {
        pagination,
        page_size: 10,
        paging_fault: Some(fault),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_paging_and_redirect_loops_fail_bounded_while_the_healthy_source_syncs() {
    let mut run = Run::new();
    let cycle = run
        .add(
            "cycle",
            paged(Pagination::NextUrlInBody, PagingFault::Cycle),
        )
        .await;
    let empty = run
        .add(
            "empty",
            paged(Pagination::LinkHeader, PagingFault::EndlessEmpty),
        )
        .await;
    let same = run
        .add(
            "same",
            paged(Pagination::OffsetLimit, PagingFault::SamePage),
        )
        .await;
    let redirect = run
        .add(
            "redirect",
            paged(Pagination::NextUrlInBody, PagingFault::RedirectLoop),
        )
        .await;
    let hops = run
        .add(
            "hops",
            paged(Pagination::NextUrlInBody, PagingFault::EndlessRedirects),
        )
        .await;
    let healthy = run.add("healthy", RestMockConfig::default()).await;
    let next_url = || "pagination = { type = \"next_url\" }".to_string();
    run.write_config(&[
        ("cycle", "data", next_url()),
        (
            "empty",
            "",
            "pagination = { type = \"link_header\", max_empty_pages = 10 }".into(),
        ),
        (
            "same",
            "items",
            "pagination = { type = \"offset\", limit = 10 }".into(),
        ),
        ("redirect", "data", next_url()),
        ("hops", "data", next_url()),
        ("healthy", "data", next_url()),
    ]);

    let out = run.conveyor(&["sync"], &[]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    // Bounded: A, B, A and then B refused; ten empty pages; the repeated
    // page; three hops of the loop; the first request and ten redirects —
    // each once, nothing retried.
    assert_eq!(cycle.request_count(), 3);
    assert_eq!(empty.request_count(), 10);
    assert_eq!(same.request_count(), 2);
    assert_eq!(redirect.request_count(), 3);
    assert_eq!(hops.request_count(), 11);

    for (source, says) in [
        ("cycle", "go round in a circle"),
        ("empty", "the last 10 pages held no records"),
        ("same", "page 2 is the same as page 1"),
        ("redirect", "redirect loop"),
        ("hops", "more than 10 redirects"),
    ] {
        assert_eq!(run.status(source), "failed", "{source}");
        let e = run.error(source);
        assert!(e.contains(says), "{source}: {e}");
        if source != "redirect" && source != "hops" {
            assert!(
                e.contains(&format!("source {source}, stream `items`"))
                    && e.contains(&run.url(source, "/items")),
                "{source}: {e}"
            );
        } else {
            assert!(e.contains("not retried"), "{source}: {e}");
        }
        assert_eq!(
            run.cursor(source),
            "NULL",
            "{source}: the cursor did not move"
        );
        assert!(
            stderr.contains(says) || stdout.contains(says),
            "{source}: the error is reported: {stdout}\n{stderr}"
        );
    }
    assert_eq!(run.status("healthy"), "succeeded");
    assert_eq!(run.sql("SELECT count(*) FROM healthy.items")[0][0], "250");
    assert_ne!(run.cursor("healthy"), "NULL");
    assert_eq!(healthy.request_count(), 3);

    // The next run works once the API behaves.
    cycle.set_paging_fault(None);
    let out = run.conveyor(&["sync"], &[]).await;
    assert_eq!(run.status("cycle"), "succeeded", "{:?}", text(&out));
    assert_eq!(run.sql("SELECT count(*) FROM cycle.items")[0][0], "250");
}

/// A secret whose encodings all differ: space, `+`, `/`, `?`, `&`, `=`, `%`.
const PASSWORD: &str = "pw with+/?&=%~ chars!7";
const CLIENT_SECRET: &str = "cs/+ client secret=&9";
const API_KEY: &str = "key+/= with space&?";

#[tokio::test(flavor = "multi_thread")]
async fn credentials_echoed_back_leave_in_no_encoding() {
    let mut run = Run::new();
    let basic = run
        .add(
            "basic",
            RestMockConfig {
                auth: Auth::Basic {
                    // `ops@example.com:` is 16 bytes, not a multiple of 3: the pair's
                    // base64 does not end in the password's own, so only knowing the
                    // pair as sent hides it.
                    user: "ops@example.com".into(),
                    pass: PASSWORD.into(),
                },
                ..Default::default()
            },
        )
        .await;
    let oauth = run
        .add(
            "oauth",
            RestMockConfig {
                auth: Auth::OAuthClientCredentials {
                    client_id: "client/7+x".into(),
                    client_secret: CLIENT_SECRET.into(),
                    token_ttl_secs: 3600,
                },
                ..Default::default()
            },
        )
        .await;
    let key = run
        .add(
            "key",
            RestMockConfig {
                auth: Auth::ApiKeyQuery {
                    name: "k".into(),
                    value: API_KEY.into(),
                },
                ..Default::default()
            },
        )
        .await;
    let healthy = run.add("healthy", RestMockConfig::default()).await;
    let token_url = run.url("oauth", TOKEN_PATH);
    let next_url = "pagination = { type = \"next_url\" }\n";
    run.write_config(&[
        (
            "basic",
            "data",
            format!("{next_url}auth = {{ type = \"basic\", username = \"ops@example.com\", password = \"env:E2E_PASSWORD\" }}"),
        ),
        (
            "oauth",
            "data",
            format!("{next_url}auth = {{ type = \"oauth2_client_credentials\", token_url = \"{token_url}\", client_id = \"client/7+x\", client_secret = \"env:E2E_CLIENT_SECRET\" }}"),
        ),
        (
            "key",
            "data",
            format!("{next_url}auth = {{ type = \"api_key\", query_param = \"k\", key = \"env:E2E_API_KEY\" }}"),
        ),
        ("healthy", "data", next_url.into()),
    ]);
    let env = [
        ("E2E_PASSWORD", PASSWORD),
        ("E2E_CLIENT_SECRET", CLIENT_SECRET),
        ("E2E_API_KEY", API_KEY),
        ("RUST_LOG", "trace"),
    ];

    let mut outputs = Vec::new();
    // Run 1: the Basic API echoes the request's Authorization header; the
    // token endpoint echoes the client's Basic credentials; the key API
    // puts the key into its next link, whose request it then refuses with
    // an echo.
    basic.set_faults(vec![Fault::Echo(401)]);
    oauth.echo_token_requests(Some(401));
    key.set_faults(vec![Fault::EchoInNextLink, Fault::Echo(400)]);
    let out = run.conveyor(&["sync"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    outputs.push(out);
    for source in ["basic", "oauth", "key"] {
        assert_eq!(run.status(source), "failed", "{source}");
        assert!(
            run.error(source).contains("***"),
            "{source}: the echo is quoted scrubbed: {}",
            run.error(source)
        );
    }
    assert!(
        run.error("oauth").contains("token request"),
        "{}",
        run.error("oauth")
    );
    assert_eq!(run.status("healthy"), "succeeded");

    // Run 2: the token endpoint behaves, so the API echoes the bearer
    // token obtained; the Basic API echoes on 5xx until the retries give
    // up (every retry logged).
    oauth.echo_token_requests(None);
    oauth.set_faults(vec![Fault::Echo(400)]);
    basic.set_faults(vec![Fault::Echo(503); 6]);
    let out = run.conveyor(&["sync"], &env).await;
    outputs.push(out);
    assert!(
        run.error("oauth").contains("Bearer ***"),
        "{}",
        run.error("oauth")
    );
    assert!(
        run.error("basic").contains("gave up after 6 attempts"),
        "{}",
        run.error("basic")
    );
    assert_eq!(
        run.status("key"),
        "succeeded",
        "the key source works once it behaves"
    );

    for args in [&["status"][..], &["check"]] {
        outputs.push(run.conveyor(args, &env).await);
    }
    let query = run
        .conveyor(&["query", "select error from conveyor.runs"], &env)
        .await;
    assert!(query.status.success(), "{:?}", text(&query));
    assert!(text(&query).0.contains("***"), "{:?}", text(&query));
    outputs.push(query);

    // Every form of every secret the mocks know (the tokens they issued
    // included), in every output and in the warehouse file's bytes.
    let mut forms: Vec<String> = Vec::new();
    for m in [&basic, &oauth, &key, &healthy] {
        forms.extend(m.secret_forms());
    }
    assert!(
        !oauth.issued_access_tokens().is_empty() && forms.len() > 20,
        "{forms:?}"
    );
    let warehouse = std::fs::read(run.warehouse()).unwrap();
    let wal = std::fs::read(run.dir.path().join("wh.duckdb.wal")).unwrap_or_default();
    for form in &forms {
        for o in &outputs {
            let (stdout, stderr) = text(o);
            assert!(
                !stdout.contains(form.as_str()),
                "{form} in stdout: {stdout}"
            );
            assert!(!stderr.contains(form.as_str()), "{form} in stderr");
        }
        for bytes in [&warehouse, &wal] {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{form} in the warehouse file"
            );
        }
    }
    for source in ["basic", "oauth", "key"] {
        let e = run.error(source);
        assert!(
            forms.iter().all(|f| !e.contains(f.as_str())),
            "{source}: {e}"
        );
    }
}
