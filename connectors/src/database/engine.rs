//! One connection to the source database through sqlx, Postgres or MySQL
//! behind one small surface: connect, learn a relation's columns, fetch a
//! chunk. What differs between the two (TLS modes, session settings, the
//! catalog query, the row getters) stays in this file.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use conveyor_config::{
    DatabaseEngine, DatabaseRelation, DatabaseSourceConfig, DatabaseTlsMode, Secret,
};
use conveyor_plugin_api::{ConnectorError, ErrorKind};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgSslMode};
use sqlx::{Connection, Executor, Row, TypeInfo};

use super::columns::Cells;

pub(crate) enum Conn {
    Postgres(PgConnection),
    MySql(MySqlConnection),
}

/// A fetched chunk's rows.
pub(crate) enum Rows {
    Postgres(Vec<PgRow>),
    MySql(Vec<MySqlRow>),
}

impl Rows {
    pub(crate) fn len(&self) -> usize {
        match self {
            Rows::Postgres(r) => r.len(),
            Rows::MySql(r) => r.len(),
        }
    }
    pub(crate) fn get(&self, i: usize) -> &dyn Cells {
        match self {
            Rows::Postgres(r) => &r[i],
            Rows::MySql(r) => &r[i],
        }
    }
}

/// Where the source is, for messages (never the password).
pub(crate) fn describe_target(cfg: &DatabaseSourceConfig) -> String {
    format!(
        "{} at {}:{} (database {}, user {})",
        cfg.engine.type_name(),
        cfg.host,
        cfg.port,
        cfg.database,
        cfg.user
    )
}

impl Conn {
    pub(crate) async fn open(
        cfg: &DatabaseSourceConfig,
        password: Option<&Secret>,
    ) -> Result<Conn, ConnectorError> {
        let connect = async {
            match cfg.engine {
                DatabaseEngine::Postgres => {
                    let mut o = PgConnectOptions::new()
                        .host(&cfg.host)
                        .port(cfg.port)
                        .database(&cfg.database)
                        .username(&cfg.user)
                        .application_name("conveyor")
                        .ssl_mode(match cfg.tls {
                            DatabaseTlsMode::Disable => PgSslMode::Disable,
                            DatabaseTlsMode::Require => PgSslMode::Require,
                            DatabaseTlsMode::VerifyFull => PgSslMode::VerifyFull,
                        });
                    if let Some(p) = password {
                        o = o.password(p.expose());
                    }
                    if let Some(ca) = &cfg.ca_file {
                        o = o.ssl_root_cert(ca);
                    }
                    let mut c = PgConnection::connect_with(&o).await?;
                    // Instants print and compare in UTC whatever the server's
                    // default, so a paging position means one moment.
                    c.execute("SET TIME ZONE 'UTC'").await?;
                    Ok(Conn::Postgres(c))
                }
                DatabaseEngine::MySql => {
                    let mut o = MySqlConnectOptions::new()
                        .host(&cfg.host)
                        .port(cfg.port)
                        .database(&cfg.database)
                        .username(&cfg.user)
                        .timezone(Some("+00:00".into()))
                        .ssl_mode(match cfg.tls {
                            DatabaseTlsMode::Disable => MySqlSslMode::Disabled,
                            DatabaseTlsMode::Require => MySqlSslMode::Required,
                            DatabaseTlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
                        });
                    if let Some(p) = password {
                        o = o.password(p.expose());
                    }
                    if let Some(ca) = &cfg.ca_file {
                        o = o.ssl_ca(ca);
                    }
                    Ok(Conn::MySql(MySqlConnection::connect_with(&o).await?))
                }
            }
        };
        match tokio::time::timeout(cfg.connect_timeout, connect).await {
            Err(_) => Err(ConnectorError::new(
                ErrorKind::Transient,
                format!(
                    "cannot connect to {}: no answer within {} s",
                    describe_target(cfg),
                    cfg.connect_timeout.as_secs()
                ),
            )),
            Ok(Err(e)) => Err(connect_error(cfg, &e)),
            Ok(Ok(c)) => Ok(c),
        }
    }

    /// The relation's output columns: name and the server's type name.
    pub(crate) async fn columns(
        &mut self,
        sql: &str,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        fn named<C: sqlx::Column>(cols: &[C]) -> Vec<(String, String)> {
            cols.iter()
                .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
                .collect()
        }
        Ok(match self {
            Conn::Postgres(c) => named(c.describe(sql).await?.columns()),
            Conn::MySql(c) => named(c.describe(sql).await?.columns()),
        })
    }

