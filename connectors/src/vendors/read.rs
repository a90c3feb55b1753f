//! The read loop vendor connectors share: pages through the toolkit's
//! [`Pager`] and [`HttpClient`], typed batches, and checkpoints that only
//! move the cursor once a stream has been read to the end.

use chrono::{DateTime, NaiveDate, Utc};
use conveyor_config::JsonPath;
use conveyor_plugin_api::{CancelFlag, ConnectorError, ErrorKind, Json, RecordSink};
use serde_json::{Map, Value};
use url::Url;

use super::table::Table;
use super::Base;
use crate::http::body_pager::BodyPager;
use crate::http::client::{HttpRequest, HttpResponse};
use crate::http::{HttpClient, PageGuard, PageScope};
use crate::rest::pager::Pager;

/// Finds an error a vendor reports inside a successful response
/// (QuickBooks' `Fault` in a 200); returns the vendor's message.
pub(crate) type BodyCheck = fn(&Value) -> Option<String>;

/// The kind of error a refused page (one of [`UNAVAILABLE`]'s statuses)
/// is, for vendors whose 403 means more than one thing (AWS: a bad
/// signature is an auth failure, `AccessDeniedException` a missing
/// permission).
pub(crate) type RefusalKind = fn(&HttpResponse) -> ErrorKind;

/// Says from a page's body that it was the last one (Lever's
/// `hasNext: false`), whatever paging hint the body still carries.
pub(crate) type LastPage = fn(&Value) -> bool;

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

/// Statuses that mean "this account has no such data, or these
/// credentials may not read it" on a stream's own endpoint: they fail the
/// read with [`ErrorKind::Unavailable`] (the connector adds what to do).
pub(crate) const UNAVAILABLE: &[u16] = &[403, 404];

/// A refused page that ended the paging instead of failing it (see
/// [`Pages::stop_on`]).
pub(crate) struct Stopped {
    /// The response body, for the vendor's error details.
    pub body: bytes::Bytes,
    /// The error the refusal would have been, should the caller not cope.
    pub error: ConnectorError,
}

/// Walks the pages of one request sequence, within the source's page
/// limits (see [`PageGuard`]).
pub(crate) struct Pages<'a> {
    client: &'a HttpClient,
    pager: AnyPager,
    guard: PageGuard,
    selector: JsonPath,
    check: Option<BodyCheck>,
    unavailable: &'static [u16],
    /// A status that ends the paging (`Some(true)`: on any page; `Some(false)`:
    /// only after the first page).
    stop_on: Option<(u16, bool)>,
    stopped: Option<Stopped>,
    pages: usize,
    /// Sent with every request of the sequence (an incremental filter
    /// some APIs take as a header, e.g. Xero's `If-Modified-Since`).
    headers: Vec<(String, String)>,
    last_page: Option<LastPage>,
    /// [`Pages::last_page_when`] said the page just read was the last.
    done: bool,
    /// See [`Pages::no_content_ends`].
    no_content_ends: bool,
    refusal: Option<RefusalKind>,
}

impl<'a> Pages<'a> {
    /// Pages of `stream` (named in errors) whose paging is in the URL.
    pub fn new(base: &'a Base, stream: &str, pager: Pager, selector: &str) -> Self {
        Self::with(base, stream, AnyPager::Url(pager), selector)
    }

    /// Pages of a search API that takes its cursor in the request body.
    pub fn body(base: &'a Base, stream: &str, pager: BodyPager, selector: &str) -> Self {
        Self::with(base, stream, AnyPager::Body(pager), selector)
    }

    fn with(base: &'a Base, stream: &str, pager: AnyPager, selector: &str) -> Self {
        let client = base.client.as_ref();
        Pages {
            client,
            pager,
            guard: PageGuard::new(
                PageScope::vendor(&base.source, stream),
                base.cfg.page_limits,
                client.redactor().clone(),
            ),
            selector: JsonPath::parse(selector),
            check: None,
            unavailable: UNAVAILABLE,
            stop_on: None,
            stopped: None,
            pages: 0,
            headers: Vec::new(),
            last_page: None,
            done: false,
            no_content_ends: false,
            refusal: None,
        }
    }

    /// A refused page's error gets the kind `kind` says (by default
    /// [`ErrorKind::Unavailable`]).
    pub fn refusal_kind(mut self, kind: RefusalKind) -> Self {
        self.refusal = Some(kind);
        self
    }

    /// Sends `name: value` with every page request.
    pub fn header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    /// Only these statuses mean "unavailable" (a per-record endpoint's 404
    /// is an ordinary error, not a missing feature).
    pub fn unavailable_on(mut self, statuses: &'static [u16]) -> Self {
        self.unavailable = statuses;
        self
    }

