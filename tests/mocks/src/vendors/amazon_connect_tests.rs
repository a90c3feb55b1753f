//! The Amazon Connect mock's own quirks, checked over HTTP with a plain
//! client that signs by the documented algorithm: refused signatures
//! (wrong secret, unknown key, stale date, missing session token) as AWS
//! answers them, epoch seconds and absent null values, `NextToken` paging,
//! the filter, span, history and `MaxResults` checks, and throttling.

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::amazon_connect::sigv4::{self, Credential, Received};
use super::amazon_connect::{
    AgentDay, AmazonConnectMock, AmazonConnectMockConfig, AmazonConnectRecords, ACCESS_KEY_ID,
    METRICS_PATH, SEARCH_CONTACTS_PATH, SECRET_ACCESS_KEY,
};
use super::{Fault, MockHandle};
use crate::server::MockServer;

struct Signing<'a> {
    key_id: &'a str,
    secret: &'a str,
    token: Option<&'a str>,
    region: &'a str,
    at: DateTime<Utc>,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            key_id: ACCESS_KEY_ID,
            secret: SECRET_ACCESS_KEY,
            token: None,
            region: "us-west-2",
            at: Utc::now(),
        }
    }
}

/// POSTs `body` to `path`, signed as `s` says.
async fn post(
    server: &MockServer,
    path: &str,
    body: &Value,
    s: Signing<'_>,
) -> (u16, HeaderMap, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let amz_date = s.at.format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("host", server.addr().to_string().parse().unwrap());
    headers.insert("x-amz-date", amz_date.parse().unwrap());
    let mut signed = vec!["content-type", "host", "x-amz-date"];
    if let Some(t) = s.token {
        headers.insert("x-amz-security-token", t.parse().unwrap());
        signed.push("x-amz-security-token");
    }
    let received = Received { method: "POST", path, query: "", headers: &headers, body: &bytes };
    let canonical =
        sigv4::canonical_request(&received, &signed, &hex::encode(Sha256::digest(&bytes))).unwrap();
    let scope = format!("{}/{}/connect/aws4_request", &amz_date[..8], s.region);
    let to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical);
    let key = sigv4::signing_key(s.secret, &amz_date[..8], s.region, "connect");
    let signature = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        s.key_id,
        signed.join(";")
    );
    headers.remove("host");
    headers.insert("authorization", auth.parse().unwrap());
    let resp = reqwest::Client::new()
        .post(server.url(path))
        .headers(headers)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.json().await.unwrap_or(Value::Null))
}

fn error_type(h: &HeaderMap) -> String {
    h.get("x-amzn-errortype").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

fn day(n: i64) -> i64 {
    let today = Utc::now().timestamp() - Utc::now().timestamp().rem_euclid(86_400);
    today - n * 86_400
}

fn metrics_query(cfg: &AmazonConnectMockConfig, start: i64, end: i64) -> Value {
    json!({"ResourceArn": cfg.instance_arn(), "StartTime": start, "EndTime": end,
        "Interval": {"IntervalPeriod": "DAY", "TimeZone": "UTC"},
        "Filters": [{"FilterKey": "QUEUE", "FilterValues": ["queue-a", "queue-b"]}],
        "Groupings": ["AGENT"],
        "Metrics": [{"Name": "CONTACTS_HANDLED"}, {"Name": "AVG_HOLD_TIME"},
            {"Name": "SERVICE_LEVEL", "Threshold": [{"Comparison": "LT", "ThresholdValue": 60}]}],
        "MaxResults": 4})
}

#[tokio::test]
async fn connect_metrics_page_by_next_token_with_epoch_seconds_and_absent_nulls() {
    let cfg = AmazonConnectMockConfig::default();
    let (server, mock) = AmazonConnectMock::start(cfg.clone()).await;
    let q = metrics_query(&cfg, day(4), day(0));
    let (status, _, first) = post(&server, METRICS_PATH, &q, Signing::default()).await;
    assert_eq!(status, 200, "{first}");
    let results = first["MetricResults"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["Dimensions"]["AGENT"], json!(cfg.agent_arn("agent-1")));
    assert_eq!(
        results[0]["MetricInterval"],
        json!({"Interval": "DAY", "StartTime": day(4), "EndTime": day(3)})
    );
    let token = first["NextToken"].as_str().unwrap().to_string();
    let mut q2 = q.clone();
    q2["NextToken"] = json!(token);
    let (_, _, second) = post(&server, METRICS_PATH, &q2, Signing::default()).await;
    let (_, _, third) = {
        let mut q3 = q.clone();
        q3["NextToken"] = second["NextToken"].clone();
        post(&server, METRICS_PATH, &q3, Signing::default()).await
    };
    assert!(third.get("NextToken").is_none(), "three agents × four days = 12 results, 4 a page");
    // agent-2's day without contacts: the count is 0, the averages absent.
    let all: Vec<&Value> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p["MetricResults"].as_array().unwrap().iter())
        .collect();
    assert_eq!(all.len(), 12);
    let idle = all
        .iter()
        .find(|r| {
            r["Dimensions"]["AGENT"] == json!(cfg.agent_arn("agent-2"))
                && r["MetricInterval"]["StartTime"] == day(1)
        })
        .unwrap();
    assert_eq!(
        idle["Collections"][0],
        json!({"Metric": {"Name": "CONTACTS_HANDLED"}, "Value": 0.0})
    );
    assert!(idle["Collections"][1].get("Value").is_none(), "{idle}");
    assert_eq!(mock.bodies(METRICS_PATH).len(), 3);
    // A token belongs to its query.
    let mut other = metrics_query(&cfg, day(3), day(0));
    other["NextToken"] = json!(token);
    let (status, h, body) = post(&server, METRICS_PATH, &other, Signing::default()).await;
    assert_eq!(
        (status, error_type(&h).starts_with("InvalidRequestException:")),
        (400, true),
        "{body}"
    );
}

