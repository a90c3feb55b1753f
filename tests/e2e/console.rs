//! The console (issue 17) through the real binary and a real browser:
//! `conveyor demo --serve` keeps the sandbox and the daemon running; plain
//! HTTP checks the login and CSRF refusals; `tests/console/drive.mjs`
//! drives Debian's Chromium with playwright-core through every page —
//! login, the demo's firing alerts, a silence made and expired (checked
//! here with `conveyor silence list`), a reconciliation's exceptions and
//! CSV, "sync now" — and a source file naming an entity
//! `<script>alert(1)</script>` shows it as text. Screenshots are kept in a
//! folder whose path the test prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{holds_within, text, Daemon, Signal, BIN};

const XSS: &str = "<script>alert(1)</script>";

fn node_modules() -> String {
    std::env::var("CONVEYOR_TEST_NODE_MODULES").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-node/node_modules",
            std::env::var("HOME").unwrap()
        )
    })
}

fn drive_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/console/drive.mjs")
}

/// `conveyor demo --serve` in `dir`, until dropped (SIGINT at the end of
/// the test).
struct Served {
    child: Daemon,
    base: String,
    config: PathBuf,
    token_file: PathBuf,
}

impl Served {
    async fn start(dir: &Path) -> Served {
        let mut child = Daemon::spawn_logged(
            Command::new(BIN)
                .args(["demo", "--serve", "--dir", "d"])
                .current_dir(dir)
                .stdout(Stdio::piped()),
            &dir.join("demo.stderr"),
        );
        let stdout = child.child_mut().stdout.take().unwrap();
        let mut out =
            BufReader::new(tokio::process::ChildStdout::from_std(stdout).unwrap()).lines();
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut base = None;
        loop {
            let line = tokio::time::timeout_at(deadline.into(), out.next_line())
                .await
                .unwrap_or_else(|_| panic!("no console URL in time:\n{seen}"))
                .unwrap()
                .unwrap_or_else(|| panic!("the demo ended:\n{seen}\n{}", child.log()));
            seen.push_str(&line);
            seen.push('\n');
            if let Some(url) = line.trim().strip_prefix("Console:") {
                base = Some(url.trim().trim_end_matches("/console").to_string());
            }
            // The last line of the serving notice.
            if line.trim().starts_with("CLI:") {
                break;
            }
        }
        let base = base.unwrap_or_else(|| panic!("no console URL:\n{seen}"));
        assert!(seen.contains("log in with the token"), "{seen}");
        assert!(seen.contains("Postgres: PGPASSWORD="), "{seen}");
        // Keep reading what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        let d = dir.join("d");
        let token_file = d.join("warehouse.duckdb.token");
        child
            .ready(
                Duration::from_secs(60),
                "/ready and the token file",
                async || {
                    reqwest::get(format!("{base}/ready"))
                        .await
                        .is_ok_and(|r| r.status() == 200)
                        && token_file.exists()
                },
            )
            .await;
        Served {
            child,
            base,
            config: d.join("conveyor.toml"),
            token_file,
        }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(&self.token_file)
            .unwrap()
            .trim()
            .to_string()
    }

    fn stderr(&self) -> String {
        self.child.log()
    }

    /// `conveyor --config … ARGS` (through the daemon, as a person would).
    async fn cli(&self, args: &[&str]) -> (String, String) {
        let out = tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .await
            .unwrap();
        let (o, e) = text(&out);
        assert!(out.status.success(), "{args:?}: {o}\n{e}");
        (o, e)
    }

