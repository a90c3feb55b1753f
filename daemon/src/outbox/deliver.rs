//! The delivery worker: sends the outbox rows that are due over SMTP and
//! marks each one delivered once the server accepted it; a failure counts
//! an attempt and backs off exponentially, and after `max_attempts` the row
//! is dead-lettered.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use conveyor_config::{SmtpConfig, SmtpTls};
use duckdb::Connection;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

/// The wait after the first failed attempt; doubles with each attempt.
const FIRST_BACKOFF_SECS: i64 = 30;
/// No wait is longer than this, however many attempts failed.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    /// Failed attempts that will be retried.
    pub failed: usize,
    /// Failed attempts that were the last (dead-lettered).
    pub dead: usize,
}

impl DeliveryReport {
    pub fn attempted(&self) -> usize {
        self.delivered + self.failed + self.dead
    }
}

pub(super) static ONE_PASS: Mutex<()> = Mutex::new(());

struct Due {
    id: i64,
    key: String,
    rule: String,
    recipient: String,
    subject: String,
    body: String,
    html: Option<String>,
    attempts: i32,
    /// `{name: value}` written with the row (`X-Conveyor-Rule`, …).
    headers: Option<String>,
    /// The HTML part's inline images, `(content id, PNG)`: an alert's
    /// trend (`cid:trend`), a report's charts (`conveyor.outbox_images`).
    images: Vec<(String, Vec<u8>)>,
}

/// Sends every e-mail due at `now`, oldest first. Each row is marked on its
/// own after the server answered, so a crash loses at most that mark.
pub fn deliver_due(
    conn: &Connection,
    smtp: &SmtpConfig,
    now: NaiveDateTime,
) -> Result<DeliveryReport> {
    // Two passes at once (the daemon's loop and one after a sync) would
    // both pick the same due rows and send them twice.
    let _one_pass = ONE_PASS.lock().unwrap_or_else(|e| e.into_inner());
    let due = due(conn, now).context("cannot read the outbox")?;
    let mut report = DeliveryReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let password = smtp
        .password
        .as_ref()
        .map(|p| p.resolve())
        .transpose()
        .map_err(|e| anyhow::anyhow!("smtp.password: {e}"))?;
    let transport = transport(smtp, password.as_ref().map(|p| p.expose().to_string()))?;
    let ts = crate::warehouse::timestamp_text(now);
    for d in due {
        if super::handover::delivered_elsewhere(&d.rule, &d.key) {
            tracing::info!(
                id = d.id,
                "e-mail already delivered by another daemon of the cluster"
            );
            record_attempt(conn, &mut report, "e-mail", d.id, d.attempts, &ts, None)?;
            continue;
        }
        let outcome = message(smtp, &d)
            .and_then(|m| transport.send(&m).map(|_| ()).map_err(|e| e.to_string()));
        let attempts = d.attempts + 1;
        let failure = outcome.err().map(|e| {
            // Errors come from the server or the socket; scrub the
            // password anyway in case a server echoes it.
            let e = match &password {
                Some(p) if !p.expose().is_empty() => e.replace(p.expose(), "***"),
                _ => e,
            };
            (e, attempts as u32 >= smtp.max_attempts)
        });
        if failure.is_none() {
            super::handover::delivered_here(&d.rule, &d.key);
        }
        record_attempt(conn, &mut report, "e-mail", d.id, attempts, &ts, failure)?;
    }
    Ok(report)
}

/// Records one delivery attempt on its outbox row and in the report:
/// delivered (`failure` is `None`), or failed with the error and whether the
/// row is now dead; a live failure waits [`backoff_secs`] before the next try.
pub(super) fn record_attempt(
    conn: &Connection,
    report: &mut DeliveryReport,
    what: &str,
    id: i64,
    attempts: i32,
    ts: &str,
    failure: Option<(String, bool)>,
) -> duckdb::Result<()> {
    let Some((error, dead)) = failure else {
        conn.execute(
            "UPDATE conveyor.outbox SET delivered_at = CAST(? AS TIMESTAMP), attempts = ?, last_error = NULL WHERE id = ?",
            duckdb::params![ts, attempts, id],
        )?;
        report.delivered += 1;
        return Ok(());
    };
    conn.execute(
        "UPDATE conveyor.outbox SET attempts = ?, last_error = ?,
           next_attempt_at = CAST(? AS TIMESTAMP) + to_seconds(?),
           dead_at = CASE WHEN ? THEN CAST(? AS TIMESTAMP) END
         WHERE id = ?",
        duckdb::params![attempts, error, ts, backoff_secs(attempts), dead, ts, id],
    )?;
    tracing::warn!(id, attempts, dead, error = %error, "{what} not delivered");
    if dead {
        report.dead += 1
    } else {
        report.failed += 1
    }
    Ok(())
}

/// Seconds to wait after `attempts` failed attempts: 30 s, 60 s, 120 s, …
/// capped at six hours.
pub(crate) fn backoff_secs(attempts: i32) -> i64 {
    let doublings = (attempts.max(1) - 1).min(20) as u32;
    (FIRST_BACKOFF_SECS << doublings).min(MAX_BACKOFF_SECS)
}

