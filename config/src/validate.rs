//! Turns config text into the validated [`Config`], collecting every problem.

use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::diagnostics::{ConfigErrors, Diagnostic};
use crate::model::*;
use crate::raw::*;
use crate::rest::raw::RawSource;
use crate::secret::SecretRef;

/// The most DuckDB worker threads `warehouse.threads` may ask for.
const MAX_THREADS: u64 = 256;

const TOP_LEVEL_KEYS: &str =
    "warehouse, server, plugins, sources, model, reconcile, rules, reports, smtp, health, cluster, publish";

/// Collects diagnostics while walking the raw config.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a Path,
    text: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<String>,
    /// Whether each secret reference must resolve now (false for offline
    /// uses that never read a secret, such as `conveyor test`).
    pub(crate) resolve_secrets: bool,
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
    let mut database_sources = Vec::new();
    let mut model_raw = None;
    let mut reconcile_raw = Vec::new();
    let mut rules_raw = Vec::new();
    let mut reports_raw = Vec::new();
    let mut smtp_raw = None;
    let mut health_raw = None;
    let mut cluster_raw = None;
    let mut publish_raw = None;
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
                        if crate::database::engine_of(v).is_some() {
                            if let Some(raw) =
                                c.section::<crate::database::RawDatabaseSource>(&path, v)
                            {
                                database_sources.push((Spanned::new(name.span(), name_s), raw));
                            }
                        } else if crate::vendor::vendor_of(v).is_some() {
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
            "publish" => {
                publish_raw = c
                    .section::<crate::publish::RawPublish>("publish", value)
                    .map(|r| Spanned::new(value.span(), r))
            }
            "cluster" => {
                cluster_raw = c
                    .section::<crate::cluster::RawCluster>("cluster", value)
                    .map(|r| Spanned::new(value.span(), r))
            }
            "reports" => {
                reports_raw = c
                    .section::<Vec<Spanned<crate::reports::RawReport>>>("reports", value)
                    .unwrap_or_default()
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
        .chain(database_sources.iter().map(|(n, _)| n.get_ref().clone()))
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
    for (name, raw) in database_sources {
        if let Some(s) = c.database_source_named(name, raw) {
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
    let reports = c.reports(reports_raw, &reconcile_names, &reconciles);
    let smtp_given = smtp_raw.is_some();
    let smtp = c.smtp(smtp_raw);
    let operator = smtp.as_ref().and_then(|s| s.operator.as_deref());
    let (health, health_warning) = c.health(health_raw, operator);
    c.warnings.extend(health_warning);
    let cluster = c.cluster(cluster_raw);
    let publish = c.publish(publish_raw);
    if !smtp_given {
        let action = rules
            .iter()
            .find(|r| !r.actions.is_empty())
            .map(|r| (&r.actions[0].at, "an e-mail action needs an [smtp] section"));
        let report = reports
            .first()
            .map(|r| (&r.at, "a report is e-mailed: it needs an [smtp] section"));
        if let Some((at, why)) = action.or(report) {
            let mut d = Diagnostic::from_located(at, why);
            d.hint("add [smtp] with host and from (username, password = \"env:NAME\" if the server needs them)");
            c.errors.push(d);
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
        reports,
        smtp,
        health,
        cluster,
        publish,
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
        let threads = match raw.threads {
            None => None,
            Some(t) if (1..=MAX_THREADS).contains(t.get_ref()) => Some(*t.get_ref()),
            Some(t) => {
                self.error(
                    t.span(),
                    "warehouse.threads",
                    format!("{} is not between 1 and {MAX_THREADS}", t.get_ref()),
                )
                .hint("leave it out for one thread per core");
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
            threads,
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
        let builtin = crate::vendor::Vendor::builtin_types();
        if !plain {
            self.error(raw.kind.span(), &format!("{key}.type"), format!("unknown source type `{kind}`"))
                .hint(format!("built-in types: {builtin}; a plugin's name is lower-case letters, digits and underscores"));
            return None;
        }
        if plugins.dirs.is_empty() {
            self.error(raw.kind.span(), &format!("{key}.type"), format!("unknown source type `{kind}`"))
                .hint(format!(
                    "built-in types: {builtin}; for a connector plugin, add [plugins] dirs = [\"…\"] with the folder holding lib{kind}.so"
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
    pub(crate) fn unused(
        &mut self,
        key: &str,
        kind: &str,
        fields: &[(&str, Option<Range<usize>>)],
    ) {
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
    use std::time::Duration;

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
    fn threads_are_a_small_positive_number_or_duckdbs_default() {
        let with = |t: &str| {
            GOOD.replace(
                "path = \"wh.duckdb\"",
                &format!("path = \"wh.duckdb\"\nthreads = {t}"),
            )
        };
        assert_eq!(check(&with("1")).unwrap().warehouse.threads, Some(1));
        assert_eq!(check(GOOD).unwrap().warehouse.threads, None);
        let errs = check(&with("0")).unwrap_err().to_string();
        assert!(
            errs.contains("conveyor.toml:4:11: warehouse.threads: 0 is not between 1 and 256"),
            "{errs}"
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
