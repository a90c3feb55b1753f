//! Webhook delivery: POSTs the due `webhook` outbox rows, signed with the
//! action's secret and carrying the notification key as `Idempotency-Key`.
//! 2xx delivers; 408, 429, 5xx and transport errors retry with the e-mail
//! backoff; any other status dead-letters at once (resending cannot help).

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use conveyor_config::Config;
use duckdb::Connection;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::deliver::{record_attempt, DeliveryReport, ONE_PASS};

/// Kept from a refusing receiver's answer: enough to see why, no more.
const RESPONSE_SNIPPET: usize = 500;

struct Due {
    id: i64,
    key: String,
    rule: String,
    url: String,
    body: String,
    attempts: i32,
}

enum Outcome {
    Delivered,
    Retry(String),
    Dead(String),
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body): the signature header value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// POSTs every webhook due at `now`, oldest first, each marked on its own
/// after the receiver answered (a crash resends at most that one, with the
/// same Idempotency-Key).
pub fn deliver_webhooks_due(
    conn: &Connection,
    config: &Config,
    now: NaiveDateTime,
) -> Result<DeliveryReport> {
    // Shared with the e-mail pass: two passes would POST the same rows.
    let _one_pass = ONE_PASS.lock().unwrap_or_else(|e| e.into_inner());
    let due = due(conn, now).context("cannot read the outbox")?;
    let mut report = DeliveryReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let max_attempts = config
        .smtp
        .as_ref()
        .map_or(conveyor_config::DEFAULT_MAX_ATTEMPTS, |s| s.max_attempts);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")?;
    let ts = crate::warehouse::timestamp_text(now);
    for d in due {
        if super::handover::delivered_elsewhere(&d.rule, &d.key) {
            tracing::info!(
                id = d.id,
                "webhook already delivered by another daemon of the cluster"
            );
            record_attempt(conn, &mut report, "webhook", d.id, d.attempts, &ts, None)?;
            continue;
        }
        let (outcome, secret) = post(&client, config, &d);
        let attempts = d.attempts + 1;
        let scrub = |e: String| match &secret {
            // A receiver could echo the request back; the secret stays out.
            Some(s) if !s.is_empty() => e.replace(s.as_str(), "***"),
            _ => e,
        };
        let failure = match outcome {
            Outcome::Delivered => {
                super::handover::delivered_here(&d.rule, &d.key);
                None
            }
            Outcome::Retry(e) => Some((scrub(e), attempts as u32 >= max_attempts)),
            Outcome::Dead(e) => Some((scrub(e), true)),
        };
        record_attempt(conn, &mut report, "webhook", d.id, attempts, &ts, failure)?;
    }
    Ok(report)
}

/// One POST; also returns the resolved secret so errors can be scrubbed.
fn post(client: &reqwest::blocking::Client, config: &Config, d: &Due) -> (Outcome, Option<String>) {
    // The secret is never stored: find the action again by rule and URL.
    let Some(hook) = config
        .rules
        .iter()
        .filter(|r| r.name == d.rule)
        .flat_map(|r| &r.webhooks)
        .find(|h| h.url == d.url)
    else {
        return (
            Outcome::Retry(format!(
                "rule `{}` has no webhook to {} any more",
                d.rule, d.url
            )),
            None,
        );
    };
    let secret = match hook.secret.as_ref().map(|s| s.resolve()).transpose() {
        Ok(s) => s.map(|s| s.expose().to_string()),
        Err(e) => return (Outcome::Retry(format!("{}.secret: {e}", hook.at.key)), None),
    };
    let mut req = client
        .post(&d.url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", &d.key)
        .body(d.body.clone());
    if let Some(s) = &secret {
        req = req.header("X-Conveyor-Signature", signature(s, d.body.as_bytes()));
    }
    let outcome = match req.send() {
        Err(e) => Outcome::Retry(format!("POST {}: {}", d.url, e.without_url())),
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                Outcome::Delivered
            } else {
                let text: String = resp
                    .text()
                    .unwrap_or_default()
                    .chars()
                    .take(RESPONSE_SNIPPET)
                    .collect();
                let e = format!("POST {}: HTTP {status}: {text}", d.url);
                let retryable =
                    status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
                if retryable {
                    Outcome::Retry(e)
                } else {
                    Outcome::Dead(e)
                }
            }
        }
    };
    (outcome, secret)
}

fn due(conn: &Connection, now: NaiveDateTime) -> duckdb::Result<Vec<Due>> {
    let mut st = conn.prepare(&format!(
        "SELECT id, key, rule, recipient, body, attempts FROM conveyor.outbox
              WHERE channel = 'webhook' AND delivered_at IS NULL AND dead_at IS NULL
                AND next_attempt_at <= CAST(? AS TIMESTAMP) AND {}
              ORDER BY id",
        super::handover::sendable(super::handover::sendable_upto())
    ))?;
    let rows = st.query_map([crate::warehouse::timestamp_text(now)], |r| {
        Ok(Due {
            id: r.get(0)?,
            key: r.get(1)?,
            rule: r.get(2)?,
            url: r.get(3)?,
            body: r.get(4)?,
            attempts: r.get(5)?,
        })
    })?;
    rows.collect()
}
