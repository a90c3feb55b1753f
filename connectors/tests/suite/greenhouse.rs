//! The Greenhouse Harvest v3 connector against its mock over loopback HTTP:
//! full and incremental syncs, cursor-only Link paging (also in pages of
//! three), boundary records emitted once, token expiry, 429s, Harvest's
//! error bodies, and a stream the user may not read.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, TimeUnit};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::greenhouse::{GreenhouseHandle, GreenhouseMock, GreenhouseMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{build, distinct, read, read_with_hook, secret_file, source, stream_names};

struct Setup {
    dir: tempfile::TempDir,
    secret: String,
    server: MockServer,
    mock: GreenhouseHandle,
    cfg: GreenhouseMockConfig,
}

async fn start() -> Setup {
    start_with(GreenhouseMockConfig::default()).await
}

async fn start_with(cfg: GreenhouseMockConfig) -> Setup {
    let (server, mock) = GreenhouseMock::start(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "cs", &cfg.client_secret);
    Setup {
        dir,
        secret,
        server,
        mock,
        cfg,
    }
}

impl Setup {
    fn connector(&self, extra: &str) -> Box<dyn Connector> {
        let body = format!(
            "type = \"greenhouse\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nuser_id = {}\nbackoff_base_ms = 10\n{extra}",
            self.server.url("/v3"),
            self.server.url("/token"),
            self.cfg.client_id,
            self.secret,
            self.cfg.user_id,
        );
        build(
            &source("ats", &body),
            Arc::new(MemoryCredentials::default()),
        )
    }

    fn data_requests(&self, resource: &str) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path == format!("/v3/{resource}"))
            .collect()
    }
}

