//! `[server]` and `[server.postgres]`: the daemon's live entry points (the
//! HTTP endpoint and the Postgres-wire SQL endpoint), their credentials and
//! TLS. Off loopback, each needs TLS and an explicit credential.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::secret::SecretRef;
use crate::validate::Checker;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
pub const DEFAULT_POSTGRES_LISTEN: &str = "127.0.0.1:5433";

/// The daemon's HTTP endpoint: `conveyor query`, `status`, silences and
/// previews while it holds the warehouse open.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The bearer token clients present. `None`: the daemon writes a random
    /// one to [`ServerConfig::token_file`] (mode 0600) at start, which the
    /// local CLI reads — file permissions decide who may use the endpoint.
    pub token: Option<SecretRef>,
    /// Where the generated token is kept when `token` is not set.
    pub token_file: PathBuf,
    pub tls: Option<TlsFiles>,
    /// The CA certificate the local CLI trusts for `tls` (default: the
    /// certificate itself, as for a self-signed one).
    pub tls_ca: Option<PathBuf>,
    /// Host header values accepted besides loopback names and the listen
    /// address itself (DNS rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Where the console shows times (`timezone`, default UTC).
    pub timezone: chrono_tz::Tz,
    pub postgres: Option<PostgresConfig>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[server.postgres]`: read-only SQL over the Postgres wire protocol for
/// psql, BI tools and notebooks. Users log in with SCRAM-SHA-256.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub listen: SocketAddr,
    /// User name → password reference.
    pub users: BTreeMap<String, SecretRef>,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    tls_ca: Option<Spanned<String>>,
    allowed_hosts: Option<Vec<Spanned<String>>>,
    timezone: Option<Spanned<String>>,
    postgres: Option<Spanned<RawPostgres>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    listen: Option<Spanned<String>>,
    users: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

/// Whether `addr` only answers this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

impl Checker<'_> {
    /// Validates `[server]`; `warehouse` is where the token file goes.
    pub(crate) fn server(
        &mut self,
        raw: Option<Spanned<RawServer>>,
        warehouse: Option<&std::path::Path>,
    ) -> Option<ServerConfig> {
        let span = raw.as_ref().map(|r| r.span()).unwrap_or(0..0);
        let raw = raw.map(|r| r.into_inner());
        let (listen_raw, token_raw, cert, key, ca, hosts, tz, postgres) = match raw {
            Some(r) => (
                r.listen,
                r.token,
                r.tls_cert,
                r.tls_key,
                r.tls_ca,
                r.allowed_hosts,
                r.timezone,
                r.postgres,
            ),
            None => (None, None, None, None, None, None, None, None),
        };
        let timezone = self.timezone(tz.as_ref(), "server")?;
        let listen = self.listen_addr(listen_raw.as_ref(), "server.listen", DEFAULT_LISTEN);
        let token = token_raw
            .as_ref()
            .and_then(|t| self.secret(t, "server.token"));
        let tls = self.tls_files(cert, key, "server", span.clone());
        let tls_ca = ca.and_then(|c| {
            let path = crate::resolve_relative(self.file(), c.get_ref());
            if tls.is_none() {
                self.error(
                    c.span(),
                    "server.tls_ca",
                    "only used with tls_cert and tls_key",
                );
                None
            } else if !path.is_file() {
                self.error(
                    c.span(),
                    "server.tls_ca",
                    format!("{} does not exist", path.display()),
                );
                None
            } else {
                Some(path)
            }
        });
        let postgres = postgres.and_then(|p| self.postgres(p));
        let listen = listen?;
        if !is_loopback(&listen) {
            let at = listen_raw
                .as_ref()
                .map(|l| l.span())
                .unwrap_or(span.clone());
            if tls.is_none() {
                self.error(
                    at.clone(),
                    "server.listen",
                    format!("`{listen}` is reachable from other machines, and the endpoint would serve it without TLS"),
                )
                .hint("set server.tls_cert and server.tls_key, or listen on 127.0.0.1");
            }
            if token_raw.is_none() {
                self.error(
                    at,
                    "server.listen",
                    format!("`{listen}` is reachable from other machines; remote clients need a token you manage"),
                )
                .hint("set server.token = \"env:NAME\" or \"file:PATH\"");
            }
        }
        let token_file = match warehouse {
            Some(w) => {
                let mut name = w.file_name().unwrap_or_default().to_os_string();
                name.push(".token");
                w.with_file_name(name)
            }
            None => PathBuf::from("conveyor.token"),
        };
        Some(ServerConfig {
            listen,
            token,
            token_file,
            tls,
            tls_ca,
            allowed_hosts: hosts
                .into_iter()
                .flatten()
                .map(|h| h.into_inner().to_ascii_lowercase())
                .collect(),
            timezone,
            postgres,
        })
    }

    fn postgres(&mut self, raw: Spanned<RawPostgres>) -> Option<PostgresConfig> {
        let span = raw.span();
        let raw = raw.into_inner();
        let listen = self.listen_addr(
            raw.listen.as_ref(),
            "server.postgres.listen",
            DEFAULT_POSTGRES_LISTEN,
        );
        let tls = self.tls_files(raw.tls_cert, raw.tls_key, "server.postgres", span.clone());
        let mut users = BTreeMap::new();
        match &raw.users {
            Some(u) if !u.get_ref().is_empty() => {
                for (name, password) in u.get_ref() {
                    let key = format!("server.postgres.users.{name}");
                    if let Some(r) = self.secret(password, &key) {
                        users.insert(name.clone(), r);
                    }
                }
            }
            other => {
                let at = other.as_ref().map(|u| u.span()).unwrap_or(span.clone());
                self.error(
                    at,
                    "server.postgres.users",
                    "the SQL endpoint needs at least one user",
                )
                .hint("users = { ops = \"env:CONVEYOR_PG_OPS_PASSWORD\" }");
            }
        }
        let listen = listen?;
        if !is_loopback(&listen) && tls.is_none() {
            let at = raw.listen.as_ref().map(|l| l.span()).unwrap_or(span);
            self.error(
                at,
                "server.postgres.listen",
                format!("`{listen}` is reachable from other machines, and passwords would cross it without TLS"),
            )
            .hint("set server.postgres.tls_cert and tls_key, or listen on 127.0.0.1");
        }
        Some(PostgresConfig { listen, users, tls })
    }

    fn listen_addr(
        &mut self,
        raw: Option<&Spanned<String>>,
        key: &str,
        default: &str,
    ) -> Option<SocketAddr> {
        let text = raw.map(|l| l.get_ref().as_str()).unwrap_or(default);
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                let span = raw.map(|l| l.span()).unwrap_or(0..0);
                self.error(span, key, format!("`{text}` is not an address:port"))
                    .hint(format!("e.g. listen = \"{default}\""));
                None
            }
        }
    }

    /// Both files or neither; each must exist.
    fn tls_files(
        &mut self,
        cert: Option<Spanned<String>>,
        key: Option<Spanned<String>>,
        section: &str,
        span: Range<usize>,
    ) -> Option<TlsFiles> {
        match (cert, key) {
            (None, None) => None,
            (Some(c), Some(k)) => {
                let mut files = Vec::new();
                for (f, name) in [(&c, "tls_cert"), (&k, "tls_key")] {
                    let path = crate::resolve_relative(self.file(), f.get_ref());
                    if !path.is_file() {
                        self.error(
                            f.span(),
                            &format!("{section}.{name}"),
                            format!("{} does not exist", path.display()),
                        )
                        .hint("a PEM file");
                    }
                    files.push(path);
                }
                let key = files.pop().expect("two files");
                let cert = files.pop().expect("two files");
                Some(TlsFiles { cert, key })
            }
            (c, k) => {
                let at = c.or(k).map(|s| s.span()).unwrap_or(span);
                self.error(
                    at,
                    &format!("{section}.tls_cert"),
                    "tls_cert and tls_key go together",
                )
                .hint("set both, or neither");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(text: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse_offline(
            &format!("[warehouse]\npath = \"w.duckdb\"\n{text}"),
            Path::new("/cfg/conveyor.toml"),
        )
    }

    #[test]
    fn server_defaults_to_loopback_and_a_token_file_beside_the_warehouse() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen.to_string(), super::DEFAULT_LISTEN);
        assert!(c.server.token.is_none());
        assert_eq!(c.server.token_file, Path::new("/cfg/w.duckdb.token"));
        assert!(c.server.postgres.is_none());
    }

    #[test]
    fn server_timezone_is_an_iana_name_and_defaults_to_utc() {
        assert_eq!(parse("").unwrap().server.timezone, chrono_tz::UTC);
        let c = parse("[server]\ntimezone = \"Europe/London\"\n").unwrap();
        assert_eq!(c.server.timezone, chrono_tz::Europe::London);
        let e = parse("[server]\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":4:12: server.timezone: unknown time zone `Mars/Olympus`"),
            "{e}"
        );
    }

    #[test]
    fn server_off_loopback_needs_tls_and_a_token() {
        let e = parse("[server]\nlisten = \"0.0.0.0:7878\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.listen") && e.contains("without TLS"),
            "{e}"
        );
        assert!(e.contains("token you manage"), "{e}");
    }

    #[test]
    fn server_postgres_needs_users_and_tls_off_loopback() {
        let e = parse("[server.postgres]\nlisten = \"0.0.0.0:5433\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.postgres.users"), "{e}");
        assert!(
            e.contains("server.postgres.listen") && e.contains("without TLS"),
            "{e}"
        );
        let c = parse("[server.postgres]\nusers = { ops = \"env:PG_OPS\" }\n").unwrap();
        let pg = c.server.postgres.unwrap();
        assert_eq!(pg.listen.to_string(), super::DEFAULT_POSTGRES_LISTEN);
        assert_eq!(format!("{:?}", pg.users["ops"]), "env:PG_OPS");
    }

    #[test]
    fn server_tls_files_go_together_and_exist() {
        let e = parse("[server]\ntls_cert = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("go together"), "{e}");
        let e = parse("[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/cfg/c.pem does not exist"), "{e}");
    }
}