#[tokio::test]
async fn connect_refuses_bad_signatures_as_aws_does() {
    let cfg = AmazonConnectMockConfig::default();
    let (server, _mock) = AmazonConnectMock::start(cfg.clone()).await;
    let q = metrics_query(&cfg, day(2), day(0));
    let (status, h, body) =
        post(&server, METRICS_PATH, &q, Signing { secret: "not-the-secret", ..Default::default() })
            .await;
    assert_eq!(status, 403);
    assert_eq!(
        error_type(&h),
        "InvalidSignatureException:http://internal.amazon.com/coral/com.amazonaws.connect/"
    );
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match"),
        "{body}"
    );
    let (status, h, _) = post(
        &server,
        METRICS_PATH,
        &q,
        Signing { key_id: "AKIAUNKNOWNKEY000001", ..Default::default() },
    )
    .await;
    assert_eq!(
        (status, error_type(&h).split(':').next().unwrap()),
        (403, "UnrecognizedClientException")
    );
    let (status, _, body) = post(
        &server,
        METRICS_PATH,
        &q,
        Signing { at: Utc::now() - Duration::minutes(6), ..Default::default() },
    )
    .await;
    assert_eq!(status, 403);
    assert!(body["Message"].as_str().unwrap().starts_with("Signature expired"), "{body}");
    let (status, _, body) =
        post(&server, METRICS_PATH, &q, Signing { region: "eu-west-1", ..Default::default() })
            .await;
    assert!(status == 403 && body["Message"].as_str().unwrap().contains("valid region"), "{body}");
    let resp = reqwest::Client::new().post(server.url(METRICS_PATH)).json(&q).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(error_type(resp.headers()).starts_with("MissingAuthenticationTokenException"));
}

