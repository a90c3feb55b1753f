//! Taking, renewing and releasing one lease (see the protocol in
//! `cluster/mod.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use conveyor_plugin_api::CancelFlag;

use super::Cluster;

/// What one attempt to take a lease found.
pub enum Taken {
    /// Ours, until released or lost.
    Held(HeldLease),
    /// Another daemon holds it (for `expires_in` unless it renews).
    Busy { owner: String, expires_in: Duration },
    /// Another daemon already ran this firing to its end.
    Done { owner: String },
}

/// Free or expired, and (for a firing) the firing not yet done: the lease
/// becomes ours with the next token. Ours already (the evaluator lease
/// renewed by taking it again) counts as free.
const TAKE: &str =
    "INSERT INTO conveyor_leases AS l (name, owner, token, taken_at, expires_at, firing)
    VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3), $4)
    ON CONFLICT (name) DO UPDATE
       SET owner = EXCLUDED.owner, token = l.token + 1, taken_at = now(),
           expires_at = EXCLUDED.expires_at, firing = EXCLUDED.firing
     WHERE (l.expires_at <= now() OR l.owner = EXCLUDED.owner)
       AND (EXCLUDED.firing IS NULL OR l.done_firing IS NULL OR l.done_firing < EXCLUDED.firing)
    RETURNING token";

const LOOK: &str = "SELECT owner, greatest(extract(epoch FROM expires_at - now()), 0)::float8,
                           done_firing >= $2
                      FROM conveyor_leases WHERE name = $1";

const RENEW: &str = "UPDATE conveyor_leases SET expires_at = now() + make_interval(secs => $4)
                      WHERE name = $1 AND owner = $2 AND token = $3";

/// Frees the lease at once (the next daemon need not wait out the expiry)
/// and records the firing it ran as done.
const RELEASE: &str = "UPDATE conveyor_leases
                          SET expires_at = now(),
                              done_firing = CASE WHEN $4 THEN greatest(done_firing, firing) ELSE done_firing END
                        WHERE name = $1 AND owner = $2 AND token = $3";

pub(super) async fn try_take(
    cluster: &Cluster,
    name: &str,
    firing: Option<DateTime<Utc>>,
    parent: &CancelFlag,
) -> Result<Taken> {
    let secs = cluster.lease.as_secs_f64();
    let token: Option<(i64,)> = sqlx::query_as(TAKE)
        .bind(name)
        .bind(&cluster.owner)
        .bind(secs)
        .bind(firing)
        .fetch_optional(&cluster.pool)
        .await?;
    if let Some((token,)) = token {
        return Ok(Taken::Held(HeldLease::new(cluster, name, token, parent)));
    }
    let (owner, expires_in, done): (String, f64, Option<bool>) = sqlx::query_as(LOOK)
        .bind(name)
        .bind(firing)
        .fetch_one(&cluster.pool)
        .await?;
    Ok(if firing.is_some() && done == Some(true) {
        Taken::Done { owner }
    } else {
        Taken::Busy {
            owner,
            expires_in: Duration::from_secs_f64(expires_in),
        }
    })
}

impl Cluster {
    /// Whether some daemon ran `firing` of `name` to its end.
    pub async fn firing_done(&self, name: &str, firing: DateTime<Utc>) -> Result<bool> {
        let row: Option<(String, f64, Option<bool>)> = sqlx::query_as(LOOK)
            .bind(name)
            .bind(Some(firing))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some_and(|(_, _, done)| done == Some(true)))
    }
}

