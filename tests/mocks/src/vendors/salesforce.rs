//! Salesforce mock: `POST /services/oauth2/token` (refresh-token and
//! client-credentials grants, client id and secret in the form) and under
//! `/services/data/vNN.N` the SOQL endpoints `query` and `queryAll` with
//! their `query/<locator>-<offset>` continuation pages, for the sObjects
//! `Opportunity`, `Account` and `User`.
//!
//! Documented (reference §1d and the fidelity checklist): the token answer
//! `{access_token, instance_url, id, token_type, issued_at, signature,
//! scope}` with **no `expires_in`** (a token lives until the handle
//! expires it, then a 401 `INVALID_SESSION_ID`), `instance_url` as the API
//! host, `GET …/query?q=<SOQL>` with **unquoted** datetime literals (a
//! quoted one is a 400 `MALFORMED_QUERY`), `{totalSize, done,
//! nextRecordsUrl, records}` with batches of up to 2000, records carrying
//! `attributes {type, url}`, 18-character ids, datetimes like
//! `2024-06-28T17:01:02.000+0000`, `Amount` a JSON number, `CloseDate` a
//! date, `/queryAll` returning deleted records (`IsDeleted = true`) that
//! `/query` hides, errors as a JSON array `[{"message", "errorCode"}]`
//! (`INVALID_FIELD`, `MALFORMED_QUERY`, `INVALID_SESSION_ID`), the
//! `Sforce-Limit-Info: api-usage=N/M` header, and **403**
//! `REQUEST_LIMIT_EXCEEDED` past the allocation (never a 429).
//!
//! Guessed [?]: the token endpoint's error bodies (`{error,
//! error_description}`, 400), that a refresh token is not rotated unless
//! the connected app asks (`rotate_refresh`, then the answer carries a new
//! `refresh_token` and the old one stops working), the Account and User
//! fields, that `queryAll`'s continuation URLs are also `…/query/<locator>`,
//! that a locator serves a snapshot of the result taken at the first page
//! and never expires, that a request on another host than `instance_url`
//! is a 404, the `INVALID_TYPE` wording, that only the grammar the
//! connectors send is understood (`SELECT f, … FROM o [WHERE f op
//! <literal>] [ORDER BY f, …]`, ascending, one condition).
//!
//! `batch_size` is a test knob (smaller batches, legal: 2000 is a ceiling),
//! `echo_credentials` makes the token endpoint quote the secret it was
//! given (to prove the connector scrubs it), and the handle can set the
//! request usage to run into the allocation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::{lock, receive, Core, Fault, MockHandle};
use crate::server::MockServer;
use crate::wire;

/// The largest batch a query page holds.
pub const MAX_BATCH: usize = 2000;

/// 2024-06-01T09:00:00Z, where the seeded records start.
pub fn seed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 9, 0, 0).single().expect("a valid instant")
}

/// `2024-06-28T17:01:02.000+0000`: Salesforce's datetime form.
pub fn sf_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

#[derive(Clone, Debug)]
pub struct SalesforceMockConfig {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub opportunities: usize,
    /// Serve at most this many records a batch.
    pub batch_size: usize,
    /// The org's request allocation (the `M` of `api-usage=N/M`).
    pub api_limit: u64,
    /// Answer a refresh with a new refresh token, revoking the old one.
    pub rotate_refresh: bool,
    /// The token endpoint quotes the client secret it was given (a hostile echo).
    pub echo_credentials: bool,
}

impl Default for SalesforceMockConfig {
    fn default() -> Self {
        SalesforceMockConfig {
            client_id: "3MVG9sf-consumer-key".into(),
            client_secret: "sf-secret-8c1e/77+q".into(),
            refresh_token: "5Aep861sf-refresh-0001".into(),
            opportunities: 12,
            batch_size: MAX_BATCH,
            api_limit: 100_000,
            rotate_refresh: false,
            echo_credentials: false,
        }
    }
}

/// The sObjects served and their fields, in describe order.
pub const OBJECTS: [(&str, &[&str]); 3] = [
    (
        "Opportunity",
        &[
            "Id",
            "Name",
            "AccountId",
            "OwnerId",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "IsClosed",
            "IsWon",
            "ForecastCategoryName",
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "IsDeleted",
        ],
    ),
    (
        "Account",
        &[
            "Id",
            "Name",
            "OwnerId",
            "Type",
            "Industry",
            "CreatedDate",
            "SystemModstamp",
            "IsDeleted",
        ],
    ),
    ("User", &["Id", "Name", "Email", "IsActive", "SystemModstamp"]),
];

