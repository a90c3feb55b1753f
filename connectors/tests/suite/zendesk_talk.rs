//! The Zendesk Talk connector against its mock over loopback HTTP: the
//! incremental calls export whose `next_page` is never null, incremental
//! reads emitting each call once, the agents and admins calls name (cursor
//! pages), 429s, Zendesk's error bodies, a stream the token may not read.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, TimeUnit};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::zendesk_talk::{
    ZendeskTalkHandle, ZendeskTalkMock, ZendeskTalkMockConfig, CALLS_PATH, USERS_PATH,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{build, distinct, read, secret_file, source, stream_names};

struct Setup {
    dir: tempfile::TempDir,
    server: MockServer,
    mock: ZendeskTalkHandle,
    cfg: ZendeskTalkMockConfig,
}

async fn start() -> Setup {
    start_with(ZendeskTalkMockConfig::default()).await
}

async fn start_with(cfg: ZendeskTalkMockConfig) -> Setup {
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
    // Each call once, though every page starts with the last one's boundary call.
    assert_eq!(sink.rows(), 250);
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
    // The changed one only: the boundary call the inclusive start sends
    // again is unchanged, and the last run emitted it already.
    assert_eq!(second.ints("id"), [360_000_005]);
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

impl Setup {
    fn user_requests(&self) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path.trim_end_matches(".json") == USERS_PATH)
            .collect()
    }
}

