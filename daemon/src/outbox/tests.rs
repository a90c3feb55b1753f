//! The outbox against a real SMTP server (aiosmtpd, `tests/smtp_capture.py`,
//! from the venv `scripts/setup-test-tools` installs): what a firing alert
//! sends, that nothing is sent twice, SMTP down then up, dead letters, and
//! templates checked against the measure's columns.

use std::path::Path;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use conveyor_config::Config;
use duckdb::Connection;

use super::*;
use crate::warehouse::Warehouse;

pub(crate) use conveyor_mocks::smtp::Aiosmtpd as Smtp;

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) conn: Connection,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch(
        "CREATE TABLE m (agent VARCHAR, agent_name VARCHAR, week DATE, score DOUBLE, supervisor VARCHAR);
         INSERT INTO m VALUES
           ('a1', 'Ann', DATE '2026-01-05', 3.1, 'sup@example.com'),
           ('a2', 'Bob', DATE '2026-01-05', 3.5, 'sup@example.com'),
           ('a3', 'Cy',  DATE '2026-01-05', 4.8, 'sup@example.com'),
           ('a4', 'Di',  DATE '2026-01-05', 3.9, 'Ann\r\nBcc: x@evil.example');",
    )
    .unwrap();
    Fixture { dir, conn }
}

/// A config with one rule e-mailing `to`/`to_column`, sending to `port`.
pub(super) fn config(port: u16, action: &str) -> Config {
    let text = format!(
        r#"
[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"

[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "Conveyor <conveyor@example.com>"
max_attempts = 3

[[rules]]
name = "csat_low"
measure = "SELECT agent AS entity, week AS period, score AS value, agent_name, supervisor FROM m"
direction = "below"
warn = 4.0

[[rules.actions]]
type = "email"
{action}
"#
    );
    conveyor_config::parse(&text, Path::new("/c/conveyor.toml")).unwrap()
}

const TO_SUPERVISOR: &str = r#"to_column = "supervisor"
subject = "CSAT below target: {{ agent_name }}"
body = "{{ agent_name }} ({{ entity }}) scored {{ value }} in the week of {{ period }} [{{ level }}]""#;

pub(super) fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 6)
        .unwrap()
        .and_hms_opt(6, 0, 0)
        .unwrap()
}

