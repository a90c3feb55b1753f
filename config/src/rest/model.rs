//! The validated REST source: what the declarative REST connector runs.

use std::time::Duration;

use crate::http::HttpConfig;
use crate::secret::SecretRef;

/// The declarative REST connector.
#[derive(Debug, Clone)]
pub struct RestSourceConfig {
    pub base_url: url::Url,
    pub auth: AuthConfig,
    pub headers: Vec<(String, String)>,
    pub pagination: PaginationConfig,
    pub http: HttpConfig,
    pub streams: Vec<RestStreamConfig>,
}

#[derive(Debug, Clone)]
pub enum AuthConfig {
    None,
    ApiKey {
        location: KeyLocation,
        key: SecretRef,
    },
    Basic {
        username: String,
        password: SecretRef,
    },
    Bearer {
        token: SecretRef,
    },
    /// HTTP Basic with the key as the user name and an empty password
    /// (Lever's `api_key:`): the key is a secret, unlike a Basic user name.
    BasicApiKey {
        key: SecretRef,
    },
    OAuth2ClientCredentials {
        token_url: url::Url,
        client_id: String,
        client_secret: SecretRef,
        scope: Option<String>,
    },
    /// Refresh-token grant. When the server rotates the refresh token, the
    /// new one is stored (sealed) in the warehouse before it is used.
    OAuth2RefreshToken {
        token_url: url::Url,
        client_id: String,
        client_secret: SecretRef,
        refresh_token: SecretRef,
    },
    /// AWS Signature Version 4 (Amazon Connect): every request signed with
    /// the secret access key for `region` and `service`; a temporary
    /// credential's session token goes along as `X-Amz-Security-Token`.
    AwsSigV4 {
        access_key_id: String,
        secret_access_key: SecretRef,
        session_token: Option<SecretRef>,
        region: String,
        service: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    Header(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PaginationConfig {
    /// One request per stream.
    None,
    /// The body holds the next page's URL (absolute or relative); stop when
    /// it is missing or null, or when `count_path` reads below `min_count`
    /// (APIs whose next link is never null).
    NextUrl {
        next_path: JsonPath,
        count_path: Option<JsonPath>,
        min_count: u64,
    },
    /// `Link: <…>; rel="next"`; follow it exactly, stop when absent.
    LinkHeader,
    /// A token in the body is sent back as a query parameter.
    CursorToken {
        cursor_path: JsonPath,
        cursor_param: String,
    },
    /// `offset`/`limit` parameters; stop on a short page.
    OffsetLimit {
        offset_param: String,
        limit_param: String,
        limit: u64,
        start_offset: u64,
    },
    /// `page`/`per_page` parameters; stop on a short or empty page, or past
    /// the total-pages header when the API sends one.
    PageNumber {
        page_param: String,
        size_param: String,
        size: u64,
        start_page: u64,
        total_pages_header: Option<String>,
    },
}

/// A dotted path into a JSON document (`data`, `QueryResponse.Invoice`);
/// empty means the document itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonPath(pub Vec<String>);

impl JsonPath {
    pub fn parse(s: &str) -> JsonPath {
        let s = s.trim().trim_start_matches('$').trim_start_matches('.');
        JsonPath(
            s.split('.')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("$")
        } else {
            write!(f, "{}", self.0.join("."))
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestStreamConfig {
    /// Also the warehouse table name.
    pub name: String,
    /// Path relative to `base_url`, or an absolute URL.
    pub path: String,
    /// Query parameters; values may use `{offset}`, `{limit}`, `{page}` and
    /// `{cursor}` placeholders.
    pub params: Vec<(String, String)>,
    pub record_selector: JsonPath,
    pub primary_key: Vec<String>,
    pub incremental: Option<IncrementalConfig>,
    /// Overrides the source's pagination.
    pub pagination: Option<PaginationConfig>,
    /// Bounds on one read's paging: each limit from the stream's own key,
    /// else its `pagination` table, else the source's, else the default.
    pub page_limits: PageLimits,
}

/// Bounds on one read's paging, so an API that never stops handing out
/// next pages ends the read with an error instead of spinning forever.
/// (A next page already fetched in the read is always an error: no limit.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Pages one read may fetch (`max_pages`).
    pub max_pages: u64,
    /// Consecutive pages without records after which a read that is still
    /// handed next pages stops (`max_empty_pages`).
    pub max_empty_pages: u64,
}

impl PageLimits {
    /// 100,000 pages: a legitimately huge first sync (tens of millions of
    /// records at 100–1,000 a page) stays well inside it, while an API that
    /// keeps handing out full pages of the same data still ends.
    pub const DEFAULT_MAX_PAGES: u64 = 100_000;
    /// 100 empty pages in a row: APIs that filter a page after slicing it
    /// (deleted or hidden records) can return runs of empty pages mid-stream
    /// — 100 of them is 10,000+ consecutive hidden records — while an API
    /// handing out new links to nothing forever costs a read only 100
    /// cheap requests.
    pub const DEFAULT_MAX_EMPTY_PAGES: u64 = 100;
}

impl Default for PageLimits {
    fn default() -> Self {
        PageLimits {
            max_pages: Self::DEFAULT_MAX_PAGES,
            max_empty_pages: Self::DEFAULT_MAX_EMPTY_PAGES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IncrementalConfig {
    /// The record field whose maximum becomes the cursor; a dotted path
    /// reaches into nested objects (`MetaData.LastUpdatedTime`).
    pub cursor_field: String,
    /// Where the cursor is sent; `None` when only a `{cursor}` placeholder
    /// in the stream's params uses it.
    pub location: Option<KeyLocation>,
    /// How the cursor is rendered into the request.
    pub value_format: CursorFormat,
    /// Text around the value, e.g. `gte|{cursor}` for Greenhouse.
    pub template: String,
    /// Re-read this far behind the saved cursor, for late-arriving updates.
    pub lookback: Duration,
    /// Cursor for the first sync; `None` fetches everything.
    pub start: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorFormat {
    /// The cursor as seen in the data (after look-back, RFC 3339 in UTC).
    Rfc3339,
    UnixSeconds,
    UnixMillis,
}
