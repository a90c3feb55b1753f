//! The Amazon Connect connector against its mock over loopback HTTP, every
//! request signed by `aws-sigv4` and verified by the mock's own SigV4
//! check: per-agent daily metrics with exact values and a NULL, a window
//! longer than 35 days cut into chunks the mock accepts, the trailing
//! window re-read and upserted, contacts over several `NextToken` pages, a
//! wrong secret key refused without the secret in any form, throttling
//! retried, a temporary credential's session token, and a denied action.

use crate::support;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_schema::DataType;
use base64::Engine;
use chrono::{DateTime, Utc};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::amazon_connect::sigv4::Credential;
use conveyor_mocks::vendors::amazon_connect::{
    AgentDay, AmazonConnectHandle, AmazonConnectMock, AmazonConnectMockConfig,
    AmazonConnectRecords, ACCESS_KEY_ID, METRICS_PATH, SEARCH_CONTACTS_PATH, SECRET_ACCESS_KEY,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, ErrorKind, MemoryCredentials};
use serde_json::{json, Value};
use support::{distinct, read, secret_file, source};

struct Setup {
    dir: tempfile::TempDir,
    body: String,
    _server: MockServer,
    mock: AmazonConnectHandle,
}

/// The mock with `records`, and a source for it; `extra` is appended to
/// the source's config.
async fn start(cfg: AmazonConnectMockConfig, records: AmazonConnectRecords, extra: &str) -> Setup {
    let (server, mock) = AmazonConnectMock::start_with(cfg.clone(), records).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = &cfg.credentials[0];
    let body = format!(
        "type = \"amazon_connect\"\nbase_url = \"{}\"\ninstance_arn = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nqueues = [\"queue-a\", \"queue-b\"]\nbackoff_base_ms = 10\n{extra}",
        server.base_url(),
        cfg.instance_arn(),
        cred.access_key_id,
        secret_file(dir.path(), "secret", &cred.secret_access_key),
    );
    Setup {
        dir,
        body,
        _server: server,
        mock,
    }
}

impl Setup {
    fn connector(&self) -> Box<dyn Connector> {
        support::build(
            &source("cc", &self.body),
            Arc::new(MemoryCredentials::default()),
        )
    }

    fn data_requests(&self) -> Vec<conveyor_mocks::RequestLog> {
        self.mock.requests()
    }
}

/// Epoch seconds of the UTC midnight `n` days ago.
fn day(n: i64) -> i64 {
    let now = Utc::now().timestamp();
    now - now.rem_euclid(86_400) - n * 86_400
}

