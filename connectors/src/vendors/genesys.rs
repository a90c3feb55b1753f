//! Genesys Cloud: users, conversations flattened to one row per agent
//! session with the handling metrics, one row per conversation whatever
//! its participants, post-call surveys, quality evaluations per agent, and
//! daily presence time per user.
//!
//! - Auth: client credentials with HTTP Basic at `login.<region>/oauth/token`.
//! - Users: `GET /api/v2/users?state=any`, following `nextUri` (the
//!   `total`/`pageCount` fields can be wrong).
//! - Conversations: `POST /api/v2/analytics/conversations/details/query`
//!   with an ISO interval and `paging.pageNumber` counted up until a short
//!   page. Each run re-queries a trailing window (two days before the last
//!   run's end) and rows are upserted by (conversation, session). The query
//!   answers with every conversation that started on a day the interval
//!   touches, so each interval keeps only those that started inside it:
//!   consecutive intervals never emit a conversation twice.
//! - `conversations` has a row per *agent* session, so a conversation no
//!   agent took (abandoned in queue, an outbound attempt nobody answered)
//!   has none there; `conversation_summaries` has one row per conversation
//!   from the same query: direction, media, queue, `tAbandon`, whether an
//!   agent answered, the wrap-up code.
//! - Surveys: the `surveys[]` of each conversation in the same details
//!   query (so the same trailing window), one row per survey.
//! - Evaluations: `GET /api/v2/quality/evaluations/query` needs one of
//!   `agentUserId`, … so the read loops over the users, following `nextUri`.
//! - Presence: `POST /api/v2/analytics/users/aggregates/query` with
//!   `granularity: "P1D"` grouped by `userId`, metric
//!   `tOrganizationPresence` (one sum of milliseconds per presence
//!   qualifier and day). Day buckets only line up with calendar days when
//!   the interval starts at midnight, so intervals are whole UTC days; the
//!   same trailing window is re-queried.
//! - A 403 (an org or client without the permission, e.g.
//!   `analytics:userAggregate:view`) or a 404 on a stream's endpoint fails
//!   that stream as unavailable, saying to leave it out.
//! - Errors: `{"message","code","status","contextId",…}`.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use conveyor_config::{JsonPath, PaginationConfig, VendorSourceConfig};
use conveyor_plugin_api::{
    CancelFlag, ConnectorError, CredentialStore, ErrorKind, Json, RecordSink,
};
use serde_json::{json, Map, Value};

use super::read::{fetch_json, iso_millis, object, saved_instant, Emitter, Pages};
use super::table::{Col, Table};
use super::{endpoint, oauth_error, Base, ClientSpec};
use crate::http::body_pager::BodyPager;
use crate::http::client::HttpRequest;
use crate::http::TokenBody;
use crate::rest::pager::Pager;

/// The largest details-query page.
const PAGE_SIZE: u64 = 100;
/// Late updates (wrap-up, surveys) land on recent conversations: re-query this far back.
const TRAILING_DAYS: i64 = 2;
/// History read by a first sync without a start date.
const DEFAULT_HISTORY_DAYS: i64 = 30;
/// Interval length per details query.
const INTERVAL_DAYS: i64 = 7;

pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Str),
            ("name", Col::Str),
            ("email", Col::Str),
            ("username", Col::Str),
            ("state", Col::Str),
            ("department", Col::Str),
            ("title", Col::Str),
            ("manager_id", Col::Str),
            ("division_id", Col::Str),
        ],
    },
    Table {
        name: "conversations",
        primary_key: &["conversation_id", "session_id"],
        cursor: Some("conversation_start"),
        columns: &[
            ("conversation_id", Col::Str),
            ("session_id", Col::Str),
            ("participant_id", Col::Str),
            ("user_id", Col::Str),
            ("agent_name", Col::Str),
            ("media_type", Col::Str),
            ("direction", Col::Str),
            ("originating_direction", Col::Str),
            ("conversation_start", Col::Instant),
            ("conversation_end", Col::Instant),
            ("queue_id", Col::Str),
            ("wrap_up_code", Col::Str),
            // Milliseconds, summed over the session's metrics.
            ("answered_ms", Col::Int),
            ("talk_ms", Col::Int),
            ("hold_ms", Col::Int),
            ("acw_ms", Col::Int),
            ("handle_ms", Col::Int),
            ("transfers", Col::Int),
            ("segments", Col::Json),
        ],
    },
    Table {
        name: "evaluations",
        primary_key: &["id"],
        cursor: Some("changed_date"),
        columns: &[
            ("id", Col::Str),
            ("conversation_id", Col::Str),
            ("agent_id", Col::Str),
            ("evaluator_id", Col::Str),
            ("evaluation_form_id", Col::Str),
            ("evaluation_form_name", Col::Str),
            ("status", Col::Str),
            ("total_score", Col::Float),
            ("total_critical_score", Col::Float),
            ("total_non_critical_score", Col::Float),
            ("any_failed_kill_questions", Col::Bool),
            ("assigned_date", Col::Instant),
            ("release_date", Col::Instant),
            ("changed_date", Col::Instant),
            ("submitted_date", Col::Instant),
            ("conversation_date", Col::Instant),
        ],
    },
    Table {
        name: "surveys",
        primary_key: &["survey_id"],
        cursor: Some("completed_at"),
        columns: &[
            ("survey_id", Col::Str),
            ("conversation_id", Col::Str),
            ("user_id", Col::Str),
            ("queue_id", Col::Str),
            ("survey_form_name", Col::Str),
            ("status", Col::Str),
            ("completed_at", Col::Instant),
            // The survey form's total score (0–100).
            ("total_score", Col::Float),
            ("promoter_score", Col::Int),
        ],
    },
    Table {
        name: "user_presence",
        primary_key: &["user_id", "day", "presence"],
        cursor: Some("day"),
        columns: &[
            ("user_id", Col::Str),
            ("day", Col::Date),
            // The organization presence (`AVAILABLE`, `ON_QUEUE`, `OFFLINE` …).
            ("presence", Col::Str),
            ("ms", Col::Int),
        ],
    },
    Table {
        name: "conversation_summaries",
        primary_key: &["conversation_id"],
        cursor: Some("conversation_start"),
        columns: &[
            ("conversation_id", Col::Str),
            ("conversation_start", Col::Instant),
            ("conversation_end", Col::Instant),
            ("originating_direction", Col::Str),
            // Of the first session (the customer's, usually).
            ("media_type", Col::Str),
            // The first queue any segment names.
            ("queue_id", Col::Str),
            // Some session carries `tAbandon`: the customer hung up waiting.
            ("abandoned", Col::Bool),
            ("abandon_ms", Col::Int),
            // Some agent session was answered (`tAnswered` or an interact segment).
            ("answered", Col::Bool),
            // The first agent who answered.
            ("agent_id", Col::Str),
            ("agent_sessions", Col::Int),
            ("wrap_up_code", Col::Str),
            // Every participant's `purpose` (customer, acd, ivr, agent …), in order.
            ("participant_purposes", Col::Json),
        ],
    },
];

/// The tables as a closed set, so the read's `match` is exhaustive: a table
/// added to [`TABLES`] must be given its own branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Users,
    Conversations,
    Evaluations,
    Surveys,
    UserPresence,
    ConversationSummaries,
}

impl Kind {
    /// The table named `table`; an unknown name is an error, never another
    /// table's branch.
    fn of(table: &str) -> Result<Kind, ConnectorError> {
        Ok(match table {
            "users" => Kind::Users,
            "conversations" => Kind::Conversations,
            "evaluations" => Kind::Evaluations,
            "surveys" => Kind::Surveys,
            "user_presence" => Kind::UserPresence,
            "conversation_summaries" => Kind::ConversationSummaries,
            other => {
                return Err(ConnectorError::new(
                    ErrorKind::Config,
                    format!("genesys has no table `{other}`"),
                ))
            }
        })
    }
}

pub struct Genesys {
    base: Base,
}