/// `(attempts, delivered, dead, last_error)` of every outbox row, by id.
fn rows(conn: &Connection) -> Vec<(i32, bool, bool, Option<String>)> {
    let mut st = conn
        .prepare("SELECT attempts, delivered_at IS NOT NULL, dead_at IS NOT NULL, last_error FROM conveyor.outbox ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A loopback port nothing listens on (bound, then released).
pub(super) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn outbox_a_firing_alert_sends_one_email_per_recipient_once() {
    let f = fixture();
    let smtp = Smtp::start(&f.dir.path().join("mail"), &[]);
    let config = config(smtp.port, TO_SUPERVISOR);
    let rule = &config.rules[0];
    let s = crate::rules::evaluate_at(&f.conn, rule, t0()).unwrap();
    assert_eq!(s.started_firing, 3, "a1, a2 and a4 breach");
    // a4's supervisor value carries CR/LF and a header: no e-mail, no row.
    let queued: Vec<(String, String, String)> = {
        let mut st = f
            .conn
            .prepare("SELECT key, recipient, subject FROM conveyor.outbox ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(queued.len(), 1, "{queued:?}");
    let key = notification_key("csat_low", s.eval_id, "email", "sup@example.com");
    assert_eq!(
        queued[0],
        (
            key.clone(),
            "sup@example.com".into(),
            "CSAT below target: Ann (+1 more)".into()
        )
    );

    let smtp_config = config.smtp.as_ref().unwrap();
    let r = deliver_due(&f.conn, smtp_config, t0()).unwrap();
    assert_eq!(
        r,
        DeliveryReport {
            delivered: 1,
            failed: 0,
            dead: 0
        }
    );
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert!(m.contains(&format!("Message-ID: <{key}@conveyor>")), "{m}");
    assert!(m.contains("To: sup@example.com"), "{m}");
    assert!(
        m.contains("Subject: CSAT below target: Ann (+1 more)"),
        "{m}"
    );
    assert!(
        m.contains("Ann (a1) scored 3.1 in the week of 2026-01-05 [warn]"),
        "{m}"
    );
    assert!(
        m.contains("Bob (a2) scored 3.5 in the week of 2026-01-05 [warn]"),
        "{m}"
    );
    assert!(
        !m.contains("Cy (a3)") && !m.to_lowercase().contains("bcc:"),
        "{m}"
    );

    // Delivering again, or evaluating again while still firing, sends nothing.
    assert_eq!(
        deliver_due(&f.conn, smtp_config, t0() + Duration::hours(1))
            .unwrap()
            .attempted(),
        0
    );
    crate::rules::evaluate_at(&f.conn, rule, t0() + Duration::hours(2)).unwrap();
    assert_eq!(
        deliver_due(&f.conn, smtp_config, t0() + Duration::hours(3))
            .unwrap()
            .attempted(),
        0
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(rows(&f.conn), vec![(1, true, false, None)]);
}

#[test]
fn outbox_smtp_down_keeps_rows_queued_then_delivers_when_it_returns() {
    let f = fixture();
    let port = closed_port();
    let config = config(
        port,
        r#"to = ["ops@example.com"]
subject = "{{ rule }}: {{ entity }}"
body = "{{ value }}""#,
    );
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    let smtp_config = config.smtp.as_ref().unwrap();
    let r = deliver_due(&f.conn, smtp_config, t0()).unwrap();
    assert_eq!(
        r,
        DeliveryReport {
            delivered: 0,
            failed: 1,
            dead: 0
        }
    );
    let after_failure = rows(&f.conn);
    assert_eq!((after_failure[0].0, after_failure[0].1), (1, false));
    assert!(after_failure[0].3.is_some(), "the error is kept");
    // Backing off: not due again before 30 s.
    let smtp = Smtp::start(&f.dir.path().join("mail"), &[&port.to_string()]);
    assert_eq!(
        deliver_due(&f.conn, smtp_config, t0() + Duration::seconds(29))
            .unwrap()
            .attempted(),
        0
    );
    assert!(smtp.messages().is_empty());
    let r = deliver_due(&f.conn, smtp_config, t0() + Duration::seconds(30)).unwrap();
    assert_eq!(r.delivered, 1);
    assert_eq!(rows(&f.conn), vec![(2, true, false, None)]);
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("Subject: csat_low: a1 (+2 more)"),
        "{}",
        mail[0]
    );
}

#[test]
fn outbox_dead_letters_after_max_attempts() {
    let f = fixture();
    let config = config(
        closed_port(),
        r#"to = ["ops@example.com"]
subject = "{{ entity }}"
body = "{{ value }}""#,
    );
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    let smtp_config = config.smtp.as_ref().unwrap();
    let mut now = t0();
    let mut reports = Vec::new();
    for _ in 0..4 {
        reports.push(deliver_due(&f.conn, smtp_config, now).unwrap());
        now += Duration::hours(7);
    }
    let dead: Vec<usize> = reports.iter().map(|r| r.dead).collect();
    assert_eq!(
        dead,
        vec![0, 0, 1, 0],
        "max_attempts = 3; a dead row is not retried"
    );
    let r = &rows(&f.conn)[0];
    assert_eq!((r.0, r.1, r.2), (3, false, true));
}

#[test]
fn outbox_backoff_doubles_and_is_capped() {
    let waits: Vec<i64> = [1, 2, 3, 30].map(deliver::backoff_secs).to_vec();
    assert_eq!(waits, vec![30, 60, 120, 6 * 3600]);
}

#[test]
fn outbox_unknown_template_variable_is_a_located_check_error() {
    let f = fixture();
    let config = config(
        25,
        r#"to = ["ops@example.com"]
subject = "{{ agent_name }} / {{ team }}"
body = "{{ entity }} {{ supervisor_email }}""#,
    );
    let rule = &config.rules[0];
    let columns = crate::rules::measure_columns(&f.conn, rule).unwrap();
    let problems: Vec<String> = crate::checks::check_templates(rule, &columns)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "/c/conveyor.toml:29:11: rules[0].actions[0].subject: unknown template variable `team`"
        ),
        "{problems:#?}"
    );
    assert!(problems[1].starts_with("/c/conveyor.toml:30:8: rules[0].actions[0].body: unknown template variable `supervisor_email`"), "{problems:#?}");
}

#[test]
fn outbox_notify_resolved_sends_the_resolution_only_when_asked() {
    let f = fixture();
    let smtp = Smtp::start(&f.dir.path().join("mail"), &[]);
    let action = r#"to = ["ops@example.com"]
subject = "{{ entity }} {{ transition }}"
body = "{{ value }}""#;
    let mut config = config(smtp.port, action);
    let smtp_config = config.smtp.clone().unwrap();
    f.conn
        .execute_batch("DELETE FROM m WHERE agent <> 'a1'")
        .unwrap();
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    f.conn.execute_batch("UPDATE m SET score = 4.5").unwrap();
    // Without notify_resolved the recovery queues nothing.
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0() + Duration::hours(1)).unwrap();
    f.conn.execute_batch("UPDATE m SET score = 3.0").unwrap();
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0() + Duration::hours(2)).unwrap();
    config.rules[0].notify_resolved = true;
    f.conn.execute_batch("UPDATE m SET score = 4.5").unwrap();
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0() + Duration::hours(3)).unwrap();
    deliver_due(&f.conn, &smtp_config, t0() + Duration::hours(4)).unwrap();
    let subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| {
            m.lines()
                .find(|l| l.starts_with("Subject: "))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        [
            "Subject: a1 firing",
            "Subject: a1 firing",
            "Subject: a1 resolved"
        ]
    );
}

