//! Amazon Connect mock: `POST /metrics/data` (GetMetricDataV2) and
//! `POST /search-contacts` (SearchContacts) of one instance, every request
//! verified as AWS verifies SigV4 (`amazon_connect/sigv4.rs`, written from
//! the documented algorithm: credential scope, `X-Amz-Date` within 5
//! minutes, payload hash, session token), with Connect's quirks: epoch-
//! seconds timestamps, `NextToken` paging with `MaxResults` 1–100, a metric
//! with no value when it would divide by zero, the span limits of each
//! interval, 3 months of history, a filter required, errors as
//! `x-amzn-ErrorType` plus `{"Message": …}`, and 429 `ThrottlingException`
//! past a request rate or on demand.
//!
//! Documented (reference §4b, and AWS's API reference page for
//! SearchContacts): SigV4 with service `connect`, the request and response
//! shapes of both calls, epoch seconds, the interval span limits
//! (FIFTEEN_MIN/THIRTY_MIN/HOUR < 3 days, DAY/WEEK/TOTAL < 35 days), 3
//! months of history, a queue/routing-profile/agent/hierarchy filter
//! required, null metric values, `NextToken` with `MaxResults` 1–100, 429
//! `ThrottlingException`, the error header and body; SearchContacts'
//! `TotalCount` and its errors (InvalidParameterException and
//! InvalidRequestException 400, ResourceNotFoundException 404). Guessed:
//! which 400 type each validation gives (InvalidRequestException for the
//! filter, span and history; InvalidParameterException for `MaxResults`
//! and unknown metrics); AWS's wording of the messages; the `:http://…`
//! suffix on `x-amzn-ErrorType` (seen on AWS restJson1 services, not in the
//! reference); an unknown key as 403 `UnrecognizedClientException` and a
//! bad signature as 403 `InvalidSignatureException` (AWS's usual answers);
//! that a null metric has its `Value` left out (AWS serialisers omit
//! nulls); that a DAY result's interval is the day cut to the query's
//! window; that SearchContacts takes any span and sorts by initiation; how
//! a queue filter aggregates an agent's several queues (counts summed,
//! averages averaged); `AccessDeniedException` as the 403 of a denied
//! action; a rate budget per whole second.
//!
//! [`AmazonConnectMock::start_with`] serves the given records;
//! [`AmazonConnectMock::start`] invents a few agents over the last days.

