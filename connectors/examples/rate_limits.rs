//! The per-vendor rate-limit benchmark: each vendor mock keeps its vendor's
//! documented limit (a rolling window, 429 past it), and a full sync of all
//! its streams, configured as a user would (no `requests_per_second`), needs
//! about 2.5–3 windows of requests. Per vendor it prints the requests the
//! window counts, the 429s drawn, the rows read, the sync's wall time and
//! that time over the least the limit allows (requests ÷ allowed rate); the
//! goal is no 429 and a ratio under 1.2. The eight run at once (each mock on
//! its own port, so its own budget), so the run lasts about as long as the
//! slowest vendor (Zendesk's 10 exports a minute).
//!
//! `--unpaced` runs the same syncs with `requests_per_second = 1000`, which
//! overrides the documented window, to show what pacing saves; `--both` runs
//! paced, then unpaced, and prints both.
//!
//! `cargo run -q -p conveyor-connectors --example rate_limits -- [--unpaced|--both]`

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use conveyor_config::vendor::Vendor;
use conveyor_config::{RequestWindow, SourceConfig};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::genesys::{GenesysMock, GenesysMockConfig};
use conveyor_mocks::vendors::greenhouse::{GreenhouseMock, GreenhouseMockConfig};
use conveyor_mocks::vendors::gusto::{GustoMock, GustoMockConfig};
use conveyor_mocks::vendors::hubspot::{HubSpotMock, HubSpotMockConfig};
use conveyor_mocks::vendors::lever::{LeverMock, LeverMockConfig};
use conveyor_mocks::vendors::quickbooks::{QuickBooksMock, QuickBooksMockConfig, TOKEN_PATH};
use conveyor_mocks::vendors::xero::{self, XeroMock, XeroMockConfig};
use conveyor_mocks::vendors::zendesk_talk::{ZendeskTalkMock, ZendeskTalkMockConfig};
use conveyor_mocks::vendors::MockHandle;
use conveyor_mocks::RequestLog;
use conveyor_plugin_api::{
    CancelFlag, Connector, ConnectorError, Json, MemoryCredentials, RecordBatch, RecordSink,
};

/// A sink that only counts the rows it is given.
#[derive(Default)]
struct RowCounter(usize);

#[async_trait::async_trait]
impl RecordSink for RowCounter {
    async fn batch(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        self.0 += batch.num_rows();
        Ok(())
    }
    async fn checkpoint(&mut self, _state: Json) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// What the benchmark reads off a running mock (the handles' trait is not
/// object safe, so each handle is wrapped in closures).
struct Probe {
    /// The requests the documented window counts, from the mock's log.
    limited_requests: Box<dyn Fn() -> usize + Send + Sync>,
    /// Requests the mock refused for its rate limit.
    refusals: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// `handle`'s probe, counting the logged requests `limited` picks.
fn probe<H: MockHandle + Clone + Send + Sync + 'static>(
    handle: H,
    limited: fn(&RequestLog) -> bool,
) -> Probe {
    let log = handle.clone();
    Probe {
        limited_requests: Box::new(move || log.requests().iter().filter(|r| limited(r)).count()),
        refusals: Box::new(move || handle.rate_limit_refusals()),
    }
}

/// Every call but the token grant counts against a vendor's window.
fn is_data_request(r: &RequestLog) -> bool {
    !r.path.contains("/token") && r.path != TOKEN_PATH && r.path != xero::TOKEN_PATH
}

/// Zendesk's 10 a minute holds for its incremental exports only.
fn is_zendesk_export(r: &RequestLog) -> bool {
    r.path.contains("/stats/incremental/")
}

/// One vendor's mock, running, and the source body a user would write for it.
struct Prepared {
    vendor: Vendor,
    /// The `[sources.NAME]` body, without any `requests_per_second`.
    body: String,
    probe: Probe,
    /// Kept alive for the whole run, so no later mock reuses its port (and
    /// with it the port's rate budget).
    _server: MockServer,
    /// Holds the secret files the body points at.
    _secrets: tempfile::TempDir,
}

/// Writes `value` to a file in `dir` and returns its `file:` reference, as a
/// user keeps secrets out of the config.
fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write a secret file");
    format!("file:{}", path.display())
}

