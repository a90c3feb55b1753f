//! Turns config text into the validated [`Config`], collecting every problem.

use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::diagnostics::{ConfigErrors, Diagnostic};
use crate::model::*;
use crate::raw::*;
use crate::secret::SecretRef;

const TOP_LEVEL_KEYS: &str =
    "warehouse, server, plugins, sources, model, reconcile, rules, smtp, health";
const SOURCE_TYPES: &str = "rest, greenhouse, quickbooks, gusto, zendesk_talk, hubspot, genesys";
const AUTH_TYPES: &str =
    "none, api_key, basic, bearer, oauth2_client_credentials, oauth2_refresh_token";
const PAGINATION_TYPES: &str = "none, next_url, link_header, cursor, offset, page";
/// The most pages a read may fetch ahead of the one being stored.
const MAX_PREFETCH_PAGES: usize = 256;
/// The slowest request rate a source may set: one request a day.
const MIN_REQUESTS_PER_SECOND: f64 = 1.0 / 86_400.0;

/// Collects diagnostics while walking the raw config.
pub(crate) struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<String>,
    /// Whether each secret reference must resolve now (false for offline
    /// uses that never read a secret, such as `conveyor test`).
    resolve_secrets: bool,
    /// Whether the warehouse's folder is checked on this machine.
    probe_warehouse: bool,
}

/// How far validation reaches beyond the text itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Nothing outside the text: secret references are parsed, not read.
    Offline,
    /// Every secret reference must resolve.
    Secrets,
    /// Secrets, and the warehouse's folder must exist and be writable.
    Everything,
}

pub(crate) fn validate(text: &str, file: &Path, reach: Reach) -> Result<Config, ConfigErrors> {
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
        resolve_secrets: reach != Reach::Offline,
        probe_warehouse: reach == Reach::Everything,
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", e.message().trim().to_string());
        }
        return Err(c.finish_errors());
    }

    let mut warehouse: Option<RawWarehouse> = None;
    let mut warehouse_span = 0..0;
    let mut server: Option<Spanned<crate::server::RawServer>> = None;
    let mut plugins_raw: Option<RawPlugins> = None;
    let mut sources = Vec::new();
    let mut vendor_sources = Vec::new();
    let mut model_raw = None;
    let mut reconcile_raw = Vec::new();
    let mut rules_raw = Vec::new();
    let mut smtp_raw = None;
    let mut health_raw = None;
    for (key, value) in doc.get_ref().iter() {
        match &**key.get_ref() {
            "warehouse" => {
                warehouse_span = key.span();
                warehouse = c.section("warehouse", value);
            }
            "server" => {
                server = c
                    .section::<crate::server::RawServer>("server", value)
                    .map(|r| Spanned::new(value.span(), r))
            }
            "plugins" => plugins_raw = c.section("plugins", value),
            "sources" => match value.get_ref() {
                DeValue::Table(t) => {
                    for (name, v) in t.iter() {
                        let name_s = name.get_ref().to_string();
                        let path = format!("sources.{name_s}");
                        if crate::vendor::vendor_of(v).is_some() {
                            if let Some(raw) = c.section::<crate::vendor::RawVendorSource>(&path, v)
                            {
                                vendor_sources.push((Spanned::new(name.span(), name_s), raw));
                            }
                        } else if let Some(raw) = c.section::<RawSource>(&path, v) {
                            sources.push((Spanned::new(name.span(), name_s), raw));
                        }
                    }
                }
                _ => {
                    c.error(value.span(), "sources", "must be a table of named sources");
                }
            },
            "model" => model_raw = c.section::<crate::mapping::RawModel>("model", value),
            "reconcile" => {
                reconcile_raw = c
                    .section::<Vec<Spanned<crate::reconcile::RawReconcile>>>("reconcile", value)
                    .unwrap_or_default()
            }
            "smtp" => {
                smtp_raw = c
                    .section::<crate::actions::RawSmtp>("smtp", value)
                    .map(|r| Spanned::new(value.span(), r))
            }
            "health" => {
                health_raw = c
                    .section::<crate::health::RawHealth>("health", value)
                    .map(|r| Spanned::new(value.span(), r))
            }
            "rules" => {
                rules_raw = c
                    .section::<Vec<Spanned<crate::rules::RawRule>>>("rules", value)
                    .unwrap_or_default()
            }
            other => {
                c.error(key.span(), other, format!("unknown key `{other}`"))
                    .hint(format!("valid top-level keys: {TOP_LEVEL_KEYS}"));
            }
        }
    }

    let warehouse = c.warehouse(warehouse, warehouse_span);
    let server = c.server(server, warehouse.as_ref().map(|w| w.path.as_path()));
    let plugins = c.plugins(plugins_raw);
    // Every declared source, valid or not: a source with a problem of its own
    // does not also make each `after` or preset naming it an error.
    let source_names: Vec<String> = sources
        .iter()
        .map(|(n, _)| n.get_ref().clone())
        .chain(vendor_sources.iter().map(|(n, _)| n.get_ref().clone()))
        .collect();
    let mut validated = Vec::new();
    for (name, raw) in sources {
        if let Some(s) = c.source(name, raw, &plugins) {
            validated.push(s);
        }
    }
    for (name, raw) in vendor_sources {
        if let Some(s) = c.vendor_source(name, raw) {
            validated.push(s);
        }
    }
    let model = c.model(model_raw, &source_names);
    let reconcile_names: Vec<String> = reconcile_raw
        .iter()
        .map(|r| r.get_ref().name().to_string())
        .collect();
    let reconciles = c.reconciles(reconcile_raw, &source_names);
    let rules = c.rules(rules_raw, &source_names, &reconcile_names, &reconciles);
    let smtp_given = smtp_raw.is_some();
    let smtp = c.smtp(smtp_raw);
    let operator = smtp.as_ref().and_then(|s| s.operator.as_deref());
    let (health, health_warning) = c.health(health_raw, operator);
    c.warnings.extend(health_warning);
    if !smtp_given {
        if let Some(r) = rules.iter().find(|r| !r.actions.is_empty()) {
            let at = r.actions[0].at.clone();
            c.errors.push(crate::Diagnostic {
                file: at.file,
                line: at.line,
                col: at.col,
                key: at.key,
                message: "an e-mail action needs an [smtp] section".into(),
                hint: Some("add [smtp] with host and from (username, password = \"env:NAME\" if the server needs them)".into()),
            });
        }
    }
    if validated.is_empty() && c.errors.is_empty() {
        c.warnings
            .push("no sources are configured; add a [sources.NAME] table".into());
    }
    if !c.errors.is_empty() {
        return Err(c.finish_errors());
    }
    Ok(Config {
        file: file.to_path_buf(),
        warehouse: warehouse.expect("warehouse validated"),
        server: server.expect("server validated"),
        sources: validated,
        plugins,
        model,
        reconciles,
        rules,
        smtp,
        health,
        warnings: c.warnings,
    })
}

