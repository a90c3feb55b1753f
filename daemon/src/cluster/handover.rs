//! The evaluator's state in the lease database (see
//! `outbox/handover.rs` for what it holds): saved by the evaluator after
//! each change, only while its evaluator lease is current (fenced by the
//! token, in the same statement), and loaded by the next evaluator before
//! it evaluates; and the keys of the rule notifications delivered, so a
//! notification handed over after its delivery is not sent again.

use std::collections::HashSet;

use anyhow::{Context, Result};

use super::{Cluster, EVALUATOR};
use crate::outbox::handover::EvaluatorState;

pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS conveyor_evaluator_state (
        id           smallint PRIMARY KEY CHECK (id = 1),
        owner        text NOT NULL,
        token        bigint NOT NULL,
        saved_at     timestamptz NOT NULL,
        alerts       text NOT NULL,
        outbox       text NOT NULL,
        images       text NOT NULL,
        last_eval_id bigint NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS conveyor_deliveries (
        key          text PRIMARY KEY,
        owner        text NOT NULL,
        delivered_at timestamptz NOT NULL
    )",
];

/// Writes `state` as the cluster's, if `token` is still this daemon's
/// evaluator lease: false when it is not (the lease moved on, and so does
/// the state — this daemon's is dropped).
const SAVE: &str = "INSERT INTO conveyor_evaluator_state AS s
        (id, owner, token, saved_at, alerts, outbox, images, last_eval_id)
    SELECT 1, $1, $2, now(), $3, $4, $5, $6
     WHERE EXISTS (SELECT 1 FROM conveyor_leases
                    WHERE name = $7 AND owner = $1 AND token = $2 AND expires_at > now())
    ON CONFLICT (id) DO UPDATE
       SET owner = EXCLUDED.owner, token = EXCLUDED.token, saved_at = EXCLUDED.saved_at,
           alerts = EXCLUDED.alerts, outbox = EXCLUDED.outbox, images = EXCLUDED.images,
           last_eval_id = EXCLUDED.last_eval_id
     WHERE s.token <= EXCLUDED.token";

impl Cluster {
    /// Saves the evaluator's state under the evaluator lease `token`, and
    /// records the keys delivered here; false when the lease is no longer
    /// this daemon's.
    pub async fn save_evaluator_state(
        &self,
        token: i64,
        state: &EvaluatorState,
        delivered: &[String],
    ) -> Result<bool> {
        self.record_deliveries(delivered).await?;
        let saved = sqlx::query(SAVE)
            .bind(&self.owner)
            .bind(token)
            .bind(&state.alerts)
            .bind(&state.outbox)
            .bind(&state.images)
            .bind(state.last_eval_id)
            .bind(EVALUATOR)
            .execute(&self.pool)
            .await
            .context("cannot save the evaluator's state in the cluster catalog")?;
        Ok(saved.rows_affected() == 1)
    }

    /// The state the last evaluator saved, if any did.
    pub async fn load_evaluator_state(&self) -> Result<Option<(String, EvaluatorState)>> {
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT owner, alerts, outbox, images, last_eval_id FROM conveyor_evaluator_state WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the evaluator's state from the cluster catalog")?;
        Ok(row.map(|(owner, alerts, outbox, images, last_eval_id)| {
            (
                owner,
                EvaluatorState {
                    alerts,
                    outbox,
                    images,
                    last_eval_id,
                    // Recomputed from the warehouse once imported.
                    upto: 0,
                    keys: Vec::new(),
                },
            )
        }))
    }

    /// Of `keys`, those some daemon recorded as delivered.
    pub async fn delivered_keys(&self, keys: &[String]) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT key FROM conveyor_deliveries WHERE key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await
                .context("cannot read the delivered notifications from the cluster catalog")?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }

    async fn record_deliveries(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO conveyor_deliveries (key, owner, delivered_at)
             SELECT k, $2, now() FROM unnest($1::text[]) AS k
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(keys)
        .bind(&self.owner)
        .execute(&self.pool)
        .await
        .context("cannot record the delivered notifications in the cluster catalog")?;
        Ok(())
    }
}
