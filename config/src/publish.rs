//! `[publish]`: after each sync that changed a table, publish it as an
//! Apache Iceberg table — Parquet data files and Iceberg metadata in a
//! warehouse folder, the table pointer in an Iceberg SQL catalog on a
//! Postgres database (the JDBC catalog's tables, which pyiceberg, Spark and
//! Trino read).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned as S;

use crate::catalog_db::{PostgresEndpoint, RawEndpoint};
use crate::validate::Checker;

/// The catalog name rows are filed under when the config does not say.
pub const DEFAULT_CATALOG_NAME: &str = "conveyor";

#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The Postgres database of the SQL catalog.
    pub catalog: PostgresEndpoint,
    /// `catalog_name` in the catalog's tables (pyiceberg's catalog name).
    pub catalog_name: String,
    /// The folder the tables' data and metadata files go to (absolute).
    pub warehouse: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPublish {
    #[serde(rename = "type")]
    kind: Option<S<String>>,
    catalog: Option<S<String>>,
    password: Option<S<String>>,
    tls: Option<S<String>>,
    ca_file: Option<S<String>>,
    connect_timeout_secs: Option<S<u64>>,
    catalog_name: Option<S<String>>,
    warehouse: Option<S<String>>,
}

impl Checker<'_> {
    pub(crate) fn publish(&mut self, raw: Option<S<RawPublish>>) -> Option<PublishConfig> {
        let raw = raw?;
        let span = raw.span();
        let raw = raw.into_inner();
        let errors_before = self.error_count();
        match &raw.kind {
            None => {
                self.error(span.clone(), "publish.type", "missing key `type`")
                    .hint("type = \"iceberg\"");
            }
            Some(k) if k.get_ref() != "iceberg" => {
                self.error(
                    k.span(),
                    "publish.type",
                    format!("unknown publish type `{}`", k.get_ref()),
                )
                .hint("type = \"iceberg\" (the only one)");
            }
            Some(_) => {}
        }
        let catalog = self.postgres_endpoint(
            "publish",
            span.clone(),
            "catalog",
            RawEndpoint {
                url: raw.catalog.as_ref(),
                password: raw.password.as_ref(),
                tls: raw.tls.as_ref(),
                ca_file: raw.ca_file.as_ref(),
                connect_timeout_secs: raw.connect_timeout_secs.as_ref(),
            },
            "the Postgres database of the Iceberg SQL catalog",
        );
        let catalog_name = match &raw.catalog_name {
            None => DEFAULT_CATALOG_NAME.to_string(),
            Some(n) => {
                let ok = !n.get_ref().is_empty()
                    && n.get_ref().len() <= 100
                    && n.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    self.error(
                        n.span(),
                        "publish.catalog_name",
                        "must be 1 to 100 letters, digits, `_` or `-`",
                    );
                }
                n.get_ref().clone()
            }
        };
        let warehouse = match &raw.warehouse {
            None => {
                self.error(span, "publish.warehouse", "missing key `warehouse`")
                    .hint("the folder the Iceberg tables' files go to, e.g. warehouse = \"/var/lib/conveyor/iceberg\"");
                None
            }
            Some(w) => {
                let path = crate::resolve_relative(self.file, w.get_ref());
                if self.resolve_secrets && !path.is_dir() {
                    self.error(
                        w.span(),
                        "publish.warehouse",
                        format!("the folder {} does not exist", path.display()),
                    )
                    .hint("create it (Conveyor does not create a missing folder tree)");
                }
                Some(path)
            }
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(PublishConfig {
            catalog: catalog?,
            catalog_name,
            warehouse: std::path::absolute(warehouse?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!("[warehouse]\npath = \"w.duckdb\"\n{extra}");
        crate::parse_offline(&text, Path::new("/srv/c.toml"))
    }

    #[test]
    fn publish_reads_the_catalog_and_the_warehouse_folder() {
        let c = parse(
            "[publish]\ntype = \"iceberg\"\ncatalog = \"postgres://conveyor@127.0.0.1:6543/lake\"\npassword = \"env:LAKE_PASSWORD\"\ntls = \"disable\"\nwarehouse = \"iceberg\"\n",
        )
        .unwrap();
        let p = c.publish.unwrap();
        assert_eq!(p.catalog.database, "lake");
        assert_eq!(p.catalog_name, "conveyor");
        assert_eq!(p.warehouse, Path::new("/srv/iceberg"));
    }

    #[test]
    fn publish_names_what_is_missing_or_unknown() {
        let e = parse("[publish]\ntype = \"delta\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown publish type `delta`"), "{e}");
        assert!(
            e.contains("publish.catalog") && e.contains("publish.warehouse"),
            "{e}"
        );
    }
}