impl<'a> Checker<'a> {
    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.errors
            .push(Diagnostic::at(self.file, self.text, span, key, message));
        self.errors.last_mut().expect("just pushed")
    }

    /// The config file being validated (relative paths resolve against it).
    pub(crate) fn file(&self) -> &Path {
        self.file
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Where `span` is, for problems found later (e.g. by `conveyor check`
    /// against the warehouse).
    pub(crate) fn located(&self, span: Range<usize>, key: &str) -> Located {
        let (line, col) = crate::diagnostics::line_col(self.text, span.start);
        Located {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.to_string(),
        }
    }

    fn finish_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|d| (d.line, d.col));
        ConfigErrors(self.errors)
    }

    /// Deserialises one section on its own so that its errors do not hide
    /// those of the other sections.
    pub(crate) fn section<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = e.span().unwrap_or(value.span());
                let message = e.message().trim().to_string();
                self.error(span, key, message);
                None
            }
        }
    }

    fn warehouse(
        &mut self,
        raw: Option<RawWarehouse>,
        span: Range<usize>,
    ) -> Option<WarehouseConfig> {
        let Some(raw) = raw else {
            if span == (0..0) {
                self.error(0..0, "warehouse", "missing [warehouse] section")
                    .hint("add:\n[warehouse]\npath = \"warehouse.duckdb\"");
            }
            return None;
        };
        let Some(path) = raw.path else {
            self.error(span, "warehouse.path", "missing key `path`")
                .hint("the DuckDB file, e.g. path = \"warehouse.duckdb\"");
            return None;
        };
        if path.get_ref().trim().is_empty() {
            self.error(path.span(), "warehouse.path", "must not be empty");
            return None;
        }
        // DuckDB names the database after the file; a file called
        // `conveyor.*` would make the schema `conveyor` ambiguous.
        let stem = std::path::Path::new(path.get_ref())
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        if stem.eq_ignore_ascii_case("conveyor") {
            self.error(path.span(), "warehouse.path", "the file must not be named `conveyor.*`")
                .hint("DuckDB names the database after the file, which would clash with the `conveyor` schema; use e.g. \"warehouse.duckdb\"");
            return None;
        }
        let memory_limit = match raw.memory_limit {
            None => DEFAULT_MEMORY_LIMIT.to_string(),
            Some(m) if is_size(m.get_ref()) => m.get_ref().trim().to_string(),
            Some(m) => {
                self.error(
                    m.span(),
                    "warehouse.memory_limit",
                    format!("`{}` is not a size", m.get_ref()),
                )
                .hint("a number and a unit, e.g. \"256MB\" or \"2GB\"");
                return None;
            }
        };
        let resolved = crate::resolve_relative(self.file, path.get_ref());
        if self.probe_warehouse {
            if let Some((message, hint)) = crate::writable::warehouse_location_problem(&resolved) {
                self.error(path.span(), "warehouse.path", message)
                    .hint(hint);
                return None;
            }
        }
        Some(WarehouseConfig {
            path: resolved,
            memory_limit,
        })
    }

    fn plugins(&mut self, raw: Option<RawPlugins>) -> PluginsConfig {
        let mut plugins = PluginsConfig::default();
        let Some(raw) = raw else { return plugins };
        for d in raw.dirs.iter().flatten() {
            if d.get_ref().trim().is_empty() {
                self.error(d.span(), "plugins.dirs", "must not be empty");
                continue;
            }
            plugins
                .dirs
                .push(crate::resolve_relative(self.file, d.get_ref()));
        }
        for (name, sum) in raw.sha256.iter().flatten() {
            let hex = sum.get_ref().trim().to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                self.error(
                    sum.span(),
                    &format!("plugins.sha256.{name}"),
                    "must be a SHA-256 digest: 64 hex digits",
                )
                .hint("print it with `sha256sum PATH` or `conveyor plugins check PATH`");
                continue;
            }
            plugins.sha256.insert(name.clone(), hex);
        }
        plugins
    }

    /// A source whose `type` is not built in names a connector plugin.
    fn plugin_source(
        &mut self,
        key: &str,
        raw: &RawSource,
        plugins: &PluginsConfig,
    ) -> Option<PluginSourceConfig> {
        let kind = raw.kind.get_ref();
        let plain = kind.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            self.error(raw.kind.span(), &format!("{key}.type"), format!("unknown source type `{kind}`"))
                .hint(format!("built-in types: {SOURCE_TYPES}; a plugin's name is lower-case letters, digits and underscores"));
            return None;
        }
        if plugins.dirs.is_empty() {
            self.error(raw.kind.span(), &format!("{key}.type"), format!("unknown source type `{kind}`"))
                .hint(format!(
                    "built-in types: {SOURCE_TYPES}; for a connector plugin, add [plugins] dirs = [\"…\"] with the folder holding lib{kind}.so"
                ));
            return None;
        }
        self.unused(
            key,
            kind,
            &[
                ("base_url", raw.base_url.as_ref().map(|v| v.span())),
                ("auth", raw.auth.as_ref().map(|v| v.span())),
                (
                    "headers",
                    raw.headers
                        .as_ref()
                        .and_then(|h| h.values().next())
                        .map(|v| v.span()),
                ),
                ("pagination", raw.pagination.as_ref().map(|v| v.span())),
                ("timeout_secs", raw.timeout_secs.as_ref().map(|v| v.span())),
                ("max_retries", raw.max_retries.as_ref().map(|v| v.span())),
                (
                    "backoff_base_ms",
                    raw.backoff_base_ms.as_ref().map(|v| v.span()),
                ),
                (
                    "backoff_max_secs",
                    raw.backoff_max_secs.as_ref().map(|v| v.span()),
                ),
                (
                    "requests_per_second",
                    raw.requests_per_second.as_ref().map(|v| v.span()),
                ),
                (
                    "prefetch_pages",
                    raw.prefetch_pages.as_ref().map(|v| v.span()),
                ),
                (
                    "streams",
                    raw.streams
                        .as_ref()
                        .and_then(|s| s.first())
                        .map(|s| s.span()),
                ),
            ],
        );
        let mut secrets = Vec::new();
        for (name, value) in raw.secrets.iter().flatten() {
            let skey = format!("{key}.secrets.{name}");
            let in_options = raw
                .options
                .as_ref()
                .and_then(|o| o.get_ref().as_table())
                .is_some_and(|t| t.contains_key(name));
            if in_options {
                self.error(
                    value.span(),
                    &skey,
                    format!("`{name}` is also in `options`"),
                )
                .hint("a secret is added to the options under its name; keep it in one place");
            } else if let Some(r) = self.secret(value, &skey) {
                secrets.push((name.clone(), r));
            }
        }
        let options = match &raw.options {
            None => serde_json::Value::Object(Default::default()),
            Some(o) => match toml_to_json(o.get_ref()) {
                serde_json::Value::Object(m) => serde_json::Value::Object(m),
                _ => {
                    self.error(o.span(), &format!("{key}.options"), "must be a table")
                        .hint("the plugin's own settings, e.g. options = { dir = \"drops\" }");
                    return None;
                }
            },
        };
        let (isolation, memory_limit) = self.plugin_isolation(key, raw)?;
        Some(PluginSourceConfig {
            plugin: kind.clone(),
            options,
            dirs: plugins.dirs.clone(),
            sha256: plugins.sha256.get(kind).cloned(),
            secrets,
            isolation,
            memory_limit,
        })
    }

    /// A plugin source's `isolation` and `memory_limit` (which only a
    /// plugin running in its own process has).
    fn plugin_isolation(&mut self, key: &str, raw: &RawSource) -> Option<(PluginIsolation, u64)> {
        let isolation = match raw.isolation.as_ref().map(|i| (i, i.get_ref().as_str())) {
            None | Some((_, "in_process")) => PluginIsolation::InProcess,
            Some((_, "process")) => PluginIsolation::Process,
            Some((i, other)) => {
                self.error(i.span(), &format!("{key}.isolation"), format!("unknown isolation `{other}`"))
                    .hint("\"in_process\" (the default: loaded into the daemon) or \"process\" (a child process per run: a crash fails only this source)");
                return None;
            }
        };
        let memory_limit = match &raw.memory_limit {
            None => DEFAULT_PLUGIN_MEMORY_LIMIT,
            Some(m) if isolation != PluginIsolation::Process => {
                self.error(m.span(), &format!("{key}.memory_limit"), "only applies with isolation = \"process\"")
                    .hint("a plugin loaded into the daemon shares the daemon's memory; add isolation = \"process\" to bound it");
                return None;
            }
            Some(m) => match size_bytes(m.get_ref()) {
                Some(n) if n >= 64 << 20 => n,
                Some(_) => {
                    self.error(m.span(), &format!("{key}.memory_limit"), format!("`{}` is too small to start a plugin process", m.get_ref()))
                        .hint("at least \"64MB\"; the child's binary and threads count against it (default \"4GiB\")");
                    return None;
                }
                None => {
                    self.error(
                        m.span(),
                        &format!("{key}.memory_limit"),
                        format!("`{}` is not a size", m.get_ref()),
                    )
                    .hint("a number and a unit, e.g. \"512MB\" or \"2GiB\"");
                    return None;
                }
            },
        };
        Some((isolation, memory_limit))
    }

    fn source(
        &mut self,
        name: Spanned<String>,
        raw: RawSource,
        plugins: &PluginsConfig,
    ) -> Option<SourceConfig> {
        let errors_before = self.errors.len();
        let key = format!("sources.{}", name.get_ref());
        self.identifier(&name, &key, "source name");
        if name.get_ref() == "model" {
            self.error(
                name.span(),
                &key,
                "source name `model` is reserved for the unified model's views",
            )
            .hint("it becomes a warehouse schema; pick another name");
        }
        let schedule = self.schedule(&key, raw.schedule.as_ref(), raw.timezone.as_ref());
        let connector = match raw.kind.get_ref().as_str() {
            "rest" => self.rest_source(&key, &raw).map(ConnectorConfig::Rest),
            _ => self
                .plugin_source(&key, &raw, plugins)
                .map(ConnectorConfig::Plugin),
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(SourceConfig {
            name: name.into_inner(),
            schedule: schedule.flatten(),
            connector: connector?,
        })
    }

    /// Names become DuckDB schema and table names, so keep them plain.
    pub(crate) fn identifier(&mut self, name: &Spanned<String>, key: &str, what: &str) {
        let n = name.get_ref();
        let ok = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok || n == "conveyor" {
            let msg = if n == "conveyor" {
                format!("{what} `conveyor` is reserved for Conveyor's own tables")
            } else {
                format!("{what} `{n}` must be lower-case letters, digits and underscores")
            };
            self.error(name.span(), key, msg)
                .hint("it becomes a warehouse schema or table name");
        }
    }

    /// A `timezone` key: an IANA name, UTC when unset.
    pub(crate) fn timezone(
        &mut self,
        tz: Option<&Spanned<String>>,
        key: &str,
    ) -> Option<chrono_tz::Tz> {
        let Some(t) = tz else {
            return Some(chrono_tz::UTC);
        };
        match chrono_tz::Tz::from_str(t.get_ref()) {
            Ok(z) => Some(z),
            Err(_) => {
                self.error(
                    t.span(),
                    &format!("{key}.timezone"),
                    format!("unknown time zone `{}`", t.get_ref()),
                )
                .hint("an IANA name such as \"Europe/London\" or \"UTC\"");
                None
            }
        }
    }

    /// `Some(None)` means "no schedule" (manual syncs only).
    pub(crate) fn schedule(
        &mut self,
        key: &str,
        expr: Option<&Spanned<String>>,
        tz: Option<&Spanned<String>>,
    ) -> Option<Option<Schedule>> {
        let timezone = self.timezone(tz, key)?;
        let Some(expr) = expr else { return Some(None) };
        match parse_cron(expr.get_ref()) {
            Ok(cron) => Some(Some(Schedule {
                expr: expr.get_ref().clone(),
                cron,
                timezone,
            })),
            Err(e) => {
                self.error(expr.span(), &format!("{key}.schedule"), format!("invalid cron expression: {e}"))
                    .hint("5 fields (min hour day month weekday) or 6 with seconds first, e.g. \"0 */15 * * * *\"");
                None
            }
        }
    }

    fn rest_source(&mut self, key: &str, raw: &RawSource) -> Option<RestSourceConfig> {
        self.unused(
            key,
            "rest",
            &[
                ("options", raw.options.as_ref().map(|o| o.span())),
                ("isolation", raw.isolation.as_ref().map(|o| o.span())),
                ("memory_limit", raw.memory_limit.as_ref().map(|o| o.span())),
                (
                    "secrets",
                    raw.secrets
                        .as_ref()
                        .and_then(|s| s.values().next())
                        .map(|v| v.span()),
                ),
            ],
        );
        let base_url = match &raw.base_url {
            None => {
                self.error(
                    raw.kind.span(),
                    &format!("{key}.base_url"),
                    "missing key `base_url` (required by type = \"rest\")",
                );
                None
            }
            Some(u) => self.url(u, &format!("{key}.base_url")),
        };
        let auth = match &raw.auth {
            None => Some(AuthConfig::None),
            Some(a) => self.auth(&format!("{key}.auth"), a),
        };
        let pagination = match &raw.pagination {
            None => Some(PaginationConfig::None),
            Some(p) => self.pagination(&format!("{key}.pagination"), p),
        };
        // The source's page limits are every stream's unless it sets its own.
        let source_limits = match &raw.pagination {
            None => [None, None],
            Some(p) => self.page_limit_keys(
                &format!("{key}.pagination"),
                &p.get_ref().max_pages,
                &p.get_ref().max_empty_pages,
            ),
        };
        let http = self.http(key, raw);
        let mut headers = Vec::new();
        for (k, v) in raw.headers.iter().flatten() {
            headers.push((k.clone(), v.get_ref().clone()));
        }
        let mut streams = Vec::new();
        match &raw.streams {
            None => {
                self.error(
                    raw.kind.span(),
                    &format!("{key}.streams"),
                    "a rest source needs at least one [[...streams]] entry",
                );
            }
            Some(list) => {
                let mut seen = std::collections::HashSet::new();
                for (i, s) in list.iter().enumerate() {
                    let skey = format!("{key}.streams[{i}]");
                    if !seen.insert(s.get_ref().name.get_ref().clone()) {
                        self.error(
                            s.get_ref().name.span(),
                            &format!("{skey}.name"),
                            format!("duplicate stream name `{}`", s.get_ref().name.get_ref()),
                        );
                    }
                    if let Some(stream) = self.rest_stream(&skey, s.get_ref(), source_limits) {
                        streams.push(stream);
                    }
                }
            }
        }
        Some(RestSourceConfig {
            base_url: base_url?,
            auth: auth?,
            headers,
            pagination: pagination?,
            http: http?,
            streams,
        })
    }

    fn http(&mut self, key: &str, raw: &RawSource) -> Option<HttpConfig> {
        let mut h = HttpConfig::default();
        if let Some(t) = &raw.timeout_secs {
            if *t.get_ref() == 0 {
                self.error(
                    t.span(),
                    &format!("{key}.timeout_secs"),
                    "must be at least 1",
                );
                return None;
            }
            h.timeout = Duration::from_secs(*t.get_ref());
        }
        if let Some(r) = &raw.max_retries {
            h.max_retries = *r.get_ref();
        }
        if let Some(b) = &raw.backoff_base_ms {
            h.backoff_base = Duration::from_millis(*b.get_ref());
        }
        if let Some(b) = &raw.backoff_max_secs {
            h.backoff_max = Duration::from_secs(*b.get_ref());
        }
        if let Some(p) = &raw.prefetch_pages {
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
                    return None;
                }
            }
        }
        if let Some(r) = &raw.requests_per_second {
            h.requests_per_second = Some(self.requests_per_second(r, key)?);
        }
        Some(h)
    }

    /// `requests_per_second`, for REST and vendor sources alike.
    pub(crate) fn requests_per_second(
        &mut self,
        r: &Spanned<toml::Value>,
        key: &str,
    ) -> Option<f64> {
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

    pub(crate) fn url(&mut self, u: &Spanned<String>, key: &str) -> Option<url::Url> {
        match url::Url::parse(u.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            Ok(_) => {
                self.error(u.span(), key, "must be an http or https URL");
                None
            }
            Err(e) => {
                self.error(u.span(), key, format!("invalid URL: {e}"));
                None
            }
        }
    }

    pub(crate) fn secret(&mut self, s: &Spanned<String>, key: &str) -> Option<SecretRef> {
        let r = match SecretRef::parse(s.get_ref(), |p| crate::resolve_relative(self.file, p)) {
            Ok(r) => r,
            Err(e) => {
                let hint = if s.get_ref().contains(':') {
                    "write env:NAME (an environment variable) or file:PATH (a file readable only by conveyor)"
                } else {
                    "put the value in an environment variable or a 0600 file and write \"env:NAME\" or \"file:PATH\" here"
                };
                self.error(s.span(), key, e).hint(hint);
                return None;
            }
        };
        // Offline, a reference is only parsed: no secret is read.
        let resolved = if self.resolve_secrets {
            r.resolve().map(drop)
        } else {
            Ok(())
        };
        if let Err(e) = resolved {
            let hint = match &r {
                SecretRef::Env(n) => format!("export {n}=... in the environment conveyor runs in"),
                _ => "check the path and its permissions".into(),
            };
            self.error(s.span(), key, e).hint(hint);
            return None;
        }
        Some(r)
    }

    /// Reports set fields that the chosen `type` does not use, so a typo in
    /// the type or a stray field does not pass silently.
    fn unused(&mut self, key: &str, kind: &str, fields: &[(&str, Option<Range<usize>>)]) {
        for (name, span) in fields {
            if let Some(span) = span {
                self.error(
                    span.clone(),
                    &format!("{key}.{name}"),
                    format!("not used by type = \"{kind}\""),
                );
            }
        }
    }

    fn required<'r>(
        &mut self,
        v: &'r Option<Spanned<String>>,
        key: &str,
        field: &str,
        kind: &str,
        at: Range<usize>,
    ) -> Option<&'r Spanned<String>> {
        if v.is_none() {
            self.error(
                at,
                &format!("{key}.{field}"),
                format!("missing key `{field}` (required by type = \"{kind}\")"),
            );
        }
        v.as_ref()
    }

    fn auth(&mut self, key: &str, a: &Spanned<RawAuth>) -> Option<AuthConfig> {
        let at = a.span();
        let a = a.get_ref();
        let kind = a.kind.get_ref().as_str();
        let sp = |f: &Option<Spanned<String>>| f.as_ref().map(|s| s.span());
        match kind {
            "none" => {
                self.unused(
                    key,
                    kind,
                    &[
                        ("key", sp(&a.key)),
                        ("token", sp(&a.token)),
                        ("password", sp(&a.password)),
                        ("client_secret", sp(&a.client_secret)),
                    ],
                );
                Some(AuthConfig::None)
            }
            "api_key" => {
                self.unused(
                    key,
                    kind,
                    &[
                        ("username", sp(&a.username)),
                        ("password", sp(&a.password)),
                        ("token", sp(&a.token)),
                        ("token_url", sp(&a.token_url)),
                        ("client_id", sp(&a.client_id)),
                        ("client_secret", sp(&a.client_secret)),
                        ("refresh_token", sp(&a.refresh_token)),
                    ],
                );
                let location = match (&a.header, &a.query_param) {
                    (Some(h), None) => KeyLocation::Header(h.get_ref().clone()),
                    (None, Some(q)) => KeyLocation::Query(q.get_ref().clone()),
                    _ => {
                        self.error(
                            at.clone(),
                            key,
                            "api_key auth needs exactly one of `header` or `query_param`",
                        )
                        .hint("e.g. header = \"X-API-Key\"");
                        return None;
                    }
                };
                let k = self.required(&a.key, key, "key", kind, at)?;
                let key_ref = self.secret(k, &format!("{key}.key"))?;
                Some(AuthConfig::ApiKey {
                    location,
                    key: key_ref,
                })
            }
            "basic" => {
                self.unused(
                    key,
                    kind,
                    &[
                        ("key", sp(&a.key)),
                        ("token", sp(&a.token)),
                        ("token_url", sp(&a.token_url)),
                        ("client_id", sp(&a.client_id)),
                        ("client_secret", sp(&a.client_secret)),
                        ("refresh_token", sp(&a.refresh_token)),
                        ("header", sp(&a.header)),
                        ("query_param", sp(&a.query_param)),
                    ],
                );
                let u = self.required(&a.username, key, "username", kind, at.clone());
                let p = self.required(&a.password, key, "password", kind, at);
                let password = self.secret(p?, &format!("{key}.password"))?;
                Some(AuthConfig::Basic {
                    username: u?.get_ref().clone(),
                    password,
                })
            }
            "bearer" => {
                self.unused(
                    key,
                    kind,
                    &[
                        ("key", sp(&a.key)),
                        ("username", sp(&a.username)),
                        ("password", sp(&a.password)),
                        ("token_url", sp(&a.token_url)),
                        ("client_id", sp(&a.client_id)),
                        ("client_secret", sp(&a.client_secret)),
                        ("refresh_token", sp(&a.refresh_token)),
                    ],
                );
                let t = self.required(&a.token, key, "token", kind, at)?;
                Some(AuthConfig::Bearer {
                    token: self.secret(t, &format!("{key}.token"))?,
                })
            }
            "oauth2_client_credentials" | "oauth2_refresh_token" => {
                self.unused(
                    key,
                    kind,
                    &[
                        ("key", sp(&a.key)),
                        ("username", sp(&a.username)),
                        ("password", sp(&a.password)),
                        ("token", sp(&a.token)),
                        ("header", sp(&a.header)),
                        ("query_param", sp(&a.query_param)),
                    ],
                );
                let token_url = self
                    .required(&a.token_url, key, "token_url", kind, at.clone())
                    .and_then(|u| self.url(u, &format!("{key}.token_url")));
                let client_id = self
                    .required(&a.client_id, key, "client_id", kind, at.clone())
                    .map(|s| s.get_ref().clone());
                let client_secret = self
                    .required(&a.client_secret, key, "client_secret", kind, at.clone())
                    .and_then(|s| self.secret(s, &format!("{key}.client_secret")));
                if kind == "oauth2_client_credentials" {
                    self.unused(key, kind, &[("refresh_token", sp(&a.refresh_token))]);
                    Some(AuthConfig::OAuth2ClientCredentials {
                        token_url: token_url?,
                        client_id: client_id?,
                        client_secret: client_secret?,
                        scope: a.scope.as_ref().map(|s| s.get_ref().clone()),
                    })
                } else {
                    self.unused(key, kind, &[("scope", sp(&a.scope))]);
                    let refresh = self
                        .required(&a.refresh_token, key, "refresh_token", kind, at)
                        .and_then(|s| self.secret(s, &format!("{key}.refresh_token")));
                    Some(AuthConfig::OAuth2RefreshToken {
                        token_url: token_url?,
                        client_id: client_id?,
                        client_secret: client_secret?,
                        refresh_token: refresh?,
                    })
                }
            }
            other => {
                self.error(
                    a.kind.span(),
                    &format!("{key}.type"),
                    format!("unknown auth type `{other}`"),
                )
                .hint(format!("one of: {AUTH_TYPES}"));
                None
            }
        }
    }

    fn pagination(&mut self, key: &str, p: &Spanned<RawPagination>) -> Option<PaginationConfig> {
        let p = p.get_ref();
        let kind = p.kind.get_ref().as_str();
        let s = |f: &Option<Spanned<String>>| f.as_ref().map(|v| v.span());
        let n = |f: &Option<Spanned<u64>>| f.as_ref().map(|v| v.span());
        let str_or = |f: &Option<Spanned<String>>, d: &str| {
            f.as_ref()
                .map(|v| v.get_ref().clone())
                .unwrap_or_else(|| d.to_string())
        };
        let num_or =
            |f: &Option<Spanned<u64>>, d: u64| f.as_ref().map(|v| *v.get_ref()).unwrap_or(d);
        let next_fields = [
            ("next_path", s(&p.next_path)),
            ("count_path", s(&p.count_path)),
            ("min_count", n(&p.min_count)),
        ];
        let cursor_fields = [
            ("cursor_path", s(&p.cursor_path)),
            ("cursor_param", s(&p.cursor_param)),
        ];
        let offset_fields = [
            ("offset_param", s(&p.offset_param)),
            ("limit_param", s(&p.limit_param)),
            ("limit", n(&p.limit)),
            ("start_offset", n(&p.start_offset)),
        ];
        let page_fields = [
            ("page_param", s(&p.page_param)),
            ("size_param", s(&p.size_param)),
            ("size", n(&p.size)),
            ("start_page", n(&p.start_page)),
            ("total_pages_header", s(&p.total_pages_header)),
        ];
        let unused = |c: &mut Self, except: &str| {
            for (group, fields) in [
                ("next_url", &next_fields[..]),
                ("cursor", &cursor_fields[..]),
                ("offset", &offset_fields[..]),
                ("page", &page_fields[..]),
            ] {
                if group != except {
                    c.unused(key, kind, fields);
                }
            }
        };
        let positive = |c: &mut Self, f: &Option<Spanned<u64>>, name: &str| {
            if let Some(v) = f {
                if *v.get_ref() == 0 {
                    c.error(v.span(), &format!("{key}.{name}"), "must be at least 1");
                }
            }
        };
        match kind {
            "none" => {
                unused(self, "");
                Some(PaginationConfig::None)
            }
            "link_header" => {
                unused(self, "");
                Some(PaginationConfig::LinkHeader)
            }
            "next_url" => {
                unused(self, "next_url");
                Some(PaginationConfig::NextUrl {
                    next_path: JsonPath::parse(&str_or(&p.next_path, "next")),
                    count_path: p.count_path.as_ref().map(|c| JsonPath::parse(c.get_ref())),
                    min_count: num_or(&p.min_count, 1),
                })
            }
            "cursor" => {
                unused(self, "cursor");
                let path = self.required(&p.cursor_path, key, "cursor_path", kind, p.kind.span());
                let param =
                    self.required(&p.cursor_param, key, "cursor_param", kind, p.kind.span());
                Some(PaginationConfig::CursorToken {
                    cursor_path: JsonPath::parse(path?.get_ref()),
                    cursor_param: param?.get_ref().clone(),
                })
            }
            "offset" => {
                unused(self, "offset");
                positive(self, &p.limit, "limit");
                Some(PaginationConfig::OffsetLimit {
                    offset_param: str_or(&p.offset_param, "offset"),
                    limit_param: str_or(&p.limit_param, "limit"),
                    limit: num_or(&p.limit, 100).max(1),
                    start_offset: num_or(&p.start_offset, 0),
                })
            }
            "page" => {
                unused(self, "page");
                positive(self, &p.size, "size");
                Some(PaginationConfig::PageNumber {
                    page_param: str_or(&p.page_param, "page"),
                    size_param: str_or(&p.size_param, "per_page"),
                    size: num_or(&p.size, 100).max(1),
                    start_page: num_or(&p.start_page, 1),
                    total_pages_header: p.total_pages_header.as_ref().map(|h| h.get_ref().clone()),
                })
            }
            other => {
                self.error(
                    p.kind.span(),
                    &format!("{key}.type"),
                    format!("unknown pagination type `{other}`"),
                )
                .hint(format!("one of: {PAGINATION_TYPES}"));
                None
            }
        }
    }

    fn rest_stream(
        &mut self,
        key: &str,
        s: &RawStream,
        source_limits: [Option<u64>; 2],
    ) -> Option<RestStreamConfig> {
        let errors_before = self.errors.len();
        self.identifier(&s.name, &format!("{key}.name"), "stream name");
        let path = self
            .required(&s.path, key, "path", "rest", s.name.span())
            .map(|p| p.get_ref().clone());
        let mut params = Vec::new();
        if let Some(ps) = &s.params {
            for (k, v) in ps.get_ref() {
                let text = match v {
                    toml::Value::String(x) => x.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        self.error(
                            ps.span(),
                            &format!("{key}.params.{k}"),
                            "must be a string, number or boolean",
                        );
                        continue;
                    }
                };
                params.push((k.clone(), text));
            }
        }
        let primary_key = match &s.primary_key {
            None => {
                self.error(s.name.span(), &format!("{key}.primary_key"), "missing key `primary_key`")
                    .hint("the field(s) that identify a record, e.g. primary_key = \"id\"; rows are merged by it");
                Vec::new()
            }
            Some(pk) => match pk.get_ref() {
                toml::Value::String(x) => vec![x.clone()],
                toml::Value::Array(a) if !a.is_empty() && a.iter().all(|v| v.is_str()) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => {
                    self.error(
                        pk.span(),
                        &format!("{key}.primary_key"),
                        "must be a field name or a non-empty list of field names",
                    );
                    Vec::new()
                }
            },
        };
        let uses_placeholder = params.iter().any(|(_, v)| v.contains("{cursor}"));
        let incremental = s
            .incremental
            .as_ref()
            .and_then(|i| self.incremental(&format!("{key}.incremental"), i, uses_placeholder));
        let pagination = s
            .pagination
            .as_ref()
            .map(|p| self.pagination(&format!("{key}.pagination"), p));
        let page_limits = self.stream_page_limits(key, s, source_limits);
        if self.errors.len() > errors_before {
            return None;
        }
        Some(RestStreamConfig {
            name: s.name.get_ref().clone(),
            path: path?,
            params,
            record_selector: s
                .records
                .as_ref()
                .map(|r| JsonPath::parse(r.get_ref()))
                .unwrap_or_default(),
            primary_key,
            incremental,
            pagination: pagination.flatten(),
            page_limits,
        })
    }

    /// A stream's page limits: each from the nearest place that sets it —
    /// the stream's own key, its `pagination` table, the source's — else
    /// the default.
    fn stream_page_limits(
        &mut self,
        key: &str,
        s: &RawStream,
        source_limits: [Option<u64>; 2],
    ) -> PageLimits {
        let in_pagination = match &s.pagination {
            None => [None, None],
            Some(p) => self.page_limit_keys(
                &format!("{key}.pagination"),
                &p.get_ref().max_pages,
                &p.get_ref().max_empty_pages,
            ),
        };
        let own = self.page_limit_keys(key, &s.max_pages, &s.max_empty_pages);
        let pick = |i: usize| own[i].or(in_pagination[i]).or(source_limits[i]);
        PageLimits {
            max_pages: pick(0).unwrap_or(PageLimits::DEFAULT_MAX_PAGES),
            max_empty_pages: pick(1).unwrap_or(PageLimits::DEFAULT_MAX_EMPTY_PAGES),
        }
    }

    /// `max_pages` and `max_empty_pages` of the table at `key`, where set;
    /// each must be at least 1.
    pub(crate) fn page_limit_keys(
        &mut self,
        key: &str,
        max_pages: &Option<Spanned<u64>>,
        max_empty_pages: &Option<Spanned<u64>>,
    ) -> [Option<u64>; 2] {
        let mut out = [None, None];
        for (slot, (name, value)) in out.iter_mut().zip([
            ("max_pages", max_pages),
            ("max_empty_pages", max_empty_pages),
        ]) {
            let Some(v) = value else { continue };
            if *v.get_ref() == 0 {
                self.error(v.span(), &format!("{key}.{name}"), "must be at least 1")
                    .hint("it bounds one read's paging; leave it out for the default");
            } else {
                *slot = Some(*v.get_ref());
            }
        }
        out
    }

    fn incremental(
        &mut self,
        key: &str,
        i: &Spanned<RawIncremental>,
        uses_placeholder: bool,
    ) -> Option<IncrementalConfig> {
        let at = i.span();
        let i = i.get_ref();
        let location = match (&i.param, &i.header) {
            (Some(p), None) => Some(KeyLocation::Query(p.get_ref().clone())),
            (None, Some(h)) => Some(KeyLocation::Header(h.get_ref().clone())),
            (None, None) if uses_placeholder => None,
            _ => {
                self.error(at, key, "incremental needs exactly one of `param` or `header` (or a `{cursor}` placeholder in params)")
                    .hint("where the saved cursor is sent, e.g. param = \"updated_since\"");
                return None;
            }
        };
        let value_format = match i.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("rfc3339") => CursorFormat::Rfc3339,
            Some("unix") => CursorFormat::UnixSeconds,
            Some("unix_ms") => CursorFormat::UnixMillis,
            Some(other) => {
                let span = i.format.as_ref().map(|f| f.span()).unwrap_or(0..0);
                self.error(
                    span,
                    &format!("{key}.format"),
                    format!("unknown cursor format `{other}`"),
                )
                .hint("one of: rfc3339, unix, unix_ms");
                return None;
            }
        };
        let template = i
            .template
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| "{cursor}".into());
        if !template.contains("{cursor}") {
            let span = i.template.as_ref().map(|t| t.span()).unwrap_or(0..0);
            self.error(span, &format!("{key}.template"), "must contain `{cursor}`");
            return None;
        }
        Some(IncrementalConfig {
            cursor_field: i.cursor_field.get_ref().clone(),
            location,
            value_format,
            template,
            lookback: Duration::from_secs(
                i.lookback_secs.as_ref().map(|l| *l.get_ref()).unwrap_or(0),
            ),
            start: i.start.as_ref().map(|s| s.get_ref().clone()),
        })
    }
}

