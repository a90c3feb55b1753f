//! SQL database sources (`type = "postgres"`, `type = "mysql"`): an ERP or
//! in-house system read straight from its database, table by table or query
//! by query, keyset-paginated on a primary key and an optional cursor.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned as S;

use crate::secret::SecretRef;
use crate::validate::Checker;

/// Rows per chunk when a source does not say: big enough that the round trip
/// is noise, small enough that a chunk's Arrow batch stays a few MB.
pub const DEFAULT_CHUNK_ROWS: u32 = 10_000;

/// Which wire protocol and SQL dialect a database source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseEngine {
    Postgres,
    /// MySQL and MariaDB.
    MySql,
}

impl DatabaseEngine {
    /// The `type` values that name a database source.
    pub const TYPES: [&'static str; 3] = ["postgres", "mysql", "mariadb"];

    pub fn from_type(kind: &str) -> Option<DatabaseEngine> {
        match kind {
            "postgres" => Some(DatabaseEngine::Postgres),
            "mysql" | "mariadb" => Some(DatabaseEngine::MySql),
            _ => None,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            DatabaseEngine::Postgres => "postgres",
            DatabaseEngine::MySql => "mysql",
        }
    }

    fn schemes(self) -> &'static [&'static str] {
        match self {
            DatabaseEngine::Postgres => &["postgres", "postgresql"],
            DatabaseEngine::MySql => &["mysql", "mariadb"],
        }
    }

    fn default_port(self) -> u16 {
        match self {
            DatabaseEngine::Postgres => 5432,
            DatabaseEngine::MySql => 3306,
        }
    }
}

/// How the connection is encrypted. The names are libpq's `sslmode`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseTlsMode {
    /// Plain TCP; only allowed to a loopback host.
    Disable,
    /// Encrypted, the server's certificate not checked.
    Require,
    /// Encrypted, the certificate checked against `ca_file` (or the system
    /// roots) and the host name.
    VerifyFull,
}

/// A `type = "postgres"` / `"mysql"` source.
#[derive(Debug, Clone)]
pub struct DatabaseSourceConfig {
    pub engine: DatabaseEngine,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<SecretRef>,
    pub tls: DatabaseTlsMode,
    pub ca_file: Option<PathBuf>,
    pub chunk_rows: u32,
    pub connect_timeout: Duration,
    pub streams: Vec<DatabaseStream>,
}

/// What a stream reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseRelation {
    /// `table = "schema.table"` (or just `table`).
    Table {
        schema: Option<String>,
        table: String,
    },
    /// `query = "SELECT …"`: read as a subquery, so the paging predicates
    /// apply to its output columns.
    Query(String),
}

