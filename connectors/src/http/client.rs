//! The HTTP client every connector uses: auth, retries with backoff and
//! jitter on 429/5xx/timeouts honouring `Retry-After`, a per-host rate
//! budget, and errors that name the URL (without secrets), status and body.

use std::sync::Arc;
use std::time::Duration;

use conveyor_config::{HttpConfig, RequestWindow};
use conveyor_plugin_api::{ConnectorError, ErrorKind};
use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::auth::{without_url, AuthProvider};
use super::ratelimit::{self, RateLimiter};
use super::redact::Redactor;
use super::tls::{self, ClientTls};

/// How many characters of an error body to quote.
const SNIPPET_CHARS: usize = 300;

/// Redirects followed for one request (reqwest's default).
const MAX_REDIRECTS: usize = 10;

#[derive(Debug)]
pub struct HttpResponse {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// A request; `body` is sent as JSON when present.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
}

impl HttpRequest {
    pub fn get(url: Url) -> Self {
        HttpRequest {
            method: Method::GET,
            url,
            headers: Vec::new(),
            json: None,
        }
    }
}

pub struct HttpClient {
    http: reqwest::Client,
    cfg: HttpConfig,
    auth: Arc<AuthProvider>,
    headers: Vec<(String, String)>,
    limiter: Arc<RateLimiter>,
    /// The budget of the calls a documented limit singles out by path.
    scoped_limiter: Option<(&'static str, Arc<RateLimiter>)>,
    redactor: Redactor,
    /// Pulls the vendor's own message out of an error body, so errors
    /// quote it instead of a raw snippet.
    error_message: Option<ErrorMessageFn>,
    /// Who refuses a client certificate, in errors.
    tls_peer: String,
    /// Like `error_message`, for vendors that name the error in a header
    /// (AWS's `x-amzn-ErrorType`); asked first.
    error_reader: Option<ErrorReaderFn>,
}

/// Reads a vendor's error message from a response body.
pub type ErrorMessageFn = fn(&[u8]) -> Option<String>;

/// Reads a vendor's error message from a response's headers and body.
pub type ErrorReaderFn = fn(&HeaderMap, &[u8]) -> Option<String>;

impl HttpClient {
    pub fn new(
        cfg: HttpConfig,
        host: &str,
        auth: AuthProvider,
        headers: Vec<(String, String)>,
        redactor: Redactor,
    ) -> Result<Self, ConnectorError> {
        Self::with_tls(cfg, host, auth, headers, redactor, ClientTls::default())
    }

