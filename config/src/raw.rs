//! Raw serde structs mirroring the TOML file, with spans kept for diagnostics.
//!
//! Unknown keys are rejected (`deny_unknown_fields`). Variant-specific keys
//! are flat optional fields under a `type` tag rather than a serde tagged
//! enum, because serde's tagged enums buffer their content and lose spans.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub path: Option<S<String>>,
    pub memory_limit: Option<S<String>>,
}

/// `[plugins]`: where connector plugins are found, and their pinned checksums.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub dirs: Option<Vec<S<String>>>,
    pub sha256: Option<BTreeMap<String, S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub schedule: Option<S<String>>,
    pub timezone: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub auth: Option<S<RawAuth>>,
    pub headers: Option<BTreeMap<String, S<String>>>,
    pub pagination: Option<S<RawPagination>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub key: Option<S<String>>,
    pub header: Option<S<String>>,
    pub query_param: Option<S<String>>,
    pub username: Option<S<String>>,
    pub password: Option<S<String>>,
    pub token: Option<S<String>>,
    pub token_url: Option<S<String>>,
    pub client_id: Option<S<String>>,
    pub client_secret: Option<S<String>>,
    pub scope: Option<S<String>>,
    pub refresh_token: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagination {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub next_path: Option<S<String>>,
    pub count_path: Option<S<String>>,
    pub min_count: Option<S<u64>>,
    pub cursor_path: Option<S<String>>,
    pub cursor_param: Option<S<String>>,
    pub offset_param: Option<S<String>>,
    pub limit_param: Option<S<String>>,
    pub limit: Option<S<u64>>,
    pub start_offset: Option<S<u64>>,
    pub page_param: Option<S<String>>,
    pub size_param: Option<S<String>>,
    pub size: Option<S<u64>>,
    pub start_page: Option<S<u64>>,
    pub total_pages_header: Option<S<String>>,
    /// Page limits, for every style (see `PageLimits`).
    pub max_pages: Option<S<u64>>,
    pub max_empty_pages: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub name: S<String>,
    pub path: Option<S<String>>,
    pub params: Option<S<BTreeMap<String, toml::Value>>>,
    pub records: Option<S<String>>,
    pub primary_key: Option<S<toml::Value>>,
    pub incremental: Option<S<RawIncremental>>,
    pub pagination: Option<S<RawPagination>>,
    /// This stream's page limits, over those of its `pagination` table.
    pub max_pages: Option<S<u64>>,
    pub max_empty_pages: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncremental {
    pub cursor_field: S<String>,
    pub param: Option<S<String>>,
    pub header: Option<S<String>>,
    pub format: Option<S<String>>,
    pub template: Option<S<String>>,
    pub lookback_secs: Option<S<u64>>,
    pub start: Option<S<String>>,
}