pub mod sigv4;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, Months, Utc};
use serde_json::{json, Map, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;
use sigv4::{Credential, Received, Verifier};

pub const METRICS_PATH: &str = "/metrics/data";
pub const SEARCH_CONTACTS_PATH: &str = "/search-contacts";
/// The metrics the mock knows (those the connector asks for, and a few more).
pub const KNOWN_METRICS: &[&str] = &[
    "CONTACTS_HANDLED",
    "AVG_HANDLE_TIME",
    "AVG_AFTER_CONTACT_WORK_TIME",
    "AVG_HOLD_TIME",
    "AVG_TALK_TIME",
    "SERVICE_LEVEL",
    "AGENT_OCCUPANCY",
    "CONTACTS_ABANDONED",
];

#[derive(Clone, Debug)]
pub struct AmazonConnectMockConfig {
    pub credentials: Vec<Credential>,
    pub region: String,
    pub account: String,
    pub instance_id: String,
    /// Results a page holds at most, whatever `MaxResults` asks (Connect
    /// may return fewer).
    pub page_size: usize,
    /// Data requests answered in one second before a 429 (`None`: no limit).
    pub requests_per_second: Option<u32>,
    /// How far `X-Amz-Date` may be from the server's clock.
    pub max_skew_secs: i64,
    /// Paths answered 403 `AccessDeniedException` (an IAM policy without the action).
    pub denied_paths: Vec<String>,
    /// Not AWS: a careless server that quotes the refused request's
    /// `Authorization` and `X-Amz-Security-Token` in its message, so
    /// redaction is tested against an answer holding the session token.
    pub echo_refused_credentials: bool,
}

/// The mock's credential unless a test sets others.
pub const ACCESS_KEY_ID: &str = "AKIAMOCKCONNECT0001";
pub const SECRET_ACCESS_KEY: &str = "mock+Secret/Key=9Zx&%1wJalrXUtnFEMI";

impl Default for AmazonConnectMockConfig {
    fn default() -> Self {
        AmazonConnectMockConfig {
            credentials: vec![Credential {
                access_key_id: ACCESS_KEY_ID.into(),
                secret_access_key: SECRET_ACCESS_KEY.into(),
                session_token: None,
            }],
            region: "us-west-2".into(),
            account: "123456789012".into(),
            instance_id: "0c7b9e3a-4c6f-4a53-9c8e-3f1e2d4b5a6c".into(),
            page_size: 100,
            requests_per_second: None,
            max_skew_secs: 300,
            denied_paths: Vec::new(),
            echo_refused_credentials: false,
        }
    }
}

impl AmazonConnectMockConfig {
    pub fn instance_arn(&self) -> String {
        format!("arn:aws:connect:{}:{}:instance/{}", self.region, self.account, self.instance_id)
    }

    pub fn agent_arn(&self, agent: &str) -> String {
        format!("{}/agent/{agent}", self.instance_arn())
    }
}

/// One agent's metrics for one UTC day in one queue; a metric left out
/// (or `None`) has no value that day.
#[derive(Clone, Debug)]
pub struct AgentDay {
    pub agent_id: String,
    pub queue_id: String,
    /// Epoch seconds of the day's UTC midnight.
    pub day_start: i64,
    pub values: BTreeMap<String, Option<f64>>,
}

/// What the mock serves: agent days, and contact summaries in Connect's
/// JSON shape (epoch-seconds timestamps).
#[derive(Clone, Debug, Default)]
pub struct AmazonConnectRecords {
    pub agent_days: Vec<AgentDay>,
    pub contacts: Vec<Value>,
}

struct Connect {
    cfg: AmazonConnectMockConfig,
    core: Core,
    data: AmazonConnectRecords,
    /// Added to the real clock: a server whose clock is off.
    clock_offset: Duration,
    /// Data requests answered in the current second.
    second: (i64, u32),
    /// The bodies of the data requests that passed the signature check.
    bodies: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct AmazonConnectHandle(Arc<Mutex<Connect>>);

impl MockHandle for AmazonConnectHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl AmazonConnectHandle {
    /// Sets (or clears) one metric of an agent's day in a queue, adding the
    /// day if it is not there.
    pub fn set_metric(
        &self,
        agent: &str,
        queue: &str,
        day_start: i64,
        metric: &str,
        value: Option<f64>,
    ) {
        let mut c = lock(&self.0);
        let days = &mut c.data.agent_days;
        let i = match days
            .iter()
            .position(|d| d.agent_id == agent && d.queue_id == queue && d.day_start == day_start)
        {
            Some(i) => i,
            None => {
                days.push(AgentDay {
                    agent_id: agent.into(),
                    queue_id: queue.into(),
                    day_start,
                    values: BTreeMap::new(),
                });
                days.len() - 1
            }
        };
        days[i].values.insert(metric.into(), value);
    }

    /// Changes a contact found by `Id`.
    pub fn update_contact(&self, id: &str, f: impl FnOnce(&mut Value)) {
        let mut c = lock(&self.0);
        let contact = c.data.contacts.iter_mut().find(|r| r["Id"] == id).expect("contact exists");
        f(contact);
    }

    /// Moves the server's clock (a skewed server, or a test of the 3-month horizon).
    pub fn shift_clock(&self, by: Duration) {
        lock(&self.0).clock_offset = by;
    }

    /// The JSON bodies of the data requests whose signature verified, by path.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        lock(&self.0).bodies.iter().filter(|(p, _)| p == path).map(|(_, b)| b.clone()).collect()
    }

    /// The configuration in force (credentials, instance).
    pub fn config(&self) -> AmazonConnectMockConfig {
        lock(&self.0).cfg.clone()
    }
}

pub struct AmazonConnectMock;

impl AmazonConnectMock {
    pub async fn start(cfg: AmazonConnectMockConfig) -> (MockServer, AmazonConnectHandle) {
        let data = seed(Utc::now());
        Self::start_with(cfg, data).await
    }

    pub async fn start_with(
        cfg: AmazonConnectMockConfig,
        records: AmazonConnectRecords,
    ) -> (MockServer, AmazonConnectHandle) {
        let c = Connect {
            cfg,
            core: Core::default(),
            data: records,
            clock_offset: Duration::zero(),
            second: (0, 0),
            bodies: Vec::new(),
        };
        let st = Arc::new(Mutex::new(c));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, AmazonConnectHandle(st))
    }
}