#[derive(Debug, Clone)]
pub struct DatabaseStream {
    pub name: String,
    pub relation: DatabaseRelation,
    pub primary_key: Vec<String>,
    /// A column that only grows when a row changes (`updated_at`, or an id
    /// that only increases). Without it every sync reads the whole relation.
    pub cursor: Option<String>,
    /// How far back before the last cursor value each sync starts again, for
    /// rows committed late with an earlier timestamp.
    pub lookback: Duration,
    /// A column that is set when the row is deleted (`deleted_at`,
    /// `is_deleted`); the warehouse gets `_deleted` = whether it is set.
    pub soft_delete: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabaseSource {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub schedule: Option<S<String>>,
    pub timezone: Option<S<String>>,
    pub url: Option<S<String>>,
    pub password: Option<S<String>>,
    pub tls: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub chunk_rows: Option<S<u32>>,
    pub connect_timeout_secs: Option<S<u64>>,
    pub streams: Option<Vec<S<RawDatabaseStream>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabaseStream {
    pub name: S<String>,
    pub table: Option<S<String>>,
    pub query: Option<S<String>>,
    pub primary_key: Option<S<toml::Value>>,
    pub cursor: Option<S<String>>,
    pub lookback: Option<S<String>>,
    pub soft_delete: Option<S<String>>,
}

/// The `type` of a source table, when it names a database engine.
pub(crate) fn engine_of(value: &S<toml::de::DeValue<'_>>) -> Option<DatabaseEngine> {
    let toml::de::DeValue::Table(t) = value.get_ref() else {
        return None;
    };
    let (_, v) = t.iter().find(|(k, _)| k.get_ref() == "type")?;
    match v.get_ref() {
        toml::de::DeValue::String(s) => DatabaseEngine::from_type(s),
        _ => None,
    }
}

/// A column name as the paging SQL will quote it: plain identifiers only, so
/// no config value can end up as SQL text of its own.
fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Checker<'_> {
    pub(crate) fn database_source_named(
        &mut self,
        name: S<String>,
        raw: RawDatabaseSource,
    ) -> Option<crate::SourceConfig> {
        let errors_before = self.error_count();
        let key = format!("sources.{}", name.get_ref());
        self.identifier(&name, &key, "source name");
        let schedule = self.schedule(&key, raw.schedule.as_ref(), raw.timezone.as_ref());
        let database = self.database_source(&key, &raw);
        if self.error_count() > errors_before {
            return None;
        }
        Some(crate::SourceConfig {
            name: name.into_inner(),
            schedule: schedule.flatten(),
            connector: crate::ConnectorConfig::Database(database?),
        })
    }

    fn database_source(
        &mut self,
        key: &str,
        raw: &RawDatabaseSource,
    ) -> Option<DatabaseSourceConfig> {
        let errors_before = self.error_count();
        let engine =
            DatabaseEngine::from_type(raw.kind.get_ref()).expect("dispatched on a database type");
        let kind = raw.kind.get_ref().as_str();
        let example = match engine {
            DatabaseEngine::Postgres => "postgres://conveyor@erp-db.internal:5432/erp",
            DatabaseEngine::MySql => "mysql://conveyor@erp-db.internal:3306/erp",
        };
        let address = match &raw.url {
            None => {
                self.error(
                    raw.kind.span(),
                    &format!("{key}.url"),
                    format!("missing key `url` (required by type = \"{kind}\")"),
                )
                .hint(format!(
                    "e.g. url = \"{example}\", the password in password = \"env:NAME\""
                ));
                None
            }
            Some(u) => self.database_url(u, &format!("{key}.url"), engine, example),
        };
        let password = raw
            .password
            .as_ref()
            .and_then(|p| self.secret(p, &format!("{key}.password")));
        let host = address.as_ref().map(|(h, ..)| h.as_str());
        let (tls, ca_file) = self.database_tls(key, raw.tls.as_ref(), raw.ca_file.as_ref(), host);
        let chunk_rows = match &raw.chunk_rows {
            None => DEFAULT_CHUNK_ROWS,
            Some(n) if (100..=1_000_000).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                self.error(
                    n.span(),
                    &format!("{key}.chunk_rows"),
                    "must be between 100 and 1000000",
                );
                DEFAULT_CHUNK_ROWS
            }
        };
        let connect_timeout = Duration::from_secs(
            raw.connect_timeout_secs
                .as_ref()
                .map(|s| *s.get_ref())
                .unwrap_or(10)
                .max(1),
        );
        let streams = self.database_streams(key, raw);
        if self.error_count() > errors_before {
            return None;
        }
        let (host, port, database, user) = address?;
        Some(DatabaseSourceConfig {
            engine,
            host,
            port,
            database,
            user,
            password,
            tls,
            ca_file,
            chunk_rows,
            connect_timeout,
            streams,
        })
    }