impl Genesys {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
    ) -> Result<Self, ConnectorError> {
        let spec = ClientSpec {
            headers: vec![("Accept".into(), "application/json".into())],
            token_fields: Vec::new(),
            token_body: TokenBody::FormWithBasic,
            error_message,
            error_reader: None,
        };
        Ok(Genesys {
            base: Base::new(source, cfg, credentials, spec, TABLES)?,
        })
    }

    /// Pages that follow `nextUri` (relative to the API root).
    fn next_uri_pages(
        &self,
        stream: &str,
        path: &str,
        params: Vec<(String, String)>,
        selector: &str,
    ) -> Result<Pages<'_>, ConnectorError> {
        let paging = PaginationConfig::NextUrl {
            next_path: JsonPath::parse("nextUri"),
            count_path: None,
            min_count: 0,
        };
        Ok(Pages::new(
            &self.base,
            stream,
            Pager::new(
                paging,
                endpoint(&self.base.cfg.base_url, path)?,
                params,
                Vec::new(),
            ),
            selector,
        ))
    }

    /// Every user's id, for the per-agent queries of `stream`.
    async fn user_ids(
        &self,
        stream: &str,
        cancel: &CancelFlag,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut ids = Vec::new();
        let mut pages = self.next_uri_pages(stream, "api/v2/users", user_params(), "entities")?;
        while let Some(page) = pages.next(cancel).await? {
            ids.extend(
                page.records
                    .iter()
                    .filter_map(|u| u["id"].as_str().map(str::to_string)),
            );
        }
        Ok(ids)
    }

    /// The conversation details query, day windows from the saved cursor to
    /// `now`, each conversation turned into rows by `flatten` (the
    /// conversations, surveys and summaries tables read the same query).
    async fn conversations(
        &self,
        t: &'static Table,
        state: Option<&Json>,
        now: DateTime<Utc>,
        flatten: fn(&Value) -> Vec<Map<String, Value>>,
        out: &mut Emitter<'_>,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let url = endpoint(
            &self.base.cfg.base_url,
            "api/v2/analytics/conversations/details/query",
        )?;
        let mut from = self.since(state)?;
        while from < now {
            let to = (from + Duration::days(INTERVAL_DAYS)).min(now);
            let body = json!({
                "interval": format!("{}/{}", iso_millis(from), iso_millis(to)),
                "order": "asc",
                "orderBy": "conversationStart",
                "paging": {"pageSize": PAGE_SIZE},
            });
            let pager = BodyPager::page_number(url.clone(), body, "paging.pageNumber", PAGE_SIZE);
            let mut pages = Pages::body(&self.base, t.name, pager, "conversations");
            while let Some(page) = pages.next(cancel).await? {
                let rows: Vec<_> = page
                    .records
                    .iter()
                    .filter(|c| started_within(c, from, to))
                    .flat_map(flatten)
                    .collect();
                out.emit(&rows).await?;
            }
            from = to;
        }
        Ok(())
    }

    /// Where this run starts: a trailing window before the last run's end.
    /// A saved cursor that is not an instant (state edited by hand, or
    /// written by another version) is an error, not a panic: the stream
    /// fails with a message and the other streams go on.
    fn since(&self, state: Option<&Json>) -> Result<DateTime<Utc>, ConnectorError> {
        Ok(match state.and_then(|s| s.get("cursor")).filter(|c| !c.is_null()) {
            Some(c) => {
                saved_instant(state, None).ok_or_else(|| {
                    ConnectorError::new(
                        ErrorKind::Data,
                        format!("{}: the saved cursor {c} is not an instant; delete the stream's row in conveyor.stream_state to read from start_date again", self.base.source),
                    )
                })? - Duration::days(TRAILING_DAYS)
            }
            None => saved_instant(None, self.base.cfg.start_date)
                .unwrap_or_else(|| Utc::now() - Duration::days(DEFAULT_HISTORY_DAYS)),
        })
    }
}

/// The start of `t`'s UTC day.
fn midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
}

fn user_params() -> Vec<(String, String)> {
    vec![
        ("pageSize".into(), "100".into()),
        ("pageNumber".into(), "1".into()),
        ("state".into(), "any".into()),
    ]
}