/// Three agents in two queues over the last five days, one day without
/// contacts (its averages have no value), and a contact per agent a day.
fn seed(now: DateTime<Utc>) -> AmazonConnectRecords {
    let today = now.timestamp() - now.timestamp().rem_euclid(86_400);
    let mut agent_days = Vec::new();
    let mut contacts = Vec::new();
    for d in 0..5i64 {
        let day_start = today - d * 86_400;
        for (a, queue) in [("agent-1", "queue-a"), ("agent-2", "queue-a"), ("agent-3", "queue-b")] {
            let handled = if a == "agent-2" && d == 1 { 0.0 } else { 5.0 + d as f64 };
            let avg = |base: f64| if handled == 0.0 { None } else { Some(base + d as f64) };
            let values = BTreeMap::from([
                ("CONTACTS_HANDLED".to_string(), Some(handled)),
                ("AVG_HANDLE_TIME".to_string(), avg(300.0)),
                ("AVG_AFTER_CONTACT_WORK_TIME".to_string(), avg(30.0)),
                ("AVG_HOLD_TIME".to_string(), avg(12.0)),
                ("AVG_TALK_TIME".to_string(), avg(240.0)),
                ("SERVICE_LEVEL".to_string(), avg(80.0)),
            ]);
            agent_days.push(AgentDay {
                agent_id: a.into(),
                queue_id: queue.into(),
                day_start,
                values,
            });
            let at = day_start + 9 * 3600 + d * 60;
            contacts.push(json!({"Id": format!("contact-{a}-{d}"), "Channel": "VOICE", "InitiationMethod": "INBOUND",
                "InitiationTimestamp": at, "DisconnectTimestamp": at + 400,
                "AgentInfo": {"Id": a, "ConnectedToAgentTimestamp": at + 20},
                "QueueInfo": {"Id": queue, "EnqueueTimestamp": at + 5}}));
        }
    }
    AmazonConnectRecords { agent_days, contacts }
}