    /// `tls` and `ca_file` of a connection to a database at `host`:
    /// verify-full by default, "disable" only to a loopback host.
    pub(crate) fn database_tls(
        &mut self,
        key: &str,
        tls: Option<&S<String>>,
        ca_file: Option<&S<String>>,
        host: Option<&str>,
    ) -> (DatabaseTlsMode, Option<PathBuf>) {
        let mode = match tls {
            None => DatabaseTlsMode::VerifyFull,
            Some(t) => match t.get_ref().as_str() {
                "disable" => DatabaseTlsMode::Disable,
                "require" => DatabaseTlsMode::Require,
                "verify-full" => DatabaseTlsMode::VerifyFull,
                other => {
                    self.error(
                        t.span(),
                        &format!("{key}.tls"),
                        format!("unknown TLS mode `{other}`"),
                    )
                    .hint("one of \"verify-full\" (the default), \"require\", \"disable\" (loopback only)");
                    DatabaseTlsMode::VerifyFull
                }
            },
        };
        if let (Some(host), DatabaseTlsMode::Disable, Some(t)) = (host, mode, tls) {
            if !is_loopback(host) {
                self.error(
                    t.span(),
                    &format!("{key}.tls"),
                    format!("tls = \"disable\" would send the password and the data to {host} in the clear"),
                )
                .hint("use \"verify-full\" (with ca_file for a private CA) or \"require\"; \"disable\" is for a database on this machine");
            }
        }
        let ca_file = ca_file.map(|f| {
            let path = crate::resolve_relative(self.file, f.get_ref());
            if mode != DatabaseTlsMode::VerifyFull {
                self.error(
                    f.span(),
                    &format!("{key}.ca_file"),
                    "only used with tls = \"verify-full\"",
                );
            } else if self.resolve_secrets && !path.is_file() {
                self.error(
                    f.span(),
                    &format!("{key}.ca_file"),
                    format!("cannot read {}", path.display()),
                );
            }
            path
        });
        (mode, ca_file)
    }