/// One request a [`Receiver`] saw.
#[derive(Debug, Clone)]
struct Seen {
    idempotency_key: String,
    signature: Option<String>,
    body: String,
}

/// A webhook receiver on 127.0.0.1 (axum on its own runtime thread) that
/// records each request and answers with the next scripted status (then 200).
struct Receiver {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Mutex<std::collections::VecDeque<u16>>> =
            Arc::new(Mutex::new(statuses.iter().copied().collect()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hooks/enrol", listener.local_addr().unwrap());
        let (s, sc) = (seen.clone(), script.clone());
        let app = axum::Router::new().route(
            "/hooks/enrol",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (s, sc) = (s.clone(), sc.clone());
                async move {
                    let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_string());
                    s.lock().unwrap().push(Seen {
                        idempotency_key: h("idempotency-key").unwrap_or_default(),
                        signature: h("x-conveyor-signature"),
                        body,
                    });
                    let status = sc.lock().unwrap().pop_front().unwrap_or(200);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        format!("status {status}"),
                    )
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            seen,
            _runtime: runtime,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A config with one rule whose webhook POSTs to `url` (no `[smtp]`).
fn webhook_config(url: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"

[[rules]]
name = "csat_low"
measure = "SELECT agent AS entity, week AS period, score AS value, agent_name FROM m"
direction = "below"
warn = 4.0

[[rules.actions]]
type = "webhook"
url = "{url}"
{extra}
"#
    );
    conveyor_config::parse(&text, Path::new("/c/conveyor.toml")).unwrap()
}

/// Only a1 breaches, so each evaluation announces one transition.
fn one_breach(f: &Fixture) {
    f.conn
        .execute_batch("DELETE FROM m WHERE agent <> 'a1'")
        .unwrap();
}

#[test]
fn outbox_webhook_posts_signed_json_once_with_the_key() {
    let f = fixture();
    one_breach(&f);
    let secret_file = f.dir.path().join("hook.secret");
    std::fs::write(&secret_file, "s3cr3t-hook").unwrap();
    let hook = Receiver::start(&[]);
    let config = webhook_config(
        &hook.url,
        &format!("secret = \"file:{}\"", secret_file.display()),
    );
    let s = crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    let r = deliver_webhooks_due(&f.conn, &config, t0()).unwrap();
    assert_eq!(
        r,
        DeliveryReport {
            delivered: 1,
            failed: 0,
            dead: 0
        }
    );
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"rule": "csat_low", "entity": "a1", "level": "warn", "value": 3.1, "period": "2026-01-05",
                           "transition": "firing", "context": {"agent_name": "Ann"}})
    );
    // The receiver's check: HMAC-SHA256 of the exact body with the shared secret.
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cr3t-hook").unwrap();
    mac.update(seen[0].body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        seen[0].signature.as_deref(),
        Some(format!("sha256={hex}").as_str())
    );
    let key: String = f
        .conn
        .query_row("SELECT key FROM conveyor.outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen[0].idempotency_key, key);
    assert_eq!(
        key,
        notification_key(
            "csat_low",
            s.eval_id,
            "webhook",
            &format!("0\u{1}{}\u{1}a1", hook.url)
        )
    );
    // The secret is nowhere in the warehouse's outbox.
    let stored: String = f
        .conn
        .query_row(
            "SELECT string_agg(CAST(o AS VARCHAR), '') FROM conveyor.outbox AS o",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!stored.contains("s3cr3t-hook"));

    // Redelivery, and a re-evaluation while still firing, POST nothing more.
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::hours(1))
            .unwrap()
            .attempted(),
        0
    );
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0() + Duration::hours(2)).unwrap();
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::hours(3))
            .unwrap()
            .attempted(),
        0
    );
    assert_eq!(hook.seen().len(), 1);
    assert_eq!(rows(&f.conn), vec![(1, true, false, None)]);
}