    async fn silences(&self) -> Vec<Value> {
        let (o, _) = self.cli(&["silence", "list", "--format", "json"]).await;
        serde_json::from_str::<Value>(&o)
            .unwrap_or_else(|e| panic!("{e}: {o}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Config reloads applied so far (from `/metrics`).
    async fn reloads(&self) -> u64 {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("conveyor_config_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A client that follows no redirects and keeps no cookies: each refusal
/// is seen as sent.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in over plain HTTP; returns the session cookie and a page's CSRF
/// token.
async fn login(base: &str, token: &str) -> (String, String) {
    let c = raw_client();
    let r = c
        .post(format!("{base}/console/login"))
        .form(&[
            ("token", token),
            ("name", "http"),
            ("next", "/console/outbox"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/outbox");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    assert!(!set.contains(token), "the cookie must not carry the token");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = c
        .get(format!("{base}/console/outbox"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with the CSRF token")
        .to_string();
    (cookie, csrf)
}

/// What is refused: no session, a wrong token, a POST without (or with a
/// wrong) CSRF token or from another site, a Host that is not this server.
async fn refusals(base: &str, token: &str) {
    let c = raw_client();
    let r = c
        .get(format!("{base}/console/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/console/login?next=%2Fconsole%2Falerts"
    );
    // The API's bearer token is not a console session.
    let r = c
        .get(format!("{base}/console/alerts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .post(format!("{base}/console/login"))
        .form(&[("token", "wrong"), ("next", "/console/alerts")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("That is not the token"));

    let (cookie, csrf) = login(base, token).await;
    let post = |form: Vec<(&'static str, String)>, extra: Option<(&'static str, &'static str)>| {
        let mut rq = c
            .post(format!("{base}/console/outbox/retry"))
            .header("cookie", &cookie)
            .form(&form);
        if let Some((k, v)) = extra {
            rq = rq.header(k, v);
        }
        rq.send()
    };
    let r = post(vec![("which", "dead".into())], None).await.unwrap();
    assert_eq!(r.status(), 403, "a POST without the CSRF token");
    assert!(r.text().await.unwrap().contains("CSRF"));
    let r = post(
        vec![("which", "dead".into()), ("csrf", "forged".into())],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "a POST with a wrong CSRF token");
    let r = post(
        vec![("which", "dead".into()), ("csrf", csrf.clone())],
        Some(("sec-fetch-site", "cross-site")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "a POST from another site");
    let r = post(vec![("which", "dead".into()), ("csrf", csrf.clone())], None)
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the same POST with its token goes through");
    // Without a session a POST is refused outright.
    let r = c
        .post(format!("{base}/console/outbox/retry"))
        .form(&[("which", "dead"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // DNS rebinding: another Host is refused, login page included.
    for path in ["/console/login", "/console/alerts"] {
        let r = c
            .get(format!("{base}{path}"))
            .header("host", "evil.example")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}

/// A timekeeping file naming an employee `<script>alert(1)</script>`, and
/// a rule over that source whose entity is that name, put in force by a
/// SIGHUP reload: "sync now" on timekeeping then raises the alert.
async fn plant_markup(s: &mut Served, dir: &Path) {
    let exports = dir.join("d/timekeeping-exports");
    std::fs::write(
        exports.join("hours_planted.csv"),
        format!(
            "entry_id,employee_email,work_date,hours,approved\nX-1,{XSS},2026-11-02,1.5,true\n"
        ),
    )
    .unwrap();
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    config.push_str(
        r#"
# Added by tests/e2e/console.rs: an entity named with markup.
[[rules]]
name = "short_timekeeping_day"
measure = """
SELECT employee_email AS entity, CAST(work_date AS VARCHAR) AS period, sum(hours) AS value,
       any_value(employee_email) AS employee_name, '<b>Night</b>' AS team
FROM timekeeping.hours GROUP BY ALL"""
direction = "below"
warn = 3
after = ["timekeeping"]
"#,
    );
    std::fs::write(&s.config, config).unwrap();
    let before = s.reloads().await;
    s.child.signal(Signal::HUP);
    let applied = holds_within(Duration::from_secs(60), async || s.reloads().await > before).await;
    assert!(applied, "the reload was not applied: {}", s.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn console_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: run scripts/setup-test-tools"
    );
    // The demo's timekeeping source needs the file-drop plugin next to the binary.
    crate::plugins::built_plugins();
    let dir = tempfile::tempdir().unwrap();
    let shots = tempfile::Builder::new()
        .prefix("conveyor-console-screenshots-")
        .tempdir()
        .unwrap()
        .keep();
    println!("console screenshots: {}", shots.display());
    let mut s = Served::start(dir.path()).await;
    let token = s.token();
    refusals(&s.base, &token).await;
    plant_markup(&mut s, dir.path()).await;

    let mut node = Daemon::spawn_logged(
        Command::new("node")
            .arg(drive_script())
            .arg(&s.base)
            .arg(&s.token_file)
            .arg(&shots)
            .env("NODE_PATH", node_modules())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
        &dir.path().join("drive.stderr"),
    );
    let stdin = node.child_mut().stdin.take().unwrap();
    let mut answer = tokio::process::ChildStdin::from_std(stdin).unwrap();
    let stdout = node.child_mut().stdout.take().unwrap();
    let mut events = BufReader::new(tokio::process::ChildStdout::from_std(stdout).unwrap()).lines();
    let mut silence_id = 0;
    let report = loop {
        let line = tokio::time::timeout(Duration::from_secs(300), events.next_line())
            .await
            .expect("the browser script stalled")
            .unwrap();
        let Some(line) = line else {
            node.exit_within(Duration::from_secs(60)).await;
            panic!("the browser script ended early: {}", node.log());
        };
        let e: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        match e["event"].as_str().unwrap() {
            "silenced" => {
                silence_id = e["id"].as_i64().unwrap();
                let listed = s.silences().await;
                let ours = listed
                    .iter()
                    .find(|r| r["id"].as_i64() == Some(silence_id))
                    .unwrap_or_else(|| panic!("silence {silence_id} not listed: {listed:?}"));
                assert_eq!(ours["rule"], e["rule"]);
                assert_eq!(ours["entity"], e["entity"]);
                assert_eq!(ours["reason"], e["comment"]);
                assert_eq!(ours["author"], "E2E Lead");
                answer.write_all(b"ok\n").await.unwrap();
            }
            "expired" => {
                let listed = s.silences().await;
                assert!(
                    listed.iter().all(|r| r["id"].as_i64() != Some(silence_id)),
                    "still in force after expiring: {listed:?}"
                );
                answer.write_all(b"ok\n").await.unwrap();
            }
            "done" => break e["report"].clone(),
            "failed" => panic!(
                "the browser script failed (screenshots in {}): {}\n{:#}",
                shots.display(),
                e["error"].as_str().unwrap_or(""),
                e["report"]
            ),
            other => panic!("unexpected event {other}: {line}"),
        }
    };
    node.exit_within(Duration::from_secs(60)).await;
    println!("console report: {report:#}");
    let r = &report;

    assert_eq!(r["redirected_to"], "/console/login");
    assert_eq!(r["wrong_token_status"], 401);
    assert!(r["wrong_token_message"]
        .as_str()
        .unwrap()
        .contains("not the token"));
    let cookie = &r["cookies"][0];
    assert_eq!(cookie["name"], "conveyor_console");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["value_is_token"], false);
    // The demo's planted anomalies fire, each rule at least once.
    let firing: Vec<&str> = r["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "csat_below_target",
        "quality_objective",
        "placement_never_invoiced",
        "payroll_hours_disagree",
    ] {
        assert!(firing.contains(&rule), "{rule} not firing: {firing:?}");
    }
    assert_eq!(r["opened"]["rule"], "csat_below_target");
    assert!(r["alert_title"].as_str().unwrap().contains("firing"));
    assert!(r["alert_has_chart"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["alert_has_threshold"], 1);
    let notes = r["notifications"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("delivered")),
        "the demo delivered this alert's coaching e-mail: {notes:?}"
    );
    assert!(r["silence_flash"]
        .as_str()
        .unwrap()
        .contains(&format!("Silence {silence_id} created")));
    assert_eq!(
        r["silence_comment_shown"], "Agent on leave <b>until Monday</b>",
        "the comment's markup shows as text"
    );
    assert_eq!(r["silence_comment_bold"], 0);
    assert_eq!(r["alert_silenced_badge"], 1);
    assert!(r["expire_flash"]
        .as_str()
        .unwrap()
        .contains(&format!("Silence {silence_id} expired")));
    // Reconciliations: a chart each; placements never invoiced as exceptions.
    assert!(r["recon_charts"].as_u64().unwrap() >= 4, "{r}");
    let facts =
        conveyor_mocks::sandbox::sandbox_facts(conveyor_mocks::sandbox::SandboxSize::Default);
    let uninvoiced = facts.uninvoiced_application_ids.len();
    let exceptions = r["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), uninvoiced, "{exceptions:?}");
    assert!(exceptions.iter().all(|e| e[0] == "missing_right"));
    assert_eq!(
        r["missing_right_rows"].as_u64().unwrap() as usize,
        uninvoiced
    );
    assert_eq!(r["csv_status"], 200);
    assert!(r["csv_type"].as_str().unwrap().starts_with("text/csv"));
    let csv = r["csv_lines"].as_array().unwrap();
    assert_eq!(
        csv[0],
        "reconciliation,run_id,status,left_key,right_key,differences,differences_json"
    );
    assert_eq!(csv.len(), uninvoiced + 1, "{csv:?}");
    // Scorecards per team; the outbox shows what the demo delivered.
    assert!(!r["teams"].as_array().unwrap().is_empty(), "{r}");
    assert!(r["delivered_rows"].as_u64().unwrap() > 0);
    // "Sync now": a new run of the source, finished.
    assert!(r["source_charts"].as_u64().unwrap() >= 10, "{r}");
    assert!(r["sync_flash"]
        .as_str()
        .unwrap()
        .contains("Sync of timekeeping started"));
    let (before, after) = (&r["run_before"], &r["run_after"]);
    assert!(
        after["id"].as_i64() > before["id"].as_i64(),
        "{before} -> {after}"
    );
    assert_eq!(after["outcome"], "succeeded");
    // Markup from the data is text: the entity reads as typed, nothing ran.
    assert_eq!(r["xss_entity_text"], serde_json::json!([XSS]));
    assert_eq!(r["xss_team_text"], serde_json::json!(["<b>Night</b>"]));
    assert_eq!(r["xss_script_elements"], 0);
    assert_eq!(r["xss_html_escaped"], true);
    assert_eq!(r["xss_html_raw"], false);
    assert!(r["xss_alert_title"].as_str().unwrap().contains(XSS));
    assert_eq!(r["dialogs"], serde_json::json!([]), "a dialog fired");
    assert_eq!(r["after_logout"], "/console/login");
    // The HTML as the server sent it: escaped there, not by the browser.
    let (cookie, _) = login(&s.base, &token).await;
    let html = raw_client()
        .get(format!(
            "{}/console/alerts?rule=short_timekeeping_day",
            s.base
        ))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(XSS), "raw markup in the page");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>Night</b>"));

    // Ctrl-C.
    let status = s.child.stop_with(Signal::INT).await;
    assert!(status.success(), "{}", s.stderr());
    let stderr = s.stderr();
    assert!(!stderr.contains(&token), "the token leaked into the output");
}