/// A plugin's options as JSON; TOML dates and times become their text.
fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Parses a cron expression; a 5-field expression gets seconds = 0.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        // The cron crate's message repeats the expression with a caret
        // under the fault; keep only the explanation, on one line.
        let text = e.to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty() && *l != full && !l.chars().all(|c| c == '^' || c.is_whitespace())
            })
            .collect();
        if lines.is_empty() {
            text
        } else {
            lines.join(" ")
        }
    })
}

/// A size DuckDB understands: a number and a unit (`512MB`, `2 GiB`).
fn is_size(text: &str) -> bool {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    const UNITS: [&str; 9] = ["B", "KB", "MB", "GB", "TB", "KIB", "MIB", "GIB", "TIB"];
    number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && UNITS.contains(&unit.trim().to_ascii_uppercase().as_str())
}

/// A size in bytes: a number and a unit (`512MB` = 512·10⁶, `2GiB` = 2·2³⁰).
fn size_bytes(text: &str) -> Option<u64> {
    if !is_size(text) {
        return None;
    }
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1024.0 * 1024.0 * 1024.0 * 1024.0,
    };
    Some((number.parse::<f64>().ok()? * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn check(text: &str) -> Result<Config, ConfigErrors> {
        validate(
            text,
            &PathBuf::from("/etc/conveyor/conveyor.toml"),
            Reach::Secrets,
        )
    }

    const GOOD: &str = r#"
[warehouse]
path = "wh.duckdb"

[sources.crm]
type = "rest"
schedule = "*/5 * * * *"
timezone = "Europe/London"
base_url = "https://api.example.com/v1"
pagination = { type = "link_header" }
auth = { type = "bearer", token = "env:PATH" }

[[sources.crm.streams]]
name = "deals"
path = "/deals"
primary_key = "id"
records = "data"
incremental = { cursor_field = "updated_at", param = "updated_since", lookback_secs = 60 }
"#;

    #[test]
    fn valid_config_builds_the_model() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.warehouse.path, PathBuf::from("/etc/conveyor/wh.duckdb"));
        assert_eq!(c.server.listen.to_string(), crate::DEFAULT_LISTEN);
        let s = c.source("crm").unwrap();
        let sched = s.schedule.as_ref().unwrap();
        assert_eq!(sched.timezone, chrono_tz::Europe::London);
        let ConnectorConfig::Rest(r) = &s.connector else {
            panic!("a rest source")
        };
        assert_eq!(r.pagination, PaginationConfig::LinkHeader);
        assert_eq!(r.streams[0].record_selector, JsonPath(vec!["data".into()]));
        let inc = r.streams[0].incremental.as_ref().unwrap();
        assert_eq!(inc.lookback, Duration::from_secs(60));
        assert_eq!(
            inc.location,
            Some(KeyLocation::Query("updated_since".into()))
        );
    }

    #[test]
    fn memory_limit_must_be_a_size() {
        let ok = GOOD.replace(
            "path = \"wh.duckdb\"",
            "path = \"wh.duckdb\"\nmemory_limit = \"256MB\"",
        );
        assert_eq!(check(&ok).unwrap().warehouse.memory_limit, "256MB");
        let bad = GOOD.replace(
            "path = \"wh.duckdb\"",
            "path = \"wh.duckdb\"\nmemory_limit = \"lots\"",
        );
        let errs = check(&bad).unwrap_err().to_string();
        assert!(
            errs.contains("conveyor.toml:4:16: warehouse.memory_limit: `lots` is not a size"),
            "{errs}"
        );
        assert_eq!(
            check(GOOD).unwrap().warehouse.memory_limit,
            DEFAULT_MEMORY_LIMIT
        );
    }

    #[test]
    fn every_mistake_is_reported_with_its_location() {
        let text = r#"[warehouse]
path = "wh.duckdb"
colour = "blue"

[sources.crm]
type = "rest"
schedule = "every monday"
base_url = "https://api.example.com"
auth = { type = "bearer", token = "env:CONVEYOR_TEST_UNSET_TOKEN" }
[[sources.crm.streams]]
name = "deals"
path = "/deals"
primary_key = "id"

[sources.erp]
type = "soap"

[sources.pay]
type = "rest"
base_url = "https://pay.example.com"
pagination = { type = "page", cursor_path = "next" }
[[sources.pay.streams]]
name = "Employees"
path = "/employees"
primary_key = "uuid"
"#;
        let errs = check(text).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/etc/conveyor/conveyor.toml:3:1: warehouse: unknown field `colour`",
            "/etc/conveyor/conveyor.toml:7:12: sources.crm.schedule: invalid cron expression",
            "/etc/conveyor/conveyor.toml:9:35: sources.crm.auth.token: environment variable CONVEYOR_TEST_UNSET_TOKEN is not set",
            "/etc/conveyor/conveyor.toml:16:8: sources.erp.type: unknown source type `soap`",
            "/etc/conveyor/conveyor.toml:21:45: sources.pay.pagination.cursor_path: not used by type = \"page\"",
            "/etc/conveyor/conveyor.toml:23:8: sources.pay.streams[0].name: stream name `Employees` must be lower-case",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn page_limits_come_from_the_nearest_place_that_sets_them() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.api]
