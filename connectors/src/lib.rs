//! Built-in Conveyor connectors and the HTTP toolkit they share.
//!
//! Connectors know nothing of DuckDB: they turn API responses into Arrow
//! record batches and checkpoints (see `conveyor-plugin-api`). Auth, paging,
//! retries and rate limits live once, in [`http`]; a vendor connector is a
//! thin layer over it.

pub mod database;
pub mod http;
pub mod json_arrow;
pub mod json_columns;
mod json_skim;
mod json_text;
pub mod rest;
pub mod vendors;

use std::sync::Arc;

use conveyor_config::{ConnectorConfig, SourceConfig};
use conveyor_plugin_api::{Connector, ConnectorError, CredentialStore};

/// Builds the connector for a configured source. The built-in types are
/// `rest` and every [`conveyor_config::Vendor::ALL`] (the one list to grep).
pub fn build(
    source: &SourceConfig,
    credentials: Arc<dyn CredentialStore>,
) -> Result<Box<dyn Connector>, ConnectorError> {
    match &source.connector {
        ConnectorConfig::Rest(cfg) => Ok(Box::new(rest::RestConnector::new(
            &source.name,
            cfg.clone(),
            credentials,
        )?)),
        ConnectorConfig::Vendor(cfg) => vendors::build(&source.name, cfg, credentials),
        ConnectorConfig::Database(cfg) => Ok(Box::new(database::DatabaseConnector::new(
            &source.name,
            cfg.clone(),
        ))),
        // Plugins are loaded by the daemon, which owns the loader.
        ConnectorConfig::Plugin(p) => Err(ConnectorError::new(
            conveyor_plugin_api::ErrorKind::Config,
            format!(
                "`{}` is a plugin type; the daemon's plugin loader builds it",
                p.plugin
            ),
        )),
    }
}
