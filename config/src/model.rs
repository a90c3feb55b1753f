//! The validated configuration model that the rest of Conveyor reads.

use crate::server::ServerConfig;
use std::path::PathBuf;

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
    /// `[[reports]]` entries (scorecards), in file order.
    pub reports: Vec<crate::reports::ReportConfig>,
    /// `[smtp]`: required once a rule has an e-mail action.
    pub smtp: Option<crate::actions::SmtpConfig>,
    /// `[health]`: the built-in pipeline-health alerts (defaults if absent).
    pub health: crate::health::HealthConfig,
    /// `[cluster]`: leases shared with other daemons (none: this daemon
    /// works alone).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `[publish]`: tables published as Apache Iceberg after each sync.
    pub publish: Option<crate::publish::PublishConfig>,
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
    /// DuckDB's worker threads; `None`: DuckDB's default, one per core.
    /// One is the better choice for a sync on a small machine: DuckDB's
    /// executor spin-waits for its second thread, on the core the sync's
    /// parsing needs (`bench/ingest` on 2 cores: 4% faster, 60–80 MB less
    /// peak RSS), while reconciliations and rules lose their parallelism.
    pub threads: Option<u64>,
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
    /// A SQL database read directly (`type = "postgres"`, `"mysql"`).
    Database(crate::database::DatabaseSourceConfig),
}

impl ConnectorConfig {
    pub fn type_name(&self) -> &str {
        match self {
            ConnectorConfig::Rest(_) => "rest",
            ConnectorConfig::Plugin(p) => &p.plugin,
            ConnectorConfig::Vendor(v) => v.vendor.type_name(),
            ConnectorConfig::Database(d) => d.engine.type_name(),
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

pub use crate::http::{HttpConfig, RequestWindow};
pub use crate::rest::{
    AuthConfig, CursorFormat, IncrementalConfig, JsonPath, KeyLocation, PageLimits,
    PaginationConfig, RestSourceConfig, RestStreamConfig,
};
