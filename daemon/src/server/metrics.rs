//! `GET /metrics`: the process's own counters ([`crate::metrics`]) plus the
//! figures the warehouse holds, read at scrape time so they survive restarts
//! — per-stream and per-source last success and failure streaks,
//! reconciliation runs and their latest exceptions, rule evaluations,
//! alerts by state and level, the outbox by channel — in the Prometheus
//! text format (version 0.0.4).

use std::sync::atomic::AtomicU64;

use anyhow::Result;
use conveyor_config::Config;
use duckdb::Connection;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter<u64>>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The whole exposition: process metrics, then the warehouse's.
pub fn render(conn: &Connection, config: &Config) -> Result<String> {
    let mut reg = Registry::default();
    crate::metrics::global().register(&mut reg);
    http(&mut reg);
    warehouse(conn, config, &mut reg)?;
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &reg)?;
    Ok(text)
}

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The connectors' HTTP figures, per vendor host.
fn http(reg: &mut Registry) {
    let requests = Counters::default();
    let retries = Counters::default();
    let throttled = Counters::default();
    let waited = Gauges::default();
    for (host, s) in conveyor_connectors::http::stats::snapshot() {
        for (class, n) in &s.requests {
            requests
                .get_or_create(&labels(&[("host", &host), ("class", class)]))
                .inc_by(*n);
        }
        let h = labels(&[("host", &host)]);
        retries.get_or_create(&h).inc_by(s.retries);
        throttled.get_or_create(&h).inc_by(s.throttled);
        waited.get_or_create(&h).set(s.rate_wait_secs);
    }
    reg.register(
        "conveyor_http_requests",
        "HTTP requests to vendor APIs by host and status class",
        requests,
    );
    reg.register(
        "conveyor_http_retries",
        "Requests retried (429, 5xx, timeouts)",
        retries,
    );
    reg.register(
        "conveyor_http_throttled",
        "429 Too Many Requests answers",
        throttled,
    );
    reg.register(
        "conveyor_http_rate_limit_wait_seconds",
        "Seconds spent waiting for a host's rate budget",
        waited,
    );
}