    /// A response with `status` ends the paging instead of failing the read
    /// (`first_page_too`: even the first one); [`Pages::stopped`] then says
    /// so, for vendors whose refusal means "stop here" (HubSpot's search
    /// past its result cap) or "ask differently" (Gusto's date horizon).
    pub fn stop_on(mut self, status: u16, first_page_too: bool) -> Self {
        self.stop_on = Some((status, first_page_too));
        self
    }

    /// The refusal that ended the paging, if one did.
    pub fn stopped(&self) -> Option<&Stopped> {
        self.stopped.as_ref()
    }

    /// The cursor the next body-paged request would send.
    pub fn body_cursor(&self) -> Option<&str> {
        match &self.pager {
            AnyPager::Body(p) => p.cursor(),
            AnyPager::Url(_) => None,
        }
    }

    /// Ends the paging after a page whose body `last` calls the last one,
    /// even if it still names a next page.
    pub fn last_page_when(mut self, last: LastPage) -> Self {
        self.last_page = Some(last);
        self
    }

    /// A `204 No Content` answer ends the paging (ADP's end signal) instead
    /// of failing as a body that is not JSON.
    pub fn no_content_ends(mut self) -> Self {
        self.no_content_ends = true;
        self
    }

    pub fn check_body(mut self, check: BodyCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// The next page, or `None` when the pager is done, the read was
    /// cancelled or a [`Pages::stop_on`] status ended it.
    pub async fn next(&mut self, cancel: &CancelFlag) -> Result<Option<Page>, ConnectorError> {
        if cancel.is_cancelled() || self.stopped.is_some() || self.done {
            return Ok(None);
        }
        let req = match &mut self.pager {
            AnyPager::Url(p) => p.next_url().map(HttpRequest::get),
            AnyPager::Body(p) => p.next_request(),
        };
        let Some(mut req) = req else {
            return Ok(None);
        };
        req.headers.extend(self.headers.iter().cloned());
        self.guard.check(&req)?;
        let stop = self
            .stop_on
            .filter(|(_, first_too)| *first_too || self.pages > 0)
            .map(|(s, _)| s);
        let pass = statuses(self.unavailable.iter().copied().chain(stop));
        let resp = self.client.send_passing(&req, &pass).await?;
        if !resp.status.is_success() {
            let code = resp.status.as_u16();
            if Some(code) == stop {
                self.stopped = Some(Stopped {
                    error: self.client.failure(&req, &resp, ErrorKind::Http),
                    body: resp.body,
                });
                return Ok(None);
            }
            let kind = self.refusal.map_or(ErrorKind::Unavailable, |f| f(&resp));
            return Err(self.client.failure(&req, &resp, kind));
        }
        if self.no_content_ends && resp.status == reqwest::StatusCode::NO_CONTENT {
            self.done = true;
            return Ok(None);
        }
        self.pages += 1;
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
        self.guard.page(&req, records.len(), &resp.body)?;
        match &mut self.pager {
            AnyPager::Url(p) => p.advance(&resp, &body, records.len()),
            AnyPager::Body(p) => p.advance(&body, records.len()),
        }
        self.done = self.last_page.is_some_and(|last| last(&body));
        Ok(Some(Page { records, body }))
    }
}

fn statuses(codes: impl Iterator<Item = u16>) -> Vec<reqwest::StatusCode> {
    codes
        .filter_map(|c| reqwest::StatusCode::from_u16(c).ok())
        .collect()
}

/// Sends one request and parses its JSON body, applying `check`; a 403 or
/// 404 is [`ErrorKind::Unavailable`].
pub(crate) async fn fetch_json(
    client: &HttpClient,
    req: &HttpRequest,
    check: Option<BodyCheck>,
) -> Result<(HttpResponse, Value), ConnectorError> {
    let resp = client
        .send_passing(req, &statuses(UNAVAILABLE.iter().copied()))
        .await?;
    if !resp.status.is_success() {
        return Err(client.failure(req, &resp, ErrorKind::Unavailable));
    }
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
        let start = client.redactor().snippet(&resp.body);
        // An API whose default is XML (Xero) answers XML when it did not
        // see `Accept: application/json`: name that, not just a parse error.
        let xml = resp
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|t| t.contains("xml"))
            .map(str::to_string)
            .or_else(|| {
                let t = String::from_utf8_lossy(&resp.body[..resp.body.len().min(64)]).into_owned();
                t.trim_start().starts_with('<').then(|| "a body starting with `<`".to_string())
            });
        let message = match xml {
            Some(kind) => format!(
                "{shown}: the server answered XML ({kind}), not JSON — the request's \
                 `Accept: application/json` was not honoured (a proxy dropping headers?); body starts: {start}"
            ),
            None => format!("{shown}: response is not valid JSON ({e}); body starts: {start}"),
        };
        ConnectorError::new(ErrorKind::Data, message)
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