/// An AWS error answer: the type in `x-amzn-ErrorType` (with the suffix
/// AWS front ends add) and `{"Message": …}`.
pub fn aws_error(status: u16, error_type: &str, message: &str) -> Response {
    let mut resp = wire::json(status, json!({"Message": message}));
    let header = format!("{error_type}:http://internal.amazon.com/coral/com.amazonaws.connect/");
    if let Ok(v) = HeaderValue::from_str(&header) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

fn invalid_request(message: &str) -> Response {
    aws_error(400, "InvalidRequestException", message)
}

fn invalid_parameter(message: &str) -> Response {
    aws_error(400, "InvalidParameterException", message)
}

async fn serve(State(st): State<Arc<Mutex<Connect>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let mut c = lock(&st);
    let now = Utc::now() + c.clock_offset;
    let path = parts.uri.path().to_string();
    // AWS checks the signature before it looks at the path.
    let verifier = Verifier {
        credentials: &c.cfg.credentials,
        region: &c.cfg.region,
        service: "connect",
        now,
        max_skew_secs: c.cfg.max_skew_secs,
    };
    let received = Received {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    if let Err(refusal) = verifier.verify(&received) {
        let status = if matches!(refusal, sigv4::Refusal::Incomplete(_)) { 400 } else { 403 };
        let mut message = refusal.message();
        if c.cfg.echo_refused_credentials {
            let sent = |h: &str| wire::header_str(&parts.headers, h).unwrap_or("").to_string();
            message = format!(
                "{message} (refused Authorization: {}; X-Amz-Security-Token: {})",
                sent("authorization"),
                sent("x-amz-security-token")
            );
        }
        return aws_error(status, refusal.error_type(), &message);
    }
    if parts.method != Method::POST
        || ![METRICS_PATH, SEARCH_CONTACTS_PATH].contains(&path.as_str())
    {
        return aws_error(
            404,
            "UnknownOperationException",
            "The action or operation requested is invalid.",
        );
    }
    if c.cfg.denied_paths.contains(&path) {
        let action = if path == METRICS_PATH { "GetMetricDataV2" } else { "SearchContacts" };
        return aws_error(
            403,
            "AccessDeniedException",
            &format!("User: arn:aws:iam::{}:user/conveyor is not authorized to perform: connect:{action} on resource: {}", c.cfg.account, c.cfg.instance_arn()),
        );
    }
    let second = now.timestamp();
    if c.second.0 != second {
        c.second = (second, 0);
    }
    if c.cfg.requests_per_second.is_some_and(|limit| c.second.1 >= limit) {
        return aws_error(429, "ThrottlingException", "Rate exceeded");
    }
    match c.core.next_fault() {
        // AWS sends no Retry-After: the client backs off on its own.
        Some(Fault::RateLimited { .. }) => {
            return aws_error(429, "ThrottlingException", "Rate exceeded")
        }
        Some(Fault::Error(status, mut body)) => {
            let kind = body.as_object_mut().and_then(|o| o.remove("__type"));
            return match kind.as_ref().and_then(Value::as_str) {
                Some(k) => aws_error(status, k, body["Message"].as_str().unwrap_or("")),
                None => wire::json(status, body),
            };
        }
        None => {}
    }
    c.second.1 += 1;
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(
            400,
            "SerializationException",
            "Unable to parse the request body as JSON.",
        );
    };
    c.bodies.push((path.clone(), request.clone()));
    if path == METRICS_PATH {
        metric_data(&c, &request, now)
    } else {
        search_contacts(&c, &request)
    }
}

/// `MaxResults` (1–100, default 100) and the offset a `NextToken` carries,
/// which must come back with the same query.
/// The refusal is boxed: a `Response` is large and the happy path common.
fn page_window(request: &Value, query_fingerprint: &str) -> Result<(usize, usize), Box<Response>> {
    let max = match request.get("MaxResults") {
        None => 100,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => return Err(Box::new(invalid_parameter(&format!("1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100")))),
        },
    };
    let offset = match request.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => match wire::decode_cursor(t) {
            Some(v) if v["q"] == query_fingerprint => v["o"].as_u64().unwrap_or(0) as usize,
            _ => {
                return Err(Box::new(invalid_request(
                    "The NextToken is not valid for this request.",
                )))
            }
        },
    };
    Ok((max, offset))
}

/// The request without its paging fields, as the key a `NextToken` belongs to.
fn fingerprint(request: &Value) -> String {
    let mut r = request.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("NextToken");
        o.remove("MaxResults");
    }
    format!(
        "{:016x}",
        wire::mix(
            r.to_string().bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
            7
        )
    )
}

fn next_token(fp: &str, offset: usize, served: usize, total: usize) -> Option<String> {
    (offset + served < total).then(|| wire::encode_cursor(&json!({"q": fp, "o": offset + served})))
}