/// Issue 21: calls name an `agent_id` that nothing else described; the
/// agents and admins are now a stream, by Zendesk's cursor pages.
#[tokio::test]
async fn zendesk_talk_users_are_the_agents_and_admins_calls_name() {
    let s = start_with(ZendeskTalkMockConfig {
        users_page_size: 3,
        ..Default::default()
    })
    .await;
    let c = s.connector(&s.cfg.api_token, "");
    assert_eq!(
        stream_names(c.as_ref()),
        ["calls", "legs", "agents_activity", "users"]
    );
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let staff: BTreeSet<i64> = s
        .mock
        .users()
        .iter()
        .filter(|u| u["role"] != "end-user")
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(staff.len(), 8);
    assert_eq!(users.ints("id").into_iter().collect::<BTreeSet<_>>(), staff);
    assert_eq!(users.rows(), 8, "each once");
    let (roles, _) = distinct(&users.strings("role"));
    assert_eq!(roles.into_iter().collect::<Vec<_>>(), ["admin", "agent"]);
    // Every agent a call names is a user.
    let (r, calls) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    assert!(calls.ints("agent_id").iter().all(|a| staff.contains(a)));
    // 3 + 3 + 2; the last page still links on, `has_more` ends it.
    let reqs = s.user_requests();
    assert_eq!(reqs.len(), 3);
    let first = reqs[0].query_pairs();
    for want in [
        ("role[]", "agent"),
        ("role[]", "admin"),
        ("page[size]", "100"),
    ] {
        assert!(first.contains(&(want.0.into(), want.1.into())), "{first:?}");
    }
    assert!(reqs[1..]
        .iter()
        .all(|r| r.query_pairs().iter().any(|(k, _)| k == "page[after]")));
    assert_eq!(
        users.data_type("created_at"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert!(users.checkpoints.last().unwrap()["cursor"].is_null());
}

/// The mock's own cursor paging, checked on the mock: `has_more` is false
/// on the last page although `links.next` is still there.
#[tokio::test]
async fn zendesk_talk_the_mock_ends_cursor_pages_with_has_more_only() {
    let s = start().await;
    let url = s
        .server
        .url(&format!("{USERS_PATH}.json?role[]=agent&page[size]=100"));
    let last: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth(format!("{}/token", s.cfg.email), Some(&s.cfg.api_token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["users"].as_array().unwrap().len(), 7);
    assert_eq!(last["meta"]["has_more"], false);
    assert!(last["links"]["next"].is_string());
}

/// Issue 21, point 7: a sync with nothing new emits nothing.
#[tokio::test]
async fn zendesk_talk_a_sync_without_changes_emits_no_rows() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    let (r, first) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    let state = first.checkpoints.last().unwrap().clone();
    let (r, idle) = read(c.as_ref(), "calls", Some(state.clone())).await;
    r.unwrap();
    assert_eq!(idle.rows(), 0);
    assert_eq!(idle.last_cursor(), state["cursor"]);
    // Same data, same rows.
    let (r, again) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    assert_eq!(again.batches, first.batches);
}

/// Issue 21, point 5: a token that may not list users.
#[tokio::test]
async fn zendesk_talk_an_unreadable_stream_says_to_leave_it_out_and_leaving_it_out_works() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    s.mock.push_faults([Fault::Error(403, json!({"error": "Forbidden", "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."}))]);
    let (r, sink) = read(c.as_ref(), "users", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `users`")
            && e.message.contains("Forbidden: You do not have access")
            && e.message.contains(
                "streams = [\"calls\", \"legs\", \"agents_activity\"] in [sources.phones]"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());

    let c = s.connector(&s.cfg.api_token, "streams = [\"calls\"]\n");
    assert_eq!(stream_names(c.as_ref()), ["calls"]);
    let (r, _) = read(c.as_ref(), "users", None).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    assert!(s.user_requests().len() == 1, "only the refused one");
    let (r, calls) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    assert_eq!(calls.rows(), 250);

    // The only stream selected, refused: the hint cannot be `streams = []`.
    let c = s.connector(&s.cfg.api_token, "streams = [\"users\"]\n");
    s.mock.push_faults([Fault::Error(
        404,
        json!({"error": "InvalidEndpoint", "description": "Not found"}),
    )]);
    let (r, _) = read(c.as_ref(), "users", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message
            .contains("it is the only stream selected, so remove [sources.phones]"),
        "{e}"
    );
}

/// Issue 21, point 6: the export in pages of three, each page starting
/// with the previous one's boundary call: every call once, in order.
#[tokio::test]
async fn zendesk_talk_the_export_in_pages_of_three_emits_each_call_once() {
    let s = start_with(ZendeskTalkMockConfig {
        calls: 11,
        page_size: 3,
        ..Default::default()
    })
    .await;
    let c = s.connector(&s.cfg.api_token, "");
    let (r, sink) = read(c.as_ref(), "calls", None).await;
    r.unwrap();
    let want: Vec<i64> = s
        .mock
        .calls()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(sink.ints("id"), want);
    // 3, then 2 new a page (the boundary call repeats): 3+2+2+2+2 = 11, then
    // a page of the boundary call alone ends it.
    assert_eq!(s.start_times().len(), 6, "{:?}", s.start_times());
}

#[tokio::test]
async fn zendesk_talk_legs_give_each_agent_their_share_of_a_transferred_call() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    let (r, sink) = read(c.as_ref(), "legs", None).await;
    r.unwrap();
    let legs = s.mock.legs();
    assert_eq!(sink.rows(), legs.len());
    assert!(legs.len() > 2 * s.cfg.calls, "some calls were transferred");
    assert_eq!(ids(&sink).len(), legs.len(), "each leg once");
    // Per call, the agents' talk time adds up to the call's.
    let call_ids = sink.ints("call_id");
    let talk = sink.ints("talk_time");
    let kinds = sink.strings("type");
    for call in s.mock.calls() {
        let id = call["id"].as_i64().unwrap();
        let agents: i64 = (0..call_ids.len())
            .filter(|&i| call_ids[i] == id && kinds[i].as_deref() == Some("agent"))
            .map(|i| talk[i])
            .sum();
        assert_eq!(agents, call["talk_time"].as_i64().unwrap(), "call {id}");
    }
    let issues = sink.strings("quality_issues");
    assert!(issues
        .iter()
        .any(|q| q.as_deref() == Some("[\"high_latency\"]")));

    // Incremental like calls: a changed call's legs are the only new rows.
    let state = sink.checkpoints.last().unwrap().clone();
    let (r, again) = read(c.as_ref(), "legs", Some(state)).await;
    r.unwrap();
    assert_eq!(again.rows(), 0, "nothing changed");
}

#[tokio::test]
async fn zendesk_talk_agents_activity_is_a_row_per_agent_for_the_day_it_was_read() {
    let s = start().await;
    let c = s.connector(&s.cfg.api_token, "");
    let before = chrono::Utc::now().date_naive();
    let (r, sink) = read(c.as_ref(), "agents_activity", None).await;
    r.unwrap();
    let want = s.mock.agents_activity();
    assert_eq!(sink.rows(), s.cfg.agents);
    assert_eq!(
        sink.ints("agent_id"),
        want.iter()
            .map(|a| a["agent_id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sink.ints("total_talk_time"),
        want.iter()
            .map(|a| a["total_talk_time"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(sink.data_type("day"), DataType::Date32);
    let day = sink.batches[0]
        .column(sink.batches[0].schema().index_of("day").unwrap())
        .as_any()
        .downcast_ref::<arrow_array::Date32Array>()
        .unwrap()
        .value_as_date(0)
        .unwrap();
    assert!(day >= before && day <= chrono::Utc::now().date_naive());
    // Keyed by agent and day, so tomorrow's read adds rows instead of
    // overwriting today's.
    assert_eq!(
        c.streams()
            .iter()
            .find(|d| d.name == "agents_activity")
            .unwrap()
            .primary_key,
        ["agent_id", "day"]
    );
}
