//! `[publish] type = "iceberg"`: after a sync, each table it changed is
//! published as an Apache Iceberg table (namespace = source, table =
//! stream) — Parquet data files under `warehouse`, the pointer in an
//! Iceberg SQL catalog on Postgres — as one new snapshot per sync.
//!
//! Crash-safe and idempotent by construction: a snapshot records the run
//! it holds (`conveyor.run-id`, `conveyor.run-finished-us` in its summary),
//! and every publish first compares the table's latest changing run in
//! DuckDB with the published one. A crash between the DuckDB commit and the
//! catalog swap leaves the catalog on the old snapshot (files written on
//! the way are orphans, never referenced); the next publish of that source
//! — the daemon's start, or its next sync — finds the run unpublished and
//! publishes it, once.
//!
//! In a cluster several daemons publish the same table, each from its own
//! warehouse, and only while holding the source's lease. "Newer" is then
//! decided by the lease's fencing token recorded on the run (issued by the
//! cluster database, so independent of the daemons' clocks): a daemon that
//! restarts with a run older than another daemon's published one leaves
//! the table alone.

mod catalog;
mod export;
mod snapshot;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use conveyor_config::{Config, PublishConfig};
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use crate::warehouse::Warehouse;
use catalog::Catalog;
use export::RunStamp;

pub struct Publisher {
    /// Opened at the first publish, and again after a failure to: a
    /// catalog that is down fails publishing (an alert), never the syncs.
    catalog: tokio::sync::OnceCell<Catalog>,
    config: PublishConfig,
    io: FileIO,
    root: PathBuf,
}

/// What one round of publishing did.
#[derive(Debug, Default)]
pub struct PublishRun {
    pub published: Vec<Published>,
    /// (source.stream, error) of each table that could not be published.
    pub failed: Vec<(String, String)>,
}

/// One table published.
#[derive(Debug, Clone)]
pub struct Published {
    pub source: String,
    pub stream: String,
    pub run_id: i64,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    /// Files of the previous snapshot this one replaced.
    pub replaced_files: u64,
    pub seconds: f64,
}

impl Publisher {
    pub fn new(cfg: &PublishConfig) -> Publisher {
        Publisher {
            catalog: tokio::sync::OnceCell::new(),
            config: cfg.clone(),
            io: FileIO::new_with_fs(),
            root: cfg.warehouse.clone(),
        }
    }

    async fn catalog(&self) -> Result<&Catalog> {
        self.catalog
            .get_or_try_init(|| async {
                let pool = crate::catalog_db::connect(&self.config.catalog, "conveyor-publish")
                    .await
                    .context("cannot open the Iceberg catalog")?;
                Catalog::open(pool, &self.config.catalog_name).await
            })
            .await
    }

    /// Publishes every stream of `sources` whose latest change is not
    /// published yet; logs each table and each failure (a failure leaves
    /// that table on its previous snapshot and is retried next time).
    pub async fn publish_sources(
        &self,
        wh: &Arc<Warehouse>,
        config: &Arc<Config>,
        sources: &[String],
    ) -> PublishRun {
        let mut out = PublishRun::default();
        let (w, names) = (wh.clone(), sources.to_vec());
        let tables = tokio::task::spawn_blocking(move || streams_of(&w, &names))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|listed| listed);
        let tables = match tables {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot list the tables to publish");
                return out;
            }
        };
        for (name, stream) in tables {
            let outcome = match self.publish_stream(wh, &name, &stream).await {
                Ok(Some(p)) => {
                    tracing::info!(source = %p.source, stream = %p.stream, run_id = p.run_id, rows = p.rows, files = p.files, bytes = p.bytes, replaced_files = p.replaced_files, seconds = p.seconds, "published to Iceberg");
                    out.published.push(p);
                    Ok(())
                }
                // Nothing to publish: the table is as published, so an alert
                // from an earlier failure resolves.
                Ok(None) => Ok(()),
                Err(e) => {
                    tracing::error!(source = %name, stream = %stream, error = %format!("{e:#}"), "cannot publish to Iceberg; the published table stays as it was");
                    out.failed
                        .push((format!("{name}.{stream}"), format!("{e:#}")));
                    Err(format!("{e:#}"))
                }
            };
            // A failed publish fires `conveyor.job_failing` (the operator is
            // e-mailed), and the next success resolves it.
            let (w, c, table) = (wh.clone(), config.clone(), format!("{name}.{stream}"));
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(conn) = w.connection() {
                    let result = outcome.as_ref().map(drop);
                    crate::pipeline::health::observe(&conn, &c, "publish", &table, result);
                }
            })
            .await;
        }
        out
    }

    /// Publishes `source.stream` if its latest change is newer than the
    /// published snapshot.
    async fn publish_stream(
        &self,
        wh: &Arc<Warehouse>,
        source: &str,
        stream: &str,
    ) -> Result<Option<Published>> {
        let started = std::time::Instant::now();
        publishable_name(source)?;
        publishable_name(stream)?;
        let catalog = self.catalog().await?;
        let current_location = catalog.current(source, stream).await?;
        let current: Option<TableMetadata> = match &current_location {
            Some(loc) => Some(
                TableMetadata::read_from(&self.io, loc)
                    .await
                    .with_context(|| format!("cannot read {loc}"))?,
            ),
            None => None,
        };
        let published = current.as_ref().and_then(snapshot::published_run);
        let table_dir = self.root.join(source).join(stream);
        let data_dir = table_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;

        // The run and the rows from one read transaction, so the snapshot
        // holds exactly the run it names.
        let (wh2, src, st, cur) = (
            wh.clone(),
            source.to_string(),
            stream.to_string(),
            current.clone(),
        );
        let exported = tokio::task::spawn_blocking(move || -> Result<_> {
            let conn = wh2.connection()?;
            crate::warehouse::transaction::rolled_back(&conn, || -> Result<_> {
                let Some(stamp) = export::latest_change(&conn, &src, &st)? else {
                    return Ok(None);
                };
                if published
                    .as_ref()
                    .is_some_and(|(p, _): &(RunStamp, String)| !stamp.is_newer_than(p))
                {
                    return Ok(None);
                }
                let columns = export::columns(&conn, &src, &st)?;
                let content = export::content(&conn, &src, &st, &columns)?;
                if published.as_ref().is_some_and(|(_, c)| *c == content) {
                    return Ok(None);
                }
                let ids = snapshot::field_ids(&columns, cur.as_ref());
                let prefix = format!("{}-{}", stamp.run_id, uuid::Uuid::new_v4());
                let files =
                    export::write_parquet(&conn, &src, &st, &columns, &ids, &data_dir, &prefix)?;
                Ok(Some((stamp, content, columns, ids, files)))
            })
        })
        .await??;
        let Some((stamp, content, columns, ids, files)) = exported else {
            return Ok(None);
        };
        let location = table_dir.display().to_string();
        let properties = HashMap::from([
            ("conveyor.source".to_string(), source.to_string()),
            ("conveyor.stream".to_string(), stream.to_string()),
        ]);
        let commit = snapshot::commit(
            &self.io,
            &location,
            current.as_ref().zip(current_location.as_deref()),
            &columns,
            &ids,
            &files,
            stamp,
            &content,
            properties,
        )
        .await?;
        let new_location = commit.location.to_string();
        // Everything the new metadata names is on disk before the catalog
        // points at it (the data files were synced as they were closed).
        sync_file_and_folder(std::path::Path::new(&new_location))?;
        sync_file_and_folder(&table_dir.join("data").join("."))?;
        if !catalog
            .swap(source, stream, current_location.as_deref(), &new_location)
            .await?
        {
            anyhow::bail!(
                "another writer published {source}.{stream} first; it is published again at the next sync"
            );
        }
        Ok(Some(Published {
            replaced_files: commit.deleted_files,
            source: source.to_string(),
            stream: stream.to_string(),
            run_id: stamp.run_id,
            rows: files.iter().map(|f| f.rows).sum(),
            files: files.len(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            seconds: started.elapsed().as_secs_f64(),
        }))
    }
}