fn iso(epoch: i64) -> String {
    DateTime::from_timestamp(epoch, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn agent_day(agent: &str, queue: &str, n: i64, values: &[(&str, Option<f64>)]) -> AgentDay {
    AgentDay {
        agent_id: agent.into(),
        queue_id: queue.into(),
        day_start: day(n),
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

/// Two agents over two days; agent-2 handled nothing on day 1, so its
/// averages have no value; agent-9 is in a queue not asked for.
fn crafted() -> AmazonConnectRecords {
    let full = |handled: f64, aht: f64| {
        vec![
            ("CONTACTS_HANDLED", Some(handled)),
            ("AVG_HANDLE_TIME", Some(aht)),
            ("AVG_AFTER_CONTACT_WORK_TIME", Some(31.5)),
            ("AVG_HOLD_TIME", Some(12.25)),
            ("AVG_TALK_TIME", Some(240.0)),
            ("SERVICE_LEVEL", Some(87.5)),
        ]
    };
    AmazonConnectRecords {
        agent_days: vec![
            agent_day("agent-1", "queue-a", 2, &full(14.0, 301.5)),
            agent_day("agent-1", "queue-a", 1, &full(9.0, 280.0)),
            agent_day(
                "agent-2",
                "queue-b",
                1,
                &[
                    ("CONTACTS_HANDLED", Some(0.0)),
                    ("AVG_HANDLE_TIME", None),
                    ("SERVICE_LEVEL", None),
                ],
            ),
            agent_day("agent-9", "queue-z", 1, &full(3.0, 100.0)),
        ],
        contacts: Vec::new(),
    }
}

fn floats(sink: &support::Sink, name: &str) -> Vec<Option<f64>> {
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b.column(b.schema().index_of(name).unwrap()).clone();
            c.as_primitive::<Float64Type>().iter().collect::<Vec<_>>()
        })
        .collect()
}

/// (agent, interval_start) of every row, in order.
fn keys(sink: &support::Sink) -> Vec<(String, String)> {
    sink.strings("agent_id")
        .into_iter()
        .zip(sink.instants("interval_start"))
        .map(|(a, t)| (a.unwrap(), t.unwrap()))
        .collect()
}

#[tokio::test]
async fn amazon_connect_agent_metrics_are_read_with_exact_values_and_a_null() {
    let s = start(AmazonConnectMockConfig::default(), crafted(), "").await;
    let c = s.connector();
    let (r, sink) = read(c.as_ref(), "agent_metrics", None).await;
    r.unwrap();
    assert_eq!(
        keys(&sink),
        [
            ("agent-1".to_string(), iso(day(2))),
            ("agent-1".to_string(), iso(day(1))),
            ("agent-2".to_string(), iso(day(1))),
        ],
        "agent-9's queue was not asked for"
    );
    assert_eq!(
        sink.data_type("interval_start"),
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
    );
    assert_eq!(sink.data_type("avg_handle_time_secs"), DataType::Float64);
    assert_eq!(sink.instants("interval_end")[0], Some(iso(day(1))));
    assert_eq!(
        floats(&sink, "contacts_handled"),
        [Some(14.0), Some(9.0), Some(0.0)]
    );
    assert_eq!(
        floats(&sink, "avg_handle_time_secs"),
        [Some(301.5), Some(280.0), None]
    );
    assert_eq!(
        floats(&sink, "avg_hold_time_secs"),
        [Some(12.25), Some(12.25), None]
    );
    assert_eq!(
        floats(&sink, "avg_after_contact_work_time_secs")[0],
        Some(31.5)
    );
    assert_eq!(floats(&sink, "avg_talk_time_secs")[1], Some(240.0));
    assert_eq!(
        floats(&sink, "service_level_60s_pct"),
        [Some(87.5), Some(87.5), None]
    );
    let cfg = AmazonConnectMockConfig::default();
    assert_eq!(sink.strings("agent_arn")[0], Some(cfg.agent_arn("agent-1")));
    // The queries: the instance, the queue filter, DAY by agent, 100 a page.
    let bodies = s.mock.bodies(METRICS_PATH);
    assert!(!bodies.is_empty());
    for b in &bodies {
        assert_eq!(b["ResourceArn"], json!(cfg.instance_arn()));
        assert_eq!(
            b["Filters"],
            json!([{"FilterKey": "QUEUE", "FilterValues": ["queue-a", "queue-b"]}])
        );
        assert_eq!(b["Groupings"], json!(["AGENT"]));
        assert_eq!(b["Interval"]["IntervalPeriod"], "DAY");
        assert_eq!(b["MaxResults"], 100);
    }
    // Every request was signed for the region and service.
    for r in s.data_requests() {
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/"))
                && auth.contains("/us-west-2/connect/aws4_request"),
            "{auth}"
        );
        assert!(r.header("x-amz-date").is_some());
        assert!(r.header("x-amz-security-token").is_none());
    }
    let cursor = sink.last_cursor();
    let at = instant_of(&cursor);
    assert!(
        (Utc::now() - at).num_seconds() < 60,
        "the cursor is the read's end: {cursor}"
    );
}

fn instant_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn amazon_connect_a_window_longer_than_35_days_is_read_in_chunks_the_mock_accepts() {
    let mut records = crafted();
    records.agent_days.push(agent_day(
        "agent-1",
        "queue-a",
        70,
        &[("CONTACTS_HANDLED", Some(70.0))],
    ));
    records.agent_days.push(agent_day(
        "agent-1",
        "queue-a",
        40,
        &[("CONTACTS_HANDLED", Some(40.0))],
    ));
    let start_date = DateTime::from_timestamp(day(80), 0)
        .unwrap()
        .format("%Y-%m-%d");
    let s = start(
        AmazonConnectMockConfig::default(),
        records,
        &format!("start_date = \"{start_date}\"\n"),
    )
    .await;
    let (r, sink) = read(s.connector().as_ref(), "agent_metrics", None).await;
    r.unwrap();
    assert_eq!(
        floats(&sink, "contacts_handled"),
        [Some(70.0), Some(40.0), Some(14.0), Some(9.0), Some(0.0)]
    );
    let (_, repeated) = distinct(
        &keys(&sink)
            .iter()
            .map(|(a, t)| Some(format!("{a}@{t}")))
            .collect::<Vec<_>>(),
    );
    assert!(!repeated);
    let bodies = s.mock.bodies(METRICS_PATH);
    assert_eq!(bodies.len(), 3, "80 days in chunks of 34");
    assert_eq!(bodies[0]["StartTime"], day(80));
    for pair in bodies.windows(2) {
        assert_eq!(
            pair[0]["EndTime"], pair[1]["StartTime"],
            "contiguous chunks"
        );
    }
    for b in &bodies {
        let span = b["EndTime"].as_i64().unwrap() - b["StartTime"].as_i64().unwrap();
        assert!(span > 0 && span < 35 * 86_400, "{b}");
    }
    assert!(
        s.data_requests().len() == 3,
        "no request was refused and retried"
    );
}

#[tokio::test]
async fn amazon_connect_a_start_date_before_the_history_is_moved_up() {
    let s = start(
        AmazonConnectMockConfig::default(),
        crafted(),
        "start_date = \"2020-01-01\"\n",
    )
    .await;
    let (r, sink) = read(s.connector().as_ref(), "agent_metrics", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    let first = s.mock.bodies(METRICS_PATH)[0]["StartTime"]
        .as_i64()
        .unwrap();
    assert!(
        first > day(93) && first < day(85),
        "within the last 3 months: {first}"
    );
}

#[tokio::test]
async fn amazon_connect_an_incremental_read_re_reads_the_trailing_window_and_upserts() {
    let mut records = crafted();
    records.agent_days.push(agent_day(
        "agent-1",
        "queue-a",
        20,
        &[("CONTACTS_HANDLED", Some(20.0))],
    ));
    let s = start(
        AmazonConnectMockConfig::default(),
        records,
        "lookback_days = 3\n",
    )
    .await;
    let c = s.connector();
    let (r, first) = read(c.as_ref(), "agent_metrics", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 4);
    let state = first.checkpoints.last().unwrap().clone();
    // A late revision of yesterday, and one of day 20 (outside the look-back).
    s.mock
        .set_metric("agent-1", "queue-a", day(1), "CONTACTS_HANDLED", Some(10.0));
    s.mock.set_metric(
        "agent-1",
        "queue-a",
        day(20),
        "CONTACTS_HANDLED",
        Some(21.0),
    );
    let before = s.mock.bodies(METRICS_PATH).len();
    let (r, second) = read(c.as_ref(), "agent_metrics", Some(state)).await;
    r.unwrap();
    let bodies = s.mock.bodies(METRICS_PATH);
    assert_eq!(
        bodies.len(),
        before + 1,
        "one chunk covers the trailing window"
    );
    assert_eq!(
        bodies[before]["StartTime"],
        day(3),
        "the cursor's day less three"
    );
    assert_eq!(
        keys(&second),
        [
            ("agent-1".to_string(), iso(day(2))),
            ("agent-1".to_string(), iso(day(1))),
            ("agent-2".to_string(), iso(day(1))),
        ],
        "each key of the window once; day 20 is not re-read"
    );
    assert_eq!(
        floats(&second, "contacts_handled"),
        [Some(14.0), Some(10.0), Some(0.0)]
    );
    // The keys the warehouse merges on: the changed row replaces its own.
    let (_, repeated) = distinct(
        &keys(&second)
            .iter()
            .map(|(a, t)| Some(format!("{a}@{t}")))
            .collect::<Vec<_>>(),
    );
    assert!(!repeated);
    let descriptor = c
        .streams()
        .into_iter()
        .find(|d| d.name == "agent_metrics")
        .unwrap();
    assert_eq!(descriptor.primary_key, ["agent_id", "interval_start"]);
}

#[tokio::test]
async fn amazon_connect_contacts_come_over_several_pages() {
    let cfg = AmazonConnectMockConfig {
        page_size: 3,
        ..Default::default()
    };
    let contacts: Vec<Value> = (0..8)
        .map(|i| {
            let at = day(1) + 3600 + i * 60;
            json!({"Id": format!("contact-{i}"), "Channel": if i % 2 == 0 { "VOICE" } else { "CHAT" },
                "InitiationMethod": "INBOUND", "InitiationTimestamp": at, "DisconnectTimestamp": if i == 7 { Value::Null } else { json!(at + 300) },
                "AgentInfo": {"Id": "agent-1", "ConnectedToAgentTimestamp": at + 15}, "QueueInfo": {"Id": "queue-a", "EnqueueTimestamp": at + 2},
                "Tags": {"team": "north"}})
        })
        .collect();
    let records = AmazonConnectRecords {
        agent_days: Vec::new(),
        contacts,
    };
    let s = start(cfg, records, "").await;
    let (r, sink) = read(s.connector().as_ref(), "contacts", None).await;
    r.unwrap();
    let (ids, repeated) = distinct(&sink.strings("contact_id"));
    assert!(!repeated && ids.len() == 8, "{ids:?}");
    let bodies = s.mock.bodies(SEARCH_CONTACTS_PATH);
    assert_eq!(bodies.len(), 3, "3 + 3 + 2");
    assert!(
        bodies[0].get("NextToken").is_none()
            && bodies[1]["NextToken"].is_string()
            && bodies[2]["NextToken"].is_string()
    );
    assert_eq!(bodies[0]["TimeRange"]["Type"], "INITIATION_TIMESTAMP");
    assert_eq!(bodies[0]["MaxResults"], 100);
    assert_eq!(
        bodies[0]["InstanceId"],
        json!(AmazonConnectMockConfig::default().instance_id)
    );
    assert_eq!(sink.instants("initiation_at")[0], Some(iso(day(1) + 3600)));
    assert_eq!(sink.instants("disconnect_at")[7], None, "still live");
    assert_eq!(
        sink.instants("connected_to_agent_at")[1],
        Some(iso(day(1) + 3600 + 60 + 15))
    );
    assert_eq!(sink.strings("queue_id")[0].as_deref(), Some("queue-a"));
    assert_eq!(sink.strings("channel")[1].as_deref(), Some("CHAT"));
    assert_eq!(
        sink.strings("tags")[0].as_deref(),
        Some(r#"{"team":"north"}"#)
    );
}

#[tokio::test]
async fn amazon_connect_a_wrong_secret_key_is_a_clear_error_without_the_secret_in_any_form() {
    let s = start(AmazonConnectMockConfig::default(), crafted(), "").await;
    let wrong = "wr0ng+Secret/Key=&%9";
    std::fs::write(s.dir.path().join("secret"), wrong).unwrap();
    let (r, sink) = read(s.connector().as_ref(), "agent_metrics", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message.contains("HTTP 403")
            && e.message.contains(
                "InvalidSignatureException: The request signature we calculated does not match"
            )
            && e.message.contains("check that secret_access_key"),
        "{e}"
    );
    assert!(
        !e.message.contains("http://internal.amazon.com"),
        "the type's suffix is trimmed: {e}"
    );
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    for secret in [wrong, SECRET_ACCESS_KEY] {
        for form in [
            secret.to_string(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
            b64(secret),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        ] {
            assert!(!e.message.contains(form.as_str()), "{form:?} in {e}");
            assert!(
                !format!("{e:?}").contains(form.as_str()),
                "{form:?} in {e:?}"
            );
        }
    }
    assert!(sink.batches.is_empty() && sink.checkpoints.is_empty());
}

#[tokio::test]
async fn amazon_connect_a_session_token_a_careless_server_quotes_is_scrubbed_in_every_form() {
    let token = "FwoGZXIvYXdz+Token/With=Odd&Chars%";
    let cfg = AmazonConnectMockConfig {
        credentials: vec![Credential {
            access_key_id: "ASIAMOCKTEMPORARY001".into(),
            secret_access_key: "temporary/Secret+Key".into(),
            session_token: Some(token.into()),
        }],
        echo_refused_credentials: true,
        ..Default::default()
    };
    let s = start(cfg, crafted(), "").await;
    std::fs::write(s.dir.path().join("secret"), "wr0ng/Temporary+Key").unwrap();
    let body = format!(
        "{}session_token = \"{}\"\n",
        s.body,
        secret_file(s.dir.path(), "token", token)
    );
    let c = support::build(&source("cc", &body), Arc::new(MemoryCredentials::default()));
    let (r, _) = read(c.as_ref(), "contacts", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message.contains("InvalidSignatureException")
            && e.message.contains(
                "refused Authorization: AWS4-HMAC-SHA256 Credential=ASIAMOCKTEMPORARY001/"
            ),
        "the echo was quoted: {e}"
    );
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    for form in [
        token.to_string(),
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>(),
        b64(token),
        "wr0ng/Temporary+Key".to_string(),
    ] {
        assert!(!e.message.contains(form.as_str()), "{form:?} in {e}");
    }
}

#[tokio::test]
async fn amazon_connect_throttling_is_retried() {
    let s = start(AmazonConnectMockConfig::default(), crafted(), "").await;
    s.mock.push_faults([
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    ]);
    let (r, sink) = read(s.connector().as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 0);
    assert_eq!(s.data_requests().len(), 3, "two 429s, then the answer");
    // Past the mock's own rate, too: each refused call is retried.
    let cfg = AmazonConnectMockConfig {
        requests_per_second: Some(1),
        page_size: 1,
        ..Default::default()
    };
    let contacts = (0..3)
        .map(|i| json!({"Id": format!("c{i}"), "InitiationTimestamp": day(1) + i}))
        .collect();
    let s = start(
        cfg,
        AmazonConnectRecords {
            agent_days: Vec::new(),
            contacts,
        },
        "backoff_max_secs = 1\nmax_retries = 10\n",
    )
    .await;
    let (r, sink) = read(s.connector().as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    assert!(s.data_requests().len() >= 3);
}

#[tokio::test]
async fn amazon_connect_a_session_token_is_sent_as_x_amz_security_token() {
    let cfg = AmazonConnectMockConfig {
        credentials: vec![Credential {
            access_key_id: "ASIAMOCKTEMPORARY001".into(),
            secret_access_key: "temporary/Secret+Key".into(),
            session_token: Some("FwoGZXIvYXdzEXAMPLEtoken//+=".into()),
        }],
        ..Default::default()
    };
    let s = start(cfg.clone(), crafted(), "").await;
    // Without the token the key is not recognised.
    let (r, _) = read(s.connector().as_ref(), "agent_metrics", None).await;
    let e = r.unwrap_err();
    assert!(
        e.kind == ErrorKind::Auth && e.message.contains("UnrecognizedClientException"),
        "{e}"
    );
    let with_token = format!(
        "{}session_token = \"{}\"\n",
        s.body,
        secret_file(s.dir.path(), "token", "FwoGZXIvYXdzEXAMPLEtoken//+=")
    );
    let c = support::build(
        &source("cc", &with_token),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, sink) = read(c.as_ref(), "agent_metrics", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 3);
    let last = s.data_requests().pop().unwrap();
    assert_eq!(
        last.header("x-amz-security-token"),
        Some("FwoGZXIvYXdzEXAMPLEtoken//+=")
    );
    assert!(
        last.header("authorization")
            .unwrap()
            .contains("x-amz-security-token"),
        "the token is signed"
    );
}

#[tokio::test]
async fn amazon_connect_a_denied_action_makes_the_stream_unavailable() {
    let cfg = AmazonConnectMockConfig {
        denied_paths: vec![SEARCH_CONTACTS_PATH.into()],
        ..Default::default()
    };
    let s = start(cfg, crafted(), "").await;
    let (r, sink) = read(s.connector().as_ref(), "contacts", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `contacts`")
            && e.message.contains("AccessDeniedException: User: arn:aws:iam::123456789012:user/conveyor is not authorized to perform: connect:SearchContacts")
            && e.message.contains("set streams = [\"agent_metrics\"] in [sources.cc]"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
    // A bad request is neither: it says what the API said.
    let s = start(AmazonConnectMockConfig::default(), crafted(), "").await;
    s.mock.push_faults([Fault::Error(
        400,
        json!({"__type": "InvalidRequestException", "Message": "The request is not valid."}),
    )]);
    let (r, _) = read(s.connector().as_ref(), "agent_metrics", None).await;
    let e = r.unwrap_err();
    assert!(
        e.kind == ErrorKind::Http
            && e.message.contains(
                "HTTP 400 Bad Request: InvalidRequestException: The request is not valid."
            ),
        "{e}"
    );
}
