//! Process-wide metrics, kept in memory as things happen (stream runs, rows
//! loaded, config reloads, the next scheduled run) and written out in the
//! Prometheus text format by `GET /metrics` (`server/metrics.rs`, which adds
//! the figures read from the warehouse at scrape time).

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub source: String,
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamOutcome {
    pub source: String,
    pub stream: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceOutcome {
    pub source: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Everything the process counts itself. One per process ([`global`]): the
/// sync engine, the scheduler and the reload path all report here.
pub struct Metrics {
    stream_runs: Family<StreamOutcome, Counter>,
    source_runs: Family<SourceOutcome, Counter>,
    rows: Family<StreamLabels, Counter>,
    rejects: Family<StreamLabels, Counter>,
    duration: Family<StreamLabels, Histogram>,
    next_run: Family<SourceLabels, FloatGauge>,
    reloads: Family<ReloadLabels, Counter>,
    last_reload_ok: Gauge,
    last_reload_success: FloatGauge,
    start_time: FloatGauge,
}

fn duration_histogram() -> Histogram {
    // 0.5 s … ~68 min: a small incremental sync to a full re-read.
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            stream_runs: Family::default(),
            source_runs: Family::default(),
            rows: Family::default(),
            rejects: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            next_run: Family::default(),
            reloads: Family::default(),
            last_reload_ok: Gauge::default(),
            last_reload_success: FloatGauge::default(),
            start_time: FloatGauge::default(),
        };
        let now = unix_now();
        m.start_time.set(now);
        // Both results exist from the start, so `increase()` sees the first.
        for result in ["success", "failure"] {
            m.reloads
                .get_or_create(&ReloadLabels {
                    result: result.into(),
                })
                .inc_by(0);
        }
        // The config the process started with counts as loaded.
        m.last_reload_ok.set(1);
        m.last_reload_success.set(now);
        m
    }

    /// Rows a commit stored (called as each commit lands, so the counter
    /// moves during a long sync, not only at its end).
    pub fn rows_loaded(&self, source: &str, stream: &str, rows: u64, rejected: u64) {
        let l = stream_labels(source, stream);
        self.rows.get_or_create(&l).inc_by(rows);
        self.rejects.get_or_create(&l).inc_by(rejected);
    }

    /// One stream run ended.
    pub fn stream_finished(&self, source: &str, stream: &str, outcome: &str, seconds: f64) {
        self.stream_runs
            .get_or_create(&StreamOutcome {
                source: source.to_string(),
                stream: stream.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&stream_labels(source, stream))
            .observe(seconds);
    }

    /// One run of a whole source ended.
    pub fn source_finished(&self, source: &str, outcome: &str) {
        self.source_runs
            .get_or_create(&SourceOutcome {
                source: source.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// When the scheduler will next run `source` (`None`: not scheduled any
    /// more, e.g. removed by a reload).
    pub fn next_run(&self, source: &str, at: Option<chrono::DateTime<chrono::Utc>>) {
        let l = SourceLabels {
            source: source.to_string(),
        };
        match at {
            Some(t) => {
                self.next_run
                    .get_or_create(&l)
                    .set(t.timestamp_millis() as f64 / 1000.0);
            }
            None => {
                self.next_run.remove(&l);
            }
        }
    }

    /// A config reload (SIGHUP) was applied or refused.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.into(),
            })
            .inc();
        self.last_reload_ok.set(i64::from(ok));
        if ok {
            self.last_reload_success.set(unix_now());
        }
    }

    /// Adds every metric to `reg` (a registry built for one scrape; the
    /// families are shared, not copied).
    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "conveyor_stream_runs",
            "Stream runs that ended, by outcome (succeeded, failed, cancelled)",
            self.stream_runs.clone(),
        );
        reg.register(
            "conveyor_source_runs",
            "Source runs that ended, by outcome: failed if any stream failed",
            self.source_runs.clone(),
        );
        reg.register(
            "conveyor_stream_rows_loaded",
            "Rows committed to the warehouse",
            self.rows.clone(),
        );
        reg.register(
            "conveyor_stream_rejects",
            "Records kept in conveyor.rejects instead of their table (no primary key)",
            self.rejects.clone(),
        );
        reg.register(
            "conveyor_stream_run_duration_seconds",
            "How long stream runs took",
            self.duration.clone(),
        );
        reg.register(
            "conveyor_source_next_run_timestamp_seconds",
            "When the scheduler runs the source next (Unix time)",
            self.next_run.clone(),
        );
        reg.register(
            "conveyor_config_reloads",
            "Config reloads (SIGHUP), by result",
            self.reloads.clone(),
        );
        reg.register(
            "conveyor_config_last_reload_successful",
            "1 if the last config reload was applied, 0 if it was refused",
            self.last_reload_ok.clone(),
        );
        reg.register(
            "conveyor_config_last_reload_success_timestamp_seconds",
            "When the running config was last loaded (Unix time)",
            self.last_reload_success.clone(),
        );
        reg.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            self.start_time.clone(),
        );
        if let Some(rss) = process_rss_bytes() {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(rss).unwrap_or(i64::MAX));
            reg.register(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                g,
            );
        }
    }
}

fn stream_labels(source: &str, stream: &str) -> StreamLabels {
    StreamLabels {
        source: source.to_string(),
        stream: stream.to_string(),
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The resident set size, from `VmRSS` in `/proc/self/status` (Linux).
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(n * 1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_rss_is_read_from_proc_status() {
        assert_eq!(
            parse_vm_rss("Name:\tconveyor\nVmRSS:\t  123456 kB\nThreads: 4\n"),
            Some(123456 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        if cfg!(target_os = "linux") {
            assert!(process_rss_bytes().unwrap() > 1024 * 1024);
        }
    }

    #[test]
    fn metrics_encode_as_prometheus_text() {
        let m = Metrics::new();
        m.rows_loaded("src", "items", 250, 2);
        m.stream_finished("src", "items", "succeeded", 1.5);
        m.reload(false);
        let mut reg = Registry::default();
        m.register(&mut reg);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &reg).unwrap();
        assert!(
            text.contains(r#"conveyor_stream_rows_loaded_total{source="src",stream="items"} 250"#),
            "{text}"
        );
        assert!(
            text.contains(r#"conveyor_config_reloads_total{result="failure"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("conveyor_config_last_reload_successful 0"),
            "{text}"
        );
        assert!(
            text.contains(r#"conveyor_stream_run_duration_seconds_bucket{source="src",stream="items",le="2"} 1"#),
            "{text}"
        );
    }
}
