//! `[cluster]`: several daemons sharing one set of sources. Each takes a
//! lease per source (and one for the evaluator) in a Postgres database
//! before it works on it, so a source is never synced by two daemons at
//! once and a daemon that dies hands its work on when its leases expire.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned as S;

use crate::catalog_db::{PostgresEndpoint, RawEndpoint};
use crate::validate::Checker;

/// How long a lease lasts unless renewed, when the config does not say. A
/// daemon that dies hands its sources on within this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The validated `[cluster]` section.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Postgres database that holds the leases.
    pub db: PostgresEndpoint,
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease: Duration,
    /// This daemon's name in the lease table (default: the host name).
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    catalog: Option<S<String>>,
    password: Option<S<String>>,
    tls: Option<S<String>>,
    ca_file: Option<S<String>>,
    connect_timeout_secs: Option<S<u64>>,
    lease: Option<S<String>>,
    name: Option<S<String>>,
}

impl Checker<'_> {
    pub(crate) fn cluster(&mut self, raw: Option<S<RawCluster>>) -> Option<ClusterConfig> {
        let raw = raw?;
        let span = raw.span();
        let raw = raw.into_inner();
        let errors_before = self.error_count();
        let db = self.postgres_endpoint(
            "cluster",
            span,
            "catalog",
            RawEndpoint {
                url: raw.catalog.as_ref(),
                password: raw.password.as_ref(),
                tls: raw.tls.as_ref(),
                ca_file: raw.ca_file.as_ref(),
                connect_timeout_secs: raw.connect_timeout_secs.as_ref(),
            },
            "the Postgres database that holds the leases",
        );
        let lease = match &raw.lease {
            None => DEFAULT_LEASE,
            Some(d) => match humantime::parse_duration(d.get_ref()) {
                Ok(v) if (5..=3600).contains(&v.as_secs()) => v,
                Ok(_) => {
                    self.error(
                        d.span(),
                        "cluster.lease",
                        "must be from 5 seconds to 1 hour",
                    )
                    .hint("e.g. \"30s\": a dead daemon's sources move on within this long");
                    DEFAULT_LEASE
                }
                Err(e) => {
                    self.error(
                        d.span(),
                        "cluster.lease",
                        format!("`{}` is not a duration: {e}", d.get_ref()),
                    )
                    .hint("e.g. \"30s\", \"2m\"");
                    DEFAULT_LEASE
                }
            },
        };
        let name = match &raw.name {
            Some(n) => {
                let ok = !n.get_ref().is_empty()
                    && n.get_ref().len() <= 100
                    && n.get_ref().chars().all(|c| c.is_ascii_graphic());
                if !ok {
                    self.error(
                        n.span(),
                        "cluster.name",
                        "must be 1 to 100 visible ASCII characters",
                    )
                    .hint("e.g. name = \"conveyor-a\"");
                }
                n.get_ref().clone()
            }
            None => default_name(),
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(ClusterConfig {
            db: db?,
            lease,
            name,
        })
    }
}

/// The host name, which tells an operator which machine holds a lease.
fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "conveyor".to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!("[warehouse]\npath = \"w.duckdb\"\n{extra}");
        crate::parse_offline(&text, Path::new("c.toml"))
    }

    #[test]
    fn cluster_is_off_without_the_section() {
        assert!(parse("").unwrap().cluster.is_none());
    }

    #[test]
    fn cluster_reads_the_catalog_lease_and_name() {
        let c = parse(
            "[cluster]\ncatalog = \"postgres://conveyor@127.0.0.1:6543/leases\"\npassword = \"env:PG_PASSWORD\"\ntls = \"disable\"\nlease = \"12s\"\nname = \"conveyor-a\"\n",
        )
        .unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(
            (
                cl.db.host.as_str(),
                cl.db.port,
                cl.db.database.as_str(),
                cl.db.user.as_str()
            ),
            ("127.0.0.1", 6543, "leases", "conveyor")
        );
        assert_eq!(cl.lease.as_secs(), 12);
        assert_eq!(cl.name, "conveyor-a");
        assert!(cl.db.password.is_some());
    }

    #[test]
    fn cluster_refuses_a_password_in_the_url_and_a_short_lease() {
        let e = parse(
            "[cluster]\ncatalog = \"postgres://conveyor:hunter2@db.internal/leases\"\nlease = \"1s\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cluster.catalog") && e.contains("holds a password"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.contains("cluster.lease") && e.contains("5 seconds"),
            "{e}"
        );
    }

    #[test]
    fn cluster_refuses_plain_tcp_to_another_host() {
        let e = parse(
            "[cluster]\ncatalog = \"postgres://conveyor@db.internal/leases\"\ntls = \"disable\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cluster.tls") && e.contains("in the clear"),
            "{e}"
        );
    }
}