    /// Like [`HttpClient::new`], presenting `tls`'s client certificate and
    /// trusting its extra roots on every connection, token calls included.
    pub fn with_tls(
        cfg: HttpConfig,
        host: &str,
        mut auth: AuthProvider,
        headers: Vec<(String, String)>,
        redactor: Redactor,
        tls: ClientTls,
    ) -> Result<Self, ConnectorError> {
        let builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("conveyor/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect_policy());
        auth.name_tls_peer(&tls.peer);
        let http = tls.apply(builder).build().map_err(|e| {
            ConnectorError::new(ErrorKind::Config, format!("cannot build HTTP client: {e}"))
        })?;
        // Every client keeps to a budget, configured or not: the vendor's
        // headers pace it even when nothing else does.
        let (limiter, scoped_limiter) = match cfg.documented_limit {
            Some(
                w @ RequestWindow {
                    scope: Some(scope), ..
                },
            ) => (
                ratelimit::for_host(host, cfg.requests_per_second, None),
                Some((
                    scope,
                    ratelimit::for_host(&format!("{host}{scope}"), None, Some(w)),
                )),
            ),
            window => (
                ratelimit::for_host(host, cfg.requests_per_second, window),
                None,
            ),
        };
        Ok(HttpClient {
            http,
            cfg,
            auth: Arc::new(auth),
            headers,
            limiter,
            scoped_limiter,
            redactor,
            error_message: None,
            tls_peer: tls.peer,
            error_reader: None,
        })
    }

    /// Errors quote what `f` finds in the body (falling back to a snippet).
    pub fn with_error_message(mut self, f: ErrorMessageFn) -> Self {
        self.error_message = Some(f);
        self
    }

    /// Errors quote what `f` finds in the headers and body (before any
    /// [`HttpClient::with_error_message`] reader, then a snippet).
    pub fn with_error_reader(mut self, f: ErrorReaderFn) -> Self {
        self.error_reader = Some(f);
        self
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Keeps access tokens whose answer gave no lifetime until the API
    /// refuses them (see [`AuthProvider::keep_tokens_until_refused`]).
    pub fn keep_tokens_until_refused(&self) {
        self.auth.keep_tokens_until_refused();
    }

    /// The API host the token endpoint named (`instance_url`), if it did;
    /// fetches a token first when none is held.
    pub async fn instance_url(&self) -> Result<Option<Url>, ConnectorError> {
        self.auth.instance_url(&self.http).await
    }

    /// Sends `req`, retrying transient failures. Only a 2xx response is `Ok`.
    pub async fn send(&self, req: &HttpRequest) -> Result<HttpResponse, ConnectorError> {
        self.send_passing(req, &[]).await
    }

    /// Like [`HttpClient::send`], but a final response with a status in
    /// `pass` comes back as `Ok` for the caller to judge (a 403 that means
    /// "this account has no such data", a 400 that means "past the search
    /// cap"). A 401 still triggers the one token refresh first, and
    /// retryable statuses (429, 5xx) are retried as usual, never passed.
    pub async fn send_passing(
        &self,
        req: &HttpRequest,
        pass: &[StatusCode],
    ) -> Result<HttpResponse, ConnectorError> {
        let shown = self.redactor.url(&req.url);
        let host = req.url.host_str().unwrap_or("").to_string();
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let mut builder = self.http.request(req.method.clone(), req.url.clone());
            for (k, v) in self.headers.iter().chain(req.headers.iter()) {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if let Some(j) = &req.json {
                builder = builder.json(j);
            }
            // Credentials first (a token grant may take a round trip): the
            // slot is the moment the request leaves, which the window counts.
            let builder = self.auth.apply(&self.http, builder).await?;
            let asked = Instant::now();
            if let Some((_, scoped)) = self
                .scoped_limiter
                .as_ref()
                .filter(|(scope, _)| req.url.path().contains(scope))
            {
                scoped.acquire().await;
            }
            self.limiter.acquire().await;
            super::stats::rate_wait(&host, asked.elapsed());
            let outcome = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok(HttpResponse {
                            url: req.url.clone(),
                            status,
                            headers,
                            body,
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            super::stats::request(&host, outcome.as_ref().ok().map(|r| r.status.as_u16()));
            // The vendor's own count of what is left paces the next requests,
            // so the budget runs out at the window's reset, not before it.
            if let Ok(resp) = &outcome {
                if let Some(b) =
                    super::budget::from_headers(&resp.headers, chrono::Utc::now().timestamp())
                {
                    self.limiter.observe(b);
                }
            }
            let (retry_after, failure) = match outcome {
                Ok(resp) if resp.status.is_success() => return Ok(resp),
                Ok(resp)
                    if resp.status == StatusCode::UNAUTHORIZED
                        && !reauthenticated
                        && self.auth.invalidate().await =>
                {
                    // An OAuth access token expired early or was revoked:
                    // fetch a new one once and repeat the request.
                    reauthenticated = true;
                    tracing::debug!(url = %shown, "access token refused; refreshing");
                    continue;
                }
                Ok(resp) if pass.contains(&resp.status) && !is_retryable_status(resp.status) => {
                    return Ok(resp)
                }
                Ok(resp) if is_retryable_status(resp.status) => {
                    let wait = retry_after(&resp.headers);
                    let failure = self.describe(req, &shown, &resp);
                    (wait, ConnectorError::new(ErrorKind::Transient, failure))
                }
                Ok(resp) => {
                    let kind = match resp.status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Auth,
                        _ => ErrorKind::Http,
                    };
                    return Err(ConnectorError::new(kind, self.describe(req, &shown, &resp)));
                }
                // A refused client certificate is refused again on every try.
                Err(e) if tls::refused_certificate(&e).is_some() => {
                    let why = tls::refused_certificate(&e).unwrap_or_default();
                    return Err(tls::refusal_error(
                        &self.tls_peer,
                        req.method.as_str(),
                        &shown,
                        why,
                    ));
                }
                // A redirect loop, or a chain past the cap, answers the same
                // way every time: retrying it only multiplies the requests.
                Err(e) if e.is_redirect() => {
                    return Err(ConnectorError::new(
                        ErrorKind::Http,
                        self.redirect_failure(req, &shown, &e),
                    ))
                }
                Err(e) => (
                    None,
                    ConnectorError::new(
                        ErrorKind::Transient,
                        format!(
                            "{} {shown}: {}",
                            req.method,
                            self.redactor.scrub(&without_url(&e))
                        ),
                    ),
                ),
            };
            if attempt >= self.cfg.max_retries {
                return Err(ConnectorError::new(
                    failure.kind,
                    format!(
                        "{} (gave up after {} attempts)",
                        failure.message,
                        attempt + 1
                    ),
                ));
            }
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            tracing::warn!(url = %shown, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %failure, "retrying");
            super::stats::retry(&host);
            if retry_after.is_some() {
                self.limiter.pause_until(Instant::now() + delay).await;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Exponential backoff with full jitter, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.cfg.backoff_base.as_millis() as u64;
        let cap = self.cfg.backoff_max.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        Duration::from_millis(rand::rng().random_range(exp / 2..=exp))
    }

    /// The error a refused response makes, with `kind`: method, URL
    /// without secrets, status and the vendor's message.
    pub(crate) fn failure(
        &self,
        req: &HttpRequest,
        resp: &HttpResponse,
        kind: ErrorKind,
    ) -> ConnectorError {
        let shown = self.redactor.url(&req.url);
        ConnectorError::new(kind, self.describe(req, &shown, resp))
    }

    fn describe(&self, req: &HttpRequest, shown: &str, resp: &HttpResponse) -> String {
        let found = self
            .error_reader
            .and_then(|f| f(&resp.headers, &resp.body))
            .or_else(|| self.error_message.and_then(|f| f(&resp.body)));
        let text = match found {
            Some(message) => self.redactor.scrub(&message),
            None => self.redactor.snippet(&resp.body),
        };
        format!("{} {shown}: HTTP {}: {text}", req.method, resp.status)
    }

    /// What a refused redirect chain says: where it was going, and that it
    /// was not retried.
    fn redirect_failure(&self, req: &HttpRequest, shown: &str, e: &reqwest::Error) -> String {
        let last = e
            .url()
            .map(|u| format!(" (last stop {})", self.redactor.url(u)))
            .unwrap_or_default();
        format!(
            "{} {shown}: {}{last}; not retried, since a redirect chain that does not end \
             answers the same every time (check base_url and the path: the API may be \
             sending the request to a login or error page)",
            req.method,
            self.redactor.scrub(&without_url(e))
        )
    }
}

/// Follows up to [`MAX_REDIRECTS`] redirects, and refuses at once one back
/// to a URL this chain already visited: a loop never ends, so there is no
/// point in walking it up to the cap.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().contains(attempt.url()) {
            attempt.error(RedirectRefused::Loop)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(RedirectRefused::TooMany)
        } else {
            attempt.follow()
        }
    })
}

/// Why a redirect was not followed.
#[derive(Debug)]
enum RedirectRefused {
    Loop,
    TooMany,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectRefused::Loop => {
                f.write_str("redirect loop: redirected back to a URL already visited")
            }
            RedirectRefused::TooMany => write!(f, "more than {MAX_REDIRECTS} redirects"),
        }
    }
}

impl std::error::Error for RedirectRefused {}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT || s.is_server_error()
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        // "NaN" and "inf" parse as floats; they are not a delay (and NaN
        // would panic in from_secs_f64).
        return secs
            .is_finite()
            .then(|| Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(secs.clamp(0, 3_600_000) as u64))
}

/// The start of a body, on one line, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > SNIPPET_CHARS {
        let cut: String = one_line.chars().take(SNIPPET_CHARS).collect();
        format!("{cut}…")
    } else if one_line.is_empty() {
        "(empty body)".into()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        for odd in ["NaN", "inf", "-inf"] {
            h.insert("retry-after", odd.parse().unwrap());
            assert_eq!(retry_after(&h), None, "{odd}");
        }
    }

    #[test]
    fn snippet_is_short_and_one_line() {
        let long = "x".repeat(1000);
        assert_eq!(snippet(long.as_bytes()).chars().count(), SNIPPET_CHARS + 1);
        assert_eq!(snippet(b"{\n  \"a\": 1\n}"), "{ \"a\": 1 }");
    }
}