/// A query's result kept for its continuation pages.
struct Locator {
    records: Vec<Value>,
}

struct Salesforce {
    cfg: SalesforceMockConfig,
    core: Core,
    data: HashMap<&'static str, Vec<Value>>,
    clock: DateTime<Utc>,
    locators: HashMap<String, Locator>,
    usage: u64,
}

#[derive(Clone)]
pub struct SalesforceHandle(Arc<Mutex<Salesforce>>);

impl MockHandle for SalesforceHandle {
    fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut lock(&self.0).core)
    }
}

impl SalesforceHandle {
    /// Every record of `object`, deleted ones included, as stored.
    pub fn records(&self, object: &str) -> Vec<Value> {
        lock(&self.0).data.get(object).cloned().unwrap_or_default()
    }

    /// Changes record `id` of `object` and stamps `SystemModstamp` (and
    /// `LastModifiedDate`) a minute after anything so far; returns the stamp.
    pub fn touch(&self, object: &str, id: &str, f: impl FnOnce(&mut Value)) -> String {
        let mut s = lock(&self.0);
        s.clock += Duration::minutes(1);
        let stamp = sf_time(s.clock);
        let rec = s
            .data
            .get_mut(object)
            .and_then(|v| v.iter_mut().find(|r| r["Id"] == id))
            .expect("record exists");
        f(rec);
        rec["SystemModstamp"] = json!(stamp);
        if rec.get("LastModifiedDate").is_some() {
            rec["LastModifiedDate"] = json!(stamp);
        }
        stamp
    }

    /// Deletes a record into the recycle bin: `IsDeleted = true`, a new
    /// `SystemModstamp`; `/query` no longer shows it, `/queryAll` does.
    pub fn delete(&self, object: &str, id: &str) -> String {
        self.touch(object, id, |r| r["IsDeleted"] = json!(true))
    }

    /// Sets the requests used so far in the org's allocation.
    pub fn set_usage(&self, used: u64) {
        lock(&self.0).usage = used;
    }

    /// The requests counted so far.
    pub fn usage(&self) -> u64 {
        lock(&self.0).usage
    }
}

pub struct SalesforceMock;

impl SalesforceMock {
    pub async fn start(cfg: SalesforceMockConfig) -> (MockServer, SalesforceHandle) {
        let data = seed(cfg.opportunities);
        let clock = seed_time() + Duration::minutes(cfg.opportunities as i64 + 10);
        let st = Arc::new(Mutex::new(Salesforce {
            core: Core::with_refresh(&cfg.refresh_token),
            cfg,
            data,
            clock,
            locators: HashMap::new(),
            usage: 0,
        }));
        let router = Router::new().fallback(serve).with_state(st.clone());
        (MockServer::start(router).await, SalesforceHandle(st))
    }
}

fn id(prefix: &str, i: usize) -> String {
    // 18 characters, like Salesforce's case-safe ids.
    format!("{prefix}Dn0000{i:06}IAV")
}

/// Opportunities a minute apart, on three accounts and two owners;
/// every third closed won.
fn seed(n: usize) -> HashMap<&'static str, Vec<Value>> {
    let at = |mins: i64| sf_time(seed_time() + Duration::minutes(mins));
    let users: Vec<Value> = (1..=2)
        .map(|i| {
            json!({"Id": id("005", i), "Name": format!("Rep {i}"), "Email": format!("rep{i}@acme.example"),
                "IsActive": i == 1, "SystemModstamp": at(-2_000 + i as i64)})
        })
        .collect();
    let accounts: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"Id": id("001", i), "Name": format!("Account {i}"), "OwnerId": id("005", 1),
                "Type": "Customer - Direct", "Industry": if i == 2 { Value::Null } else { json!("Technology") },
                "CreatedDate": at(-3_000), "SystemModstamp": at(-1_000 + i as i64), "IsDeleted": false})
        })
        .collect();
    let opportunities: Vec<Value> = (1..=n)
        .map(|i| {
            let won = i % 3 == 0;
            // Cents that a float must carry exactly: 1234.56, 2469.12, …
            let amount = json!((123_456 * i) as f64 / 100.0);
            json!({"Id": id("006", i), "Name": format!("Deal {i}"), "AccountId": id("001", 1 + i % 3),
                "OwnerId": id("005", 1 + i % 2), "StageName": if won { "Closed Won" } else { "Prospecting" },
                "Amount": amount, "CloseDate": "2024-06-28", "Probability": if won { 100.0 } else { 10.0 },
                "IsClosed": won, "IsWon": won, "ForecastCategoryName": if won { "Closed" } else { "Pipeline" },
                "CreatedDate": at(i as i64 - 1_440), "LastModifiedDate": at(i as i64),
                "SystemModstamp": at(i as i64), "IsDeleted": false})
        })
        .collect();
    HashMap::from([("Opportunity", opportunities), ("Account", accounts), ("User", users)])
}