fn secrets_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

// Each vendor's mock is sized so a full sync needs about 2.5–3 of its
// windows of requests (the counts are in the doc comments; the run prints
// the real ones).

/// Greenhouse, 75 in 10 s: ~200 pages of at most 10 records.
async fn greenhouse() -> Prepared {
    let cfg = GreenhouseMockConfig {
        candidates: 850,
        max_per_page: 10,
        ..Default::default()
    };
    let (server, mock) = GreenhouseMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"greenhouse\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nuser_id = {}\n",
        server.url("/v3"),
        server.url("/token"),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        cfg.user_id,
    );
    Prepared {
        vendor: Vendor::Greenhouse,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// QuickBooks, 500 a minute: pages of 1,000 (the connector's fixed
/// `MAXRESULTS`), so its windows cannot be filled without millions of
/// records; sized to what a debug build serves quickly.
async fn quickbooks() -> Prepared {
    let cfg = QuickBooksMockConfig {
        customers: 2_000,
        invoices: 6_000,
        payments: 2_000,
        ..Default::default()
    };
    let (server, mock) = QuickBooksMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"quickbooks\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nrealm_id = \"{}\"\n",
        server.base_url(),
        server.url(TOKEN_PATH),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
        cfg.realm_id,
    );
    Prepared {
        vendor: Vendor::QuickBooks,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// Gusto, 200 a minute: employee pages of 100 and a detail call per payroll.
async fn gusto() -> Prepared {
    let cfg = GustoMockConfig {
        employees: 100,
        payrolls: 450,
        ..Default::default()
    };
    let (server, mock) = GustoMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"gusto\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\ncompany_id = \"{}\"\nstart_date = \"{}\"\n",
        server.base_url(),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
        cfg.company_id,
        chrono::Utc::now().date_naive() - chrono::Duration::days(14 * cfg.payrolls as i64 + 30),
    );
    Prepared {
        vendor: Vendor::Gusto,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// Zendesk Talk, 10 exports a minute: ~25 export pages of calls and legs.
async fn zendesk_talk() -> Prepared {
    let cfg = ZendeskTalkMockConfig {
        calls: 270,
        page_size: 40,
        ..Default::default()
    };
    let (server, mock) = ZendeskTalkMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"zendesk_talk\"\nbase_url = \"{}\"\nemail = \"{}\"\napi_token = \"{}\"\nstart_date = \"2000-01-01\"\n",
        server.base_url(),
        cfg.email,
        secret_file(dir.path(), "tok", &cfg.api_token),
    );
    Prepared {
        vendor: Vendor::ZendeskTalk,
        body,
        probe: probe(mock, is_zendesk_export),
        _server: server,
        _secrets: dir,
    }
}

/// HubSpot, 100 in 10 s: ~250 list and search pages of 20.
async fn hubspot() -> Prepared {
    let cfg = HubSpotMockConfig {
        contacts: 2_500,
        deals: 2_500,
        search_page_size: Some(20),
        list_page_size: Some(20),
        ..Default::default()
    };
    let (server, mock) = HubSpotMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"hubspot\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\n",
        server.base_url(),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
    );
    Prepared {
        vendor: Vendor::HubSpot,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// Genesys Cloud, 300 a minute: user and evaluation pages of 5, and the
/// conversation queries.
async fn genesys() -> Prepared {
    let cfg = GenesysMockConfig {
        users: 560,
        page_size_cap: Some(5),
        ..Default::default()
    };
    let (server, mock) = GenesysMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"genesys\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        server.base_url(),
        server.url("/oauth/token"),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
    );
    Prepared {
        vendor: Vendor::Genesys,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// Xero, 60 a minute: ~150 pages of 10.
async fn xero() -> Prepared {
    let cfg = XeroMockConfig {
        contacts: 20_000,
        invoices: 40_000,
        payments: 10_000,
        lines_per_invoice: 1,
        ..Default::default()
    };
    let (server, mock) = XeroMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"xero\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\ntenant_id = \"{}\"\n",
        server.base_url(),
        server.url(xero::TOKEN_PATH),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
        cfg.tenant_id,
    );
    Prepared {
        vendor: Vendor::Xero,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// Lever, 10 a second: ~28 pages of 10.
async fn lever() -> Prepared {
    let cfg = LeverMockConfig {
        opportunities: 22,
        max_per_page: 10,
        ..Default::default()
    };
    let (server, mock) = LeverMock::start(cfg.clone()).await;
    let dir = secrets_dir();
    let body = format!(
        "type = \"lever\"\nbase_url = \"{}\"\napi_key = \"{}\"\n",
        server.url("/v1"),
        secret_file(dir.path(), "key", &cfg.api_key),
    );
    Prepared {
        vendor: Vendor::Lever,
        body,
        probe: probe(mock, is_data_request),
        _server: server,
        _secrets: dir,
    }
}

/// The eight vendors with a documented limit, mocks started.
async fn prepare_all() -> Vec<Prepared> {
    vec![
        greenhouse().await,
        quickbooks().await,
        gusto().await,
        zendesk_talk().await,
        hubspot().await,
        genesys().await,
        xero().await,
        lever().await,
    ]
}

/// The source a user's config with this body gives.
fn source_of(body: &str) -> SourceConfig {
    let text = format!("[warehouse]\npath = \"bench.duckdb\"\n[sources.bench]\n{body}\n");
    let cfg = conveyor_config::parse(&text, Path::new("/tmp/conveyor.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    cfg.sources.into_iter().next().expect("one source")
}

/// One vendor's figures from one run.
struct Outcome {
    vendor: Vendor,
    requests: usize,
    throttled: u64,
    rows: usize,
    secs: f64,
    minimum_secs: f64,
    error: Option<String>,
}

impl Outcome {
    fn ratio(&self) -> f64 {
        if self.minimum_secs > 0.0 {
            self.secs / self.minimum_secs
        } else {
            0.0
        }
    }
}

/// Reads every stream in the connector's order, counting rows; the first
/// error stops the sync.
async fn full_sync(connector: &dyn Connector) -> (usize, Option<String>) {
    let mut rows = RowCounter::default();
    for stream in connector.streams() {
        let read = connector
            .read(&stream.name, None, &mut rows, &CancelFlag::default())
            .await;
        if let Err(e) = read {
            return (rows.0, Some(format!("{}: {e}", stream.name)));
        }
    }
    (rows.0, None)
}

/// The least time `requests` take under `window`: requests ÷ allowed rate.
fn minimum_secs(requests: usize, window: RequestWindow) -> f64 {
    requests as f64 * window.per.as_secs_f64() / f64::from(window.requests)
}

/// Syncs one prepared vendor and measures it; `extra` is appended to the
/// source body (the unpaced run's `requests_per_second`).
async fn run_one(p: &Prepared, extra: &str) -> Outcome {
    let source = source_of(&format!("{}{extra}", p.body));
    let started = Instant::now();
    let (rows, error) =
        match conveyor_connectors::build(&source, Arc::new(MemoryCredentials::default())) {
            Ok(c) => full_sync(c.as_ref()).await,
            Err(e) => (0, Some(format!("build: {e}"))),
        };
    let secs = started.elapsed().as_secs_f64();
    // Progress on stderr, so a slow vendor shows which it is.
    eprintln!(
        "{} done in {secs:.1} s {}",
        p.vendor.type_name(),
        error.as_deref().unwrap_or("")
    );
    let window = p
        .vendor
        .documented_limit()
        .expect("a vendor with a documented limit");
    let requests = (p.probe.limited_requests)();
    Outcome {
        vendor: p.vendor,
        requests,
        // Every 429 here is the mock's limit refusing (no faults are queued).
        throttled: (p.probe.refusals)(),
        rows,
        secs,
        minimum_secs: minimum_secs(requests, window),
        error,
    }
}

/// Runs every vendor's sync at once (each mock is its own budget).
async fn run_all(prepared: Arc<Vec<Prepared>>, extra: &'static str) -> Vec<Outcome> {
    let tasks: Vec<_> = (0..prepared.len())
        .map(|i| {
            let prepared = prepared.clone();
            tokio::spawn(async move { run_one(&prepared[i], extra).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("a vendor's sync panicked"));
    }
    outcomes
}

fn window_text(w: RequestWindow) -> String {
    let scope = w.scope.map(|s| format!(" on {s}")).unwrap_or_default();
    format!("{}/{}s{scope}", w.requests, w.per.as_secs())
}

fn print_table(mode: &str, outcomes: &[Outcome]) {
    println!("\n{mode}:");
    println!(
        "{:<13} {:>22} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "vendor", "documented", "requests", "throttled", "rows", "secs", "min_secs", "ratio"
    );
    for o in outcomes {
        println!(
            "{:<13} {:>22} {:>8} {:>9} {:>8} {:>8.1} {:>8.1} {:>7.2}{}",
            o.vendor.type_name(),
            window_text(o.vendor.documented_limit().expect("a documented limit")),
            o.requests,
            o.throttled,
            o.rows,
            o.secs,
            o.minimum_secs,
            o.ratio(),
            o.error
                .as_ref()
                .map(|e| format!("  ERROR {e}"))
                .unwrap_or_default(),
        );
    }
}

fn print_lines(mode: &str, outcomes: &[Outcome]) {
    for o in outcomes {
        println!(
            "ratelimit vendor={} requests={} throttled={} rows={} secs={:.1} minimum_secs={:.1} ratio={:.2} mode={mode}{}",
            o.vendor.type_name(),
            o.requests,
            o.throttled,
            o.rows,
            o.secs,
            o.minimum_secs,
            o.ratio(),
            if o.error.is_some() { " error=1" } else { "" },
        );
    }
    let throttled: u64 = outcomes.iter().map(|o| o.throttled).sum();
    let worst = outcomes.iter().map(Outcome::ratio).fold(0.0, f64::max);
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    println!(
        "ratelimit vendors={} throttled_total={throttled} worst_ratio={worst:.2} failed={failed} mode={mode}",
        outcomes.len()
    );
}

/// Which runs the command line asks for: paced (the default), unpaced, or both.
fn modes() -> Vec<(&'static str, &'static str)> {
    const PACED: (&str, &str) = ("paced", "");
    const UNPACED: (&str, &str) = ("unpaced", "requests_per_second = 1000\n");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => vec![PACED],
        ["--unpaced"] => vec![UNPACED],
        ["--both"] => vec![PACED, UNPACED],
        _ => {
            eprintln!("usage: rate_limits [--unpaced | --both]");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() {
    let modes = modes();
    let mut results = Vec::new();
    // The paced run's mocks stay up through the unpaced one: a new mock on
    // a freed port would inherit that port's (stricter) budget.
    let mut keep_alive = Vec::new();
    for (mode, extra) in modes {
        let prepared = Arc::new(prepare_all().await);
        let outcomes = run_all(prepared.clone(), extra).await;
        print_table(mode, &outcomes);
        results.push((mode, outcomes));
        keep_alive.push(prepared);
    }
    println!();
    for (mode, outcomes) in &results {
        print_lines(mode, outcomes);
    }
}