#[tokio::test]
async fn connect_wants_the_session_token_of_a_temporary_credential() {
    let cfg = AmazonConnectMockConfig {
        credentials: vec![Credential {
            access_key_id: "ASIAMOCKTEMPORARY001".into(),
            secret_access_key: "temp-secret".into(),
            session_token: Some("the-session-token".into()),
        }],
        ..Default::default()
    };
    let (server, _mock) = AmazonConnectMock::start(cfg.clone()).await;
    let q = metrics_query(&cfg, day(2), day(0));
    let s =
        || Signing { key_id: "ASIAMOCKTEMPORARY001", secret: "temp-secret", ..Default::default() };
    let (status, h, _) = post(&server, METRICS_PATH, &q, s()).await;
    assert_eq!(
        (status, error_type(&h).split(':').next().unwrap()),
        (403, "UnrecognizedClientException")
    );
    let (status, _, _) =
        post(&server, METRICS_PATH, &q, Signing { token: Some("the-session-token"), ..s() }).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connect_checks_the_filter_spans_history_and_max_results() {
    let cfg = AmazonConnectMockConfig::default();
    let (server, _mock) = AmazonConnectMock::start(cfg.clone()).await;
    let base = metrics_query(&cfg, day(10), day(0));
    let mut cases: Vec<(Value, &str, &str)> = Vec::new();
    let mut no_filter = base.clone();
    no_filter["Filters"] = json!([]);
    cases.push((no_filter, "InvalidRequestException", "filter"));
    cases.push((
        metrics_query(&cfg, day(35), day(0)),
        "InvalidRequestException",
        "less than 35 days",
    ));
    let mut hourly = metrics_query(&cfg, day(3), day(0));
    hourly["Interval"]["IntervalPeriod"] = json!("HOUR");
    cases.push((hourly, "InvalidRequestException", "less than 3 days"));
    let old = (Utc::now() - Duration::days(95)).timestamp();
    cases.push((metrics_query(&cfg, old, old + 86_400), "InvalidRequestException", "3 months"));
    for n in [0, 101] {
        let mut q = base.clone();
        q["MaxResults"] = json!(n);
        cases.push((q, "InvalidParameterException", "between 1 and 100"));
    }
    for (q, kind, says) in cases {
        let (status, h, body) = post(&server, METRICS_PATH, &q, Signing::default()).await;
        assert_eq!(status, 400, "{q}");
        assert!(error_type(&h).starts_with(kind), "{kind}: {h:?}");
        assert!(body["Message"].as_str().unwrap().contains(says), "{says}: {body}");
    }
    // 34 days is accepted.
    let (status, _, body) =
        post(&server, METRICS_PATH, &metrics_query(&cfg, day(34), day(0)), Signing::default())
            .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn connect_throttles_past_its_rate_and_on_demand() {
    let cfg = AmazonConnectMockConfig { requests_per_second: Some(2), ..Default::default() };
    let (server, mock) = AmazonConnectMock::start(cfg.clone()).await;
    let q = metrics_query(&cfg, day(1), day(0));
    // Wait for the start of a second so three calls land in one.
    let ms = Utc::now().timestamp_subsec_millis();
    if ms > 500 {
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - ms) + 5)).await;
    }
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, h, body) = post(&server, METRICS_PATH, &q, Signing::default()).await;
        if status == 429 {
            assert!(
                error_type(&h).starts_with("ThrottlingException")
                    && body["Message"] == "Rate exceeded"
            );
            assert!(h.get("retry-after").is_none(), "AWS sends no Retry-After");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    mock.push_faults([Fault::RateLimited { retry_after_secs: 1 }]);
    let (status, h, _) = post(&server, METRICS_PATH, &q, Signing::default()).await;
    assert_eq!((status, error_type(&h).split(':').next().unwrap()), (429, "ThrottlingException"));
}

#[tokio::test]
async fn connect_search_contacts_pages_and_filters_by_initiation_time() {
    let cfg = AmazonConnectMockConfig { page_size: 2, ..Default::default() };
    let contacts: Vec<Value> = (0..5)
        .map(|i| json!({"Id": format!("c-{i}"), "Channel": "CHAT", "InitiationTimestamp": 1_717_200_000 + i * 100}))
        .collect();
    let records = AmazonConnectRecords { agent_days: Vec::<AgentDay>::new(), contacts };
    let (server, _mock) = AmazonConnectMock::start_with(cfg.clone(), records).await;
    let mut q = json!({"InstanceId": cfg.instance_id,
        "TimeRange": {"Type": "INITIATION_TIMESTAMP", "StartTime": 1_717_200_100, "EndTime": 1_717_200_400}, "MaxResults": 100});
    let mut ids = Vec::new();
    loop {
        let (status, _, page) = post(&server, SEARCH_CONTACTS_PATH, &q, Signing::default()).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["TotalCount"], 4);
        ids.extend(
            page["Contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["Id"].as_str().unwrap().to_string()),
        );
        match page.get("NextToken") {
            Some(t) => q["NextToken"] = t.clone(),
            None => break,
        }
    }
    assert_eq!(ids, ["c-1", "c-2", "c-3", "c-4"]);
    let (status, h, _) =
        post(&server, SEARCH_CONTACTS_PATH, &json!({"InstanceId": "other"}), Signing::default())
            .await;
    assert_eq!(
        (status, error_type(&h).split(':').next().unwrap()),
        (404, "ResourceNotFoundException")
    );
}
