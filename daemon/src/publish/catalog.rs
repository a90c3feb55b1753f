//! The Iceberg SQL catalog on Postgres: the JDBC catalog's two tables
//! (`iceberg_tables`, `iceberg_namespace_properties`, the layout pyiceberg's
//! `SqlCatalog` and Java's `JdbcCatalog` read), and a commit as a
//! compare-and-swap of a table's metadata location — the catalog's one
//! atomic step, so readers see the old snapshot or the new, never a part.

use anyhow::{Context, Result};
use sqlx::PgPool;

/// Serialises the creation of the catalog tables between daemons.
const SCHEMA_LOCK: i64 = 0x6963_6562_6572;

const TABLES: &str = "CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name               varchar(255) NOT NULL,
    table_namespace            varchar(255) NOT NULL,
    table_name                 varchar(255) NOT NULL,
    metadata_location          varchar(1000),
    previous_metadata_location varchar(1000),
    iceberg_type               varchar(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
)";

const NAMESPACES: &str = "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name   varchar(255) NOT NULL,
    namespace      varchar(255) NOT NULL,
    property_key   varchar(255) NOT NULL,
    property_value varchar(1000),
    PRIMARY KEY (catalog_name, namespace, property_key)
)";

pub struct Catalog {
    pool: PgPool,
    name: String,
}

impl Catalog {
    /// Opens the catalog, creating its tables if they are missing.
    pub async fn open(pool: PgPool, name: &str) -> Result<Catalog> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        for ddl in [TABLES, NAMESPACES] {
            sqlx::query(ddl)
                .execute(&mut *tx)
                .await
                .context("cannot create the Iceberg catalog's tables")?;
        }
        tx.commit().await?;
        Ok(Catalog {
            pool,
            name: name.to_string(),
        })
    }

    /// The table's current metadata file, if the table exists.
    pub async fn current(&self, namespace: &str, table: &str) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT metadata_location FROM iceberg_tables
              WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3",
        )
        .bind(&self.name)
        .bind(namespace)
        .bind(table)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| r.0))
    }

    /// Points the table at `new` if it still points at `old` (`None`: the
    /// table is created, with its namespace, or its pointer-less row
    /// filled in). False when another writer got there first.
    pub async fn swap(
        &self,
        namespace: &str,
        table: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<bool> {
        let changed = match old {
            Some(old) => sqlx::query(
                "UPDATE iceberg_tables SET metadata_location = $4, previous_metadata_location = $5
                  WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3
                    AND metadata_location = $5",
            )
            .bind(&self.name)
            .bind(namespace)
            .bind(table)
            .bind(new)
            .bind(old)
            .execute(&self.pool)
            .await?
            .rows_affected(),
            None => {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value)
                     VALUES ($1, $2, 'exists', 'true')
                     ON CONFLICT DO NOTHING",
                )
                .bind(&self.name)
                .bind(namespace)
                .execute(&mut *tx)
                .await?;
                let n = sqlx::query(
                    // Named columns: a catalog pyiceberg created has no
                    // `iceberg_type` (a NULL one reads as a table).
                    "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&self.name)
                .bind(namespace)
                .bind(table)
                .bind(new)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // A row without a pointer (a table another tool began to
                // create and never finished) is taken over, not fought.
                let n = if n == 0 {
                    sqlx::query(
                        "UPDATE iceberg_tables SET metadata_location = $4
                          WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3
                            AND metadata_location IS NULL",
                    )
                    .bind(&self.name)
                    .bind(namespace)
                    .bind(table)
                    .bind(new)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                } else {
                    n
                };
                tx.commit().await?;
                n
            }
        };
        Ok(changed == 1)
    }
}
