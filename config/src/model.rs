//! The validated configuration model that the rest of Conveyor reads.

use crate::server::ServerConfig;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::SecretRef;

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from.
    pub file: PathBuf,
    pub warehouse: WarehouseConfig,
    pub server: ServerConfig,
    pub sources: Vec<SourceConfig>,
    /// `[plugins]`: where connector plugins are looked for.
    pub plugins: PluginsConfig,
    /// How sources map into the unified model's views.
    pub model: crate::mapping::ModelConfig,
    /// `[[reconcile]]` entries, in file order.
    pub reconciles: Vec<crate::reconcile::ReconcileConfig>,
    /// `[[rules]]` entries, in file order.
    pub rules: Vec<crate::rules::RuleConfig>,
    /// `[smtp]`: required once a rule has an e-mail action.
    pub smtp: Option<crate::actions::SmtpConfig>,
    /// `[health]`: the built-in pipeline-health alerts (defaults if absent).
    pub health: crate::health::HealthConfig,
    /// Non-fatal remarks (e.g. an inline secret) for `conveyor check`.
    pub warnings: Vec<String>,
}

impl Config {
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Where a config entry was written, kept for problems found after
/// validation (a model mapping checked against the warehouse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, e.g. `model.views.placements`.
    pub key: String,
}

/// `warehouse.memory_limit` when the config does not set it.
pub const DEFAULT_MEMORY_LIMIT: &str = "160MB";

#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// The DuckDB file.
    pub path: PathBuf,
    /// DuckDB's `memory_limit` (default [`DEFAULT_MEMORY_LIMIT`]). Bounds
    /// the cache of table blocks, which otherwise grows with the warehouse
    /// (DuckDB's own default is 80% of RAM); large joins spill to disk.
    pub memory_limit: String,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Also the warehouse schema the source's tables live in.
    pub name: String,
    pub schedule: Option<Schedule>,
    pub connector: ConnectorConfig,
}

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    pub expr: String,
    pub cron: cron::Schedule,
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone)]
pub enum ConnectorConfig {
    Rest(RestSourceConfig),
    /// A connector plugin (a shared library in one of `[plugins].dirs`).
    Plugin(PluginSourceConfig),
    /// A built-in vendor connector (`type = "greenhouse"` …).
    Vendor(crate::vendor::VendorSourceConfig),
}

impl ConnectorConfig {
    pub fn type_name(&self) -> &str {
        match self {
            ConnectorConfig::Rest(_) => "rest",
            ConnectorConfig::Plugin(p) => &p.plugin,
            ConnectorConfig::Vendor(v) => v.vendor.type_name(),
        }
    }
}

/// `[plugins]`. Plugins are looked up by a source's `type`: the library
/// `lib<type>.so` (`.dylib` on macOS) in the first of `dirs` that has it.
#[derive(Debug, Clone, Default)]
pub struct PluginsConfig {
    pub dirs: Vec<PathBuf>,
    /// Plugin name → the SHA-256 (lower-case hex) its library must have;
    /// a library whose checksum differs is refused before it is loaded.
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// A source read by a connector plugin.
#[derive(Debug, Clone)]
pub struct PluginSourceConfig {
    /// The plugin's name: the source's `type`.
    pub plugin: String,
    /// The source's `options` table as JSON, handed to the plugin's `open`.
    pub options: serde_json::Value,
    /// Where to look for the library (`[plugins].dirs`, in order).
    pub dirs: Vec<PathBuf>,
    /// The library's pinned SHA-256 (`[plugins.sha256]`), if any.
    pub sha256: Option<String>,
    /// `secrets`: option names whose values are secret references. They are
    /// resolved when the plugin is opened, added to `options`, and scrubbed
    /// from everything the plugin says (errors, log lines).
    pub secrets: Vec<(String, SecretRef)>,
    /// Where the plugin runs (`isolation`).
    pub isolation: PluginIsolation,
    /// With `isolation = "process"`: the child's address-space limit in
    /// bytes (`memory_limit`, default [`DEFAULT_PLUGIN_MEMORY_LIMIT`]).
    pub memory_limit: u64,
}

/// Where a plugin source's plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PluginIsolation {
    /// Loaded into the daemon (fastest; a crash in it takes the daemon down).
    #[default]
    InProcess,
    /// In a child `conveyor` process of its own, per run: a segfault, abort
    /// or runaway allocation fails only that source's run.
    Process,
}

/// A plugin child's address-space limit when `memory_limit` is not set:
/// generous for a connector (the child's own binary, threads and allocator
/// reservations count against it too), small enough to stop a runaway.
pub const DEFAULT_PLUGIN_MEMORY_LIMIT: u64 = 4 << 30;

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

/// Transport behaviour shared by every stream of a source.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Requests per second per host; `None` means unlimited.
    pub requests_per_second: Option<f64>,
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
            prefetch_pages: 2,
        }
    }
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
