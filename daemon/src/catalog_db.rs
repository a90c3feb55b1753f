//! Connections to a Postgres database Conveyor keeps tables of its own in
//! (`conveyor_config::PostgresEndpoint`: the cluster's leases, the Iceberg
//! catalog). Errors name the database, never the password.

use anyhow::{Context, Result};
use conveyor_config::{DatabaseTlsMode, PostgresEndpoint};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

/// A small pool to `db`, tagged `application_name` in `pg_stat_activity`.
pub async fn connect(db: &PostgresEndpoint, application_name: &str) -> Result<PgPool> {
    let mut options = PgConnectOptions::new()
        .host(&db.host)
        .port(db.port)
        .database(&db.database)
        .username(&db.user)
        .application_name(application_name)
        .ssl_mode(match db.tls {
            DatabaseTlsMode::Disable => PgSslMode::Disable,
            DatabaseTlsMode::Require => PgSslMode::Require,
            DatabaseTlsMode::VerifyFull => PgSslMode::VerifyFull,
        });
    if let Some(p) = &db.password {
        let secret = p
            .resolve()
            .map_err(|e| anyhow::anyhow!("the password of {}: {e}", db.describe()))?;
        options = options.password(secret.expose());
    }
    if let Some(ca) = &db.ca_file {
        options = options.ssl_root_cert(ca);
    }
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(db.connect_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot reach {}", db.describe()))
}
