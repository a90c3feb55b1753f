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
//!   taken waits, and takes it over if the holder dies before finishing;
//! - the evaluator takes a lease per firing of each scheduled
//!   reconciliation, rule and report, and a standby daemon waits on a
//!   firing until it is done — so one that came due while the evaluator
//!   was dying is run by its successor, once;
//! - the evaluator hands its state (alert states, notifications not yet
//!   delivered) to the next through the same database (`handover.rs`),
//!   fenced by its token, so an alert is announced once across a failover.

mod handover;
mod lease;

pub use lease::Taken;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use conveyor_config::ClusterConfig;
use conveyor_plugin_api::CancelFlag;
use sqlx::postgres::PgPool;

use crate::outbox::handover::EvaluatorState;
use crate::warehouse::Warehouse;

/// The lease of the daemon that evaluates (reconciliations, rules,
/// reports, the outbox).
pub const EVALUATOR: &str = "evaluator";

/// The lease name of a source.
pub fn source_lease(source: &str) -> String {
    format!("source:{source}")
}

/// The lease name of a scheduled reconciliation, rule or report (`kind`
/// one of `recon`, `rule`, `report`): taken by the evaluator for each
/// firing, so a firing is run once even across an evaluator's failover.
pub fn evaluation_lease(kind: &str, name: &str) -> String {
    format!("{kind}:{name}")
}

/// A connection pool to the lease database and who this daemon is in it.
pub struct Cluster {
    pool: PgPool,
    /// Unique per process: the configured name, the pid and the start time,
    /// so a restarted daemon never mistakes its predecessor's lease for its
    /// own.
    owner: String,
    lease: Duration,
    /// The token of the evaluator lease while this daemon holds it (and
    /// has taken the handed-over state in), else 0.
    evaluator_token: AtomicI64,
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
        for ddl in std::iter::once(SCHEMA).chain(handover::SCHEMA.iter().copied()) {
            sqlx::query(ddl).execute(&mut *tx).await.with_context(|| {
                format!(
                    "cannot create the cluster's tables in {}",
                    cfg.db.describe()
                )
            })?;
        }
        tx.commit().await?;
        let started = Utc::now().timestamp_micros();
        Ok(Cluster {
            pool,
            owner: format!("{}:{}:{started}", cfg.name, std::process::id()),
            lease: cfg.lease,
            evaluator_token: AtomicI64::new(0),
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
    /// through `evaluator` whether it does; takes the state the previous
    /// evaluator handed over into `wh` before it evaluates anything; gives
    /// the lease back on the way out so a standby daemon takes over at once.
    pub async fn hold_evaluator(
        self: Arc<Self>,
        wh: Arc<Warehouse>,
        evaluator: Arc<AtomicBool>,
        cancel: CancelFlag,
    ) {
        while !cancel.is_cancelled() {
            let Some(lease) = self.take(EVALUATOR, None, &cancel).await else {
                break;
            };
            while !lease.stop().is_cancelled() {
                match self.take_over_state(&wh).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot take the evaluator's state over yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if !lease.stop().is_cancelled() {
                self.evaluator_token.store(lease.token(), Ordering::SeqCst);
                evaluator.store(true, Ordering::SeqCst);
                tracing::info!(owner = %self.owner, "this daemon is the cluster's evaluator");
            }
            while !lease.stop().is_cancelled() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            evaluator.store(false, Ordering::SeqCst);
            if cancel.is_cancelled() && self.evaluator_token().is_some() {
                // What was delivered since the last hand-over is told
                // before the lease goes, so the next evaluator skips it.
                if let Err(e) = self.hand_over(&wh, None).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot hand the evaluator's state over on the way out");
                }
            }
            self.evaluator_token.store(0, Ordering::SeqCst);
            crate::outbox::handover::gate().open_upto(None);
            if cancel.is_cancelled() {
                lease.release(false).await;
                break;
            }
            tracing::warn!("lost the evaluator lease; standing by");
        }
    }
}

impl Cluster {
    /// The evaluator lease's token while this daemon evaluates.
    pub fn evaluator_token(&self) -> Option<i64> {
        Some(self.evaluator_token.load(Ordering::SeqCst)).filter(|t| *t > 0)
    }

    /// Takes the state the last evaluator saved into the warehouse (no
    /// state yet: the warehouse's own stands).
    async fn take_over_state(&self, wh: &Arc<Warehouse>) -> Result<()> {
        let Some((from, state)) = self.load_evaluator_state().await? else {
            return Ok(());
        };
        let wh = wh.clone();
        let imported = tokio::task::spawn_blocking(move || {
            let conn = wh.connection()?;
            let now = crate::warehouse::timestamp_text(Utc::now().naive_utc());
            crate::outbox::handover::import(&conn, &state, &now)
        })
        .await??;
        tracing::info!(
            from = %from,
            alerts = imported.alerts,
            notifications_queued = imported.queued,
            notifications_superseded = imported.superseded,
            "took over the evaluator's state"
        );
        Ok(())
    }

    /// One hand-over by the evaluator: reads its state out of `wh`, learns
    /// which of its notifications another daemon delivered, and saves the
    /// state under its lease; only then may the notifications it holds be
    /// sent (the process's outbox gate opens up to them). Unchanged since
    /// `last`: nothing is written. Returns the state saved.
    pub async fn hand_over(
        &self,
        wh: &Arc<Warehouse>,
        last: Option<&EvaluatorState>,
    ) -> Result<Option<EvaluatorState>> {
        let gate = crate::outbox::handover::gate();
        let Some(token) = self.evaluator_token() else {
            gate.open_upto(None);
            return Ok(None);
        };
        let w = wh.clone();
        let state =
            tokio::task::spawn_blocking(move || crate::outbox::handover::export(&w.connection()?))
                .await??;
        gate.set_delivered_elsewhere(self.delivered_keys(&state.keys).await?);
        let delivered = gate.take_delivered_here();
        if last == Some(&state) && delivered.is_empty() {
            return Ok(Some(state));
        }
        match self.save_evaluator_state(token, &state, &delivered).await {
            Ok(true) => {
                gate.open_upto(Some(state.upto));
                Ok(Some(state))
            }
            Ok(false) => {
                gate.open_upto(None);
                tracing::warn!("the evaluator lease moved on; this daemon's evaluator state is not handed over");
                Ok(None)
            }
            Err(e) => {
                gate.return_delivered_here(delivered);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
