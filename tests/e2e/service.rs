//! Conveyor as a service (issue 13), through the real binary: SIGHUP
//! reloads (valid applied between runs, invalid refused with located
//! problems), `run` refusing a config `check` refuses, `/health`, `/ready`
//! and `/metrics` read by a real Prometheus parser, operator e-mails for a
//! failing source received by aiosmtpd, `conveyor sync` run by the daemon,
//! service-friendly logs, and the packaging (systemd unit, completions, man).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use conveyor_mocks::rest::{dataset, Auth, Fault, RestMockConfig};
use conveyor_mocks::smtp::Aiosmtpd;

use crate::support::{free_port, text, wait_until, Daemon, Fixture, Signal, BIN};

/// A REST source `name` against the mock (`schedule` when given).
fn source(name: &str, base: &str, schedule: Option<&str>, extra: &str) -> String {
    let schedule = schedule.map_or(String::new(), |s| format!("schedule = \"{s}\"\n"));
    format!(
        r#"
[sources.{name}]
type = "rest"
base_url = "{base}"
backoff_base_ms = 10
pagination = {{ type = "next_url" }}
{schedule}{extra}

[[sources.{name}.streams]]
name = "items"
path = "/items"
primary_key = "id"
records = "data"
incremental = {{ cursor_field = "updated_at", param = "updated_since" }}
"#
    )
}

/// Writes `conveyor.toml`: the warehouse, `[server] listen` on `port`, then
/// `body`.
fn write(f: &Fixture, port: u16, body: &str) -> PathBuf {
    let text = format!(
        "[warehouse]\npath = \"wh.duckdb\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n{body}"
    );
    let p = f.config();
    std::fs::write(&p, text).unwrap();
    p
}

/// `conveyor run` with its endpoint's address and token.
struct Service {
    daemon: Daemon,
    listen: String,
    token: String,
}

impl Service {
    /// `conveyor --log-format FORMAT run`, stderr to `daemon.log`; waits
    /// until `/ready` says ok.
    async fn start(f: &Fixture, port: u16, format: &str, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(f.config())
            .args(["--log-format", format, "run"])
            .current_dir(f.dir.path())
            .envs(env.iter().copied());
        let mut daemon = Daemon::spawn_logged(&mut cmd, &f.path("daemon.log"));
        let listen = format!("127.0.0.1:{port}");
        daemon
            .ready(Duration::from_secs(60), "/ready", async || {
                let Ok(r) = reqwest::get(format!("http://{listen}/ready")).await else {
                    return false;
                };
                if r.status() != 200 {
                    return false;
                }
                assert_eq!(r.text().await.unwrap(), "ok\n");
                true
            })
            .await;
        let token = std::fs::read_to_string(f.path("wh.duckdb.token"))
            .unwrap()
            .trim()
            .to_string();
        Service {
            daemon,
            listen,
            token,
        }
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    /// The JSON log lines with this message.
    fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }

    fn signal(&mut self, sig: Signal) {
        self.daemon.signal(sig);
    }

    fn alive(&mut self) -> bool {
        self.daemon.alive()
    }

    async fn metrics(&self) -> String {
        let r = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.listen))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        r.text().await.unwrap()
    }

    /// SIGTERM, then the exit status.
    async fn stop(mut self) -> std::process::ExitStatus {
        self.daemon.terminate().await
    }
}