fn metric_data(c: &Connect, request: &Value, now: DateTime<Utc>) -> Response {
    if request["ResourceArn"].as_str() != Some(c.cfg.instance_arn().as_str()) {
        return aws_error(404, "ResourceNotFoundException", "The resource was not found.");
    }
    let (Some(start), Some(end)) = (request["StartTime"].as_i64(), request["EndTime"].as_i64())
    else {
        return invalid_request("StartTime and EndTime are required (epoch seconds).");
    };
    if end <= start {
        return invalid_request("EndTime must be later than StartTime.");
    }
    let period = request["Interval"]["IntervalPeriod"].as_str().unwrap_or("TOTAL");
    let limit_days = match period {
        "FIFTEEN_MIN" | "THIRTY_MIN" | "HOUR" => 3,
        "DAY" | "WEEK" | "TOTAL" => 35,
        other => return invalid_parameter(&format!("IntervalPeriod {other} is not valid.")),
    };
    if end - start >= limit_days * 86_400 {
        return invalid_request(&format!("The time range between StartTime and EndTime must be less than {limit_days} days for IntervalPeriod {period}."));
    }
    let horizon = now.checked_sub_months(Months::new(3)).unwrap_or(now).timestamp();
    if start < horizon {
        return invalid_request("StartTime must be within the last 3 months.");
    }
    const FILTER_KEYS: &[&str] = &[
        "QUEUE",
        "ROUTING_PROFILE",
        "AGENT",
        "AGENT_HIERARCHY_LEVEL_ONE",
        "AGENT_HIERARCHY_LEVEL_TWO",
        "AGENT_HIERARCHY_LEVEL_THREE",
        "AGENT_HIERARCHY_LEVEL_FOUR",
        "AGENT_HIERARCHY_LEVEL_FIVE",
    ];
    let filters = request["Filters"].as_array().cloned().unwrap_or_default();
    let required = filters.iter().any(|f| {
        FILTER_KEYS.contains(&f["FilterKey"].as_str().unwrap_or(""))
            && f["FilterValues"].as_array().is_some_and(|v| !v.is_empty())
    });
    if !required {
        return invalid_request("At least one filter on QUEUE, ROUTING_PROFILE, AGENT or an agent hierarchy level is required.");
    }
    let values_of = |key: &str| -> Option<Vec<String>> {
        filters.iter().find(|f| f["FilterKey"] == key).map(|f| {
            f["FilterValues"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    let queues = values_of("QUEUE");
    let agents = values_of("AGENT");
    if request["Groupings"] != json!(["AGENT"]) {
        return invalid_parameter("The mock groups by AGENT only.");
    }
    if period != "DAY" {
        return invalid_parameter("The mock serves IntervalPeriod DAY only.");
    }
    let metrics = request["Metrics"].as_array().cloned().unwrap_or_default();
    if metrics.is_empty() {
        return invalid_request("Metrics must name at least one metric.");
    }
    for m in &metrics {
        let name = m["Name"].as_str().unwrap_or("");
        if !KNOWN_METRICS.contains(&name) {
            return invalid_parameter(&format!("The metric {name} is not valid."));
        }
        if name == "SERVICE_LEVEL" && m["Threshold"].as_array().is_none_or(|t| t.is_empty()) {
            return invalid_request("SERVICE_LEVEL requires a Threshold.");
        }
    }
    let fp = fingerprint(request);
    let (max, offset) = match page_window(request, &fp) {
        Ok(w) => w,
        Err(resp) => return *resp,
    };
    // One result per (agent, day) the filters match, days cut to the window.
    let mut grouped: BTreeMap<(String, i64), Vec<&AgentDay>> = BTreeMap::new();
    for d in &c.data.agent_days {
        let in_window = d.day_start + 86_400 > start && d.day_start < end;
        let queue_ok = queues.as_ref().is_none_or(|q| q.contains(&d.queue_id));
        let agent_ok = agents.as_ref().is_none_or(|a| a.contains(&d.agent_id));
        if in_window && queue_ok && agent_ok {
            grouped.entry((d.agent_id.clone(), d.day_start)).or_default().push(d);
        }
    }
    let total = grouped.len();
    let page_size = max.min(c.cfg.page_size);
    let results: Vec<Value> = grouped
        .into_iter()
        .skip(offset)
        .take(page_size)
        .map(|((agent, day), days)| {
            let collections: Vec<Value> = metrics
                .iter()
                .map(|m| {
                    let name = m["Name"].as_str().unwrap_or("");
                    let mut entry = json!({"Metric": m});
                    if let Some(v) = combine(name, &days) {
                        entry["Value"] = json!(v);
                    }
                    entry
                })
                .collect();
            json!({"Dimensions": {"AGENT": c.cfg.agent_arn(&agent)},
                "MetricInterval": {"Interval": "DAY", "StartTime": day.max(start), "EndTime": (day + 86_400).min(end)},
                "Collections": collections})
        })
        .collect();
    let served = results.len();
    let mut answer = json!({"MetricResults": results});
    if let Some(t) = next_token(&fp, offset, served, total) {
        answer["NextToken"] = json!(t);
    }
    wire::json(200, answer)
}

/// An agent's value across the queues the filter matched: counts add up,
/// the rest are averaged over the queues that have one; none at all is
/// no value.
fn combine(metric: &str, days: &[&AgentDay]) -> Option<f64> {
    let values: Vec<f64> =
        days.iter().filter_map(|d| d.values.get(metric).copied().flatten()).collect();
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(if metric.starts_with("CONTACTS_") { sum } else { sum / values.len() as f64 })
}

fn search_contacts(c: &Connect, request: &Value) -> Response {
    if request["InstanceId"].as_str() != Some(c.cfg.instance_id.as_str()) {
        return aws_error(404, "ResourceNotFoundException", "The instance was not found.");
    }
    let range = &request["TimeRange"];
    let field = match range["Type"].as_str() {
        Some("INITIATION_TIMESTAMP") => "InitiationTimestamp",
        Some("DISCONNECT_TIMESTAMP") => "DisconnectTimestamp",
        Some("SCHEDULED_TIMESTAMP") => "ScheduledTimestamp",
        Some(other) => {
            return invalid_parameter(&format!(
                "TimeRange.Type {other} is not supported by the mock."
            ))
        }
        None => return invalid_request("TimeRange with Type, StartTime and EndTime is required."),
    };
    let (Some(start), Some(end)) = (range["StartTime"].as_f64(), range["EndTime"].as_f64()) else {
        return invalid_request("TimeRange with Type, StartTime and EndTime is required.");
    };
    if end <= start {
        return invalid_request("TimeRange.EndTime must be later than TimeRange.StartTime.");
    }
    let fp = fingerprint(request);
    let (max, offset) = match page_window(request, &fp) {
        Ok(w) => w,
        Err(resp) => return *resp,
    };
    let mut matching: Vec<&Value> = c
        .data
        .contacts
        .iter()
        .filter(|r| r[field].as_f64().is_some_and(|t| t >= start && t <= end))
        .collect();
    matching.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["InitiationTimestamp"].as_f64().unwrap_or(0.0),
                r["Id"].as_str().unwrap_or("").to_string(),
            )
        };
        key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(max.min(c.cfg.page_size))
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                let id = o.get("Id").and_then(Value::as_str).unwrap_or("").to_string();
                o.entry("Arn")
                    .or_insert_with(|| json!(format!("{}/contact/{id}", c.cfg.instance_arn())));
            }
            r
        })
        .collect();
    let served = page.len();
    let mut answer = Map::new();
    answer.insert("Contacts".into(), Value::Array(page));
    answer.insert("TotalCount".into(), json!(total));
    if let Some(t) = next_token(&fp, offset, served, total) {
        answer.insert("NextToken".into(), json!(t));
    }
    wire::json(200, Value::Object(answer))
}