    /// NUMERIC/DECIMAL precision and scale of a table's columns, from
    /// `information_schema` (a query's columns do not carry them).
    pub(crate) async fn numeric_precision(
        &mut self,
        relation: &DatabaseRelation,
    ) -> Result<HashMap<String, (u32, u32)>, sqlx::Error> {
        let DatabaseRelation::Table { schema, table } = relation else {
            return Ok(HashMap::new());
        };
        let rows: Vec<(String, i64, i64)> = match self {
            Conn::Postgres(c) => {
                sqlx::query_as(
                    "SELECT CAST(column_name AS TEXT), CAST(numeric_precision AS BIGINT), \
                     CAST(numeric_scale AS BIGINT) FROM information_schema.columns \
                     WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2 \
                     AND data_type = 'numeric' AND numeric_precision IS NOT NULL",
                )
                .bind(schema.as_deref())
                .bind(table)
                .fetch_all(c)
                .await?
            }
            Conn::MySql(c) => {
                sqlx::query_as(
                    "SELECT CAST(column_name AS CHAR), CAST(numeric_precision AS SIGNED), \
                     CAST(numeric_scale AS SIGNED) FROM information_schema.columns \
                     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
                     AND data_type = 'decimal'",
                )
                .bind(schema.as_deref())
                .bind(table)
                .fetch_all(c)
                .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(n, p, s)| (n, (p.max(0) as u32, s.max(0) as u32)))
            .collect())
    }

    pub(crate) async fn fetch(
        &mut self,
        sql: &str,
        params: &[String],
    ) -> Result<Rows, sqlx::Error> {
        Ok(match self {
            Conn::Postgres(c) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(p.as_str());
                }
                Rows::Postgres(q.fetch_all(c).await?)
            }
            Conn::MySql(c) => {
                let mut q = sqlx::query(sql);
                for p in params {
                    q = q.bind(p.as_str());
                }
                Rows::MySql(q.fetch_all(c).await?)
            }
        })
    }

    pub(crate) async fn close(self) {
        let _ = match self {
            Conn::Postgres(c) => c.close().await,
            Conn::MySql(c) => c.close().await,
        };
    }
}

/// A connection failure in words: who refused what, never the password.
fn connect_error(cfg: &DatabaseSourceConfig, e: &sqlx::Error) -> ConnectorError {
    let target = describe_target(cfg);
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default().to_string();
            // 28P01/28000: Postgres auth; 1045: MySQL access denied.
            let kind = if matches!(code.as_str(), "28P01" | "28000" | "1045") {
                ErrorKind::Auth
            } else if code == "3D000" || code == "1049" {
                ErrorKind::Config
            } else {
                ErrorKind::Transient
            };
            ConnectorError::new(
                kind,
                format!("cannot connect to {target}: {}", db.message()),
            )
        }
        sqlx::Error::Tls(t) => ConnectorError::new(
            ErrorKind::Config,
            format!("cannot connect to {target}: TLS failed: {t} (check tls and ca_file)"),
        ),
        // rustls' verdicts arrive as other errors: a certificate refused is
        // the config's business (tls, ca_file), not worth retrying.
        other if other.to_string().contains("certificate") => ConnectorError::new(
            ErrorKind::Config,
            format!("cannot connect to {target}: TLS failed: {other} (check tls and ca_file)"),
        ),
        sqlx::Error::Io(io) => ConnectorError::new(
            ErrorKind::Transient,
            format!("cannot connect to {target}: {io}"),
        ),
        other => ConnectorError::new(
            ErrorKind::Transient,
            format!("cannot connect to {target}: {other}"),
        ),
    }
}

/// A query failure: the server's message, classified.
pub(crate) fn query_error(stream: &str, e: &sqlx::Error) -> ConnectorError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default().to_string();
            // Missing relation or column, syntax, permission: the config's
            // business, not worth a retry.
            let kind = match code.as_str() {
                "42P01" | "42703" | "42601" | "42501" | "1146" | "1054" | "1064" | "1142" => {
                    ErrorKind::Config
                }
                _ => ErrorKind::Transient,
            };
            ConnectorError::new(kind, format!("stream {stream}: {}", db.message()))
        }
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => {
            ConnectorError::new(ErrorKind::Transient, format!("stream {stream}: {e}"))
        }
        other => ConnectorError::new(ErrorKind::Data, format!("stream {stream}: {other}")),
    }
}

macro_rules! cells_for {
    ($row:ty) => {
        impl Cells for $row {
            fn boolean(&self, i: usize) -> Result<Option<bool>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn integer(&self, i: usize) -> Result<Option<i64>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn float(&self, i: usize) -> Result<Option<f64>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn text(&self, i: usize) -> Result<Option<String>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn instant(&self, i: usize) -> Result<Option<DateTime<Utc>>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn wall_clock(&self, i: usize) -> Result<Option<NaiveDateTime>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
            fn date(&self, i: usize) -> Result<Option<NaiveDate>, String> {
                self.try_get(i).map_err(|e| e.to_string())
            }
        }
    };
}

cells_for!(PgRow);
cells_for!(MySqlRow);