super::connector_over_base!(Genesys);

impl Genesys {
    async fn read_stream(
        &self,
        stream: &str,
        state: Option<Json>,
        sink: &mut dyn RecordSink,
        cancel: &CancelFlag,
    ) -> Result<(), ConnectorError> {
        let t = self.base.table(stream)?;
        let resume = state.clone().unwrap_or_else(|| json!({ "cursor": null }));
        let mut out = Emitter::new(sink, t, resume);
        let now = Utc::now();
        match Kind::of(t.name)? {
            Kind::Users => {
                let mut pages =
                    self.next_uri_pages(t.name, "api/v2/users", user_params(), "entities")?;
                while let Some(page) = pages.next(cancel).await? {
                    let rows: Result<Vec<_>, _> = page
                        .records
                        .into_iter()
                        .map(|u| object(u, "user").map(user))
                        .collect();
                    out.emit(&rows?).await?;
                }
                return out.finish(json!({ "cursor": null }), cancel).await;
            }
            Kind::Conversations => {
                self.conversations(t, state.as_ref(), now, agent_sessions, &mut out, cancel)
                    .await?
            }
            Kind::Surveys => {
                self.conversations(t, state.as_ref(), now, surveys, &mut out, cancel)
                    .await?
            }
            Kind::ConversationSummaries => {
                self.conversations(t, state.as_ref(), now, summary, &mut out, cancel)
                    .await?
            }
            Kind::UserPresence => {
                let url = endpoint(
                    &self.base.cfg.base_url,
                    "api/v2/analytics/users/aggregates/query",
                )?;
                // Whole UTC days, so each P1D bucket is one calendar day.
                let mut from = midnight(self.since(state.as_ref())?);
                let end = midnight(now) + Duration::days(1);
                while from < end {
                    let to = (from + Duration::days(INTERVAL_DAYS)).min(end);
                    let req = HttpRequest {
                        method: reqwest::Method::POST,
                        url: url.clone(),
                        headers: Vec::new(),
                        json: Some(json!({
                            "interval": format!("{}/{}", iso_millis(from), iso_millis(to)),
                            "granularity": "P1D",
                            "groupBy": ["userId"],
                            "metrics": ["tOrganizationPresence"],
                        })),
                    };
                    let (_, body) = fetch_json(&self.base.client, &req, None).await?;
                    out.emit(&presence_rows(&body)).await?;
                    from = to;
                }
            }
            Kind::Evaluations => {
                let (start, end) = (iso_millis(self.since(state.as_ref())?), iso_millis(now));
                for agent in self.user_ids(t.name, cancel).await? {
                    let params = vec![
                        ("agentUserId".to_string(), agent),
                        ("startTime".into(), start.clone()),
                        ("endTime".into(), end.clone()),
                        ("pageSize".into(), "25".into()),
                        ("pageNumber".into(), "1".into()),
                        ("expandAnswerTotalScores".into(), "true".into()),
                    ];
                    let mut pages = self.next_uri_pages(
                        t.name,
                        "api/v2/quality/evaluations/query",
                        params,
                        "entities",
                    )?;
                    while let Some(page) = pages.next(cancel).await? {
                        let rows: Result<Vec<_>, _> = page
                            .records
                            .into_iter()
                            .map(|e| object(e, "evaluation").map(evaluation))
                            .collect();
                        out.emit(&rows?).await?;
                    }
                }
            }
        }
        out.finish(json!({ "cursor": iso_millis(now) }), cancel)
            .await
    }
}

/// Whether `c` started in `[from, to)`: the query answers with whole days,
/// and the neighbouring interval owns the rest of them.
fn started_within(c: &Value, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    match c["conversationStart"]
        .as_str()
        .and_then(crate::json_arrow::parse_timestamp)
    {
        Some(s) => s >= from && s < to,
        // Undatable: kept (the merge absorbs a repeat; a loss it cannot).
        None => true,
    }
}