/// The names become folders and Iceberg identifiers: a plugin's stream
/// named `../x`, `/etc` or `a.b` must reach neither.
fn publishable_name(name: &str) -> Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "`{name}` cannot name an Iceberg namespace or table (letters, digits, `_` and `-` only)"
    );
    Ok(())
}

/// The streams of `sources` that ever ran, as (source, stream).
fn streams_of(wh: &Warehouse, sources: &[String]) -> Result<Vec<(String, String)>> {
    let conn = wh.connection()?;
    let mut stmt =
        conn.prepare("SELECT DISTINCT stream FROM conveyor.runs WHERE source = ? ORDER BY stream")?;
    let mut out = Vec::new();
    for source in sources {
        let rows = stmt.query_map([source], |r| r.get::<_, String>(0))?;
        for stream in rows {
            out.push((source.clone(), stream?));
        }
    }
    Ok(out)
}

/// fsyncs `path` (a file, or `folder/.`) and the folder it is in.
fn sync_file_and_folder(path: &std::path::Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::export::RunStamp;

    fn stamp(lease_token: Option<i64>, finished_us: i64) -> RunStamp {
        RunStamp {
            run_id: 1,
            finished_us,
            lease_token,
        }
    }

    #[test]
    fn a_later_lease_is_newer_whatever_the_clocks_say() {
        // Another daemon, its clock an hour behind, synced under a later lease.
        assert!(stamp(Some(8), 1_000).is_newer_than(&stamp(Some(7), 3_600_000_000)));
        assert!(!stamp(Some(7), 3_600_000_000).is_newer_than(&stamp(Some(8), 1_000)));
        // One lease (one daemon, one clock): the later finish.
        assert!(stamp(Some(7), 2_000).is_newer_than(&stamp(Some(7), 1_000)));
        assert!(!stamp(Some(7), 1_000).is_newer_than(&stamp(Some(7), 1_000)));
        // Without a cluster: the clock alone, as before.
        assert!(stamp(None, 2_000).is_newer_than(&stamp(None, 1_000)));
        assert!(!stamp(None, 1_000).is_newer_than(&stamp(None, 2_000)));
        // A table published under a lease is never replaced by a run that
        // took none (a `conveyor sync` of an older version, say).
        assert!(!stamp(None, 9_000_000_000).is_newer_than(&stamp(Some(1), 1_000)));
    }

    #[test]
    fn publish_refuses_names_that_would_leave_the_folder_or_break_identifiers() {
        for bad in ["", "..", "../etc", "/etc", "a/b", "a.b", "a b", "ü"] {
            assert!(super::publishable_name(bad).is_err(), "{bad:?}");
        }
        for good in ["crm", "agent_daily", "call-legs", "v2"] {
            assert!(super::publishable_name(good).is_ok(), "{good:?}");
        }
    }
}