#[tokio::test]
async fn full_sync_reads_every_stream_typed_following_cursor_links_exactly() {
    let s = start().await;
    let c = s.connector("");
    let names: Vec<String> = c.streams().iter().map(|d| d.name.clone()).collect();
    assert_eq!(names, ["jobs", "candidates", "applications", "offers"]);
    assert!(c
        .streams()
        .iter()
        .all(|d| d.primary_key == ["id"] && d.cursor_field.as_deref() == Some("updated_at")));

    for resource in ["jobs", "candidates", "applications", "offers"] {
        let (r, sink) = read(c.as_ref(), resource, None).await;
        r.unwrap_or_else(|e| panic!("{resource}: {e}"));
        let want: Vec<i64> = s
            .mock
            .records(resource)
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(sink.ints("id"), want, "{resource}");
        // The cursor moves only at the end, to the newest updated_at.
        let newest = s
            .mock
            .records(resource)
            .iter()
            .filter_map(|r| r["updated_at"].as_str().map(str::to_string))
            .max()
            .unwrap();
        assert!(sink.checkpoints[..sink.checkpoints.len() - 1]
            .iter()
            .all(|c| c["cursor"].is_null()));
        assert_eq!(sink.last_cursor(), json!(newest), "{resource}");
    }

    // 120 candidates at 50 a page: three requests; the first carries
    // per_page, the others only the cursor the Link header gave.
    let reqs = s.data_requests("candidates");
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[0].query_pairs(),
        [("per_page".to_string(), "500".to_string())]
    );
    for r in &reqs[1..] {
        let pairs = r.query_pairs();
        assert!(pairs.len() == 1 && pairs[0].0 == "cursor", "{pairs:?}");
    }
    assert!(reqs.iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer "))));

    let (_, offers) = read(c.as_ref(), "offers", None).await;
    assert_eq!(offers.data_type("sent_on"), DataType::Date32);
    assert_eq!(
        offers.data_type("updated_at"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    let (_, cands) = read(c.as_ref(), "candidates", None).await;
    assert_eq!(
        cands.strings("primary_email")[6].as_deref(),
        Some("person7@example.com")
    );
    assert_eq!(
        cands.instants("created_at")[0].as_deref(),
        Some("2024-06-01T09:11:00.000Z")
    );
}

#[tokio::test]
async fn the_mock_refuses_a_cursor_with_other_parameters() {
    // The quirk the connector must respect, checked on the mock itself.
    let s = start().await;
    let tok: serde_json::Value = reqwest::Client::new()
        .post(s.server.url("/token"))
        .basic_auth(&s.cfg.client_id, Some(&s.cfg.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("sub", s.cfg.user_id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = tok["access_token"].as_str().unwrap().to_string();
    let first = reqwest::Client::new()
        .get(s.server.url("/v3/candidates?per_page=10"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    let link = first.headers()["link"].to_str().unwrap().to_string();
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let bad = reqwest::Client::new()
        .get(format!("{next}&per_page=10"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn incremental_sync_sends_the_filter_once_and_picks_up_only_changes() {
    let s = start().await;
    let c = s.connector("start_date = \"2024-06-01\"");
    let (r, first) = read(c.as_ref(), "candidates", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 120);
    // The start date became the first filter.
    assert!(s.data_requests("candidates")[0]
        .query
        .contains("updated_at=gte%7C2024-06-01T00%3A00%3A00.000Z"));
    let state = first.checkpoints.last().unwrap().clone();

    s.mock
        .touch("candidates", 7, |r| r["title"] = json!("Team Lead"));
    let new_id = s.mock.insert(
        "candidates",
        json!({"first_name": "Nia", "last_name": "New", "email_addresses": [], "tags": []}),
    );
    let before = s.mock.requests().len();
    let (r, second) = read(c.as_ref(), "candidates", Some(state.clone())).await;
    r.unwrap();
    // gte is inclusive: the newest record of the last run comes again, but
    // unchanged it is not emitted twice.
    assert_eq!(second.ints("id"), vec![7, new_id as i64]);
    assert_eq!(second.strings("title")[0].as_deref(), Some("Team Lead"));
    let sent = &s.mock.requests()[before];
    let cursor = state["cursor"].as_str().unwrap();
    assert!(
        sent.query_pairs()
            .contains(&("updated_at".into(), format!("gte|{cursor}"))),
        "{:?}",
        sent.query
    );
    let newest = s.mock.records("candidates").last().unwrap()["updated_at"].clone();
    assert_eq!(
        second.last_cursor(),
        newest,
        "the cursor moved to the inserted record"
    );

    // Nothing changed since: one request, no rows, the cursor stays.
    let (r, third) = read(
        c.as_ref(),
        "candidates",
        Some(second.checkpoints.last().unwrap().clone()),
    )
    .await;
    r.unwrap();
    assert_eq!(
        third.rows(),
        0,
        "the inclusive boundary record again, unchanged: nothing to emit"
    );
    assert_eq!(third.last_cursor(), second.last_cursor());
    assert_eq!(s.data_requests("candidates").len(), 3 + 1 + 1);
}

#[tokio::test]
async fn an_access_token_expiring_mid_sync_is_replaced_and_the_run_completes() {
    let s = start().await;
    let c = s.connector("");
    let mock = s.mock.clone();
    let (r, sink) = read_with_hook(c.as_ref(), "candidates", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(sink.rows(), 120);
    assert_eq!(
        s.mock.token_requests(),
        2,
        "one token at the start, one after the 401"
    );
    // The token request named the user (`sub`) and authenticated by Basic.
    let tok = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(tok.header("authorization").unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn a_429_is_waited_out_per_retry_after() {
    let s = start().await;
    let c = s.connector("");
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = Instant::now();
    let (r, sink) = read(c.as_ref(), "jobs", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(
        s.data_requests("jobs").len(),
        2,
        "the refused request was repeated once"
    );
}

#[tokio::test]
async fn harvest_error_bodies_become_clear_secret_free_messages() {
    let s = start().await;
    let c = s.connector("max_retries = 0");
    s.mock.push_faults([Fault::Error(
        422,
        json!({"message": "Validation error", "errors": [{"message": "Must be one of: candidate, prospect", "field": "type"}]}),
    )]);
    let (r, sink) = read(c.as_ref(), "candidates", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("HTTP 422")
            && e.message
                .contains("Validation error (type: Must be one of: candidate, prospect)"),
        "{e}"
    );
    assert!(e.message.contains("/v3/candidates"), "{e}");
    assert!(sink.checkpoints.is_empty(), "the cursor must not move");

    // Bad credentials: the vendor's OAuth error, without the secret.
    std::fs::write(s.dir.path().join("cs"), "wrong-secret-1234").unwrap();
    let c = s.connector("");
    let (r, _) = read(c.as_ref(), "jobs", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("invalid_client") && !e.message.contains("wrong-secret-1234"),
        "{e}"
    );
}

/// Issue 21, point 6: every list used to fit one page, so the `Link`
/// cursor was never followed far. Pages of three: every record once.
#[tokio::test]
async fn greenhouse_link_paging_in_pages_of_three_misses_and_repeats_nothing() {
    let s = start_with(GreenhouseMockConfig {
        candidates: 10,
        max_per_page: 3,
        ..Default::default()
    })
    .await;
    let c = s.connector("");
    for resource in ["jobs", "candidates", "applications", "offers"] {
        let (r, sink) = read(c.as_ref(), resource, None).await;
        r.unwrap_or_else(|e| panic!("{resource}: {e}"));
        let want: Vec<i64> = s
            .mock
            .records(resource)
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert!(want.len() >= 3, "{resource}");
        assert_eq!(sink.ints("id"), want, "{resource}: in order, each once");
        let reqs = s.data_requests(resource);
        assert_eq!(reqs.len(), want.len().div_ceil(3), "{resource}");
        for r in &reqs[1..] {
            let pairs = r.query_pairs();
            assert!(pairs.len() == 1 && pairs[0].0 == "cursor", "{pairs:?}");
        }
    }

    // Incremental, across pages too: the filter travels inside the cursor.
    let (_, all) = read(c.as_ref(), "candidates", None).await;
    let state = all.checkpoints.last().unwrap().clone();
    let mut changed = Vec::new();
    for id in [2u64, 5, 6, 9] {
        s.mock
            .touch("candidates", id, |r| r["title"] = json!("Changed"));
        changed.push(id as i64);
    }
    let before = s.data_requests("candidates").len();
    let (r, again) = read(c.as_ref(), "candidates", Some(state)).await;
    r.unwrap();
    assert_eq!(again.ints("id"), changed);
    assert_eq!(
        s.data_requests("candidates").len() - before,
        2,
        "4 changes, pages of 3"
    );
    let (titles, _) = distinct(&again.strings("title"));
    assert_eq!(titles.into_iter().collect::<Vec<_>>(), ["Changed"]);
}

/// Issue 21, point 5: a user without the offers scope.
#[tokio::test]
async fn greenhouse_an_unreadable_stream_says_to_leave_it_out_and_leaving_it_out_works() {
    let s = start().await;
    let c = s.connector("");
    // v3's 403 body shape is not documented; Harvest's `message` shape.
    s.mock.push_faults([Fault::Error(
        403,
        json!({"message": "Forbidden: this token lacks the harvest:offers:list scope"}),
    )]);
    let (r, sink) = read(c.as_ref(), "offers", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `offers`")
            && e.message.contains("harvest:offers:list")
            && e.message.contains(
                "streams = [\"jobs\", \"candidates\", \"applications\"] in [sources.ats]"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());

    let c = s.connector("streams = [\"jobs\", \"candidates\", \"applications\"]\n");
    assert_eq!(
        stream_names(c.as_ref()),
        ["jobs", "candidates", "applications"]
    );
    let before = s.data_requests("offers").len();
    let (r, _) = read(c.as_ref(), "offers", None).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    assert_eq!(s.data_requests("offers").len(), before);
    let (r, cands) = read(c.as_ref(), "candidates", None).await;
    r.unwrap();
    assert_eq!(cands.rows(), 120);
}
