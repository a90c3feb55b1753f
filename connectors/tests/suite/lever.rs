//! The Lever connector against its mock over loopback HTTP: every table
//! read whole with exact values (epoch milliseconds → UTC instants), the
//! `hasNext`/`next` paging, incremental reads that pick up a change and
//! nothing else, the token bucket's 429s, OAuth refresh with rotation, a
//! wrong key reported without a trace of it, and a refused stream.

use crate::support;

use std::sync::Arc;

use arrow_schema::{DataType, TimeUnit};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::lever::{LeverHandle, LeverMock, LeverMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::{json, Value};
use support::{build, distinct, read, read_with_hook, secret_file, source, stream_names};

struct Setup {
    dir: tempfile::TempDir,
    server: MockServer,
    mock: LeverHandle,
    cfg: LeverMockConfig,
}

async fn start_with(cfg: LeverMockConfig) -> Setup {
    let (server, mock) = LeverMock::start(cfg.clone()).await;
    Setup {
        dir: tempfile::tempdir().unwrap(),
        server,
        mock,
        cfg,
    }
}

async fn start() -> Setup {
    start_with(LeverMockConfig::default()).await
}

impl Setup {
    /// Authenticated by the API key (Basic `key:`), `key` in a secret file.
    fn keyed(&self, key: &str, extra: &str) -> Box<dyn Connector> {
        let key = secret_file(self.dir.path(), "key", key);
        let body = format!(
            "type = \"lever\"\nbase_url = \"{}\"\napi_key = \"{key}\"\nbackoff_base_ms = 10\n{extra}",
            self.server.url("/v1"),
        );
        build(
            &source("lever", &body),
            Arc::new(MemoryCredentials::default()),
        )
    }

    fn connector(&self, extra: &str) -> Box<dyn Connector> {
        self.keyed(&self.cfg.api_key, extra)
    }

    /// Authenticated by OAuth; the token URL follows from `base_url`.
    fn oauth(&self, store: Arc<dyn CredentialStore>) -> Box<dyn Connector> {
        let secret = secret_file(self.dir.path(), "cs", &self.cfg.client_secret);
        let refresh = secret_file(self.dir.path(), "rt", &self.cfg.refresh_token);
        let body = format!(
            "type = \"lever\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\nrefresh_token = \"{refresh}\"\nbackoff_base_ms = 10\n",
            self.server.url("/v1"),
            self.cfg.client_id,
        );
        build(&source("lever", &body), store)
    }

    fn data_requests(&self, path: &str) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path == format!("/v1/{path}"))
            .collect()
    }

    fn ids(&self, list: &str) -> Vec<String> {
        self.mock
            .records(list)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn strings(v: &[Option<String>]) -> Vec<String> {
    v.iter().map(|s| s.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn lever_full_read_gives_every_table_typed_with_epoch_millis_as_utc() {
    let s = start_with(LeverMockConfig {
        max_per_page: 7,
        ..Default::default()
    })
    .await;
    let c = s.connector("");
    assert_eq!(
        stream_names(c.as_ref()),
        [
            "opportunities",
            "postings",
            "users",
            "offers",
            "deleted_opportunities"
        ]
    );

    let (r, opps) = read(c.as_ref(), "opportunities", None).await;
    r.unwrap();
    assert_eq!(strings(&opps.strings("id")), s.ids("opportunities"));
    // 30 records, 7 a page: five requests, each asking for 100; the first
    // without an offset, the others with the token Lever gave.
    let reqs = s.data_requests("opportunities");
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[0].query_pairs(), [("limit".into(), "100".into())]);
    for r in &reqs[1..] {
        let pairs = r.query_pairs();
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert_eq!(pairs[1].0, "offset");
    }
    assert!(reqs.iter().all(|r| {
        r.header("authorization").is_some_and(|a| {
            a == format!("Basic {}", STANDARD.encode(format!("{}:", s.cfg.api_key)))
        })
    }));
    // The third opportunity (updated at 09:03) was hired and archived.
    assert_eq!(
        opps.data_type("updated_at"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        opps.instants("updated_at")[2].as_deref(),
        Some("2024-06-01T09:03:00.000Z")
    );
    assert_eq!(
        opps.instants("created_at")[2].as_deref(),
        Some("2024-05-31T09:03:00.000Z")
    );
    assert_eq!(
        opps.instants("archived_at")[2].as_deref(),
        Some("2024-06-01T09:03:00.000Z")
    );
    assert_eq!(opps.instants("archived_at")[1], None);
    assert_eq!(
        opps.strings("archive_reason")[2].as_deref(),
        Some("hired-reason")
    );
    assert_eq!(opps.strings("stage")[2].as_deref(), Some("offer"));
    assert_eq!(opps.strings("origin")[2].as_deref(), Some("applied"));
    assert_eq!(
        opps.strings("contact")[2].as_deref(),
        Some("00000004-0000-4000-8000-000000000003")
    );
    assert_eq!(
        opps.strings("owner")[2].as_deref(),
        Some("00000001-0000-4000-8000-000000000002")
    );
    assert_eq!(
        opps.strings("primary_email")[2].as_deref(),
        Some("person3@example.com")
    );
    assert_eq!(
        opps.strings("emails")[2].as_deref(),
        Some("[\"person3@example.com\"]")
    );
    // The history keeps its epoch ms inside the JSON, as Lever sent it.
    assert!(opps.strings("stage_changes")[2]
        .as_deref()
        .unwrap()
        .contains("\"updatedAt\":1717146180000"));
    // The whole read is one checkpoint sequence ending at the newest.
    assert_eq!(opps.last_cursor(), json!("2024-06-01T09:30:00.000Z"));

    let (r, postings) = read(c.as_ref(), "postings", None).await;
    r.unwrap();
    assert_eq!(
        strings(&postings.strings("department")),
        ["Client 1", "Client 2", "Client 3"]
    );
    assert_eq!(postings.strings("team")[0].as_deref(), Some("Operations"));
    assert_eq!(
        postings.strings("creator")[0].as_deref(),
        Some("00000001-0000-4000-8000-000000000001")
    );
    // 2024-06-01T09:00Z minus 5,000 minutes, plus one.
    assert_eq!(
        postings.instants("updated_at")[0].as_deref(),
        Some("2024-05-28T21:41:00.000Z")
    );

    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(strings(&users.strings("id")), s.ids("users"));
    assert_eq!(
        users.strings("access_role")[0].as_deref(),
        Some("super admin")
    );
    assert_eq!(users.instants("deactivated_at")[0], None);
    assert_eq!(users.last_cursor(), Value::Null);

    let (r, offers) = read(c.as_ref(), "offers", None).await;
    r.unwrap();
    let want: Vec<String> = s
        .mock
        .offers()
        .iter()
        .map(|(_, o)| o["id"].as_str().unwrap().to_string())
        .collect();
    let (got, repeated) = distinct(&offers.strings("id"));
    assert!(!repeated);
    assert_eq!(got.len(), 14, "10 hired, 4 drafts");
    assert_eq!(
        got.into_iter().collect::<std::collections::BTreeSet<_>>(),
        want.into_iter().collect()
    );
    let third = offers
        .strings("opportunity_id")
        .iter()
        .position(|o| o.as_deref() == Some("00000003-0000-4000-8000-000000000003"))
        .unwrap();
    assert_eq!(offers.strings("status")[third].as_deref(), Some("signed"));
    assert_eq!(
        offers.strings("posting")[third].as_deref(),
        Some("00000002-0000-4000-8000-000000000001")
    );
    assert_eq!(offers.data_type("start_date"), DataType::Date32);
    assert_eq!(
        offers.instants("created_at")[third].as_deref(),
        Some("2024-06-01T08:03:00.000Z")
    );
    assert_eq!(
        offers.instants("signed_at")[third].as_deref(),
        Some("2024-06-01T09:02:00.000Z")
    );
    // Offers are asked for per opportunity, each once it got through the
    // bucket (30 requests at once pass its burst of 20: some were retried).
    let per_opportunity: std::collections::BTreeSet<String> = s
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/offers"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(per_opportunity.len(), 30);

    let (r, deleted) = read(c.as_ref(), "deleted_opportunities", None).await;
    r.unwrap();
    assert_eq!(
        strings(&deleted.strings("id")),
        s.ids("opportunities/deleted")
    );
    assert_eq!(
        deleted.instants("deleted_at")[0].as_deref(),
        Some("2024-06-01T07:20:00.000Z")
    );
}

#[tokio::test]
async fn lever_incremental_reads_pick_up_a_change_and_nothing_else() {
    let s = start().await;
    let c = s.connector("start_date = \"2024-06-01\"");
    let (r, first) = read(c.as_ref(), "opportunities", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 30);
    // The start date became the first filter, in epoch ms.
    assert!(
        s.data_requests("opportunities")[0]
            .query_pairs()
            .contains(&("updated_at_start".into(), "1717199700000".into())),
        "2024-06-01 minus the 5-minute look-back"
    );
    let state = first.checkpoints.last().unwrap().clone();

    let id = s.ids("opportunities")[6].clone();
    let stamp = s
        .mock
        .touch("opportunities", &id, |r| r["headline"] = json!("Team lead"));
    let before = s.mock.requests().len();
    let (r, second) = read(c.as_ref(), "opportunities", Some(state.clone())).await;
    r.unwrap();
    // The look-back re-read the newest records; unchanged, they stay out.
    assert_eq!(strings(&second.strings("id")), std::slice::from_ref(&id));
    assert_eq!(second.strings("headline")[0].as_deref(), Some("Team lead"));
    let sent = &s.mock.requests()[before];
    let cursor_ms = chrono::DateTime::parse_from_rfc3339(state["cursor"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(sent
        .query_pairs()
        .contains(&("updated_at_start".into(), (cursor_ms - 300_000).to_string())));
    let stamped = chrono::DateTime::from_timestamp_millis(stamp).unwrap();
    assert_eq!(
        second.last_cursor(),
        json!(stamped.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );

    // Nothing changed since: no rows, the cursor stays.
    let (r, third) = read(
        c.as_ref(),
        "opportunities",
        Some(second.checkpoints.last().unwrap().clone()),
    )
    .await;
    r.unwrap();
    assert_eq!(third.rows(), 0);
    assert_eq!(third.last_cursor(), second.last_cursor());

    // Offers: only those of the opportunities changed since.
    let (r, offers) = read(c.as_ref(), "offers", None).await;
    r.unwrap();
    let offers_state = offers.checkpoints.last().unwrap().clone();
    let plain = s.ids("opportunities")[0].clone();
    let new_offer = s.mock.add_offer(
        &plain,
        json!({"status": "sent", "creator": "u", "posting": "p", "fields": []}),
    );
    let before = s.mock.requests().len();
    let (r, again) = read(c.as_ref(), "offers", Some(offers_state)).await;
    r.unwrap();
    assert_eq!(strings(&again.strings("id")), [new_offer]);
    assert_eq!(
        again.strings("opportunity_id")[0].as_deref(),
        Some(plain.as_str())
    );
    // (Counted by path: the bucket, drained by the full read, may have
    // had a request retried.)
    let asked: std::collections::BTreeSet<String> = s.mock.requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/offers"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        asked.into_iter().collect::<Vec<_>>(),
        [format!("/v1/opportunities/{plain}/offers")],
        "unchanged opportunities' offers are not fetched"
    );

    // Deletions: the new one only.
    let (r, deleted) = read(c.as_ref(), "deleted_opportunities", None).await;
    r.unwrap();
    assert_eq!(deleted.rows(), 1);
    let deleted_state = deleted.checkpoints.last().unwrap().clone();
    let gone = s.ids("opportunities")[3].clone();
    s.mock.delete_opportunity(&gone);
    let (r, deleted) = read(c.as_ref(), "deleted_opportunities", Some(deleted_state)).await;
    r.unwrap();
    assert_eq!(strings(&deleted.strings("id")), [gone]);
}

#[tokio::test]
async fn lever_a_burst_into_the_token_bucket_is_retried_and_every_row_comes_once() {
    // A small bucket: the offers read (one list page, then one request per
    // opportunity) runs into it again and again.
    let s = start_with(LeverMockConfig {
        bucket_rate: 20.0,
        bucket_burst: 3.0,
        ..Default::default()
    })
    .await;
    let c = s.connector("max_retries = 10\nbackoff_max_secs = 1");
    let (r, offers) = read(c.as_ref(), "offers", None).await;
    r.unwrap();
    assert!(s.mock.throttled() > 0, "the bucket refused some requests");
    let (ids, repeated) = distinct(&offers.strings("id"));
    assert_eq!((ids.len(), repeated), (14, false));
    assert_eq!(offers.rows(), 14, "every offer once");
    let (r, opps) = read(c.as_ref(), "opportunities", None).await;
    r.unwrap();
    assert_eq!(strings(&opps.strings("id")), s.ids("opportunities"));

    // A 429 that says when to come back (the reference documents no
    // header; the mock's queued fault sends `Retry-After`) is waited out.
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = std::time::Instant::now();
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(users.rows(), 4);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn lever_an_expired_token_is_refreshed_and_the_rotated_refresh_token_saved() {
    let s = start_with(LeverMockConfig {
        max_per_page: 2,
        ..Default::default()
    })
    .await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.oauth(store.clone());
    let mock = s.mock.clone();
    let (r, users) = read_with_hook(c.as_ref(), "users", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(strings(&users.strings("id")), s.ids("users"));
    assert_eq!(
        s.mock.token_requests(),
        2,
        "one at the start, one after the 401"
    );
    let stored = store
        .load("lever.refresh_token")
        .unwrap()
        .expect("rotated token kept");
    assert_ne!(stored, s.cfg.refresh_token);
    assert_eq!(Some(stored), s.mock.current_refresh_token());
    let data = s.data_requests("users");
    assert!(data.iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer "))));
    // The token request went to the token URL derived from base_url.
    assert!(s.mock.requests().iter().any(|r| r.path == "/oauth/token"));

    // Without the stored token only the configured one is left, which
    // rotation revoked: Lever's refusal, without the token.
    let (r, _) = read(
        s.oauth(Arc::new(MemoryCredentials::default())).as_ref(),
        "users",
        None,
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("invalid_grant") && !e.message.contains(&s.cfg.refresh_token),
        "{e}"
    );
    // With the store, a new process goes on from the rotated token.
    let (r, again) = read(s.oauth(store.clone()).as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(again.rows(), 4);
    assert_eq!(
        store.load("lever.refresh_token").unwrap(),
        s.mock.current_refresh_token()
    );
}

#[tokio::test]
async fn lever_a_wrong_key_is_a_clear_error_without_the_key_in_any_form() {
    // The mock quotes what it was given (a hostile echo).
    let s = start_with(LeverMockConfig {
        echo_credentials: true,
        ..Default::default()
    })
    .await;
    let wrong = "wrong/key+5d8e?1a";
    let c = s.keyed(wrong, "max_retries = 0");
    let (r, sink) = read(c.as_ref(), "postings", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("HTTP 401")
            && e.message.contains("UnauthorizedError: Invalid API key")
            && e.message.contains("/v1/postings"),
        "{e}"
    );
    let pair = format!("{wrong}:");
    let mut forms = vec![
        wrong.to_string(),
        url::form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>(),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(&pair));
    }
    // The echo really carried them: the test would catch a leak.
    let echoed = s
        .mock
        .requests()
        .last()
        .unwrap()
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(echoed.contains(&forms[2]), "{echoed}");
    for f in &forms {
        assert!(!e.message.contains(f.as_str()), "{f} leaked: {e}");
    }
    assert!(sink.checkpoints.is_empty(), "the cursor must not move");
}

#[tokio::test]
async fn lever_a_refused_stream_says_to_leave_it_out() {
    let s = start().await;
    s.mock.forbid("offers");
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "offers", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `offers`")
            && e.message.contains("Forbidden: This key may not read offers")
            && e.message.contains(
                "streams = [\"opportunities\", \"postings\", \"users\", \"deleted_opportunities\"] in [sources.lever]"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty() && sink.batches.is_empty());
    // The other streams still read.
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(users.rows(), 4);
}
