//! The read loop vendor connectors share: pages through the toolkit's
//! [`Pager`] and [`HttpClient`], typed batches, and checkpoints that only
//! move the cursor once a stream has been read to the end.

use chrono::{DateTime, NaiveDate, Utc};
use conveyor_config::JsonPath;
use conveyor_plugin_api::{CancelFlag, ConnectorError, ErrorKind, Json, RecordSink};
use serde_json::{Map, Value};
use url::Url;

use super::table::Table;
use crate::http::body_pager::BodyPager;
use crate::http::client::{snippet, HttpRequest, HttpResponse};
use crate::http::HttpClient;
use crate::rest::pager::Pager;

/// Finds an error a vendor reports inside a successful response
/// (QuickBooks' `Fault` in a 200); returns the vendor's message.
pub(crate) type BodyCheck = fn(&Value) -> Option<String>;

/// One page: its records, and what is left of the body.
pub(crate) struct Page {
    pub records: Vec<Value>,
    pub body: Value,
}

/// Either paging style of the toolkit.
enum AnyPager {
    /// Cursor, offset or page in the URL (`rest::pager`).
    Url(Pager),
    /// Cursor in a POSTed JSON body (search APIs).
    Body(BodyPager),
}

/// Walks the pages of one request sequence.
pub(crate) struct Pages<'a> {
    client: &'a HttpClient,
    pager: AnyPager,
    selector: JsonPath,
    check: Option<BodyCheck>,
}

impl<'a> Pages<'a> {
    pub fn new(client: &'a HttpClient, pager: Pager, selector: &str) -> Self {
        Pages {
            client,
            pager: AnyPager::Url(pager),
            selector: JsonPath::parse(selector),
            check: None,
        }
    }

    /// Pages of a search API that takes its cursor in the request body.
    pub fn body(client: &'a HttpClient, pager: BodyPager, selector: &str) -> Self {
        Pages {
            client,
            pager: AnyPager::Body(pager),
            selector: JsonPath::parse(selector),
            check: None,
        }
    }

    /// The cursor the next body-paged request would send.
    pub fn body_cursor(&self) -> Option<&str> {
        match &self.pager {
            AnyPager::Body(p) => p.cursor(),
            AnyPager::Url(_) => None,
        }
    }

    pub fn check_body(mut self, check: BodyCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// The next page, or `None` when the pager is done or the read was cancelled.
    pub async fn next(&mut self, cancel: &CancelFlag) -> Result<Option<Page>, ConnectorError> {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let req = match &mut self.pager {
            AnyPager::Url(p) => p.next_url().map(HttpRequest::get),
            AnyPager::Body(p) => p.next_request(),
        };
        let Some(req) = req else {
            return Ok(None);
        };
        let resp = self.client.send(&req).await?;
        let mut body = parse_body(self.client, &resp, self.check)?;
        let records = match take(&mut body, &self.selector) {
            Some(Value::Array(v)) => v,
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(o)) => vec![Value::Object(o)],
            Some(other) => {
                let shown = self.client.redactor().url(&resp.url);
                return Err(ConnectorError::new(
                    ErrorKind::Data,
                    format!(
                        "{} {shown}: `{}` holds {other}, not a list of records",
                        req.method, self.selector
                    ),
                ));
            }
        };
        match &mut self.pager {
            AnyPager::Url(p) => p.advance(&resp, &body, records.len()),
            AnyPager::Body(p) => p.advance(&body, records.len()),
        }
        Ok(Some(Page { records, body }))
    }
}

/// Sends one request and parses its JSON body, applying `check`.
pub(crate) async fn fetch_json(
    client: &HttpClient,
    req: &HttpRequest,
    check: Option<BodyCheck>,
) -> Result<(HttpResponse, Value), ConnectorError> {
    let resp = client.send(req).await?;
    let body = parse_body(client, &resp, check)?;
    Ok((resp, body))
}

/// GETs `url` and returns its JSON body.
pub(crate) async fn get_json(
    client: &HttpClient,
    url: Url,
    check: Option<BodyCheck>,
) -> Result<Value, ConnectorError> {
    Ok(fetch_json(client, &HttpRequest::get(url), check).await?.1)
}

