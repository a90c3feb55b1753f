//! The raw form of a `[sources.NAME]` table that is not a vendor source —
//! a REST source, or a plugin's — with spans kept for diagnostics.
//!
//! `auth` and `pagination` are serde-tagged enums (`type = "…"`), one
//! variant struct per type with `deny_unknown_fields`, so each type declares
//! exactly the keys it takes; they are read through [`Tagged`] to keep spans.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::tagged::Tagged;
use crate::raw::S;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub schedule: Option<S<String>>,
    pub timezone: Option<S<String>>,
    pub base_url: Option<S<String>>,
    /// Decoded as a [`RawAuth`].
    pub auth: Option<S<Tagged>>,
    pub headers: Option<BTreeMap<String, S<String>>>,
    /// Decoded as a [`RawPagination`].
    pub pagination: Option<S<Tagged>>,
    pub timeout_secs: Option<S<u64>>,
    pub max_retries: Option<S<u32>>,
    pub backoff_base_ms: Option<S<u64>>,
    pub backoff_max_secs: Option<S<u64>>,
    pub requests_per_second: Option<S<toml::Value>>,
    pub prefetch_pages: Option<S<u64>>,
    pub streams: Option<Vec<S<RawStream>>>,
    /// A plugin source's options, handed to the plugin as JSON.
    pub options: Option<S<toml::Value>>,
    /// A plugin source's secrets (`env:`/`file:` references), resolved and
    /// added to its options.
    pub secrets: Option<BTreeMap<String, S<String>>>,
    /// A plugin source: `"in_process"` (default) or `"process"`.
    pub isolation: Option<S<String>>,
    /// A plugin source under process isolation: its address-space limit.
    pub memory_limit: Option<S<String>>,
}

/// `auth = { type = "…", … }`. Values carry no spans (serde buffers tagged
/// content); [`Tagged::spanned`] finds them.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawAuth {
    None(NoAuth),
    ApiKey(ApiKeyAuth),
    Basic(BasicAuth),
    Bearer(BearerAuth),
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials(ClientCredentialsAuth),
    #[serde(rename = "oauth2_refresh_token")]
    OAuth2RefreshToken(RefreshTokenAuth),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoAuth {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyAuth {
    pub key: Option<String>,
    pub header: Option<String>,
    pub query_param: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasicAuth {
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BearerAuth {
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientCredentialsAuth {
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshTokenAuth {
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
}

/// `pagination = { type = "…", … }`; every style also takes the page
/// limits `max_pages` and `max_empty_pages` (see `PageLimits`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawPagination {
    None(NoPaging),
    NextUrl(NextUrlPaging),
    LinkHeader(NoPaging),
    Cursor(CursorPaging),
    Offset(OffsetPaging),
    Page(PagePaging),
}

impl RawPagination {
    /// `max_pages` and `max_empty_pages`, whatever the style.
    pub fn limits(&self) -> [Option<u64>; 2] {
        let (a, b) = match self {
            RawPagination::None(p) | RawPagination::LinkHeader(p) => {
                (p.max_pages, p.max_empty_pages)
            }
            RawPagination::NextUrl(p) => (p.max_pages, p.max_empty_pages),
            RawPagination::Cursor(p) => (p.max_pages, p.max_empty_pages),
            RawPagination::Offset(p) => (p.max_pages, p.max_empty_pages),
            RawPagination::Page(p) => (p.max_pages, p.max_empty_pages),
        };
        [a, b]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoPaging {
    pub max_pages: Option<u64>,
    pub max_empty_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextUrlPaging {
    pub next_path: Option<String>,
    pub count_path: Option<String>,
    pub min_count: Option<u64>,
    pub max_pages: Option<u64>,
    pub max_empty_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CursorPaging {
    pub cursor_path: Option<String>,
    pub cursor_param: Option<String>,
    pub max_pages: Option<u64>,
    pub max_empty_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OffsetPaging {
    pub offset_param: Option<String>,
    pub limit_param: Option<String>,
    pub limit: Option<u64>,
    pub start_offset: Option<u64>,
    pub max_pages: Option<u64>,
    pub max_empty_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PagePaging {
    pub page_param: Option<String>,
    pub size_param: Option<String>,
    pub size: Option<u64>,
    pub start_page: Option<u64>,
    pub total_pages_header: Option<String>,
    pub max_pages: Option<u64>,
    pub max_empty_pages: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStream {
    pub name: S<String>,
    pub path: Option<S<String>>,
    pub params: Option<S<BTreeMap<String, toml::Value>>>,
    pub records: Option<S<String>>,
    pub primary_key: Option<S<toml::Value>>,
    pub incremental: Option<S<RawIncremental>>,
    /// Decoded as a [`RawPagination`].
    pub pagination: Option<S<Tagged>>,
    /// This stream's page limits, over those of its `pagination` table.
    pub max_pages: Option<S<u64>>,
    pub max_empty_pages: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIncremental {
    pub cursor_field: S<String>,
    pub param: Option<S<String>>,
    pub header: Option<S<String>>,
    pub format: Option<S<String>>,
    pub template: Option<S<String>>,
    pub lookback_secs: Option<S<u64>>,
    pub start: Option<S<String>>,
}