fn warehouse(conn: &Connection, config: &Config, reg: &mut Registry) -> Result<()> {
    let now = crate::metrics::unix_now();
    let configured = |s: &str| config.sources.iter().any(|c| c.name == s);

    let last_ok = Gauges::default();
    let since_ok = Gauges::default();
    let mut st = conn.prepare(
        "SELECT source, stream, epoch(max(finished_at) FILTER (WHERE status = 'succeeded'))
         FROM conveyor.runs GROUP BY ALL ORDER BY ALL",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<f64>>(2)?,
        ))
    })?;
    for row in rows {
        let (source, stream, at) = row?;
        if let (true, Some(at)) = (configured(&source), at) {
            let l = labels(&[("source", &source), ("stream", &stream)]);
            last_ok.get_or_create(&l).set(at);
            since_ok.get_or_create(&l).set((now - at).max(0.0));
        }
    }
    reg.register(
        "conveyor_stream_last_success_timestamp_seconds",
        "When the stream last synced successfully (Unix time)",
        last_ok,
    );
    reg.register(
        "conveyor_stream_seconds_since_last_success",
        "Seconds since the stream last synced successfully",
        since_ok,
    );

    let has_health: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = 'conveyor' AND table_name = 'source_health'",
        [],
        |r| r.get(0),
    )?;
    let failures = Gauges::default();
    let src_last_ok = Gauges::default();
    let src_since_ok = Gauges::default();
    if has_health {
        let mut st = conn.prepare(
            "SELECT source, consecutive_failures, epoch(last_success_at) FROM conveyor.source_health ORDER BY source",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<f64>>(2)?,
            ))
        })?;
        for row in rows {
            let (source, n, at) = row?;
            if !configured(&source) {
                continue;
            }
            let l = labels(&[("source", &source)]);
            failures.get_or_create(&l).set(n as f64);
            if let Some(at) = at {
                src_last_ok.get_or_create(&l).set(at);
                src_since_ok.get_or_create(&l).set((now - at).max(0.0));
            }
        }
    }
    reg.register(
        "conveyor_source_consecutive_failures",
        "Failed runs of the source since its last successful one",
        failures,
    );
    reg.register(
        "conveyor_source_last_success_timestamp_seconds",
        "When every stream of the source last synced in one successful run (Unix time)",
        src_last_ok,
    );
    reg.register(
        "conveyor_source_seconds_since_last_success",
        "Seconds since the source's last successful run",
        src_since_ok,
    );

    let recon_runs = Counters::default();
    let mut st = conn.prepare(
        "SELECT reconciliation, status, count(*) FROM conveyor.recon_runs GROUP BY ALL ORDER BY ALL",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (name, status, n) = row?;
        recon_runs
            .get_or_create(&labels(&[("reconciliation", &name), ("outcome", &status)]))
            .inc_by(n as u64);
    }
    reg.register(
        "conveyor_recon_runs",
        "Reconciliation runs, by outcome (succeeded, failed)",
        recon_runs,
    );
    let recon_rows = Gauges::default();
    let statuses = crate::recon::STATUSES;
    let mut st = conn.prepare(&format!(
        "SELECT reconciliation, {} FROM (
             SELECT *, row_number() OVER (PARTITION BY reconciliation ORDER BY run_id DESC) AS rn
             FROM conveyor.recon_runs WHERE status = 'succeeded')
         WHERE rn = 1 ORDER BY reconciliation",
        statuses.map(|s| format!("coalesce({s}, 0)")).join(", ")
    ))?;
    let rows = st.query_map([], |r| {
        let mut counts = Vec::new();
        for i in 0..statuses.len() {
            counts.push(r.get::<_, i64>(i + 1)?);
        }
        Ok((r.get::<_, String>(0)?, counts))
    })?;
    for row in rows {
        let (name, counts) = row?;
        for (status, n) in statuses.iter().zip(counts) {
            recon_rows
                .get_or_create(&labels(&[("reconciliation", &name), ("status", status)]))
                .set(n as f64);
        }
    }
    reg.register(
        "conveyor_recon_latest_results",
        "Result rows of each reconciliation's latest successful run, by status (all but matched and matched_within_tolerance are exceptions)",
        recon_rows,
    );

    let evals = Counters::default();
    let mut st = conn.prepare(
        "SELECT rule, count(DISTINCT eval_id) FROM conveyor.rule_results GROUP BY ALL ORDER BY ALL",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (rule, n) = row?;
        evals
            .get_or_create(&labels(&[("rule", &rule)]))
            .inc_by(n as u64);
    }
    reg.register(
        "conveyor_rule_evaluations",
        "Rule evaluations recorded in conveyor.rule_results",
        evals,
    );

    let alerts = Gauges::default();
    let mut st = conn.prepare(
        "SELECT rule, state, level, count(*) FROM conveyor.alerts GROUP BY ALL ORDER BY ALL",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (rule, state, level, n) = row?;
        alerts
            .get_or_create(&labels(&[
                ("rule", &rule),
                ("state", &state),
                ("level", &level),
            ]))
            .set(n as f64);
    }
    reg.register(
        "conveyor_alerts",
        "Alerts by rule, state (pending, firing, resolved) and level (warn, critical); pipeline-health alerts are the rules conveyor.source_failing and conveyor.source_stale",
        alerts,
    );

    let queued = Gauges::default();
    let delivered = Counters::default();
    let dead = Counters::default();
    let oldest = Gauges::default();
    // Both channels always show, at zero before anything was queued.
    for channel in ["email", "webhook"] {
        let l = labels(&[("channel", channel)]);
        queued.get_or_create(&l).set(0.0);
        delivered.get_or_create(&l).inc_by(0);
        dead.get_or_create(&l).inc_by(0);
        oldest.get_or_create(&l).set(0.0);
    }
    let mut st = conn.prepare(
        "SELECT channel,
                count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL),
                count(*) FILTER (WHERE delivered_at IS NOT NULL),
                count(*) FILTER (WHERE dead_at IS NOT NULL),
                epoch(min(created_at) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL))
         FROM conveyor.outbox GROUP BY ALL ORDER BY ALL",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<f64>>(4)?,
        ))
    })?;
    for row in rows {
        let (channel, q, d, x, first) = row?;
        let l = labels(&[("channel", &channel)]);
        queued.get_or_create(&l).set(q as f64);
        delivered.get_or_create(&l).inc_by(d as u64);
        dead.get_or_create(&l).inc_by(x as u64);
        oldest
            .get_or_create(&l)
            .set(first.map_or(0.0, |t| (now - t).max(0.0)));
    }
    reg.register(
        "conveyor_outbox_queued",
        "Notifications waiting to be delivered (or retried)",
        queued,
    );
    reg.register(
        "conveyor_outbox_delivered",
        "Notifications the server or receiver accepted",
        delivered,
    );
    reg.register(
        "conveyor_outbox_dead",
        "Notifications given up on after their last attempt (dead letters)",
        dead,
    );
    reg.register(
        "conveyor_outbox_oldest_queued_age_seconds",
        "Age of the oldest notification still waiting (0 when none waits)",
        oldest,
    );
    Ok(())
}