impl Cluster {
    /// Takes `name`, waiting while another daemon holds it: `None` when
    /// that daemon finished the firing, or when `cancel` is set. A busy
    /// lease is asked again every second (or at its expiry, if sooner), so
    /// a dead holder's work moves here within the lease time.
    pub async fn take(
        self: &Arc<Self>,
        name: &str,
        firing: Option<DateTime<Utc>>,
        cancel: &CancelFlag,
    ) -> Option<HeldLease> {
        let mut told = false;
        while !cancel.is_cancelled() {
            match self.try_take(name, firing, cancel).await {
                Ok(Taken::Held(lease)) => return Some(lease),
                Ok(Taken::Done { owner }) => {
                    tracing::info!(lease = name, owner = %owner, "another daemon ran this firing");
                    return None;
                }
                Ok(Taken::Busy { owner, expires_in }) => {
                    if !told {
                        tracing::info!(lease = name, owner = %owner, "waiting: another daemon holds the lease");
                        told = true;
                    }
                    let nap = expires_in.clamp(Duration::from_millis(100), Duration::from_secs(1));
                    tokio::time::sleep(nap).await;
                }
                Err(e) => {
                    tracing::warn!(lease = name, error = %format!("{e:#}"), "cannot reach the cluster catalog; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        None
    }
}

/// A lease this daemon holds, renewed in the background until released.
pub struct HeldLease {
    cluster: Arc<ClusterRef>,
    name: String,
    token: i64,
    /// Set when the lease was lost (another token, or no renewal within
    /// the lease time) or the daemon is stopping: whatever runs under the
    /// lease stops at its next batch.
    stop: CancelFlag,
    renewer: tokio::task::JoinHandle<()>,
}

/// What the renewal task needs of the cluster (the pool is a cheap handle).
struct ClusterRef {
    pool: sqlx::PgPool,
    owner: String,
    lease: Duration,
}

impl HeldLease {
    fn new(cluster: &Cluster, name: &str, token: i64, parent: &CancelFlag) -> HeldLease {
        let shared = Arc::new(ClusterRef {
            pool: cluster.pool.clone(),
            owner: cluster.owner.clone(),
            lease: cluster.lease,
        });
        let stop = CancelFlag::default();
        let renewer = tokio::spawn(renew(
            shared.clone(),
            name.to_string(),
            token,
            parent.clone(),
            stop.clone(),
        ));
        HeldLease {
            cluster: shared,
            name: name.to_string(),
            token,
            stop,
            renewer,
        }
    }

    /// The fencing token: issued by the database, higher for every take.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Set once the lease is lost or the daemon stops: the cancel flag of
    /// the work done under it.
    pub fn stop(&self) -> &CancelFlag {
        &self.stop
    }

    /// Gives the lease back, recording its firing as done when `finished`
    /// (a crash never gets here, so its firing is taken over).
    pub async fn release(self, finished: bool) {
        self.renewer.abort();
        let c = &self.cluster;
        let freed = sqlx::query(RELEASE)
            .bind(&self.name)
            .bind(&c.owner)
            .bind(self.token)
            .bind(finished)
            .execute(&c.pool)
            .await;
        if let Err(e) = freed {
            tracing::warn!(lease = %self.name, error = %format!("{e:#}"), "cannot release the lease; it expires on its own");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every third of the lease, and passes the daemon's stop on.
async fn renew(c: Arc<ClusterRef>, name: String, token: i64, parent: CancelFlag, stop: CancelFlag) {
    const TICK: Duration = Duration::from_millis(200);
    let every = c.lease / 3;
    let mut renewed = Instant::now();
    loop {
        while renewed.elapsed() < every {
            if parent.is_cancelled() {
                stop.cancel();
            }
            tokio::time::sleep(TICK).await;
        }
        // A renewal that hangs (a half-open connection, a pool waiting for
        // one) is given only until the stop deadline, not its own timeouts.
        let deadline = (c.lease * 2 / 3).saturating_sub(renewed.elapsed());
        let renewal = sqlx::query(RENEW)
            .bind(&name)
            .bind(&c.owner)
            .bind(token)
            .bind(c.lease.as_secs_f64())
            .execute(&c.pool);
        let done = match tokio::time::timeout(deadline, renewal).await {
            Ok(done) => done.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("no answer from the cluster catalog")),
        };
        match done {
            Ok(r) if r.rows_affected() == 1 => renewed = Instant::now(),
            Ok(_) => {
                tracing::error!(lease = %name, "lost the lease to another daemon; stopping what runs under it");
                stop.cancel();
                return;
            }
            // Near the lease time without a renewal another daemon may soon
            // take it: stop rather than run beside it.
            Err(e) if renewed.elapsed() >= c.lease * 2 / 3 => {
                tracing::error!(lease = %name, error = %format!("{e:#}"), "cannot renew the lease in time; stopping what runs under it");
                stop.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %name, error = %format!("{e:#}"), "cannot renew the lease; retrying");
                tokio::time::sleep(TICK).await;
            }
        }
    }
}