/// One value from the warehouse, asked through the CLI (the daemon holds
/// the file).
async fn scalar(f: &Fixture, sql: &str) -> String {
    let out = f.conveyor(&["query", sql, "--format", "csv"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{sql}: {stdout}{stderr}");
    stdout.lines().nth(1).unwrap_or_default().to_string()
}

/// Runs of the same stream that overlap in time: never any.
const OVERLAPS: &str = "SELECT count(*) FROM conveyor.runs a JOIN conveyor.runs b
    ON a.source = b.source AND a.stream = b.stream AND a.run_id < b.run_id
   AND b.started_at < coalesce(a.finished_at, make_timestamp(epoch_us(now())))";

fn python() -> String {
    std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// One parsed sample: name, labels (a JSON object), value.
type Sample = (String, serde_json::Value, f64);

/// The exposition parsed by prometheus_client's own parser: each sample as
/// `(name, labels, value)`, and each family's `(name, type)`.
fn parse_metrics(text: &str) -> (Vec<Sample>, Vec<(String, String)>) {
    use std::io::Write;
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, families = [], []
for fam in text_string_to_metric_families(sys.stdin.read()):
    families.append([fam.name, fam.type])
    for s in fam.samples:
        samples.append([s.name, s.labels, s.value])
print(json.dumps({"samples": samples, "families": families}))
"#;
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the test venv's python (scripts/setup-test-tools)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_str().unwrap().to_string(),
                s[1].clone(),
                s[2].as_f64().unwrap(),
            )
        })
        .collect();
    let families = v["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (samples, families)
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|s| s.2)
}

