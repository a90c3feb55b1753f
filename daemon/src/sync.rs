//! One sync of a source: read each stream through its connector and load it
//! into the warehouse, batch by batch, cursor and rows committed together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use conveyor_config::{AuthConfig, ConnectorConfig, Secret, SourceConfig};
use conveyor_plugin_api::{CancelFlag, Connector, ConnectorError, ErrorKind, Json, RecordSink};

use crate::progress::Progress;
use crate::warehouse::credentials::SealedCredentials;
use crate::warehouse::load::StreamLoader;
use crate::warehouse::Warehouse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StreamReport {
    pub stream: String,
    pub status: RunStatus,
    /// Rows read and stored; a record re-sent by the API (a look-back
    /// window, a page boundary) counts each time.
    pub rows: u64,
    /// Of the stored rows: new keys, and keys already there (replaced).
    pub inserted: u64,
    pub updated: u64,
    pub rejected: u64,
    pub batches: u64,
    pub duration: Duration,
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceReport {
    pub source: String,
    pub streams: Vec<StreamReport>,
    /// A failure before any stream could start (e.g. bad credentials file).
    pub error: Option<String>,
    /// A shutdown stopped the run before all its streams were read.
    #[serde(default)]
    pub cancelled: bool,
}

impl SourceReport {
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.streams.iter().any(|s| s.status == RunStatus::Failed)
    }
    pub fn rows(&self) -> u64 {
        self.streams.iter().map(|s| s.rows).sum()
    }
    /// How the run ended as a whole: failed if anything failed, else
    /// cancelled if a stream was stopped (or never started) by a shutdown.
    pub fn outcome(&self) -> RunStatus {
        if self.failed() {
            RunStatus::Failed
        } else if self.cancelled {
            RunStatus::Cancelled
        } else {
            RunStatus::Succeeded
        }
    }
    /// The first error, prefixed with its stream (for logs and operator
    /// alerts; connector errors carry no secrets).
    pub fn first_error(&self) -> Option<String> {
        self.error.clone().or_else(|| {
            self.streams
                .iter()
                .find_map(|s| Some(format!("stream {}: {}", s.stream, s.error.as_ref()?)))
        })
    }
}

