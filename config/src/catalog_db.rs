//! A Postgres database Conveyor keeps tables of its own in — the cluster's
//! leases, the Iceberg catalog: where it is, who logs in, how the
//! connection is encrypted. The URL and TLS rules are the database
//! sources' (`database.rs`): no password in the URL, verify-full by default,
//! plain TCP only to this machine.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned as S;

use crate::database::{DatabaseEngine, DatabaseTlsMode};
use crate::secret::SecretRef;
use crate::validate::Checker;

#[derive(Debug, Clone)]
pub struct PostgresEndpoint {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<SecretRef>,
    pub tls: DatabaseTlsMode,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl PostgresEndpoint {
    /// Where the database is, for messages (never the password).
    pub fn describe(&self) -> String {
        format!(
            "postgres at {}:{} (database {}, user {})",
            self.host, self.port, self.database, self.user
        )
    }
}

/// The keys of a section that names such a database.
pub(crate) struct RawEndpoint<'a> {
    pub url: Option<&'a S<String>>,
    pub password: Option<&'a S<String>>,
    pub tls: Option<&'a S<String>>,
    pub ca_file: Option<&'a S<String>>,
    pub connect_timeout_secs: Option<&'a S<u64>>,
}

impl Checker<'_> {
    /// Validates `section.<url_key>` and its login and TLS keys.
    pub(crate) fn postgres_endpoint(
        &mut self,
        section: &str,
        section_span: Range<usize>,
        url_key: &str,
        raw: RawEndpoint<'_>,
        purpose: &str,
    ) -> Option<PostgresEndpoint> {
        const EXAMPLE: &str = "postgres://conveyor@catalog-db.internal:5432/conveyor";
        let errors_before = self.error_count();
        let key = format!("{section}.{url_key}");
        let address = match raw.url {
            None => {
                self.error(section_span, &key, format!("missing key `{url_key}`"))
                    .hint(format!("{purpose}, e.g. {url_key} = \"{EXAMPLE}\""));
                None
            }
            Some(u) => self.database_url(u, &key, DatabaseEngine::Postgres, EXAMPLE),
        };
        let password = raw
            .password
            .and_then(|p| self.secret(p, &format!("{section}.password")));
        let host = address.as_ref().map(|(h, ..)| h.as_str());
        let (tls, ca_file) = self.database_tls(section, raw.tls, raw.ca_file, host);
        let connect_timeout = Duration::from_secs(
            raw.connect_timeout_secs
                .map(|s| *s.get_ref())
                .unwrap_or(10)
                .max(1),
        );
        if self.error_count() > errors_before {
            return None;
        }
        let (host, port, database, user) = address?;
        Some(PostgresEndpoint {
            host,
            port,
            database,
            user,
            password,
            tls,
            ca_file,
            connect_timeout,
        })
    }
}
