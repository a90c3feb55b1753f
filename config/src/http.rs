//! The HTTP settings every HTTP source takes — REST and vendor alike — and
//! their one validator into [`HttpConfig`].

use std::time::Duration;

use toml::Spanned;

use crate::validate::Checker;

/// The most pages a read may fetch ahead of the one being stored.
const MAX_PREFETCH_PAGES: usize = 256;
/// The slowest request rate a source may set: one request a day.
const MIN_REQUESTS_PER_SECOND: f64 = 1.0 / 86_400.0;

/// Transport behaviour shared by every stream of a source.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Requests per second per host, as the source sets it; `None` means
    /// no rate of its own (the vendor's documented limit, if any, applies).
    pub requests_per_second: Option<f64>,
    /// The vendor's documented limit, kept to when the source sets no
    /// `requests_per_second` of its own (which overrides it: a plan may
    /// allow more, or an account share its budget with other tools).
    pub documented_limit: Option<RequestWindow>,
    /// Pages fetched ahead of the one being loaded.
    pub prefetch_pages: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(30),
            max_retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            requests_per_second: None,
            documented_limit: None,
            prefetch_pages: 2,
        }
    }
}

/// A request limit as vendors document it: at most `requests` in any
/// span of `per` (a rolling window also bounds a fixed one, and a token
/// bucket's steady rate), for every call or only those whose path contains
/// `scope` (Zendesk limits its incremental exports apart from the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestWindow {
    pub requests: u32,
    pub per: Duration,
    pub scope: Option<&'static str>,
}

impl RequestWindow {
    pub const fn new(requests: u32, per_secs: u64) -> Self {
        RequestWindow {
            requests,
            per: Duration::from_secs(per_secs),
            scope: None,
        }
    }

    /// The same limit, for the calls whose path contains `scope` only.
    pub const fn on_paths_containing(self, scope: &'static str) -> Self {
        RequestWindow {
            scope: Some(scope),
            ..self
        }
    }
}

/// A source's HTTP keys, borrowed from its raw table (a source type that
/// lacks a key passes `None`).
pub(crate) struct HttpKeys<'r> {
    pub timeout_secs: &'r Option<Spanned<u64>>,
    pub max_retries: &'r Option<Spanned<u32>>,
    pub backoff_base_ms: &'r Option<Spanned<u64>>,
    pub backoff_max_secs: &'r Option<Spanned<u64>>,
    pub requests_per_second: &'r Option<Spanned<toml::Value>>,
    pub prefetch_pages: Option<&'r Spanned<u64>>,
}

impl Checker<'_> {
    /// Validates the HTTP keys of the source at `key`; every problem is
    /// reported, and `None` returned if there was one.
    pub(crate) fn http_settings(&mut self, key: &str, raw: HttpKeys<'_>) -> Option<HttpConfig> {
        let errors_before = self.error_count();
        let mut h = HttpConfig::default();
        if let Some(t) = raw.timeout_secs {
            if *t.get_ref() == 0 {
                self.error(
                    t.span(),
                    &format!("{key}.timeout_secs"),
                    "must be at least 1",
                );
            }
            h.timeout = Duration::from_secs(*t.get_ref());
        }
        if let Some(r) = raw.max_retries {
            h.max_retries = *r.get_ref();
        }
        if let Some(b) = raw.backoff_base_ms {
            h.backoff_base = Duration::from_millis(*b.get_ref());
        }
        if let Some(b) = raw.backoff_max_secs {
            h.backoff_max = Duration::from_secs(*b.get_ref());
        }
        if let Some(p) = raw.prefetch_pages {
            // Each page ahead is a parsed page in memory; far beyond a few
            // hundred is a typo, and a huge one would not fit the channel.
            match usize::try_from(*p.get_ref()) {
                Ok(n) if (1..=MAX_PREFETCH_PAGES).contains(&n) => h.prefetch_pages = n,
                _ => {
                    self.error(
                        p.span(),
                        &format!("{key}.prefetch_pages"),
                        format!("must be between 1 and {MAX_PREFETCH_PAGES}"),
                    );
                }
            }
        }
        if let Some(r) = raw.requests_per_second {
            h.requests_per_second = self.requests_per_second(r, key);
        }
        (self.error_count() == errors_before).then_some(h)
    }

    /// `requests_per_second`: a number of at least one request a day.
    fn requests_per_second(&mut self, r: &Spanned<toml::Value>, key: &str) -> Option<f64> {
        let v = match r.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        match v {
            // Below one request a day is a typo (and 1/rps would not fit a
            // Duration for absurdly small values).
            Some(v) if v.is_finite() && v >= MIN_REQUESTS_PER_SECOND => Some(v),
            _ => {
                self.error(
                    r.span(),
                    &format!("{key}.requests_per_second"),
                    format!("must be a number of at least {MIN_REQUESTS_PER_SECOND:.6} (one request a day)"),
                );
                None
            }
        }
    }
}