/// Secrets that key the sealing of this source's stored credentials.
fn sealing_key(source: &SourceConfig) -> Vec<Secret> {
    let auth = match &source.connector {
        ConnectorConfig::Rest(rest) => &rest.auth,
        ConnectorConfig::Vendor(v) => &v.auth,
        #[allow(unreachable_patterns)]
        _ => return Vec::new(),
    };
    match auth {
        AuthConfig::OAuth2RefreshToken { client_secret, .. }
        | AuthConfig::OAuth2ClientCredentials { client_secret, .. } => {
            client_secret.resolve().ok().into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// Syncs every stream of `source` once. Never panics on connector or load
/// failures: they are recorded in `conveyor.runs` and in the report.
pub async fn sync_source(
    wh: Arc<Warehouse>,
    source: &SourceConfig,
    cancel: &CancelFlag,
    progress: &Progress,
) -> SourceReport {
    sync_source_for(wh, source, cancel, progress, "manual", None).await
}

/// [`sync_source`], saying in the log what started the run (`schedule`,
/// `manual`, `daemon` for a `conveyor sync` the daemon ran), and recording
/// on its runs the cluster lease it runs under (`lease_token`).
pub async fn sync_source_for(
    wh: Arc<Warehouse>,
    source: &SourceConfig,
    cancel: &CancelFlag,
    progress: &Progress,
    trigger: &str,
    lease_token: Option<i64>,
) -> SourceReport {
    tracing::info!(source = %source.name, trigger, "run started");
    let started = Instant::now();
    let report = sync_source_inner(wh, source, cancel, progress, lease_token).await;
    let outcome = report.outcome();
    crate::metrics::global().source_finished(&source.name, outcome.as_str());
    let secs = crate::logging::secs(started.elapsed());
    let (rows, streams) = (report.rows(), report.streams.len());
    match outcome {
        RunStatus::Failed => {
            tracing::error!(source = %source.name, trigger, outcome = outcome.as_str(),
            rows, streams, secs, error = report.first_error().unwrap_or_default(), "run finished")
        }
        RunStatus::Cancelled => {
            tracing::warn!(source = %source.name, trigger, outcome = outcome.as_str(),
            rows, streams, secs, "run finished")
        }
        RunStatus::Succeeded => {
            tracing::info!(source = %source.name, trigger, outcome = outcome.as_str(),
            rows, streams, secs, "run finished")
        }
    }
    report
}

async fn sync_source_inner(
    wh: Arc<Warehouse>,
    source: &SourceConfig,
    cancel: &CancelFlag,
    progress: &Progress,
    lease_token: Option<i64>,
) -> SourceReport {
    let mut report = SourceReport {
        source: source.name.clone(),
        streams: Vec::new(),
        error: None,
        cancelled: false,
    };
    let setup = async {
        if let ConnectorConfig::Plugin(plugin) = &source.connector {
            return Ok(crate::plugins::open_connector(plugin).await?);
        }
        let creds = Arc::new(SealedCredentials::new(
            wh.connection()?,
            &sealing_key(source),
        ));
        Ok::<_, anyhow::Error>(conveyor_connectors::build(source, creds)?)
    }
    .await;
    let connector = match setup {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(source = %source.name, error = %e, "cannot start source");
            if let ConnectorConfig::Plugin(_) = &source.connector {
                // A plugin that no longer loads (replaced, another ABI, pin
                // mismatch) fails the streams it used to read, so `conveyor
                // status` shows why they stopped, not just the log.
                for stream in wh.known_streams(&source.name).unwrap_or_default() {
                    if let Ok(run_id) = wh.begin_run(&source.name, &stream, lease_token) {
                        let _ =
                            wh.finish_run(run_id, RunStatus::Failed.as_str(), Some(&e.to_string()));
                    }
                }
            }
            report.error = Some(e.to_string());
            return report;
        }
    };
    sync_connector(
        wh,
        &source.name,
        connector.as_ref(),
        cancel,
        progress,
        lease_token,
    )
    .await
}

/// Syncs every stream of an already built `connector` into the schema
/// `source` (what `sync_source` does once the connector is built; tests
/// use it to load a connector natively), under the cluster lease
/// `lease_token` if any.
pub async fn sync_connector(
    wh: Arc<Warehouse>,
    source: &str,
    connector: &dyn Connector,
    cancel: &CancelFlag,
    progress: &Progress,
    lease_token: Option<i64>,
) -> SourceReport {
    let mut report = SourceReport {
        source: source.to_string(),
        streams: Vec::new(),
        error: None,
        cancelled: false,
    };
    for stream in connector.streams() {
        if cancel.is_cancelled() {
            report.cancelled = true;
            break;
        }
        let started = Instant::now();
        let bar = progress.stream(source, &stream.name);
        let result = async {
            let run_id = wh.begin_run(source, &stream.name, lease_token)?;
            let state = wh.stream_state(source, &stream.name)?;
            let loader = StreamLoader::new(
                wh.connection()?,
                source,
                &stream.name,
                stream.primary_key.clone(),
                run_id,
            )?;
            let mut sink = WarehouseSink::new(loader, &bar, source, &stream.name);
            let mut read = connector.read(&stream.name, state, &mut sink, cancel).await;
            // What the connector checkpointed still counts after a failure;
            // only batches after its last checkpoint are dropped.
            let flushed = sink.flush().await;
            if let (Ok(()), Err(e)) = (&read, flushed) {
                read = Err(e);
            }
            let status = match &read {
                Ok(()) if cancel.is_cancelled() => RunStatus::Cancelled,
                Ok(()) => RunStatus::Succeeded,
                Err(_) => RunStatus::Failed,
            };
            let error = read.err().map(|e| e.message);
            wh.finish_run(run_id, status.as_str(), error.as_deref())?;
            let counts = (
                sink.rows,
                sink.inserted,
                sink.updated,
                sink.rejected,
                sink.batches,
            );
            Ok::<_, anyhow::Error>((status, error, counts))
        }
        .await;
        let (status, error, (rows, inserted, updated, rejected, batches)) = match result {
            Ok(r) => r,
            Err(e) => (RunStatus::Failed, Some(format!("{e:#}")), (0, 0, 0, 0, 0)),
        };
        let duration = started.elapsed();
        bar.finish(status, rows, error.as_deref());
        let secs = crate::logging::secs(duration);
        crate::metrics::global().stream_finished(source, &stream.name, status.as_str(), secs);
        match (status, &error) {
            (_, Some(e)) => {
                tracing::error!(source = %source, stream = %stream.name, status = status.as_str(),
                rows, secs, error = %e, "stream failed")
            }
            (RunStatus::Cancelled, None) => {
                report.cancelled = true;
                tracing::warn!(source = %source, stream = %stream.name, status = status.as_str(),
                    rows, rejected, secs, "stream cancelled: stopped after its last committed batch")
            }
            _ => tracing::info!(source = %source, stream = %stream.name, status = status.as_str(),
                rows, inserted, updated, rejected, secs, "stream synced"),
        }
        report.streams.push(StreamReport {
            stream: stream.name.clone(),
            status,
            rows,
            inserted,
            updated,
            rejected,
            batches,
            duration,
            error,
        });
    }
    report
}

/// Commit at least this many rows at once (unless the stream ends first):
/// a DuckDB commit and the merge's scan of the table cost the same for ten
/// rows as for ten thousand. One DuckDB row group: a transaction that
/// appends whole row groups writes them compressed straight to the file, not
/// to the write-ahead log to be compressed again at the next checkpoint
/// (`bench/ingest`: 1M rows in 3.4 s instead of 3.8 s with 50,000, peak RSS
/// about the same).
const COMMIT_ROWS: usize = ROW_GROUP_ROWS;
/// …but never keep checkpointed rows uncommitted longer than this.
const COMMIT_INTERVAL: Duration = Duration::from_secs(2);

/// Collects batches and the checkpoints after them, and commits them in one
/// transaction, off the async threads, once enough rows or time have gathered.
/// Only rows followed by a checkpoint are ever committed, and a commit stores
/// the latest checkpoint all of whose rows it holds. A commit made because
/// enough rows gathered holds whole row groups (see [`aligned_cut`]): it may
/// hold a few rows past that checkpoint, which a read resumed from it
/// delivers again and the merge by key takes as the same rows.
///
/// A commit runs in the background while the connector reads on: the next
/// pages are fetched and parsed while DuckDB merges the previous ones. At
/// most one commit is in flight, so commits stay in order and memory stays
/// bounded (one batch group loading, one gathering).
struct WarehouseSink<'a> {
    /// The loader, when no commit holds it.
    loader: Option<StreamLoader>,
    in_flight: Option<tokio::task::JoinHandle<Committed>>,
    /// Batches since the last commit that a checkpoint has covered.
    covered: Vec<RecordBatch>,
    covered_rows: usize,
    /// The checkpoints among `covered`: how many of its rows each covers,
    /// and its state, oldest first.
    checkpoints: Vec<(usize, Json)>,
    /// Batches after the latest checkpoint.
    uncovered: Vec<RecordBatch>,
    last_commit: Instant,
    received_rows: u64,
    received_batches: u64,
    rows: u64,
    inserted: u64,
    updated: u64,
    rejected: u64,
    batches: u64,
    bar: &'a crate::progress::StreamProgress,
    source: String,
    stream: String,
    /// Off a terminal, a progress line this often (`None`: never).
    progress_every: Option<Duration>,
    started: Instant,
    last_progress: Instant,
}

/// A finished background commit: the loader back, and what it stored.
struct Committed {
    loader: StreamLoader,
    result: anyhow::Result<crate::warehouse::load::CommitStats>,
    batches: u64,
}

impl<'a> WarehouseSink<'a> {
    fn new(
        loader: StreamLoader,
        bar: &'a crate::progress::StreamProgress,
        source: &str,
        stream: &str,
    ) -> Self {
        use std::io::IsTerminal;
        // On a terminal the live bar says it; elsewhere (a service, a log
        // file) a line every so often shows a long sync is alive.
        let progress_every = if std::io::stderr().is_terminal() {
            None
        } else {
            crate::logging::progress_interval()
        };
        WarehouseSink {
            source: source.to_string(),
            stream: stream.to_string(),
            progress_every,
            started: Instant::now(),
            last_progress: Instant::now(),
            loader: Some(loader),
            in_flight: None,
            covered: Vec::new(),
            covered_rows: 0,
            uncovered: Vec::new(),
            checkpoints: Vec::new(),
            last_commit: Instant::now(),
            received_rows: 0,
            received_batches: 0,
            rows: 0,
            inserted: 0,
            updated: 0,
            rejected: 0,
            batches: 0,
            bar,
        }
    }

    /// Waits for the commit in flight, if any, and counts what it stored.
    async fn settle(&mut self) -> Result<(), ConnectorError> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(());
        };
        let done = handle.await.map_err(|e| {
            ConnectorError::new(ErrorKind::Host, format!("warehouse load panicked: {e}"))
        })?;
        self.loader = Some(done.loader);
        let stats = done.result.map_err(|e| {
            ConnectorError::new(ErrorKind::Host, format!("warehouse load failed: {e:#}"))
        })?;
        crate::metrics::global().rows_loaded(
            &self.source,
            &self.stream,
            stats.rows,
            stats.rejected,
        );
        self.rows += stats.rows;
        self.inserted += stats.written - stats.updated;
        self.updated += stats.updated;
        self.rejected += stats.rejected;
        self.batches += done.batches;
        Ok(())
    }

    /// Starts committing the covered batches, after the previous commit has
    /// finished: all of them with the latest checkpoint, or (`whole_groups`)
    /// only as many rows as fill whole row groups.
    async fn start_commit(&mut self, whole_groups: bool) -> Result<(), ConnectorError> {
        self.settle().await?;
        if self.checkpoints.is_empty() {
            return Ok(());
        }
        let mut loader = self.loader.take().ok_or_else(|| {
            ConnectorError::new(ErrorKind::Host, "loader lost after an earlier failure")
        })?;
        let cut = whole_groups
            .then(|| aligned_cut(self.covered_rows, &self.checkpoints))
            .flatten();
        // `ending`: the batches (pages) whose last row this commit holds.
        let (batches, state, ending) = match cut {
            Some((rows, checkpoint)) => self.take_rows(rows, checkpoint),
            None => {
                self.covered_rows = 0;
                let (_, state) = self.checkpoints.pop().expect("not empty");
                self.checkpoints.clear();
                let batches = std::mem::take(&mut self.covered);
                let ending = batches.len() as u64;
                (batches, state, ending)
            }
        };
        self.last_commit = Instant::now();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = loader.commit(batches, &state);
            crate::allocator::release_free_memory();
            Committed {
                loader,
                result,
                batches: ending,
            }
        }));
        Ok(())
    }

    /// Takes the first `rows` covered rows (slicing the batch that crosses
    /// that line) and the state of checkpoint number `checkpoint`, which
    /// covers no more than those; the rest stays covered by the later ones.
    /// Also says how many of the batches end in the take (for the run's
    /// page count, which a split batch adds to once).
    fn take_rows(&mut self, rows: usize, checkpoint: usize) -> (Vec<RecordBatch>, Json, u64) {
        let mut taken = Vec::new();
        let mut left = rows;
        let mut kept = Vec::new();
        let mut split = false;
        for batch in std::mem::take(&mut self.covered) {
            let n = batch.num_rows();
            if left >= n {
                left -= n;
                taken.push(batch);
            } else if left > 0 {
                taken.push(batch.slice(0, left));
                kept.push(batch.slice(left, n - left));
                left = 0;
                split = true;
            } else {
                kept.push(batch);
            }
        }
        // A split batch ends with the next commit, and is counted there.
        let ending = taken.len() as u64 - u64::from(split);
        self.covered = kept;
        self.covered_rows -= rows;
        let later = self.checkpoints.split_off(checkpoint + 1);
        let (_, state) = self.checkpoints.pop().expect("the cut's checkpoint");
        self.checkpoints = later.into_iter().map(|(end, s)| (end - rows, s)).collect();
        (taken, state, ending)
    }

    /// Commits everything checkpointed so far and waits until it is stored.
    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.start_commit(false).await?;
        self.settle().await
    }
}