#[test]
fn outbox_webhook_500_then_200_delivers_once_after_backoff() {
    let f = fixture();
    one_breach(&f);
    let hook = Receiver::start(&[500]);
    let config = webhook_config(
        &hook.url,
        r#"body = '{"agent": {{ agent_name|tojson }}, "score": {{ value }}}'"#,
    );
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0()).unwrap(),
        DeliveryReport {
            delivered: 0,
            failed: 1,
            dead: 0
        }
    );
    let r = &rows(&f.conn)[0];
    assert!(r.3.as_deref().is_some_and(|e| e.contains("500")), "{r:?}");
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::seconds(29))
            .unwrap()
            .attempted(),
        0,
        "backing off"
    );
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::seconds(30))
            .unwrap()
            .delivered,
        1
    );
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::hours(1))
            .unwrap()
            .attempted(),
        0
    );
    let seen = hook.seen();
    assert_eq!(seen.len(), 2, "the failed POST and the one that delivered");
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    assert_eq!(seen[1].body, r#"{"agent": "Ann", "score": 3.1}"#);
    assert_eq!(seen[1].signature, None, "no secret, no signature");
    assert_eq!(rows(&f.conn), vec![(2, true, false, None)]);
}

#[test]
fn outbox_webhook_400_dead_letters_at_once_with_the_response() {
    let f = fixture();
    one_breach(&f);
    let hook = Receiver::start(&[400]);
    let config = webhook_config(&hook.url, "");
    crate::rules::evaluate_at(&f.conn, &config.rules[0], t0()).unwrap();
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0()).unwrap(),
        DeliveryReport {
            delivered: 0,
            failed: 0,
            dead: 1
        }
    );
    assert_eq!(
        deliver_webhooks_due(&f.conn, &config, t0() + Duration::hours(7))
            .unwrap()
            .attempted(),
        0
    );
    assert_eq!(hook.seen().len(), 1);
    let r = &rows(&f.conn)[0];
    assert_eq!((r.0, r.1, r.2), (1, false, true));
    assert!(
        r.3.as_deref()
            .is_some_and(|e| e.contains("400") && e.contains("status 400")),
        "{r:?}"
    );
}

#[test]
fn outbox_webhook_unknown_body_variable_is_a_located_check_error() {
    let f = fixture();
    let config = webhook_config(
        "http://127.0.0.1:9/x",
        r#"body = '{"team": {{ team|tojson }}}'"#,
    );
    let rule = &config.rules[0];
    let columns = crate::rules::measure_columns(&f.conn, rule).unwrap();
    let problems: Vec<String> = crate::checks::check_templates(rule, &columns)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "/c/conveyor.toml:22:8: rules[0].actions[0].body: unknown template variable `team`"
        ),
        "{problems:#?}"
    );
}

#[test]
fn outbox_check_accepts_the_builtin_email_and_locates_next_step_and_entity_label() {
    let f = fixture();
    // No subject, no body: the built-in e-mail reads only the alert's facts.
    let config = config(25, r#"to = ["ops@example.com"]"#);
    let rule = &config.rules[0];
    let columns = crate::rules::measure_columns(&f.conn, rule).unwrap();
    assert!(
        crate::checks::check_templates(rule, &columns).is_empty(),
        "{:?}",
        crate::checks::check_templates(rule, &columns)
    );
    // A template of one's own may use the facts by name.
    let config = super::tests::config(
        25,
        r#"to = ["ops@example.com"]
subject = "{{ subject_tag }} {{ who }} {{ warn }} {{ firing_for }}"
body = "{% for h in history %}{{ h.value|num }}{% endfor %} {{ peer_median }} {{ silence_command }}""#,
    );
    assert!(crate::checks::check_templates(&config.rules[0], &columns).is_empty());
    // A next_step and an entity_label are checked against the measure too.
    let mut rule = config.rules[0].clone();
    rule.entity_label = Some("agent_nmae".into());
    let text = format!(
        "{}\nnext_step = \"Call {{{{ supervisor_email }}}}\"\n",
        "[warehouse]\npath = \"wh.duckdb\"\n[[rules]]\nname = \"r\"\nmeasure = \"SELECT 1\"\ndirection = \"below\"\nwarn = 1"
    );
    let step = conveyor_config::parse(&text, Path::new("/c/next.toml")).unwrap();
    rule.next_step = step.rules[0].next_step.clone();
    let problems: Vec<String> = crate::checks::check_templates(&rule, &columns)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "/c/next.toml:8:13: rules[0].next_step: unknown template variable `supervisor_email`"
        ),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("rules[0].entity_label: the measure has no column `agent_nmae`"),
        "{problems:#?}"
    );
}
