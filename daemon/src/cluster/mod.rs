//! `[cluster]`: leases in a shared Postgres database, so that several
//! daemons can run with one set of sources. Before a daemon syncs a source
//! it takes the source's lease; only the holder of the `evaluator` lease
//! runs reconciliations, rules, reports and delivery.
//!
//! The protocol, all in one table and on the database's clock (the
//! daemons' clocks never meet):
//! - a lease is a row (name, owner, token, expires_at); taking it succeeds
//!   when it is free or expired, and bumps `token` — the fencing token that
//!   renewals and the release must present;
//! - the holder renews it every third of the lease; a renewal that finds
//!   another token has lost the lease, and its run stops at the next batch;
//! - a scheduled run takes the lease *for a firing* (the cron instant, the
//!   same on every daemon) and records it as done on release, so a firing
//!   is synced once across the cluster; a daemon that finds the firing
//!   taken waits, and takes it over if the holder dies before finishing.

mod lease;

pub use lease::Taken;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use conveyor_config::ClusterConfig;
use conveyor_plugin_api::CancelFlag;
use sqlx::postgres::PgPool;

/// The lease of the daemon that evaluates (reconciliations, rules,
/// reports, the outbox).
pub const EVALUATOR: &str = "evaluator";

/// The lease name of a source.
pub fn source_lease(source: &str) -> String {
    format!("source:{source}")
}

/// A connection pool to the lease database and who this daemon is in it.
pub struct Cluster {
    pool: PgPool,
    /// Unique per process: the configured name, the pid and the start time,
    /// so a restarted daemon never mistakes its predecessor's lease for its
    /// own.
    owner: String,
    lease: Duration,
}

/// Serialises the lease table's creation between daemons starting at once
/// (`CREATE TABLE IF NOT EXISTS` races on Postgres's catalog otherwise).
const SCHEMA_LOCK: i64 = 0x636f_6e76_6579;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS conveyor_leases (
    name        text PRIMARY KEY,
    owner       text NOT NULL,
    token       bigint NOT NULL,
    taken_at    timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    firing      timestamptz,
    done_firing timestamptz
)";

impl Cluster {
    /// Connects and creates the lease table if it is missing. An error
    /// names the database, never the password.
    pub async fn connect(cfg: &ClusterConfig) -> Result<Cluster> {
        let pool = crate::catalog_db::connect(&cfg.db, "conveyor-cluster")
            .await
            .context("cannot join the cluster")?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(SCHEMA)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot create conveyor_leases in {}", cfg.db.describe()))?;
        tx.commit().await?;
        let started = Utc::now().timestamp_micros();
        Ok(Cluster {
            pool,
            owner: format!("{}:{}:{started}", cfg.name, std::process::id()),
            lease: cfg.lease,
        })
    }

    /// This process's name in the lease table.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Tries once to take `name`, for a scheduled `firing` or (None) a run
    /// by hand; see [`Taken`]. The lease's stop flag follows `parent`.
    pub async fn try_take(
        &self,
        name: &str,
        firing: Option<DateTime<Utc>>,
        parent: &CancelFlag,
    ) -> Result<Taken> {
        lease::try_take(self, name, firing, parent).await
    }
}

impl Cluster {
    /// Holds the evaluator lease whenever it can until `cancel`, telling
    /// through `evaluator` whether it does; gives it back on the way out so
    /// a standby daemon takes over at once.
    pub async fn hold_evaluator(self: Arc<Self>, evaluator: Arc<AtomicBool>, cancel: CancelFlag) {
        while !cancel.is_cancelled() {
            let Some(lease) = self.take(EVALUATOR, None, &cancel).await else {
                break;
            };
            evaluator.store(true, Ordering::SeqCst);
            tracing::info!(owner = %self.owner, "this daemon is the cluster's evaluator");
            while !lease.stop().is_cancelled() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            evaluator.store(false, Ordering::SeqCst);
            if cancel.is_cancelled() {
                lease.release(false).await;
                break;
            }
            tracing::warn!("lost the evaluator lease; standing by");
        }
    }
}

#[cfg(test)]
mod tests;
