//! The Genesys Cloud connector against its mock over loopback HTTP: users
//! by `nextUri`, the conversation-details query paged by page number in the
//! body and flattened per agent session, one summary row per conversation
//! (those no agent took included), the surveys those conversations carry,
//! evaluations per agent across `nextUri` pages, daily presence from the
//! user aggregates query, trailing re-query windows, token expiry, 429s,
//! error bodies, and an org without a permission.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::Array;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::genesys::{GenesysHandle, GenesysMock, GenesysMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::{json, Value};
use support::{bools, build, distinct, read, read_with_hook, secret_file, source, stream_names};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    server: MockServer,
    mock: GenesysHandle,
}

async fn start() -> Setup {
    start_with(GenesysMockConfig::default()).await
}

async fn start_with(cfg: GenesysMockConfig) -> Setup {
    let (server, mock) = GenesysMock::start(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "type = \"genesys\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        server.url("/oauth/token"),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
    );
    Setup {
        _dir: dir,
        body,
        server,
        mock,
    }
}

impl Setup {
    fn connector(&self, extra: &str) -> Box<dyn Connector> {
        build(
            &source("cc", &format!("{}{extra}", self.body)),
            Arc::new(MemoryCredentials::default()),
        )
    }
    fn requests_to(&self, path: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

/// Every (conversation, agent session) pair the mock holds.
fn agent_sessions(conversations: &[Value]) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for c in conversations {
        for p in c["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["purpose"] == "agent")
        {
            for s in p["sessions"].as_array().unwrap() {
                out.insert((
                    c["conversationId"].as_str().unwrap().to_string(),
                    s["sessionId"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

fn pairs(sink: &support::Sink) -> HashSet<(String, String)> {
    sink.strings("conversation_id")
        .into_iter()
        .flatten()
        .zip(sink.strings("session_id").into_iter().flatten())
        .collect()
}

#[tokio::test]
async fn conversations_become_agent_sessions_with_their_metrics() {
    let s = start().await;
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "conversations", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let want = agent_sessions(&s.mock.conversations());
    assert!(want.len() > 400, "transfers add a second agent session");
    assert_eq!(pairs(&sink), want);
    // Several pages (400 conversations, 100 a page) over 30 days of 7-day intervals.
    assert!(s.requests_to("/api/v2/analytics/conversations/details/query") >= 8);

    let conv = &s.mock.conversations()[7];
    let id = conv["conversationId"].as_str().unwrap();
    let session = &conv["participants"][1]["sessions"][0];
    let metric = |name: &str| {
        session["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()["value"]
            .as_i64()
            .unwrap()
    };
    let at = sink
        .strings("conversation_id")
        .iter()
        .position(|c| c.as_deref() == Some(id))
        .unwrap();
    assert_eq!(sink.ints("talk_ms")[at], metric("tTalkComplete"));
    assert_eq!(sink.ints("acw_ms")[at], metric("tAcw"));
    assert_eq!(
        sink.ints("transfers")[at],
        1,
        "conversation 7 was transferred"
    );
    assert_eq!(sink.strings("queue_id")[at].as_deref(), Some("q-support"));
    assert_eq!(sink.strings("wrap_up_code")[at].as_deref(), Some("wc-3"));
}

#[tokio::test]
async fn users_follow_next_uri_and_evaluations_are_read_per_agent() {
    let s = start().await;
    let c = s.connector("");
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(users.rows(), 130);
    assert_eq!(s.requests_to("/api/v2/users"), 2, "100 + 30, by nextUri");
    assert_eq!(users.strings("manager_id")[1], users.strings("id")[0]);

    let (r, evals) = read(c.as_ref(), "evaluations", None).await;
    r.unwrap();
    let want: HashSet<String> = s
        .mock
        .evaluations()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        evals
            .strings("id")
            .into_iter()
            .flatten()
            .collect::<HashSet<_>>(),
        want
    );
    let eval_requests: Vec<_> = s
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v2/quality/evaluations/query")
        .collect();
    assert_eq!(eval_requests.len(), 130, "one query per user");
    assert!(eval_requests
        .iter()
        .all(|r| r.query_pairs().iter().any(|(k, _)| k == "agentUserId")));
    assert!(evals.checkpoints.last().unwrap()["cursor"].is_string());

    // The mock insists on an agent (or conversation…) filter.
    let tok: Value = reqwest::Client::new()
        .post(s.server.url("/oauth/token"))
        .basic_auth("gc-client", Some("gc-secret-1618"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .get(s.server.url("/api/v2/quality/evaluations/query"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn incremental_runs_requery_a_trailing_window_only() {
    let s = start().await;
    let c = s.connector("");
    let (r, first) = read(c.as_ref(), "conversations", None).await;
    r.unwrap();
    let state = first.checkpoints.last().unwrap().clone();
    let added = s.mock.add_conversation(chrono::Duration::minutes(5));
    let (r, second) = read(c.as_ref(), "conversations", Some(state)).await;
    r.unwrap();
    let ids: HashSet<String> = second
        .strings("conversation_id")
        .into_iter()
        .flatten()
        .collect();
    assert!(ids.contains(added["conversationId"].as_str().unwrap()));
    // Only conversations from the last two days (and the rest of the day
    // the window starts on) come again.
    let oldest = second
        .instants("conversation_start")
        .into_iter()
        .flatten()
        .min()
        .unwrap();
    let floor = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    assert!(oldest > floor, "{oldest} is older than the trailing window");
    assert!(second.rows() < first.rows() / 2);
}

#[tokio::test]
async fn an_expired_token_is_replaced_mid_sync() {
    let s = start().await;
    let c = s.connector("");
    let mock = s.mock.clone();
    let (r, sink) = read_with_hook(c.as_ref(), "conversations", None, move |n| {
        if n == 2 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(pairs(&sink), agent_sessions(&s.mock.conversations()));
    assert_eq!(s.mock.token_requests(), 2);
}

#[tokio::test]
async fn a_429_is_waited_out_and_error_bodies_are_quoted() {
    let s = start().await;
    let c = s.connector("");
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = Instant::now();
    let (r, sink) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 130);
    assert!(started.elapsed() >= Duration::from_millis(950));

    s.mock.push_faults([Fault::Error(400, json!({"message": "Interval is invalid", "code": "bad.request", "status": 400, "contextId": "ctx-42", "details": [], "errors": []}))]);
    let (r, sink) = read(c.as_ref(), "conversations", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("POST")
            && e.message
                .contains("bad.request: Interval is invalid (contextId ctx-42)"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}

fn floats(sink: &support::Sink, name: &str) -> Vec<Option<f64>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column(b.schema().index_of(name).unwrap())
                .as_primitive::<Float64Type>()
                .clone();
            c.iter().collect::<Vec<_>>()
        })
        .collect()
}

fn dates(sink: &support::Sink, name: &str) -> Vec<Option<chrono::NaiveDate>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column(b.schema().index_of(name).unwrap())
                .as_primitive::<Date32Type>()
                .clone();
            (0..c.len())
                .map(|i| c.is_valid(i).then(|| c.value_as_date(i).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn surveys_come_from_the_conversations_they_were_answered_for() {
    let s = start().await;
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "surveys", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let want = s.mock.surveys();
    assert!(
        want.len() > 100,
        "every third of 400 conversations is surveyed"
    );
    let ids: Vec<Option<String>> = sink.strings("survey_id");
    // The query answers for whole days, so neighbouring intervals both get
    // their boundary day; each keeps only what started inside it.
    assert_eq!(ids.len(), want.len(), "each survey emitted once");
    let read_ids: HashSet<&str> = ids.iter().flatten().map(String::as_str).collect();
    let want_ids: HashSet<&str> = want
        .iter()
        .map(|s| s["surveyId"].as_str().unwrap())
        .collect();
    assert_eq!(read_ids, want_ids);
    let scores = floats(&sink, "total_score");
    for conv in s
        .mock
        .conversations()
        .iter()
        .filter(|c| c["surveys"][0].is_object())
    {
        let survey = &conv["surveys"][0];
        let at = ids
            .iter()
            .position(|i| i.as_deref() == survey["surveyId"].as_str())
            .unwrap();
        assert_eq!(
            sink.strings("conversation_id")[at].as_deref(),
            conv["conversationId"].as_str()
        );
        assert_eq!(
            sink.strings("user_id")[at].as_deref(),
            survey["userId"].as_str()
        );
        assert_eq!(scores[at], survey["oSurveyTotalScore"].as_f64());
        assert_eq!(sink.strings("status")[at].as_deref(), Some("Finished"));
        assert_eq!(
            sink.instants("completed_at")[at].as_deref(),
            survey["surveyCompletedDate"].as_str()
        );
    }
    assert_eq!(
        sink.ints("promoter_score").len(),
        sink.rows(),
        "promoter scores are integers"
    );
    assert!(sink.last_cursor().is_string());
}

#[tokio::test]
async fn presence_is_read_per_user_day_and_qualifier_over_whole_days() {
    let s = start().await;
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "user_presence", None).await;
    // The mock refuses intervals that do not start and end at midnight.
    r.unwrap_or_else(|e| panic!("{e}"));
    let want = s.mock.presence();
    assert_eq!(
        want.len(),
        6 * 10 * 4,
        "six agents, ten days, four presences"
    );
    assert_eq!(sink.rows(), want.len());
    let (users, days, presences, ms) = (
        sink.strings("user_id"),
        dates(&sink, "day"),
        sink.strings("presence"),
        sink.ints("ms"),
    );
    for p in &want {
        let at = (0..sink.rows())
            .find(|&i| {
                users[i].as_deref() == Some(p.user_id.as_str())
                    && days[i] == Some(p.day)
                    && presences[i].as_deref() == Some(p.presence.as_str())
            })
            .unwrap_or_else(|| panic!("{p:?} not read"));
        assert_eq!(ms[at], p.ms, "{p:?}");
    }
    // 30 days of history (plus today) in 7-day intervals.
    let queries = s.requests_to("/api/v2/analytics/users/aggregates/query");
    assert_eq!(queries, 5);

    // The next run re-queries the trailing window only, again in whole days.
    let state = sink.checkpoints.last().unwrap().clone();
    let (r, again) = read(c.as_ref(), "user_presence", Some(state)).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.requests_to("/api/v2/analytics/users/aggregates/query"),
        queries + 1
    );
    let oldest = dates(&again, "day").into_iter().flatten().min().unwrap();
    let today = chrono::Utc::now().date_naive();
    assert_eq!(oldest, today - chrono::Duration::days(2));
    assert_eq!(again.rows(), 6 * 3 * 4);
}

#[tokio::test]
async fn the_presence_query_wants_whole_days_and_an_empty_answer_is_an_empty_object() {
    let s = start().await;
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(s.server.url("/oauth/token"))
        .basic_auth("gc-client", Some("gc-secret-1618"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    let query = |interval: &str| {
        http.post(s.server.url("/api/v2/analytics/users/aggregates/query"))
            .bearer_auth(&token)
            .json(&json!({"interval": interval, "granularity": "P1D", "groupBy": ["userId"], "metrics": ["tOrganizationPresence"]}))
            .send()
    };
    let misaligned = query("2026-10-19T06:00:00.000Z/2026-10-20T06:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(misaligned.status(), 400);
    let empty = query("2020-01-01T00:00:00.000Z/2020-01-08T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(empty.json::<Value>().await.unwrap(), json!({}));
}

/// Issue 21: rows were per agent session only, so a conversation no agent
/// took (abandoned in queue, an unanswered outbound attempt) was stored
/// nowhere. `conversation_summaries` has every conversation, once.
#[tokio::test]
async fn genesys_every_conversation_has_a_summary_row_even_without_an_agent() {
    let s = start().await;
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "conversation_summaries", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let all = s.mock.conversations();
    let want: std::collections::BTreeSet<String> = all
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap().to_string())
        .collect();
    let (got, repeated) = distinct(&sink.strings("conversation_id"));
    assert!(!repeated, "a conversation emitted twice");
    assert_eq!(got, want);
    let no_agent: Vec<&Value> = all
        .iter()
        .filter(|c| {
            !c["participants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["purpose"] == "agent")
        })
        .collect();
    assert_eq!(no_agent.len(), 30, "two abandoned and one outbound a day");
    // …and those are exactly the ones the per-session table cannot hold.
    let (r, sessions) = read(c.as_ref(), "conversations", None).await;
    r.unwrap();
    let (with_session, _) = distinct(&sessions.strings("conversation_id"));
    assert_eq!(with_session.len(), want.len() - no_agent.len());
    assert!(no_agent
        .iter()
        .all(|c| !with_session.contains(c["conversationId"].as_str().unwrap())));

    let ids = sink.strings("conversation_id");
    let at = |id: &str| ids.iter().position(|i| i.as_deref() == Some(id)).unwrap();
    let (abandoned, answered) = (bools(&sink, "abandoned"), bools(&sink, "answered"));
    let (agent, queue, wrap) = (
        sink.strings("agent_id"),
        sink.strings("queue_id"),
        sink.strings("wrap_up_code"),
    );
    let (dir, media) = (
        sink.strings("originating_direction"),
        sink.strings("media_type"),
    );
    let abandon_ms = int_or_null(&sink, "abandon_ms");
    for c in &all {
        let id = c["conversationId"].as_str().unwrap();
        let i = at(id);
        let kind = id.split('-').next().unwrap();
        assert_eq!(media[i].as_deref(), Some("voice"), "{id}");
        match kind {
            "abandoned" => {
                assert_eq!(
                    (abandoned[i], answered[i]),
                    (Some(true), Some(false)),
                    "{id}"
                );
                assert_eq!(agent[i], None);
                assert_eq!(queue[i].as_deref(), Some("q-support"));
                let waited = c["participants"][1]["sessions"][0]["metrics"][0]["value"].as_i64();
                assert_eq!(abandon_ms[i], waited);
                assert_eq!(dir[i].as_deref(), Some("inbound"));
            }
            "outbound" => {
                assert_eq!(
                    (abandoned[i], answered[i]),
                    (Some(false), Some(false)),
                    "{id}"
                );
                assert_eq!((agent[i].as_deref(), queue[i].as_deref()), (None, None));
                assert_eq!(dir[i].as_deref(), Some("outbound"));
            }
            _ => {
                assert_eq!(
                    (abandoned[i], answered[i]),
                    (Some(false), Some(true)),
                    "{id}"
                );
                assert_eq!(agent[i].as_deref(), c["participants"][1]["userId"].as_str());
                let code = &c["participants"][1]["sessions"][0]["segments"][1]["wrapUpCode"];
                assert_eq!(wrap[i].as_deref(), code.as_str());
                assert_eq!(abandon_ms[i], None);
            }
        }
    }
    assert!(sink.last_cursor().is_string());
}

/// Nullable integer column values.
fn int_or_null(sink: &support::Sink, name: &str) -> Vec<Option<i64>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b
                .column(b.schema().index_of(name).unwrap())
                .as_primitive::<arrow_array::types::Int64Type>()
                .clone();
            c.iter().collect::<Vec<_>>()
        })
        .collect()
}

/// Issue 21, point 7: each agent session is emitted once per read, though
/// the query answers for the boundary day of two intervals.
#[tokio::test]
async fn genesys_agent_sessions_are_emitted_once_per_read() {
    let s = start().await;
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "conversations", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), pairs(&sink).len());
    assert_eq!(pairs(&sink), agent_sessions(&s.mock.conversations()));
}

/// Issue 21, point 6: evaluations follow `nextUri` (the counts lie) across
/// pages of three; users too. Exact key sets, no repeats.
#[tokio::test]
async fn genesys_evaluations_and_users_follow_next_uri_across_small_pages() {
    let s = start_with(GenesysMockConfig {
        users: 8,
        agents: 2,
        evaluations_per_agent: 7,
        page_size_cap: Some(3),
        ..Default::default()
    })
    .await;
    let c = s.connector("");
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    let (got, repeated) = distinct(&users.strings("id"));
    let want: std::collections::BTreeSet<String> = s
        .mock
        .users()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!repeated);
    assert_eq!(got, want);
    assert_eq!(s.requests_to("/api/v2/users"), 3, "3 + 3 + 2");

    let before = s.requests_to("/api/v2/users");
    let (r, evals) = read(c.as_ref(), "evaluations", None).await;
    r.unwrap();
    let (got, repeated) = distinct(&evals.strings("id"));
    let want: std::collections::BTreeSet<String> = s
        .mock
        .evaluations()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(want.len(), 14);
    assert!(!repeated);
    assert_eq!(got, want);
    // Users listed again for the loop, then per agent pages 1, 2, 3 by
    // nextUri (pageCount says 1), one page for each other user.
    assert_eq!(s.requests_to("/api/v2/users"), before + 3);
    let agent0 = s.mock.users()[0]["id"].as_str().unwrap().to_string();
    let pages: Vec<String> = s
        .mock
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/quality/evaluations/query")
        .filter(|r| {
            r.query_pairs()
                .contains(&("agentUserId".into(), agent0.clone()))
        })
        .map(|r| {
            r.query_pairs()
                .into_iter()
                .find(|(k, _)| k == "pageNumber")
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
    assert_eq!(
        s.requests_to("/api/v2/quality/evaluations/query"),
        3 + 3 + 6
    );
}

/// Issue 21, point 5: an org without the users-aggregates permission.
#[tokio::test]
async fn genesys_an_org_without_a_permission_is_told_to_leave_the_stream_out() {
    let s = start().await;
    s.mock.deny("/api/v2/analytics/users/aggregates/query");
    let c = s.connector("");
    let (r, sink) = read(c.as_ref(), "user_presence", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `user_presence`")
            && e.message.contains("HTTP 403")
            && e.message.contains("missing.permissions")
            && e.message.contains(
                "streams = [\"users\", \"conversations\", \"evaluations\", \"surveys\", \"conversation_summaries\"] in [sources.cc]"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
    // The other streams are unaffected.
    let (r, _) = read(c.as_ref(), "users", None).await;
    r.unwrap();

    // Left out: neither offered nor asked, and the rest reads.
    let c = s.connector("streams = [\"users\", \"conversations\", \"evaluations\", \"surveys\", \"conversation_summaries\"]\n");
    assert!(!stream_names(c.as_ref()).contains(&"user_presence".to_string()));
    let asked = s.requests_to("/api/v2/analytics/users/aggregates/query");
    let (r, _) = read(c.as_ref(), "user_presence", None).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    for stream in stream_names(c.as_ref()) {
        let (r, _) = read(c.as_ref(), &stream, None).await;
        r.unwrap_or_else(|e| panic!("{stream}: {e}"));
    }
    assert_eq!(
        s.requests_to("/api/v2/analytics/users/aggregates/query"),
        asked
    );

    // Evaluations loop over the users; left out, users are still listed for it.
    let c = s.connector("streams = [\"evaluations\"]\n");
    let (r, evals) = read(c.as_ref(), "evaluations", None).await;
    r.unwrap();
    assert_eq!(evals.rows(), s.mock.evaluations().len());
}

#[tokio::test]
async fn a_saved_cursor_that_is_not_an_instant_fails_the_stream_without_a_request() {
    let s = start().await;
    let c = s.connector("");
    let before = s.requests_to("/api/v2/analytics/conversations/details/query");
    let (r, sink) = read(
        c.as_ref(),
        "conversations",
        Some(json!({ "cursor": "last tuesday" })),
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("\"last tuesday\" is not an instant"),
        "{e}"
    );
    assert_eq!(sink.rows(), 0);
    assert_eq!(
        s.requests_to("/api/v2/analytics/conversations/details/query"),
        before
    );
}