const CONSTANT_RULE: &str = r#"
[[rules]]
name = "constant"
measure = "SELECT * FROM (VALUES ('a1', DATE '2026-01-05', 3.1)) AS m(entity, period, value)"
direction = "below"
warn = 4.0
schedule = "*/2 * * * * *"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn service_sighup_applies_a_valid_change_between_runs_and_keeps_the_old_config_on_an_invalid_one(
) {
    let f = Fixture::new(RestMockConfig {
        records: dataset(1_000),
        ..Default::default()
    })
    .await;
    // Slow pages (10 of them, 3 s a run): a run is in flight nearly always.
    f.mock
        .set_faults(vec![Fault::Delay(Duration::from_millis(300)); 100_000]);
    let base = f.server.base_url();
    let port = free_port();
    let first = source("src", &base, Some("*/2 * * * * *"), "");
    write(&f, port, &format!("{first}{CONSTANT_RULE}"));
    let mut d = Service::start(&f, port, "json", &[]).await;

    // The rule evaluated on its schedule, and a run of `src` in flight.
    wait_until(
        Duration::from_secs(30),
        "the scheduled rule evaluated",
        async || {
            scalar(
                &f,
                "SELECT count(DISTINCT eval_id) FROM conveyor.rule_results",
            )
            .await
                != "0"
        },
    )
    .await;
    let mut in_flight = String::new();
    wait_until(
        Duration::from_secs(60),
        "a run of src in flight",
        async || {
            in_flight = scalar(
                &f,
                "SELECT coalesce(max(run_id), -1) FROM conveyor.runs WHERE status = 'running'",
            )
            .await;
            in_flight != "-1"
        },
    )
    .await;

    // A valid change, with the run in flight: a source added, src's
    // schedule changed, the rule removed.
    let second = source("second", &base, Some("*/3 * * * * *"), "");
    let changed = source("src", &base, Some("*/4 * * * * *"), "");
    write(&f, port, &format!("{changed}{second}"));
    d.signal(Signal::HUP);
    wait_until(Duration::from_secs(30), "config reloaded", async || {
        !d.lines("config reloaded").is_empty()
    })
    .await;
    assert!(d.alive(), "SIGHUP never kills the daemon");
    let reloaded = &d.lines("config reloaded")[0];
    assert_eq!(
        reloaded["changes"], "sources: +second ~src; rules: -constant",
        "{reloaded}"
    );
    // The run in flight when SIGHUP came finished normally, after it: not
    // cancelled, not left running.
    wait_until(
        Duration::from_secs(60),
        "the run in flight finished",
        async || {
            scalar(
                &f,
                &format!("SELECT status FROM conveyor.runs WHERE run_id = {in_flight}"),
            )
            .await
                == "succeeded"
        },
    )
    .await;
    let requested = d.lines("reload requested (SIGHUP): checking the config")[0]["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let requested = chrono::DateTime::parse_from_rfc3339(&requested)
        .unwrap()
        .naive_utc();
    let finished = scalar(&f, &format!("SELECT strftime(finished_at, '%Y-%m-%dT%H:%M:%S.%f') FROM conveyor.runs WHERE run_id = {in_flight}")).await;
    let finished =
        chrono::NaiveDateTime::parse_from_str(&finished, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
    assert!(
        finished > requested,
        "run {in_flight} ended at {finished}, before the SIGHUP at {requested}"
    );
    // The new source runs, without a restart.
    wait_until(
        Duration::from_secs(60),
        "the added source ran",
        async || {
            scalar(
            &f,
            "SELECT count(*) FROM conveyor.runs WHERE source = 'second' AND status = 'succeeded'",
        )
        .await
            != "0"
        },
    )
    .await;
    // The removed rule is no longer evaluated.
    let evals = scalar(
        &f,
        "SELECT count(DISTINCT eval_id) FROM conveyor.rule_results",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        scalar(
            &f,
            "SELECT count(DISTINCT eval_id) FROM conveyor.rule_results"
        )
        .await,
        evals,
        "the removed rule still runs"
    );

    // An invalid change: a template naming a column the measure lacks
    // (found only against the warehouse), and a broken measure.
    let broken = format!(
        "{changed}{second}\n[smtp]\nhost = \"127.0.0.1\"\nfrom = \"c@example.com\"\n{}\n[[rules.actions]]\ntype = \"email\"\nto = [\"ops@example.com\"]\nsubject = \"{{{{ nope }}}}\"\nbody = \"x\"\n\n[[rules]]\nname = \"shapeless\"\nmeasure = \"SELECT 1 AS entity\"\ndirection = \"below\"\nwarn = 1\n",
        CONSTANT_RULE.replace("\"constant\"", "\"templated\"")
    );
    write(&f, port, &broken);
    let config_path = f.config().display().to_string();
    d.signal(Signal::HUP);
    wait_until(Duration::from_secs(30), "the reload refused", async || !d.lines("config reload failed: the running config stays in force (`conveyor check` lists the problems)").is_empty()).await;
    assert!(d.alive());
    let refused: Vec<String> = d
        .lines("config reload refused")
        .iter()
        .map(|l| l["problem"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|p| p.starts_with(&format!("{config_path}:"))),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|p| p.contains("unknown template variable `nope`")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|p| p.contains("`shapeless` does not run")),
        "{refused:?}"
    );
    let (samples, _) = parse_metrics(&d.metrics().await);
    assert_eq!(
        sample(
            &samples,
            "conveyor_config_reloads_total",
            &[("result", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &samples,
            "conveyor_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "conveyor_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // The old config keeps running: both sources still sync, no rule runs.
    let runs = scalar(
        &f,
        "SELECT count(*) FROM conveyor.runs WHERE source = 'second'",
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "the running config still syncs",
        async || {
            scalar(
                &f,
                "SELECT count(*) FROM conveyor.runs WHERE source = 'second'",
            )
            .await
                != runs
        },
    )
    .await;
    assert_eq!(
        scalar(
            &f,
            "SELECT count(DISTINCT eval_id) FROM conveyor.rule_results"
        )
        .await,
        evals
    );

    // No run was ever doubled: no two runs of a stream overlap.
    assert_eq!(scalar(&f, OVERLAPS).await, "0");
    let log_path = f.path("daemon.log");
    let status = d.stop().await;
    assert!(status.success(), "{status:?}");
    assert!(std::fs::read_to_string(log_path)
        .unwrap()
        .contains("stopped cleanly"));
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.runs WHERE status IN ('running', 'interrupted')"),
        "0"
    );
    // With the daemon stopped, `check` reaches the warehouse and prints the
    // very lines the reload logged.
    let check = f.conveyor(&["check"]).await;
    assert_eq!(check.status.code(), Some(2), "{:?}", text(&check));
    let located: Vec<String> = text(&check).0.lines().map(String::from).collect();
    assert_eq!(refused, located);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_run_refuses_to_start_on_a_config_check_refuses() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let port = free_port();
    write(
        &f,
        port,
        &format!(
            "{}\n[smtp]\nhost = \"127.0.0.1\"\nfrom = \"c@example.com\"\n{}\n[[rules.actions]]\ntype = \"email\"\nto = [\"ops@example.com\"]\nsubject = \"{{{{ agent_name }}}} is low\"\nbody = \"x\"\n",
            source("src", &f.server.base_url(), Some("0 0 2 * * *"), ""),
            CONSTANT_RULE
        ),
    );
    let check = f.conveyor(&["check"]).await;
    assert_eq!(check.status.code(), Some(2), "{:?}", text(&check));
    let located = text(&check).0;
    assert!(
        located.contains("unknown template variable `agent_name`"),
        "{located}"
    );
    let out = tokio::time::timeout(Duration::from_secs(60), f.conveyor(&["run"]))
        .await
        .expect("run exits at once");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for line in located.lines() {
        assert!(
            stderr.contains(line),
            "run does not say {line:?}:\n{stderr}"
        );
    }
    assert!(stderr.contains("the daemon did not start"), "{stderr}");
    assert!(!stderr.contains("conveyor daemon started"), "{stderr}");
    // Nothing listens.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_health_ready_and_metrics_parse_with_prometheus_client_and_move_as_syncs_run() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let port = free_port();
    write(
        &f,
        port,
        &format!(
            "{}{CONSTANT_RULE}",
            source("src", &f.server.base_url(), Some("*/2 * * * * *"), "")
        ),
    );
    let d = Service::start(&f, port, "human", &[]).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", d.listen);
    // The probes need no token and say nothing but ok.
    for probe in ["/health", "/ready"] {
        let r = http.get(url(probe)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok\n");
    }
    // Everything else still wants the token, /metrics included.
    assert_eq!(
        http.get(url("/metrics")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        http.get(url("/v1/health")).send().await.unwrap().status(),
        401
    );
    let r = http
        .get(url("/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let rows = |s: &[Sample]| {
        sample(
            s,
            "conveyor_stream_rows_loaded_total",
            &[("source", "src"), ("stream", "items")],
        )
        .unwrap_or(0.0)
    };
    let runs = |s: &[Sample]| {
        sample(
            s,
            "conveyor_stream_runs_total",
            &[
                ("source", "src"),
                ("stream", "items"),
                ("outcome", "succeeded"),
            ],
        )
        .unwrap_or(0.0)
    };
    let mut first = Vec::new();
    wait_until(Duration::from_secs(60), "a sync counted", async || {
        first = parse_metrics(&d.metrics().await).0;
        rows(&first) >= 250.0 && runs(&first) >= 1.0
    })
    .await;
    // More data, more runs: the counters move.
    f.mock.push(conveyor_mocks::rest::record(10_001));
    let mut later = Vec::new();
    wait_until(Duration::from_secs(60), "the counters moved", async || {
        later = parse_metrics(&d.metrics().await).0;
        runs(&later) > runs(&first) && rows(&later) > rows(&first)
    })
    .await;
    let (samples, families) = parse_metrics(&d.metrics().await);
    let ty = |name: &str| {
        families
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no family {name}: {families:?}"))
    };
    assert_eq!(ty("conveyor_stream_runs"), "counter");
    assert_eq!(ty("conveyor_stream_rows_loaded"), "counter");
    assert_eq!(ty("conveyor_stream_run_duration_seconds"), "histogram");
    assert_eq!(ty("conveyor_stream_seconds_since_last_success"), "gauge");
    assert_eq!(ty("conveyor_source_consecutive_failures"), "gauge");
    assert_eq!(ty("conveyor_config_reloads"), "counter");
    assert_eq!(ty("conveyor_outbox_queued"), "gauge");
    assert_eq!(ty("conveyor_alerts"), "gauge");
    assert_eq!(ty("conveyor_rule_evaluations"), "counter");
    assert!(sample(&samples, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    // The vendor API's requests, by host and status class.
    assert_eq!(ty("conveyor_http_requests"), "counter");
    assert!(
        sample(
            &samples,
            "conveyor_http_requests_total",
            &[("host", "127.0.0.1"), ("class", "2xx")]
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{samples:?}"
    );
    // The scheduled rule's evaluations and its firing alert; the outbox at zero.
    assert!(
        sample(
            &samples,
            "conveyor_rule_evaluations_total",
            &[("rule", "constant")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(
            &samples,
            "conveyor_alerts",
            &[("rule", "constant"), ("state", "firing"), ("level", "warn")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "conveyor_outbox_queued", &[("channel", "email")]),
        Some(0.0)
    );
    let count = sample(
        &samples,
        "conveyor_stream_run_duration_seconds_count",
        &[("source", "src")],
    )
    .unwrap();
    assert!(count >= 2.0, "{count}");
    let since = sample(
        &samples,
        "conveyor_stream_seconds_since_last_success",
        &[("source", "src")],
    )
    .unwrap();
    assert!((0.0..60.0).contains(&since), "{since}");
    assert_eq!(
        sample(
            &samples,
            "conveyor_source_consecutive_failures",
            &[("source", "src")]
        ),
        Some(0.0)
    );
    let next = sample(
        &samples,
        "conveyor_source_next_run_timestamp_seconds",
        &[("source", "src")],
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        next > now - 5.0 && next < now + 5.0,
        "next run {next} vs now {now}"
    );

    // Logs to a file: no colour codes, even in the human format.
    let log = d.log();
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in the log file:\n{log}"
    );
    assert!(d.stop().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_a_failing_source_emails_the_operator_once_then_once_when_it_recovers() {
    const KEY: &str = "k3y-SERVICE-never-in-mail";
    let f = Fixture::new(RestMockConfig {
        auth: Auth::ApiKeyQuery {
            name: "api_key".into(),
            value: KEY.into(),
        },
        ..Default::default()
    })
    .await;
    let smtp = Aiosmtpd::start(&f.path("mail"), &[]);
    let port = free_port();
    let body = format!(
        "{}\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Conveyor <conveyor@example.com>\"\noperator = \"ops@example.com\"\n",
        source(
            "src",
            &f.server.base_url(),
            Some("*/2 * * * * *"),
            "max_retries = 0\nauth = { type = \"api_key\", query_param = \"api_key\", key = \"env:SERVICE_SRC_KEY\" }"
        ),
        smtp.port
    );
    write(&f, port, &body);
    // Every request fails with a 500 until the faults are cleared.
    f.mock.set_faults(vec![Fault::ServerError; 10_000]);
    let d = Service::start(&f, port, "json", &[("SERVICE_SRC_KEY", KEY)]).await;

    wait_until(
        Duration::from_secs(60),
        "the operator told of the failing source",
        async || smtp.messages().len() == 1,
    )
    .await;
    let mail = smtp.messages().remove(0);
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: Conveyor: source `src` failed 3 runs in a row"),
        "{mail}"
    );
    assert!(mail.contains("500"), "{mail}");
    assert!(mail.contains("/items"), "{mail}");
    assert!(
        !mail.contains(KEY),
        "the API key leaked into the e-mail:\n{mail}"
    );
    // It is an alert like any other, and status shows the streak.
    let out = f.conveyor(&["alerts", "--format", "csv"]).await;
    let alerts = text(&out).0;
    assert!(
        alerts.contains("conveyor.source_failing,src,firing,critical"),
        "{alerts}"
    );
    let out = f.conveyor(&["status", "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let row = &status["streams"][0];
    assert!(row["failures"].as_i64().unwrap() >= 3, "{row}");
    assert!(row["last_success"].is_null(), "{row}");
    assert_eq!(row["state"], "failed");

    // More failures tell nobody again.
    let failed = scalar(
        &f,
        "SELECT count(*) FROM conveyor.runs WHERE status = 'failed'",
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "two more failed runs",
        async || {
            let n: i64 = scalar(
                &f,
                "SELECT count(*) FROM conveyor.runs WHERE status = 'failed'",
            )
            .await
            .parse()
            .unwrap();
            n >= failed.parse::<i64>().unwrap() + 2
        },
    )
    .await;
    assert_eq!(smtp.messages().len(), 1, "one e-mail per failure streak");

    // The API comes back: one resolved e-mail.
    f.mock.set_faults(Vec::new());
    wait_until(
        Duration::from_secs(60),
        "the operator told of the recovery",
        async || smtp.messages().len() == 2,
    )
    .await;
    let mail = smtp.messages().remove(1);
    assert!(
        mail.contains("Subject: Conveyor: source `src` recovered"),
        "{mail}"
    );
    assert!(!mail.contains(KEY), "{mail}");
    let ok = scalar(
        &f,
        "SELECT count(*) FROM conveyor.runs WHERE status = 'succeeded'",
    )
    .await;
    wait_until(Duration::from_secs(30), "another good run", async || {
        scalar(
            &f,
            "SELECT count(*) FROM conveyor.runs WHERE status = 'succeeded'",
        )
        .await
            != ok
    })
    .await;
    assert_eq!(smtp.messages().len(), 2, "a recovery is told once");
    let out = f.conveyor(&["status", "--format", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(status["streams"][0]["failures"], 0);
    assert!(status["streams"][0]["last_success"].is_string());
    let log = d.log();
    assert!(!log.contains(KEY), "the API key leaked into the log");
    assert!(d.stop().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_sync_while_the_daemon_runs_happens_in_the_daemon() {
    let f = Fixture::new(RestMockConfig::default()).await;
    let port = free_port();
    // No schedule: the daemon syncs only when asked.
    write(&f, port, &source("src", &f.server.base_url(), None, ""));
    let d = Service::start(&f, port, "json", &[]).await;
    let out = f.conveyor(&["sync", "src"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("a daemon holds the warehouse; it runs src now"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("locked") && !stderr.contains("in use"),
        "{stderr}"
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(
        stdout.contains("1 source(s), 1 stream(s), 250 rows"),
        "{stdout}"
    );
    // The daemon ran it: its log says so, with the trigger.
    let started = d.lines("run started");
    assert_eq!(started.len(), 1, "{}", d.log());
    assert_eq!(started[0]["trigger"], "daemon");
    assert_eq!(scalar(&f, "SELECT count(*) FROM src.items").await, "250");
    // An unknown source is refused (exit 2) by the CLI's own config check.
    let out = f.conveyor(&["sync", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    // A failing source: exit 1, the error printed.
    f.mock
        .set_faults(vec![Fault::Status(404, "{\"error\":\"gone\"}".into()); 50]);
    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("failed") && stdout.contains("404"),
        "{stdout}"
    );
    assert!(d.stop().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_logs_have_no_escape_codes_typed_json_fields_progress_lines_and_cancelled_runs() {
    let f = Fixture::new(RestMockConfig {
        records: dataset(3_000),
        ..Default::default()
    })
    .await;
    let port = free_port();
    write(
        &f,
        port,
        &source("src", &f.server.base_url(), Some("*/2 * * * * *"), ""),
    );
    // Human format to a file: no escape codes, even with colour "on" terms.
    let out = f
        .conveyor_env(&["sync"], &[("TERM", "xterm-256color")])
        .await;
    assert!(out.status.success(), "{:?}", text(&out));
    let stderr = text(&out).1;
    assert!(stderr.contains("run finished"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes off a terminal: {stderr:?}"
    );

    // JSON: every line parses, durations are numbers, runs start and end.
    f.mock
        .set_faults(vec![Fault::Delay(Duration::from_millis(100)); 100_000]);
    let d = Service::start(&f, port, "json", &[("CONVEYOR_PROGRESS_SECS", "0.3")]).await;
    wait_until(Duration::from_secs(60), "a progress line", async || {
        !d.lines("sync progress").is_empty()
    })
    .await;
    // Stop it mid-run: the run is logged as cancelled, not as synced.
    wait_until(Duration::from_secs(30), "a run in flight", async || {
        scalar(
            &f,
            "SELECT count(*) FROM conveyor.runs WHERE status = 'running'",
        )
        .await
            == "1"
    })
    .await;
    let log_path = f.path("daemon.log");
    assert!(d.stop().await.success());
    let log = std::fs::read_to_string(log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let with = |m: &str| {
        lines
            .iter()
            .filter(|l| l["message"] == m)
            .collect::<Vec<_>>()
    };
    let progress = with("sync progress");
    assert!(
        progress[0]["rows"].is_u64() && progress[0]["rows_per_s"].is_number(),
        "{}",
        progress[0]
    );
    assert!(
        progress[0]["secs"].is_f64() && progress[0]["pages"].is_u64(),
        "{}",
        progress[0]
    );
    let started = with("run started");
    assert!(
        !started.is_empty() && started[0]["trigger"] == "schedule",
        "{log}"
    );
    let finished = with("run finished");
    assert!(
        finished
            .iter()
            .all(|l| l["secs"].is_number() && l["rows"].is_u64()),
        "{log}"
    );
    let last = finished.last().unwrap();
    assert_eq!(last["outcome"], "cancelled", "{log}");
    let cancelled = with("stream cancelled: stopped after its last committed batch");
    assert_eq!(cancelled.len(), 1, "{log}");
    assert!(cancelled[0]["secs"].is_f64(), "{}", cancelled[0]);
    assert!(
        with("stream synced")
            .iter()
            .all(|l| l["status"] == "succeeded"),
        "a cancelled run logged as synced: {log}"
    );
    let up = &with("conveyor daemon started")[0];
    assert_eq!(up["sources"], 1, "{up}");
    assert_eq!(up["scheduled_sources"], 1, "{up}");
    assert_eq!(
        f.scalar("SELECT status FROM conveyor.runs ORDER BY run_id DESC LIMIT 1"),
        "cancelled"
    );
}

#[test]
fn service_systemd_unit_passes_systemd_analyze_verify() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/conveyor.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for needed in [
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/conveyor",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=conveyor",
        "Type=notify",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit_text.contains(needed), "the unit lacks {needed}");
    }
    let analyze = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        eprintln!("systemd-analyze not installed: the unit's syntax is not verified here");
        return;
    }
    // Verified as installed, with the binary where the unit expects it.
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("conveyor.service");
    std::fs::write(&installed, unit_text.replace("/usr/bin/conveyor", BIN)).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&installed)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // A bad setting is only a warning to systemd-analyze: none may appear.
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "{stdout}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_completions_and_man_pages_come_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for (shell, marker) in [
        ("bash", "_conveyor()"),
        ("zsh", "#compdef conveyor"),
        ("fish", "complete -c conveyor"),
    ] {
        let out = run(&["completions", shell]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains(marker), "{shell}: {stdout}");
        assert!(
            stdout.contains("sync") && stdout.contains("completions"),
            "{shell}"
        );
    }
    let out = run(&["man"]);
    let page = text(&out).0;
    assert!(page.contains(".TH conveyor 1"), "{page}");
    assert!(
        page.contains("completions") && page.contains("Sync sources once"),
        "{page}"
    );
    let out = run(&["man", "--dir", "pages"]);
    assert!(out.status.success(), "{:?}", text(&out));
    for page in ["conveyor.1", "conveyor-run.1", "conveyor-silence-add.1"] {
        assert!(dir.path().join("pages").join(page).exists(), "{page}");
    }
    // The bash completion script is valid bash.
    let script = dir.path().join("conveyor.bash");
    std::fs::write(&script, run(&["completions", "bash"]).stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}