/// Salesforce's error array with one entry.
fn error(status: u16, code: &str, message: &str) -> Response {
    wire::json(status, json!([{"message": message, "errorCode": code}]))
}

async fn serve(State(st): State<Arc<Mutex<Salesforce>>>, req: Request) -> Response {
    let (parts, body) = receive(|r| lock(&st).core.log.push(r), req).await;
    let mut s = lock(&st);
    let path = parts.uri.path().to_string();
    if parts.method == Method::POST && path == "/services/oauth2/token" {
        return token(&mut s, &parts.headers, &body);
    }
    if parts.method != Method::GET {
        return error(405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed");
    }
    let Some(rest) = path.strip_prefix("/services/data/") else {
        return error(404, "NOT_FOUND", "The requested resource does not exist");
    };
    let Some((version, endpoint)) = rest.split_once('/') else {
        return error(404, "NOT_FOUND", "The requested resource does not exist");
    };
    if !is_version(version) {
        return error(404, "NOT_FOUND", "The requested resource does not exist");
    }
    if !s.core.access_ok(wire::bearer(&parts.headers)) {
        return error(401, "INVALID_SESSION_ID", "Session expired or invalid");
    }
    // Every authenticated call counts against the org's allocation.
    if s.usage >= s.cfg.api_limit {
        return limited(&s, "TotalRequests Limit exceeded.");
    }
    s.usage += 1;
    let answer = match s.core.next_fault() {
        // Salesforce has no 429: the allocation is its rate limit.
        Some(Fault::RateLimited { .. }) => return limited(&s, "TotalRequests Limit exceeded."),
        Some(Fault::Error(status, body)) => wire::json(status, body),
        None => {
            let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
            route(&mut s, version, endpoint, &pairs)
        }
    };
    with_usage(&s, answer)
}

fn with_usage(s: &Salesforce, resp: Response) -> Response {
    wire::with_headers(
        resp,
        &[("sforce-limit-info", format!("api-usage={}/{}", s.usage, s.cfg.api_limit))],
    )
}

fn limited(s: &Salesforce, message: &str) -> Response {
    with_usage(s, error(403, "REQUEST_LIMIT_EXCEEDED", message))
}

/// `v66.0`.
fn is_version(v: &str) -> bool {
    v.strip_prefix('v').and_then(|n| n.split_once('.')).is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

fn route(
    s: &mut Salesforce,
    version: &str,
    endpoint: &str,
    pairs: &[(String, String)],
) -> Response {
    if let Some(locator) = endpoint.strip_prefix("query/") {
        return more(s, version, locator);
    }
    let all = match endpoint {
        "query" => false,
        "queryAll" | "queryAll/" => true,
        _ => return error(404, "NOT_FOUND", "The requested resource does not exist"),
    };
    let Some(q) = wire::param(pairs, "q") else {
        return error(400, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let query = match Soql::parse(q) {
        Ok(query) => query,
        Err((code, message)) => return error(400, code, &message),
    };
    let records = match query.run(s, version, all) {
        Ok(r) => r,
        Err((code, message)) => return error(400, code, &message),
    };
    let locator = format!("01gDn{}", s.locators.len() + 1);
    s.locators.insert(locator.clone(), Locator { records });
    page(s, version, &locator, 0)
}

/// `query/<locator>-<offset>`.
fn more(s: &Salesforce, version: &str, rest: &str) -> Response {
    let found = rest
        .rsplit_once('-')
        .and_then(|(l, o)| Some((l, o.parse::<usize>().ok()?)))
        .filter(|(l, _)| s.locators.contains_key(*l));
    match found {
        Some((locator, offset)) => page(s, version, locator, offset),
        None => error(400, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    }
}

fn page(s: &Salesforce, version: &str, locator: &str, offset: usize) -> Response {
    let all = &s.locators[locator].records;
    let take = s.cfg.batch_size.clamp(1, MAX_BATCH);
    let records: Vec<Value> = all.iter().skip(offset).take(take).cloned().collect();
    let next = offset + take;
    let done = next >= all.len();
    let mut body = json!({"totalSize": all.len(), "done": done, "records": records});
    if !done {
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{next}"));
    }
    wire::json(200, body)
}

/// The SOQL the mock understands.
struct Soql {
    fields: Vec<String>,
    object: String,
    /// `(field, operator, literal)`.
    filter: Option<(String, String, String)>,
    order: Vec<String>,
}

type SoqlError = (&'static str, String);

/// The byte offset of keyword `kw` (case-insensitive, between spaces).
fn keyword(q: &str, kw: &str) -> Option<usize> {
    q.to_ascii_uppercase().find(&format!(" {kw} ")).map(|i| i + 1)
}

impl Soql {
    fn parse(q: &str) -> Result<Soql, SoqlError> {
        let q = q.trim();
        let malformed = |m: &str| ("MALFORMED_QUERY", m.to_string());
        if !q.to_ascii_uppercase().starts_with("SELECT ") {
            return Err(malformed("unexpected token: expected SELECT"));
        }
        let from = keyword(q, "FROM").ok_or_else(|| malformed("unexpected token: missing FROM"))?;
        let fields: Vec<String> = q[7..from].split(',').map(|f| f.trim().to_string()).collect();
        if fields.iter().any(String::is_empty) {
            return Err(malformed("unexpected token: ','"));
        }
        let after = &q[from + 5..];
        let (head, order) = match keyword(&format!(" {after}"), "ORDER BY") {
            Some(i) => {
                let i = i - 1;
                let order = after[i + 9..].split(',').map(|f| f.trim().to_string()).collect();
                (&after[..i], order)
            }
            None => (after, Vec::new()),
        };
        let (object, filter) = match keyword(&format!(" {head}"), "WHERE") {
            Some(i) => {
                let i = i - 1;
                let cond = head[i + 6..].trim();
                let mut parts = cond.splitn(3, ' ');
                let (Some(f), Some(op), Some(lit)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(malformed(&format!("unexpected token: '{cond}'")));
                };
                if !["=", ">", ">=", "<", "<="].contains(&op) {
                    return Err(malformed(&format!("unexpected token: '{op}'")));
                }
                (head[..i].trim(), Some((f.to_string(), op.to_string(), lit.trim().to_string())))
            }
            None => (head.trim(), None),
        };
        Ok(Soql { fields, object: object.to_string(), filter, order })
    }

    fn run(&self, s: &Salesforce, version: &str, all: bool) -> Result<Vec<Value>, SoqlError> {
        let Some((object, known)) =
            OBJECTS.iter().find(|(o, _)| o.eq_ignore_ascii_case(&self.object))
        else {
            return Err((
                "INVALID_TYPE",
                format!("sObject type '{}' is not supported.", self.object),
            ));
        };
        let field = |name: &str| -> Result<&'static str, SoqlError> {
            known.iter().copied().find(|k| k.eq_ignore_ascii_case(name)).ok_or_else(|| {
                ("INVALID_FIELD", format!("No such column '{name}' on entity '{object}'."))
            })
        };
        let fields = self.fields.iter().map(|f| field(f)).collect::<Result<Vec<_>, _>>()?;
        let order = self.order.iter().map(|f| field(f)).collect::<Result<Vec<_>, _>>()?;
        let filter = match &self.filter {
            None => None,
            Some((f, op, lit)) => {
                let f = field(f)?;
                if !matches!(f, "SystemModstamp" | "LastModifiedDate" | "CreatedDate") {
                    return Err((
                        "MALFORMED_QUERY",
                        format!("the mock only filters datetimes, not {f}"),
                    ));
                }
                // The reference's quirk: datetime literals are unquoted.
                if lit.starts_with('\'') || lit.starts_with('"') {
                    return Err((
                        "MALFORMED_QUERY",
                        format!("value of filter criterion for field '{f}' must be of type dateTime and should not be enclosed in quotes"),
                    ));
                }
                let at = DateTime::parse_from_rfc3339(lit).map_err(|_| {
                    ("MALFORMED_QUERY", format!("line 1:{}: unexpected token: '{lit}'", lit.len()))
                })?;
                Some((f, op.clone(), at.with_timezone(&Utc)))
            }
        };
        let mut rows: Vec<&Value> = s.data[object]
            .iter()
            .filter(|r| all || r.get("IsDeleted") != Some(&json!(true)))
            .filter(|r| {
                let Some((f, op, at)) = &filter else { return true };
                let Some(t) = r[*f].as_str().and_then(parse_sf_time) else { return false };
                match op.as_str() {
                    "=" => t == *at,
                    ">" => t > *at,
                    ">=" => t >= *at,
                    "<" => t < *at,
                    _ => t <= *at,
                }
            })
            .collect();
        // Every stored datetime has the same form, so text order is time order.
        rows.sort_by(|a, b| {
            order
                .iter()
                .map(|f| cmp(&a[*f], &b[*f]))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut out = Map::new();
                out.insert(
                    "attributes".into(),
                    json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{}", r["Id"].as_str().unwrap_or(""))}),
                );
                for f in &fields {
                    out.insert(f.to_string(), r.get(*f).cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            })
            .collect())
    }
}

fn cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `2024-06-28T17:01:02.000+0000`.
pub fn parse_sf_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.with_timezone(&Utc))
}

fn token(s: &mut Salesforce, headers: &HeaderMap, body: &[u8]) -> Response {
    s.core.token_requests += 1;
    let f = wire::form_fields(headers, body);
    if f.get("client_id") != Some(&s.cfg.client_id)
        || f.get("client_secret") != Some(&s.cfg.client_secret)
    {
        let mut description = "invalid client credentials".to_string();
        if s.cfg.echo_credentials {
            let given = f.get("client_secret").cloned().unwrap_or_default();
            let encoded: String = url::form_urlencoded::byte_serialize(given.as_bytes()).collect();
            description = format!("{description}: got `{given}` (url-encoded `{encoded}`)");
        }
        return wire::json(
            400,
            json!({"error": "invalid_client", "error_description": description}),
        );
    }
    let mut answer = json!({});
    match f.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some("refresh_token") => {
            let presented = f.get("refresh_token").map(String::as_str);
            if s.cfg.rotate_refresh {
                let Some(next) = s.core.rotate_refresh(presented, "5Aep861sf") else {
                    return invalid_grant();
                };
                answer["refresh_token"] = json!(next);
            } else if presented.is_none() || s.core.refresh.as_deref() != presented {
                return invalid_grant();
            }
        }
        _ => {
            return wire::json(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"}),
            )
        }
    }
    let access = s.core.issue_access("00DDn0000sf!AQ");
    let origin = wire::origin(headers);
    // No `expires_in`: the session lasts until it is refused.
    for (k, v) in [
        ("access_token", json!(access)),
        ("instance_url", json!(origin)),
        ("id", json!(format!("{origin}/id/00DDn0000000001/{}", id("005", 1)))),
        ("token_type", json!("Bearer")),
        ("issued_at", json!(Utc::now().timestamp_millis().to_string())),
        ("signature", json!("c2lnbmF0dXJl")),
        ("scope", json!("api refresh_token")),
    ] {
        answer[k] = v;
    }
    wire::json(200, answer)
}

fn invalid_grant() -> Response {
    wire::json(
        400,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soql_parses_fields_object_filter_and_order() {
        let q = Soql::parse("SELECT Id, Name FROM Opportunity WHERE SystemModstamp >= 2024-06-01T09:00:00Z ORDER BY SystemModstamp, Id").unwrap();
        assert_eq!(q.fields, ["Id", "Name"]);
        assert_eq!(q.object, "Opportunity");
        assert_eq!(
            q.filter,
            Some(("SystemModstamp".into(), ">=".into(), "2024-06-01T09:00:00Z".into()))
        );
        assert_eq!(q.order, ["SystemModstamp", "Id"]);
        let bare = Soql::parse("select Id from User").unwrap();
        assert_eq!((bare.object.as_str(), bare.filter, bare.order.len()), ("User", None, 0));
    }

    #[test]
    fn salesforce_times_have_no_colon_in_the_offset() {
        let t = seed_time();
        assert_eq!(sf_time(t), "2024-06-01T09:00:00.000+0000");
        assert_eq!(parse_sf_time(&sf_time(t)), Some(t));
    }
}