    /// The table (stream) the rows go to.
    pub fn table_name(&self) -> &'static str {
        self.table.name
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

/// The state key holding the fingerprints of the records at the cursor.
pub(crate) const BOUNDARY: &str = "boundary";

/// A stable fingerprint of a projected row (FNV-1a over its JSON text):
/// the same record sent again unchanged has the same one. Stable across
/// processes and Rust versions, since it is kept in stream states.
pub(crate) fn fingerprint(row: &Map<String, Value>) -> String {
    let text = serde_json::to_string(row).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The newest cursor instant of a read and the records seen at it, so that
/// an inclusive cursor (`>=`, `gte|`, `start_time=`) does not emit the same
/// unchanged record twice: neither the boundary records the last run ended
/// on (their fingerprints travel in the state), nor those a page boundary
/// repeats within a read. A record that changed has a new fingerprint and
/// is emitted; nothing is skipped that the warehouse does not already hold
/// exactly. Only the rows at the newest instant are remembered, which is
/// all an ascending read sends again; an API that does not sort by the
/// cursor still has the last run's boundary records recognised, wherever
/// they come.
pub(crate) struct Boundary {
    /// The last run's cursor and the records it had emitted at it.
    last: Option<DateTime<Utc>>,
    last_seen: std::collections::HashSet<String>,
    /// This read's newest instant and the records at it.
    at: Option<DateTime<Utc>>,
    seen: std::collections::HashSet<String>,
}

impl Boundary {
    /// Resumes from a saved state whose cursor is `since`.
    pub fn resume(state: Option<&Json>, since: Option<DateTime<Utc>>) -> Self {
        let last_seen: std::collections::HashSet<String> = state
            .and_then(|s| s.get(BOUNDARY))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Boundary {
            last: since,
            seen: last_seen.clone(),
            last_seen,
            at: since,
        }
    }

    /// Whether to emit `row`, whose cursor field holds `at`.
    pub fn fresh(&mut self, row: &Map<String, Value>, at: Option<&Value>) -> bool {
        let Some(t) = at
            .and_then(Value::as_str)
            .and_then(crate::json_arrow::parse_timestamp)
        else {
            return true;
        };
        let fp = fingerprint(row);
        let emitted_last_run = self.last == Some(t) && self.last_seen.contains(&fp);
        let new_here = match self.at {
            Some(b) if t < b => true,
            Some(b) if t == b => self.seen.insert(fp),
            _ => {
                self.at = Some(t);
                self.seen.clear();
                self.seen.insert(fp);
                true
            }
        };
        new_here && !emitted_last_run
    }

    /// `{"cursor": …, "boundary": […]}` for the next run.
    pub fn state(&self) -> Json {
        let mut seen: Vec<&String> = self.seen.iter().collect();
        seen.sort();
        serde_json::json!({ "cursor": self.at.map(iso_millis), BOUNDARY: seen })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: i64, at: &str, v: &str) -> Map<String, Value> {
        json!({"id": id, "updated_at": at, "v": v})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn fingerprints_are_fixed_values_since_states_keep_them() {
        // FNV-1a 64 of `{"id":1,"updated_at":"2024-06-03T08:00:00Z","v":"a"}`,
        // checked independently. A drift would re-emit each boundary row
        // once, no more; still, it must not drift silently.
        assert_eq!(
            fingerprint(&row(1, "2024-06-03T08:00:00Z", "a")),
            "02de434ab27105de"
        );
        assert_ne!(
            fingerprint(&row(1, "2024-06-03T08:00:00Z", "a")),
            fingerprint(&row(1, "2024-06-03T08:00:00Z", "b"))
        );
    }

    #[test]
    fn boundary_rows_are_emitted_once_and_changed_ones_again() {
        let (t1, t2) = ("2024-06-03T08:00:00Z", "2024-06-03T08:01:00Z");
        let mut b = Boundary::resume(None, None);
        let at = |r: &Map<String, Value>| r.get("updated_at").cloned();
        for r in [row(1, t1, "a"), row(2, t2, "a")] {
            assert!(b.fresh(&r, at(&r).as_ref()));
        }
        // A page boundary repeats the last row: skipped.
        let again = row(2, t2, "a");
        assert!(!b.fresh(&again, at(&again).as_ref()));
        let state = b.state();
        assert_eq!(state["boundary"].as_array().unwrap().len(), 1);

        // The next run: the same boundary row unchanged is skipped, even
        // after a newer row (an API that does not sort); changed, emitted.
        let since = crate::json_arrow::parse_timestamp(t2);
        let mut b = Boundary::resume(Some(&state), since);
        let newer = row(3, "2024-06-03T08:02:00Z", "a");
        assert!(b.fresh(&newer, at(&newer).as_ref()));
        assert!(!b.fresh(&again, at(&again).as_ref()));
        let changed = row(2, t2, "b");
        assert!(b.fresh(&changed, at(&changed).as_ref()));
        // Rows without a cursor value are always emitted.
        assert!(b.fresh(&row(4, "", "a"), None));
        assert_eq!(b.state()["cursor"], "2024-06-03T08:02:00.000Z");
    }
}
