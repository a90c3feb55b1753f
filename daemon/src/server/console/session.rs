//! Who may use the console: a login with the endpoint's token (the
//! configured `server.token`, or the daemon's 0600 token file) opens a
//! session kept in this process's memory. The browser holds only a random
//! session id in an HttpOnly, SameSite=Strict cookie (Secure under TLS) —
//! never the token. Every POST must carry the session's CSRF token, on top
//! of SameSite=Strict; every request must name this server in its Host
//! header, as for the API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::Console;

/// The session cookie's name.
pub const COOKIE: &str = "conveyor_console";
/// A session ends after this long without a request …
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// … and in any case this long after login.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Sessions kept at most (the oldest goes first): logins need the token, so
/// this only bounds memory.
const MAX_SESSIONS: usize = 256;
/// Failed logins accepted per minute before logins are refused for the rest
/// of it: a configured token may be short enough to guess at speed.
const FAILURES_PER_MINUTE: u32 = 20;
/// Largest form body accepted (the console's forms are a few fields).
pub const MAX_FORM: usize = 64 * 1024;

/// What a logged-in browser has, as handlers see it.
#[derive(Clone, Debug)]
pub struct Session {
    /// Put in every form; a POST without it is refused.
    pub csrf: String,
    /// The name given at login: the default author of a silence.
    pub author: String,
    /// Set by an action, shown once by the next page.
    pub flash: Option<String>,
    /// The key the session is kept under (a hash of the cookie's id).
    key: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    // Keyed by SHA-256 of the id, so a lookup's timing says nothing about
    // the id itself.
    live: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<Option<(Instant, u32)>>,
}

fn random_text() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session; returns the id for the cookie.
    pub fn open(&self, author: &str) -> String {
        let id = random_text();
        let now = Instant::now();
        let session = Session {
            csrf: random_text(),
            author: author.to_string(),
            flash: None,
            key: key_of(&id),
            created: now,
            last_seen: now,
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, s| fresh(s, now));
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.values().min_by_key(|s| s.last_seen).map(|s| s.key) {
                live.remove(&oldest);
            }
        }
        live.insert(session.key, session);
        id
    }

    /// The session of cookie id `id`, if it is still fresh (its flash is
    /// handed over and cleared).
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let key = key_of(id);
        let s = live.get_mut(&key)?;
        if !fresh(s, now) {
            live.remove(&key);
            return None;
        }
        s.last_seen = now;
        let out = s.clone();
        s.flash = None;
        Some(out)
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, session: &Session, message: String) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = live.get_mut(&session.key) {
            s.flash = Some(message);
        }
    }

    pub fn close(&self, session: &Session) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(&session.key);
    }

    /// Counts a failed login; false once the minute's budget is spent.
    pub fn failed_login(&self) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (since, n) = match *f {
            Some((since, n)) if now.duration_since(since) < Duration::from_secs(60) => (since, n),
            _ => (now, 0),
        };
        *f = Some((since, n + 1));
        n < FAILURES_PER_MINUTE
    }

    /// Whether logins are refused for now (too many failures this minute).
    pub fn throttled(&self) -> bool {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*f, Some((since, n)) if since.elapsed() < Duration::from_secs(60) && n >= FAILURES_PER_MINUTE)
    }
}

fn fresh(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < LIFETIME
}

/// The cookie that opens session `id` (Path=/console: the API never sees it).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The cookie that ends it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id the request's cookies carry.
fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Compares without stopping at the first difference.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `csrf` field of an urlencoded form body.
fn form_csrf(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// A plain refusal page (no data in it, so nothing to escape).
pub fn refuse(code: StatusCode, message: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// Refuses a request whose Host header does not name this server (DNS
/// rebinding), as the API does.
pub async fn require_host(State(c): State<Console>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if !c.gate.host_allowed(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this Host is not served here (add it to server.allowed_hosts)\n",
        );
    }
    next.run(req).await
}

/// The console's pages behind the login: no session → to the login page
/// (GET) or refused (anything else); a POST must carry the session's CSRF
/// token in its form (`csrf`) and must not come from another site.
pub async fn require_session(State(c): State<Console>, req: Request, next: Next) -> Response {
    let session = cookie_id(req.headers()).and_then(|id| c.sessions.get(&id));
    let Some(session) = session else {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("/console/login?next={next}"))],
            )
                .into_response();
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "log in to the console first (/console/login)\n",
        );
    };
    let req = if req.method() == Method::GET || req.method() == Method::HEAD {
        req
    } else {
        // Browsers say where a request comes from; another site never
        // gets to act here, whatever it managed to send.
        let cross = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        if cross {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: this request came from another site\n",
            );
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "this form is too large\n");
        };
        let ok = form_csrf(&bytes)
            .is_some_and(|given| same_secret(given.as_bytes(), session.csrf.as_bytes()));
        if !ok {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or wrong (reload the page and try again)\n",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    let mut req = req;
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// Headers on every console response: no caching of pages with data in
/// them, no framing, no scripts at all (the console uses none, so an
/// injected one would not run even if escaping failed), styles only from
/// the console itself.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, header::HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_sessions_open_expire_and_close() {
        let s = Sessions::default();
        let id = s.open("lead");
        let got = s.get(&id).expect("fresh");
        assert_eq!(got.author, "lead");
        assert!(got.csrf.len() >= 40 && got.csrf != id);
        assert!(s.get("not-an-id").is_none());
        s.flash(&got, "done".into());
        assert_eq!(s.get(&id).unwrap().flash.as_deref(), Some("done"));
        assert_eq!(s.get(&id).unwrap().flash, None, "a flash shows once");
        // An idle session is gone.
        s.live
            .lock()
            .unwrap()
            .get_mut(&key_of(&id))
            .unwrap()
            .last_seen = Instant::now() - IDLE - Duration::from_secs(1);
        assert!(s.get(&id).is_none());
        let id = s.open("x");
        s.close(&s.get(&id).unwrap());
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn console_sessions_are_bounded_and_logins_throttled() {
        let s = Sessions::default();
        let first = s.open("a");
        for _ in 0..MAX_SESSIONS {
            s.open("b");
        }
        assert_eq!(s.live.lock().unwrap().len(), MAX_SESSIONS);
        assert!(s.get(&first).is_none(), "the oldest went first");
        for _ in 0..FAILURES_PER_MINUTE {
            assert!(s.failed_login());
        }
        assert!(!s.failed_login());
        assert!(s.throttled());
    }

    #[test]
    fn console_cookie_and_form_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; conveyor_console=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_id(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, "conveyor_console=".parse().unwrap());
        assert_eq!(cookie_id(&h), None);
        assert_eq!(
            form_csrf(b"x=1&csrf=a%2Bb&y=2").as_deref(),
            Some("a+b"),
            "decoded like the form"
        );
        assert_eq!(form_csrf(b"x=1"), None);
        let c = set_cookie("id", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie("id", false).contains("Secure"));
        assert!(
            same_secret(b"abc", b"abc")
                && !same_secret(b"abc", b"abd")
                && !same_secret(b"ab", b"abc")
        );
    }
}