    /// Host, port, database and user from the URL. A password written in it
    /// is refused without repeating the URL: it would sit in the config file.
    pub(crate) fn database_url(
        &mut self,
        u: &S<String>,
        key: &str,
        engine: DatabaseEngine,
        example: &str,
    ) -> Option<(String, u16, String, String)> {
        let parsed = match url::Url::parse(u.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                self.error(u.span(), key, format!("invalid URL: {e}"))
                    .hint(format!("e.g. {example}"));
                return None;
            }
        };
        if parsed.password().is_some() {
            self.error(u.span(), key, "the URL holds a password").hint(
                "remove it from the URL and write password = \"env:NAME\" (or \"file:PATH\")",
            );
            return None;
        }
        if !engine.schemes().contains(&parsed.scheme()) {
            self.error(
                u.span(),
                key,
                format!(
                    "must be a {}:// URL for type = \"{}\"",
                    engine.schemes()[0],
                    engine.type_name()
                ),
            )
            .hint(format!("e.g. {example}"));
            return None;
        }
        let host = parsed.host_str().unwrap_or_default().to_string();
        let database = parsed.path().trim_start_matches('/').to_string();
        let user = parsed.username().to_string();
        let mut missing = Vec::new();
        if host.is_empty() {
            missing.push("a host");
        }
        if database.is_empty() || database.contains('/') {
            missing.push("a database name as its path");
        }
        if user.is_empty() {
            missing.push("a user");
        }
        if parsed.query().is_some() {
            self.error(u.span(), key, "URL parameters are not read")
                .hint("TLS is set with tls = \"…\" and ca_file = \"…\"");
            return None;
        }
        if !missing.is_empty() {
            self.error(u.span(), key, format!("needs {}", missing.join(", ")))
                .hint(format!("e.g. {example}"));
            return None;
        }
        let port = parsed.port().unwrap_or(engine.default_port());
        Some((host, port, database, user))
    }

    fn database_streams(&mut self, key: &str, raw: &RawDatabaseSource) -> Vec<DatabaseStream> {
        let Some(streams) = &raw.streams else {
            self.error(
                raw.kind.span(),
                &format!("{key}.streams"),
                "a database source needs at least one [[sources.NAME.streams]]",
            )
            .hint("e.g. name = \"orders\", table = \"public.orders\", primary_key = \"id\", cursor = \"updated_at\"");
            return Vec::new();
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for s in streams {
            let at = s.span();
            let s = s.get_ref();
            let skey = format!("{key}.streams.{}", s.name.get_ref());
            self.identifier(&s.name, &format!("{skey}.name"), "stream name");
            if !seen.insert(s.name.get_ref().clone()) {
                self.error(
                    s.name.span(),
                    &format!("{skey}.name"),
                    "a stream of that name is already declared",
                );
            }
            if let Some(stream) = self.database_stream(&skey, s, at) {
                out.push(stream);
            }
        }
        out
    }

    fn database_stream(
        &mut self,
        key: &str,
        s: &RawDatabaseStream,
        at: Range<usize>,
    ) -> Option<DatabaseStream> {
        let errors_before = self.error_count();
        let relation = match (&s.table, &s.query) {
            (Some(t), None) => {
                let parts: Vec<&str> = t.get_ref().split('.').collect();
                match parts.as_slice() {
                    [table] if plain_identifier(table) => Some(DatabaseRelation::Table {
                        schema: None,
                        table: table.to_string(),
                    }),
                    [schema, table] if plain_identifier(schema) && plain_identifier(table) => {
                        Some(DatabaseRelation::Table {
                            schema: Some(schema.to_string()),
                            table: table.to_string(),
                        })
                    }
                    _ => {
                        self.error(
                            t.span(),
                            &format!("{key}.table"),
                            "must be `table` or `schema.table` of letters, digits and underscores",
                        )
                        .hint("for anything else write query = \"SELECT … FROM …\"");
                        None
                    }
                }
            }
            (None, Some(q)) => {
                let text = q.get_ref().trim().trim_end_matches(';').trim();
                if text.is_empty() {
                    self.error(q.span(), &format!("{key}.query"), "is empty");
                    None
                } else {
                    Some(DatabaseRelation::Query(text.to_string()))
                }
            }
            (Some(t), Some(_)) => {
                self.error(
                    t.span(),
                    &format!("{key}.table"),
                    "give `table` or `query`, not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    at.clone(),
                    &format!("{key}.table"),
                    "missing key `table` (or `query`)",
                )
                .hint("table = \"public.orders\", or query = \"SELECT … FROM …\"");
                None
            }
        };
        let column = |c: &mut Self, v: &S<String>, field: &str| -> Option<String> {
            if plain_identifier(v.get_ref()) {
                Some(v.get_ref().clone())
            } else {
                c.error(
                    v.span(),
                    &format!("{key}.{field}"),
                    format!("`{}` is not a plain column name", v.get_ref()),
                )
                .hint(
                    "letters, digits and underscores; rename it in a query = \"SELECT … AS name\"",
                );
                None
            }
        };
        let primary_key = match &s.primary_key {
            None => {
                self.error(at.clone(), &format!("{key}.primary_key"), "missing key `primary_key`")
                    .hint("the column(s) that identify a row, e.g. primary_key = \"id\"; rows are merged and paged by it");
                Vec::new()
            }
            Some(pk) => {
                let names: Option<Vec<String>> = match pk.get_ref() {
                    toml::Value::String(x) => Some(vec![x.clone()]),
                    toml::Value::Array(a) if !a.is_empty() => {
                        a.iter().map(|v| v.as_str().map(str::to_string)).collect()
                    }
                    _ => None,
                };
                match names {
                    Some(n) if n.iter().all(|c| plain_identifier(c)) => n,
                    _ => {
                        self.error(
                            pk.span(),
                            &format!("{key}.primary_key"),
                            "must be a column name or a non-empty list of plain column names",
                        );
                        Vec::new()
                    }
                }
            }
        };
        let cursor = s.cursor.as_ref().and_then(|c| column(self, c, "cursor"));
        let soft_delete = s
            .soft_delete
            .as_ref()
            .and_then(|c| column(self, c, "soft_delete"));
        let lookback = match &s.lookback {
            None => Duration::ZERO,
            Some(l) if s.cursor.is_none() => {
                self.error(
                    l.span(),
                    &format!("{key}.lookback"),
                    "only used with a `cursor`",
                );
                Duration::ZERO
            }
            Some(l) => match humantime::parse_duration(l.get_ref()) {
                Ok(d) => d,
                Err(e) => {
                    self.error(l.span(), &format!("{key}.lookback"), format!("{e}"))
                        .hint("e.g. lookback = \"10m\"");
                    Duration::ZERO
                }
            },
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(DatabaseStream {
            name: s.name.get_ref().clone(),
            relation: relation?,
            primary_key,
            cursor,
            lookback,
            soft_delete,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{ConnectorConfig, DatabaseEngine, DatabaseRelation, DatabaseTlsMode};

    fn check(text: &str) -> crate::Config {
        crate::parse(text, Path::new("/etc/conveyor/conveyor.toml")).expect("a valid config")
    }

    fn errors(text: &str) -> String {
        match crate::parse(text, Path::new("c.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_postgres_source_with_a_table_and_a_query_stream() {
        let c = check(
            r#"
[warehouse]
path = "w.duckdb"

[sources.erp]
type = "postgres"
url = "postgres://conveyor@127.0.0.1:55432/erp"
password = "env:HOME"
tls = "disable"
chunk_rows = 500

[[sources.erp.streams]]
name = "orders"
table = "sales.orders"
primary_key = "id"
cursor = "updated_at"
lookback = "5m"
soft_delete = "deleted_at"

[[sources.erp.streams]]
name = "open_orders"
query = "SELECT id, total FROM sales.orders WHERE status = 'open';"
primary_key = ["id"]
"#,
        );
        let ConnectorConfig::Database(d) = &c.source("erp").unwrap().connector else {
            panic!("not a database source");
        };
        assert_eq!(d.engine, DatabaseEngine::Postgres);
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", 55432));
        assert_eq!((d.database.as_str(), d.user.as_str()), ("erp", "conveyor"));
        assert_eq!(d.tls, DatabaseTlsMode::Disable);
        assert_eq!(d.chunk_rows, 500);
        assert_eq!(
            d.streams[0].relation,
            DatabaseRelation::Table {
                schema: Some("sales".into()),
                table: "orders".into()
            }
        );
        assert_eq!(d.streams[0].lookback.as_secs(), 300);
        assert_eq!(d.streams[0].soft_delete.as_deref(), Some("deleted_at"));
        assert_eq!(
            d.streams[1].relation,
            DatabaseRelation::Query(
                "SELECT id, total FROM sales.orders WHERE status = 'open'".into()
            )
        );
        assert_eq!(d.streams[1].cursor, None);
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        let e = errors(
            r#"
[warehouse]
path = "w.duckdb"

[sources.erp]
type = "mysql"
url = "mysql://conveyor:hunter2secret@db.example.com/erp"
[[sources.erp.streams]]
name = "orders"
table = "orders"
primary_key = "id"
"#,
        );
        assert!(
            e.contains("sources.erp.url: the URL holds a password"),
            "{e}"
        );
        assert!(!e.contains("hunter2secret"), "{e}");
    }

    #[test]
    fn plain_tcp_off_loopback_bad_columns_and_missing_keys_are_each_reported() {
        let e = errors(
            r#"
[warehouse]
path = "w.duckdb"

[sources.erp]
type = "postgres"
url = "postgres://conveyor@db.example.com/erp"
tls = "disable"
password = "hunter2"

[[sources.erp.streams]]
name = "orders"
table = "orders; DROP TABLE x"
primary_key = "id"
cursor = "updated at"

[[sources.erp.streams]]
name = "lines"
primary_key = "id"
lookback = "5m"
"#,
        );
        for expected in [
            "sources.erp.tls: tls = \"disable\" would send the password and the data to db.example.com in the clear",
            "sources.erp.password:",
            "sources.erp.streams.orders.table: must be `table` or `schema.table`",
            "sources.erp.streams.orders.cursor: `updated at` is not a plain column name",
            "sources.erp.streams.lines.table: missing key `table` (or `query`)",
            "sources.erp.streams.lines.lookback: only used with a `cursor`",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in\n{e}");
        }
        assert!(!e.contains("hunter2\""), "{e}");
    }
}
