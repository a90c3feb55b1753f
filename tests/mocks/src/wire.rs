//! HTTP plumbing shared by every mock: request logs, credentials, JSON replies, cursors, timestamps.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// One request as a mock received it, kept so tests can assert on what a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLog {
    pub method: String,
    pub path: String,
    /// Raw query string without the `?` (empty when absent).
    pub query: String,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
}

impl RequestLog {
    pub(crate) fn of(req: &Request) -> Self {
        RequestLog {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
        }
    }

    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        query_pairs(&self.query)
    }
}

pub(crate) fn json(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// Adds headers to a response, keeping any the handler already set (faults set their own).
pub(crate) fn with_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().entry(HeaderName::from_static(name)).or_insert(v);
        }
    }
    resp
}

pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header_str(headers, "authorization")?.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `(user, password)` from an HTTP Basic header; splits at the first `:` as RFC 7617 says.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let decoded =
        String::from_utf8(STANDARD.decode(authorization(headers, "basic")?).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "bearer")
}

/// Token-endpoint fields from a form or JSON body (Gusto posts JSON, most others post forms).
pub(crate) fn form_fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_json = header_str(headers, "content-type").is_some_and(|c| c.contains("json"));
    if !is_json {
        return url::form_urlencoded::parse(body).into_owned().collect();
    }
    let obj = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let fields = obj.as_object().into_iter().flatten();
    fields.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

/// `http://<Host header>`, so next-page links point back at whichever loopback port was hit.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    format!("http://{}", header_str(headers, "host").unwrap_or("127.0.0.1"))
}

/// Unique, unguessable-enough token: a process-wide counter plus the clock.
pub(crate) fn unique_token(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{prefix}-{n:x}-{:x}", mix(nanos as u64, n))
}

/// Opaque cursor: URL-safe base64 of a small JSON object.
pub(crate) fn encode_cursor(state: &Value) -> String {
    URL_SAFE_NO_PAD.encode(state.to_string())
}

pub(crate) fn decode_cursor(raw: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).ok()?).ok()
}

/// ISO-8601 UTC with milliseconds, e.g. `2024-06-01T00:00:00.000Z` (Greenhouse style).
pub(crate) fn iso_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Accepts RFC 3339 (any offset) or plain unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Utc.timestamp_opt(s.parse().ok()?, 0).single();
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// SplitMix64 finaliser: cheap deterministic pseudo-randomness without a `rand` dependency.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