/// DuckDB's row group: a transaction that appends whole ones writes them
/// compressed straight to the file; the rows of a partial one go through
/// the write-ahead log, and at the next checkpoint DuckDB rewrites the row
/// groups around them to merge them (`bench/ingest`: 0.3–0.4 s at the end
/// of a 1M-row sync in pages of 1,000, gone when commits are whole groups).
const ROW_GROUP_ROWS: usize = 122_880;

/// Where a commit of `covered` rows should end so that it holds whole row
/// groups: that many rows, and the index of the latest checkpoint (of
/// `checkpoints`, by rows covered) within them. `None` when the rows do not
/// fill a row group or no checkpoint falls within the whole groups (one
/// checkpoint after a huge batch): then everything is committed.
fn aligned_cut(covered: usize, checkpoints: &[(usize, Json)]) -> Option<(usize, usize)> {
    let rows = covered / ROW_GROUP_ROWS * ROW_GROUP_ROWS;
    if rows == 0 || rows == covered {
        return None;
    }
    let checkpoint = checkpoints.iter().rposition(|(end, _)| *end <= rows)?;
    Some((rows, checkpoint))
}

#[async_trait::async_trait]
impl RecordSink for WarehouseSink<'_> {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.received_rows += batch.num_rows() as u64;
        self.received_batches += 1;
        self.bar.update(self.received_batches, self.received_rows);
        self.uncovered.push(batch);
        if self
            .progress_every
            .is_some_and(|every| self.last_progress.elapsed() >= every)
        {
            self.last_progress = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            tracing::info!(
                source = %self.source,
                stream = %self.stream,
                pages = self.received_batches,
                rows = self.received_rows,
                committed = self.rows,
                rows_per_s = (self.received_rows as f64 / secs.max(1e-3)).round(),
                secs = crate::logging::secs(self.started.elapsed()),
                "sync progress"
            );
        }
        Ok(())
    }

    async fn checkpoint(&mut self, state: Json) -> Result<(), ConnectorError> {
        self.covered_rows += self
            .uncovered
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
        self.covered.append(&mut self.uncovered);
        self.checkpoints.push((self.covered_rows, state));
        if self.covered_rows >= COMMIT_ROWS {
            self.start_commit(true).await?;
        } else if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.start_commit(false).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoints(ends: &[usize]) -> Vec<(usize, Json)> {
        ends.iter()
            .map(|e| (*e, serde_json::json!({ "after": e })))
            .collect()
    }

    #[test]
    fn a_commit_of_enough_rows_ends_on_a_row_group_at_the_checkpoint_before_it() {
        let g = ROW_GROUP_ROWS;
        // Pages of 1,000 rows: the cut is one row group, with the state of
        // the last page wholly inside it.
        let pages: Vec<usize> = (1..=124).map(|p| p * 1000).collect();
        assert_eq!(aligned_cut(124_000, &checkpoints(&pages)), Some((g, 121)));
        assert_eq!(pages[121], 122_000);
        // Two row groups and a bit.
        assert_eq!(
            aligned_cut(2 * g + 5, &checkpoints(&[g, 2 * g - 1, 2 * g + 5])),
            Some((2 * g, 1))
        );
        // Exactly whole groups, or less than one: everything, with the latest.
        assert_eq!(aligned_cut(g, &checkpoints(&[g])), None);
        assert_eq!(aligned_cut(g - 1, &checkpoints(&[g - 1])), None);
        // One huge page: no checkpoint within the whole groups.
        assert_eq!(aligned_cut(g + 10, &checkpoints(&[g + 10])), None);
    }
}
