//! The Zendesk Talk connector against its mock over loopback HTTP: the
//! incremental calls export whose `next_page` is never null, incremental
//! reads, 429s and Zendesk's error bodies.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, TimeUnit};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::zendesk_talk::{
    ZendeskTalkHandle, ZendeskTalkMock, ZendeskTalkMockConfig, CALLS_PATH,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{build, read, secret_file, source};

struct Setup {
    dir: tempfile::TempDir,
    server: MockServer,
    mock: ZendeskTalkHandle,
    cfg: ZendeskTalkMockConfig,
}

async fn start() -> Setup {
    let cfg = ZendeskTalkMockConfig::default();
    let (server, mock) = ZendeskTalkMock::start(cfg.clone()).await;
    Setup {
        dir: tempfile::tempdir().unwrap(),
        server,
        mock,
        cfg,
    }
}

impl Setup {
    fn connector(&self, token: &str, extra: &str) -> Box<dyn Connector> {
        let body = format!(
            "type = \"zendesk_talk\"\nbase_url = \"{}\"\nemail = \"{}\"\napi_token = \"{}\"\nbackoff_base_ms = 10\n{extra}",
            self.server.base_url(),
            self.cfg.email,
            secret_file(self.dir.path(), "tok", token),
        );
        build(
            &source("phones", &body),
            Arc::new(MemoryCredentials::default()),
        )
    }

    fn start_times(&self) -> Vec<i64> {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path.trim_end_matches(".json") == CALLS_PATH)
            .map(|r| {
                r.query_pairs()
                    .into_iter()
                    .find(|(k, _)| k == "start_time")
                    .unwrap()
                    .1
                    .parse()
                    .unwrap()
            })
            .collect()
    }
}

fn ids(sink: &support::Sink) -> BTreeSet<i64> {
    sink.ints("id").into_iter().collect()
}

#[tokio::test]
async fn the_export_ends_on_a_small_count_although_next_page_is_never_null() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    let (r, sink) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    let want: BTreeSet<i64> = s
        .mock
        .calls()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids(&sink), want);
    // 250 calls at 100 a page, each page re-reading its boundary call:
    // 100, 100, 52, then a page holding only the boundary call ends it.
    assert_eq!(s.start_times().len(), 4, "{:?}", s.start_times());
    assert_eq!(s.start_times()[0], 0, "no start date: from the beginning");
    let newest = s
        .mock
        .calls()
        .iter()
        .filter_map(|c| c["updated_at"].as_str().map(str::to_string))
        .max()
        .unwrap();
    assert_eq!(sink.last_cursor(), json!(newest.replace('Z', ".000Z")));
    assert_eq!(
        sink.data_type("updated_at"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        sink.data_type("exceeded_queue_wait_time"),
        DataType::Boolean
    );

    // The quirk itself, on the mock: past the end, next_page is still a URL.
    let last: serde_json::Value = reqwest::Client::new()
        .get(
            s.server
                .url(&format!("{CALLS_PATH}.json?start_time=4102444800")),
        )
        .basic_auth(format!("{}/token", s.cfg.email), Some(&s.cfg.api_token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["count"], 0);
    assert!(last["next_page"]
        .as_str()
        .is_some_and(|n| n.contains("start_time=")));
}

#[tokio::test]
async fn incremental_sync_starts_at_the_cursor_and_picks_up_only_changes() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "start_date = \"2024-06-03\"");
    let (r, first) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    assert_eq!(s.start_times()[0], 1_717_372_800, "2024-06-03T00:00:00Z");
    let state = first.checkpoints.last().unwrap().clone();
    let cursor = chrono::DateTime::parse_from_rfc3339(state["cursor"].as_str().unwrap())
        .unwrap()
        .timestamp();

    s.mock.touch(360_000_005, |c| {
        c["completion_status"] = json!("completed_with_callback")
    });
    let before = s.start_times().len();
    let (r, second) = read(c.as_ref(), "calls", Some(state)).await;
    r.unwrap();
    assert_eq!(s.start_times()[before], cursor);
    // The boundary call (inclusive start) and the changed one.
    assert_eq!(ids(&second), BTreeSet::from([360_000_005, 360_000_250]));
    assert!(second
        .strings("completion_status")
        .contains(&Some("completed_with_callback".into())));
}

#[tokio::test]
async fn a_429_is_waited_out_per_retry_after() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = Instant::now();
    let (r, sink) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    assert_eq!(ids(&sink).len(), 250);
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(s.start_times().len(), 5, "one refused request repeated");
}

#[tokio::test]
async fn zendesk_error_bodies_become_clear_secret_free_messages() {
    let s = start().await;
    let (r, sink) = read(s.connector("not-the-token-99", "").as_ref(), "calls", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("HTTP 401") && e.message.contains("Couldn't authenticate you"),
        "{e}"
    );
    assert!(!e.message.contains("not-the-token-99"));
    assert!(sink.checkpoints.is_empty());

    let c = s.connector(&s.cfg.api_token, "max_retries = 0");
    s.mock.push_faults([Fault::Error(422, json!({"error": "InvalidValue", "description": "start_time must be more than one minute in the past"}))]);
    let (r, _) = read(c.as_ref(), "calls", None).await;
    let e = r.unwrap_err();
    assert!(
        e.message
            .contains("InvalidValue: start_time must be more than one minute in the past"),
        "{e}"
    );
}