fn parse_body(
    client: &HttpClient,
    resp: &HttpResponse,
    check: Option<BodyCheck>,
) -> Result<Value, ConnectorError> {
    let shown = client.redactor().url(&resp.url);
    let body: Value = serde_json::from_slice(&resp.body).map_err(|e| {
        let start = client.redactor().scrub(&snippet(&resp.body));
        ConnectorError::new(
            ErrorKind::Data,
            format!("{shown}: response is not valid JSON ({e}); body starts: {start}"),
        )
    })?;
    if let Some(message) = check.and_then(|c| c(&body)) {
        return Err(ConnectorError::new(
            ErrorKind::Http,
            format!(
                "{shown}: HTTP {} carries an error: {}",
                resp.status,
                client.redactor().scrub(&message)
            ),
        ));
    }
    Ok(body)
}

/// Removes and returns the value at `path`.
fn take(body: &mut Value, path: &JsonPath) -> Option<Value> {
    let Some((last, parents)) = path.0.split_last() else {
        return Some(body.take());
    };
    let mut at = body;
    for p in parents {
        at = at.get_mut(p)?;
    }
    at.as_object_mut()?.remove(last)
}

/// Turns rows into batches for one table. Every batch is followed by the
/// checkpoint the read started from: APIs rarely promise cursor order, so
/// only a finished read may move the cursor; after a crash the read starts
/// over and the warehouse's merge by primary key absorbs repeats.
pub(crate) struct Emitter<'a> {
    sink: &'a mut dyn RecordSink,
    table: &'static Table,
    resume: Json,
    pub rows: usize,
}

impl<'a> Emitter<'a> {
    pub fn new(sink: &'a mut dyn RecordSink, table: &'static Table, resume: Json) -> Self {
        Emitter {
            sink,
            table,
            resume,
            rows: 0,
        }
    }

    pub async fn emit(&mut self, rows: &[Map<String, Value>]) -> Result<(), ConnectorError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.sink.batch(self.table.batch(rows)?).await?;
        self.rows += rows.len();
        self.sink.checkpoint(self.resume.clone()).await
    }

    /// The read reached the end: `state` is now safe. A cancelled read
    /// keeps the state it started from.
    pub async fn finish(self, state: Json, cancel: &CancelFlag) -> Result<(), ConnectorError> {
        if cancel.is_cancelled() {
            return Ok(());
        }
        self.sink.checkpoint(state).await
    }
}

/// The saved `cursor` instant of a stream state, else the configured start date.
pub(crate) fn saved_instant(
    state: Option<&Json>,
    start: Option<NaiveDate>,
) -> Option<DateTime<Utc>> {
    state
        .and_then(|s| s.get("cursor"))
        .and_then(Value::as_str)
        .and_then(crate::json_arrow::parse_timestamp)
        .or_else(|| start.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()))
}

/// `2024-12-15T03:55:00.000Z`.
pub(crate) fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Tracks the newest instant seen in a field.
#[derive(Default)]
pub(crate) struct Newest(pub Option<DateTime<Utc>>);

impl Newest {
    pub fn see(&mut self, v: Option<&Value>) {
        if let Some(t) = v
            .and_then(Value::as_str)
            .and_then(crate::json_arrow::parse_timestamp)
        {
            self.0 = Some(self.0.map_or(t, |n| n.max(t)));
        }
    }

    /// `{"cursor": …}` with the newest instant, or `fallback` if none was seen.
    pub fn state(&self, fallback: Option<DateTime<Utc>>) -> Json {
        let c = self.0.max(fallback);
        serde_json::json!({ "cursor": c.map(iso_millis) })
    }
}

/// A record as a JSON object (a vendor sent something else: data error).
pub(crate) fn object(v: Value, what: &str) -> Result<Map<String, Value>, ConnectorError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ConnectorError::new(
            ErrorKind::Data,
            format!("{what}: expected a JSON object, got {other}"),
        )),
    }
}