type = "rest"
base_url = "https://api.example.com"
pagination = { type = "next_url", max_pages = 500, max_empty_pages = 7 }
[[sources.api.streams]]
name = "inherits"
path = "/a"
primary_key = "id"
[[sources.api.streams]]
name = "own_key"
path = "/b"
primary_key = "id"
max_pages = 9
[[sources.api.streams]]
name = "own_table"
path = "/c"
primary_key = "id"
pagination = { type = "cursor", cursor_path = "next", cursor_param = "c", max_empty_pages = 2 }

[sources.plain]
type = "rest"
base_url = "https://api.example.com"
[[sources.plain.streams]]
name = "defaults"
path = "/d"
primary_key = "id"
"#;
        let c = check(text).unwrap();
        let limits = |source: &str, stream: &str| {
            let ConnectorConfig::Rest(r) = &c.source(source).unwrap().connector else {
                panic!("a rest source")
            };
            let s = r.streams.iter().find(|s| s.name == stream).unwrap();
            (s.page_limits.max_pages, s.page_limits.max_empty_pages)
        };
        assert_eq!(limits("api", "inherits"), (500, 7));
        assert_eq!(limits("api", "own_key"), (9, 7));
        // A stream's own pagination table replaces the style, while a
        // limit it leaves out is still the source's.
        assert_eq!(limits("api", "own_table"), (500, 2));
        assert_eq!(
            limits("plain", "defaults"),
            (
                PageLimits::DEFAULT_MAX_PAGES,
                PageLimits::DEFAULT_MAX_EMPTY_PAGES
            )
        );
    }

    #[test]
    fn a_zero_page_limit_is_located() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.api]