fn due(conn: &Connection, now: NaiveDateTime) -> duckdb::Result<Vec<Due>> {
    let mut st = conn.prepare(
        &format!(
            "SELECT id, key, recipient, subject, body, attempts, html_body, CAST(headers AS VARCHAR), chart_png, rule FROM conveyor.outbox
              WHERE channel = 'email' AND delivered_at IS NULL AND dead_at IS NULL
                AND next_attempt_at <= CAST(? AS TIMESTAMP) AND {}
              ORDER BY id",
            super::handover::sendable(super::handover::sendable_upto())
        ),
    )?;
    let rows = st.query_map([crate::warehouse::timestamp_text(now)], |r| {
        Ok(Due {
            id: r.get(0)?,
            key: r.get(1)?,
            rule: r.get(9)?,
            recipient: r.get(2)?,
            subject: r.get(3)?,
            body: r.get(4)?,
            attempts: r.get(5)?,
            html: r.get(6)?,
            headers: r.get(7)?,
            images: r
                .get::<_, Option<Vec<u8>>>(8)?
                .map(|png| (super::chart::CID.to_string(), png))
                .into_iter()
                .collect(),
        })
    })?;
    let mut due: Vec<Due> = rows.collect::<duckdb::Result<_>>()?;
    let mut st = conn.prepare(
        "SELECT cid, png FROM conveyor.outbox_images WHERE outbox_id = ? ORDER BY rowid",
    )?;
    for d in &mut due {
        let images = st.query_map([d.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for image in images {
            d.images.push(image?);
        }
    }
    Ok(due)
}

fn transport(smtp: &SmtpConfig, password: Option<String>) -> Result<SmtpTransport> {
    let builder = match (smtp.tls, &smtp.ca_file) {
        (SmtpTls::None, _) => SmtpTransport::builder_dangerous(&smtp.host),
        (SmtpTls::StartTls, None) => SmtpTransport::starttls_relay(&smtp.host)
            .with_context(|| format!("smtp.host `{}`", smtp.host))?,
        (SmtpTls::Tls, None) => SmtpTransport::relay(&smtp.host)
            .with_context(|| format!("smtp.host `{}`", smtp.host))?,
        // A private CA: the same TLS modes, with its certificate trusted too.
        (mode, Some(ca_file)) => {
            let pem = std::fs::read(ca_file)
                .with_context(|| format!("smtp.ca_file {}", ca_file.display()))?;
            let ca = Certificate::from_pem(&pem)
                .with_context(|| format!("smtp.ca_file {}", ca_file.display()))?;
            let params = TlsParameters::builder(smtp.host.clone())
                .add_root_certificate(ca)
                .build_rustls()
                .context("TLS settings for [smtp]")?;
            let tls = match mode {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            };
            SmtpTransport::builder_dangerous(&smtp.host).tls(tls)
        }
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &smtp.username {
        builder = builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
    }
    Ok(builder.build())
}

/// The row's own headers: only `X-` names (never one that would replace a
/// header lettre writes), values on one line.
fn extra_headers(json: Option<&str>) -> Vec<(HeaderName, String)> {
    let map: serde_json::Map<String, serde_json::Value> = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    map.into_iter()
        .filter(|(name, _)| name.starts_with("X-"))
        .filter_map(|(name, value)| {
            let value = value.as_str()?.replace(['\r', '\n'], " ");
            Some((HeaderName::new_from_ascii(name).ok()?, value))
        })
        .collect()
}

/// The e-mail for one row; its Message-ID is derived from the notification
/// key, so a resend after a crash is recognisably the same message.
fn message(smtp: &SmtpConfig, d: &Due) -> Result<Message, String> {
    let from = smtp
        .from
        .parse()
        .map_err(|e| format!("smtp.from `{}`: {e}", smtp.from))?;
    let to = d
        .recipient
        .parse()
        .map_err(|e| format!("recipient `{}`: {e}", d.recipient))?;
    let mut builder = Message::builder()
        .message_id(Some(format!("<{}@conveyor>", d.key)))
        .from(from)
        .to(to)
        .subject(d.subject.clone());
    for (name, value) in extra_headers(d.headers.as_deref()) {
        builder = builder.raw_header(HeaderValue::new(name, value));
    }
    match &d.html {
        // text, or HTML with its charts: multipart/related(html, image/png…).
        Some(html) if !d.images.is_empty() => {
            let mut related = MultiPart::related().singlepart(SinglePart::html(html.clone()));
            for (cid, png) in &d.images {
                related = related.singlepart(Attachment::new_inline(cid.clone()).body(
                    png.clone(),
                    ContentType::parse("image/png").expect("a valid content type"),
                ));
            }
            builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(d.body.clone()))
                    .multipart(related),
            )
        }
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            d.body.clone(),
            html.clone(),
        )),
        None => builder.header(ContentType::TEXT_PLAIN).body(d.body.clone()),
    }
    .map_err(|e| e.to_string())
}