fn user(mut u: Map<String, Value>) -> Map<String, Value> {
    let manager = u
        .get("manager")
        .and_then(|m| m.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    let division = u
        .get("division")
        .and_then(|d| d.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    u.remove("manager");
    u.remove("division");
    u.insert("manager_id".into(), manager);
    u.insert("division_id".into(), division);
    u
}

/// One row per agent session of a conversation, metrics summed by name.
fn agent_sessions(c: &Value) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for p in c["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["purpose"] == "agent")
    {
        for s in p["sessions"].as_array().into_iter().flatten() {
            let metric = |name: &str| -> i64 {
                s["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["name"] == name)
                    .filter_map(|m| m["value"].as_i64())
                    .sum()
            };
            let segments = s["segments"].as_array().cloned().unwrap_or_default();
            let first = |key: &str| {
                segments
                    .iter()
                    .find_map(|g| g.get(key).filter(|v| !v.is_null()).cloned())
                    .unwrap_or(Value::Null)
            };
            let mut row = Map::new();
            for (k, v) in [
                ("conversation_id", c["conversationId"].clone()),
                ("session_id", s["sessionId"].clone()),
                ("participant_id", p["participantId"].clone()),
                ("user_id", p["userId"].clone()),
                ("agent_name", p["participantName"].clone()),
                ("media_type", s["mediaType"].clone()),
                ("direction", s["direction"].clone()),
                ("originating_direction", c["originatingDirection"].clone()),
                ("conversation_start", c["conversationStart"].clone()),
                ("conversation_end", c["conversationEnd"].clone()),
                ("queue_id", first("queueId")),
                ("wrap_up_code", first("wrapUpCode")),
                ("answered_ms", json!(metric("tAnswered"))),
                ("talk_ms", json!(metric("tTalkComplete"))),
                ("hold_ms", json!(metric("tHeldComplete"))),
                ("acw_ms", json!(metric("tAcw"))),
                ("handle_ms", json!(metric("tHandle"))),
                ("transfers", json!(metric("nTransferred"))),
                ("segments", Value::Array(segments.clone())),
            ] {
                row.insert(k.into(), v);
            }
            rows.push(row);
        }
    }
    rows
}

/// One row per conversation, agent or not.
fn summary(c: &Value) -> Vec<Map<String, Value>> {
    let participants: Vec<&Value> = c["participants"].as_array().into_iter().flatten().collect();
    let sessions =
        |p: &Value| -> Vec<Value> { p["sessions"].as_array().cloned().unwrap_or_default() };
    let metrics = |s: &Value, name: &str| -> Vec<i64> {
        s["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["name"] == name)
            .filter_map(|m| m["value"].as_i64())
            .collect()
    };
    let segments =
        |s: &Value| -> Vec<Value> { s["segments"].as_array().cloned().unwrap_or_default() };
    let all_sessions: Vec<Value> = participants.iter().flat_map(|p| sessions(p)).collect();
    let first_in_segments = |list: &[Value], key: &str| {
        list.iter()
            .flat_map(segments)
            .find_map(|g| g.get(key).filter(|v| !v.is_null()).cloned())
            .unwrap_or(Value::Null)
    };
    let abandon: Vec<i64> = all_sessions
        .iter()
        .flat_map(|s| metrics(s, "tAbandon"))
        .collect();
    let agents: Vec<&Value> = participants
        .iter()
        .copied()
        .filter(|p| p["purpose"] == "agent")
        .collect();
    let agent_sessions: Vec<Value> = agents.iter().flat_map(|p| sessions(p)).collect();
    let answered_by = |s: &Value| {
        !metrics(s, "tAnswered").is_empty()
            || segments(s).iter().any(|g| g["segmentType"] == "interact")
    };
    let agent = agents
        .iter()
        .find(|p| sessions(p).iter().any(answered_by))
        .map_or(Value::Null, |p| p["userId"].clone());
    let mut row = Map::new();
    for (k, v) in [
        ("conversation_id", c["conversationId"].clone()),
        ("conversation_start", c["conversationStart"].clone()),
        ("conversation_end", c["conversationEnd"].clone()),
        ("originating_direction", c["originatingDirection"].clone()),
        (
            "media_type",
            all_sessions
                .iter()
                .find_map(|s| s.get("mediaType").filter(|v| !v.is_null()).cloned())
                .unwrap_or(Value::Null),
        ),
        ("queue_id", first_in_segments(&all_sessions, "queueId")),
        ("abandoned", json!(!abandon.is_empty())),
        (
            "abandon_ms",
            if abandon.is_empty() {
                Value::Null
            } else {
                json!(abandon.iter().sum::<i64>())
            },
        ),
        ("answered", json!(agent_sessions.iter().any(answered_by))),
        ("agent_id", agent),
        ("agent_sessions", json!(agent_sessions.len())),
        (
            "wrap_up_code",
            first_in_segments(&agent_sessions, "wrapUpCode"),
        ),
        (
            "participant_purposes",
            Value::Array(participants.iter().map(|p| p["purpose"].clone()).collect()),
        ),
    ] {
        row.insert(k.into(), v);
    }
    vec![row]
}

/// One row per survey a conversation carries.
fn surveys(c: &Value) -> Vec<Map<String, Value>> {
    c["surveys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let mut row = Map::new();
            for (col, field) in [
                ("survey_id", "surveyId"),
                ("user_id", "userId"),
                ("queue_id", "queueId"),
                ("survey_form_name", "surveyFormName"),
                ("status", "surveyStatus"),
                ("completed_at", "surveyCompletedDate"),
                ("total_score", "oSurveyTotalScore"),
                ("promoter_score", "surveyPromoterScore"),
            ] {
                row.insert(col.into(), v.get(field).cloned().unwrap_or(Value::Null));
            }
            row.insert("conversation_id".into(), c["conversationId"].clone());
            row
        })
        .collect()
}

/// `results[].data[].metrics[]` of a user aggregates answer as rows of
/// (user, day, presence, ms); an empty answer may omit `results`.
fn presence_rows(body: &Value) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    for r in body["results"].as_array().into_iter().flatten() {
        let user = r["group"]["userId"].clone();
        for d in r["data"].as_array().into_iter().flatten() {
            // The bucket's interval starts at its day's midnight.
            let day = d["interval"]
                .as_str()
                .and_then(|i| i.get(..10))
                .map_or(Value::Null, |d| Value::String(d.to_string()));
            for m in d["metrics"].as_array().into_iter().flatten() {
                if m["metric"] != "tOrganizationPresence" {
                    continue;
                }
                let mut row = Map::new();
                row.insert("user_id".into(), user.clone());
                row.insert("day".into(), day.clone());
                row.insert("presence".into(), m["qualifier"].clone());
                row.insert("ms".into(), m["stats"]["sum"].clone());
                rows.push(row);
            }
        }
    }
    rows
}

fn evaluation(e: Map<String, Value>) -> Map<String, Value> {
    let id_of = |k: &str| {
        e.get(k)
            .and_then(|v| v.get("id"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let answers = e.get("answers").cloned().unwrap_or(Value::Null);
    let mut row = Map::new();
    for (k, v) in [
        ("id", e.get("id").cloned().unwrap_or(Value::Null)),
        ("conversation_id", id_of("conversation")),
        ("agent_id", id_of("agent")),
        ("evaluator_id", id_of("evaluator")),
        ("evaluation_form_id", id_of("evaluationForm")),
        (
            "evaluation_form_name",
            e.get("evaluationForm")
                .and_then(|f| f.get("name"))
                .cloned()
                .unwrap_or(Value::Null),
        ),
        ("status", e.get("status").cloned().unwrap_or(Value::Null)),
        ("total_score", answers["totalScore"].clone()),
        (
            "total_critical_score",
            answers["totalCriticalScore"].clone(),
        ),
        (
            "total_non_critical_score",
            answers["totalNonCriticalScore"].clone(),
        ),
        (
            "any_failed_kill_questions",
            answers["anyFailedKillQuestions"].clone(),
        ),
    ] {
        row.insert(k.into(), v);
    }
    for (col, field) in [
        ("assigned_date", "assignedDate"),
        ("release_date", "releaseDate"),
        ("changed_date", "changedDate"),
        ("submitted_date", "submittedDate"),
        ("conversation_date", "conversationDate"),
    ] {
        row.insert(col.into(), e.get(field).cloned().unwrap_or(Value::Null));
    }
    row
}

/// `code: message (contextId …)`.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let Some(message) = v.get("message").and_then(Value::as_str) else {
        return oauth_error(&v);
    };
    let mut s = match v.get("code").and_then(Value::as_str) {
        Some(c) => format!("{c}: {message}"),
        None => message.to_string(),
    };
    if let Some(ctx) = v.get("contextId").and_then(Value::as_str) {
        s = format!("{s} (contextId {ctx})");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_a_kind_and_an_unknown_name_is_an_error() {
        for t in TABLES {
            assert!(Kind::of(t.name).is_ok(), "{}", t.name);
        }
        let e = Kind::of("queues").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.to_string().contains("no table `queues`"), "{e}");
    }

    #[test]
    fn agent_sessions_sum_metrics_and_take_queue_and_wrap_up() {
        let c = json!({"conversationId":"c1","conversationStart":"2024-06-03T14:00:01.123Z","conversationEnd":"2024-06-03T14:08:22.456Z","originatingDirection":"inbound",
            "participants":[{"participantId":"p1","purpose":"customer","sessions":[{"sessionId":"s1"}]},
                {"participantId":"p3","purpose":"agent","userId":"u-123","participantName":"Jane Agent","sessions":[{"sessionId":"s3","mediaType":"voice","direction":"inbound",
                "metrics":[{"name":"tTalkComplete","value":410000},{"name":"tAcw","value":30000},{"name":"tTalkComplete","value":5000}],
                "segments":[{"segmentType":"interact","queueId":"q-1"},{"segmentType":"wrapup","wrapUpCode":"wc-9"}]}]}]});
        let rows = agent_sessions(&c);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["talk_ms"], json!(415000));
        assert_eq!(rows[0]["acw_ms"], json!(30000));
        assert_eq!(rows[0]["queue_id"], json!("q-1"));
        assert_eq!(rows[0]["wrap_up_code"], json!("wc-9"));
        assert_eq!(rows[0]["user_id"], json!("u-123"));
    }

    #[test]
    fn surveys_carry_their_conversation_and_a_conversation_without_any_has_none() {
        let c = json!({"conversationId":"c1","surveys":[{"surveyId":"s1","surveyFormName":"CSAT","userId":"u-1","queueId":"q-1",
            "surveyStatus":"Finished","surveyCompletedDate":"2026-10-19T09:10:00.000Z","oSurveyTotalScore":80.0,"surveyPromoterScore":8}]});
        let rows = surveys(&c);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["conversation_id"], json!("c1"));
        assert_eq!(rows[0]["total_score"], json!(80.0));
        assert_eq!(rows[0]["status"], json!("Finished"));
        assert!(surveys(&json!({"conversationId":"c2"})).is_empty());
    }

    #[test]
    fn presence_rows_take_the_day_from_the_bucket_and_skip_other_metrics() {
        let body = json!({"results":[{"group":{"userId":"u-1"},"data":[{"interval":"2026-10-19T00:00:00.000Z/2026-10-20T00:00:00.000Z",
            "metrics":[{"metric":"tOrganizationPresence","qualifier":"ON_QUEUE","stats":{"sum":21600000}},
                {"metric":"tAgentRoutingStatus","qualifier":"IDLE","stats":{"sum":5}}]}]}]});
        let rows = presence_rows(&body);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["day"], json!("2026-10-19"));
        assert_eq!(rows[0]["presence"], json!("ON_QUEUE"));
        assert_eq!(rows[0]["ms"], json!(21600000));
        assert!(
            presence_rows(&json!({})).is_empty(),
            "an empty answer omits results"
        );
    }

    #[test]
    fn errors_quote_code_message_and_context() {
        let body = br#"{"message":"Interval is invalid","code":"bad.request","status":400,"messageParams":{},"contextId":"ctx-1","details":[],"errors":[]}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "bad.request: Interval is invalid (contextId ctx-1)"
        );
    }
}