type = "rest"
base_url = "https://api.example.com"
pagination = { type = "next_url", max_empty_pages = 0 }
[[sources.api.streams]]
name = "items"
path = "/a"
primary_key = "id"
max_pages = 0
"#;
        let errs = check(text).unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        crate::diagnostics::assert_prefixes(
            &lines,
            &[
                "/etc/conveyor/conveyor.toml:7:53: sources.api.pagination.max_empty_pages: must be at least 1",
                "/etc/conveyor/conveyor.toml:12:13: sources.api.streams[0].max_pages: must be at least 1",
            ],
        );
    }

    #[test]
    fn a_non_builtin_type_names_a_plugin_from_the_plugin_dirs() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[plugins]
dirs = ["plugins"]
sha256 = { file_drop = "AB00000000000000000000000000000000000000000000000000000000000000" }

[sources.hours]
type = "file_drop"
options = { dir = "/drops", streams = [{ name = "hours", pattern = "*.csv", primary_key = ["id"] }] }
"#;
        let c = check(text).unwrap();
        assert_eq!(c.plugins.dirs, [PathBuf::from("/etc/conveyor/plugins")]);
        assert_eq!(
            c.plugins.sha256["file_drop"],
            format!("ab{}", "0".repeat(62))
        );
        let ConnectorConfig::Plugin(p) = &c.source("hours").unwrap().connector else {
            panic!("a plugin source")
        };
        assert_eq!(p.plugin, "file_drop");
        assert_eq!(p.options["streams"][0]["primary_key"][0], "id");
        assert_eq!(
            (p.dirs.as_slice(), p.sha256.as_deref()),
            (
                c.plugins.dirs.as_slice(),
                Some(c.plugins.sha256["file_drop"].as_str())
            )
        );
        assert!(p.secrets.is_empty());

        // Secrets are references, checked like every other secret.
        let with_secret = text.replace(
            "options = {",
            "secrets = { api_token = \"env:CONVEYOR_TEST_UNSET_TOKEN\" }\noptions = {",
        );
        let e = check(&with_secret).unwrap_err().to_string();
        assert!(e.contains("sources.hours.secrets.api_token: environment variable CONVEYOR_TEST_UNSET_TOKEN is not set"), "{e}");
        let c = check(&with_secret.replace("env:CONVEYOR_TEST_UNSET_TOKEN", "env:PATH")).unwrap();
        let ConnectorConfig::Plugin(p) = &c.source("hours").unwrap().connector else {
            panic!("a plugin source")
        };
        assert_eq!(p.secrets.len(), 1);
        assert_eq!(p.secrets[0].0, "api_token");

        // Without plugin dirs the type is unknown, with a hint saying how to add them.
        let e = check(&text.replace("dirs = [\"plugins\"]", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sources.hours.type: unknown source type `file_drop`")
                && e.contains("add [plugins] dirs"),
            "{e}"
        );
        // REST keys on a plugin source, options on a REST source, a bad digest.
        let bad = text
            .replace(
                "type = \"file_drop\"",
                "type = \"file_drop\"\nbase_url = \"https://x\"",
            )
            .replace("AB00", "zz");
        let e = check(&bad).unwrap_err().to_string();
        assert!(
            e.contains("sources.hours.base_url: not used by type = \"file_drop\""),
            "{e}"
        );
        assert!(
            e.contains("plugins.sha256.file_drop: must be a SHA-256 digest"),
            "{e}"
        );
    }

    #[test]
    fn a_plugin_source_may_run_in_its_own_process_with_a_memory_limit() {
        let text = r#"
[warehouse]
path = "wh.duckdb"

[plugins]
dirs = ["plugins"]

[sources.hours]
type = "file_drop"
"#;
        let plugin = |c: &Config| match &c.source("hours").unwrap().connector {
            ConnectorConfig::Plugin(p) => (p.isolation, p.memory_limit),
            _ => panic!("a plugin source"),
        };
        let c = check(text).unwrap();
        assert_eq!(
            plugin(&c),
            (PluginIsolation::InProcess, DEFAULT_PLUGIN_MEMORY_LIMIT)
        );
        let isolated = format!("{text}isolation = \"process\"\nmemory_limit = \"512MiB\"\n");
        assert_eq!(
            plugin(&check(&isolated).unwrap()),
            (PluginIsolation::Process, 512 << 20)
        );
        for (bad, expected) in [
            (
                "isolation = \"thread\"",
                "sources.hours.isolation: unknown isolation `thread`",
            ),
            (
                "memory_limit = \"1GB\"",
                "sources.hours.memory_limit: only applies with isolation = \"process\"",
            ),
            (
                "isolation = \"process\"\nmemory_limit = \"lots\"",
                "sources.hours.memory_limit: `lots` is not a size",
            ),
            (
                "isolation = \"process\"\nmemory_limit = \"1MB\"",
                "is too small to start a plugin process",
            ),
        ] {
            let e = check(&format!("{text}{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(expected), "{bad}: {e}");
        }
        let rest = "[warehouse]\npath = \"wh.duckdb\"\n\n[sources.api]\ntype = \"rest\"\nbase_url = \"https://x\"\nisolation = \"process\"\n";
        let e = check(rest).unwrap_err().to_string();
        assert!(
            e.contains("sources.api.isolation: not used by type = \"rest\""),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_have_locations() {
        let errs = check("[warehouse]\npath = \"x\"\n[sources.a\n").unwrap_err();
        assert_eq!(errs.0[0].line, 3, "{errs}");
    }

    #[test]
    fn five_field_cron_gets_seconds() {
        let s = parse_cron("30 2 * * mon-fri").unwrap();
        assert_eq!(s.source(), "0 30 2 * * mon-fri");
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn offline_validation_parses_secret_references_without_reading_them() {
        let text = GOOD.replace("env:PATH", "env:CONVEYOR_SURELY_UNSET_VAR");
        assert!(
            text.contains("CONVEYOR_SURELY_UNSET_VAR"),
            "GOOD has an env: secret"
        );
        let path = PathBuf::from("/etc/conveyor/conveyor.toml");
        let errors = validate(&text, &path, Reach::Secrets)
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("CONVEYOR_SURELY_UNSET_VAR is not set"),
            "{errors}"
        );
        assert!(validate(&text, &path, Reach::Offline).is_ok());
        // Malformed references are still errors offline.
        let bad = GOOD.replace("env:PATH", "env:");
        assert!(validate(&bad, &path, Reach::Offline).is_err());
    }
}
