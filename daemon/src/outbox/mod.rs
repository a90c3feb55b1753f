//! The outbox: notifications written in the same transaction as the alert
//! transitions they announce (`enqueue`), and the worker that delivers the
//! due ones over SMTP (`deliver`) or HTTP POST (`webhook`).
//!
//! Guarantee: a notification is never lost (it is a row before it is an
//! e-mail) and is sent again only if the process dies between the server
//! accepting it and the row being marked delivered; the resend carries the
//! same Message-ID (derived from the notification key), so a receiving
//! system can drop the duplicate. A webhook resend carries the same
//! `Idempotency-Key`. In a cluster the same holds across daemons: rule
//! notifications wait until the evaluator's state handed over holds them
//! (`handover`).

pub mod chart;
mod dead_letters;
mod deliver;
mod enqueue;
pub mod handover;
pub mod retry;
mod webhook;

pub use dead_letters::report_dead_letters;
#[cfg(test)]
use dead_letters::OPERATOR_RULE;
pub use deliver::deliver_due;
#[cfg(test)]
use deliver::DeliveryReport;
pub(crate) use enqueue::{enqueue, EnqueueError};
pub use webhook::deliver_webhooks_due;
/// The demo's stand-in receiver checks signatures as a real one would.
#[cfg(feature = "demo")]
pub use webhook::signature;

use sha2::{Digest, Sha256};

/// The stable key of one notification: the same evaluation, rule, channel
/// and recipient always give the same key (the e-mail's Message-ID).
pub fn notification_key(rule: &str, eval_id: i64, channel: &str, recipient: &str) -> String {
    let mut h = Sha256::new();
    for part in [rule, &eval_id.to_string(), channel, recipient] {
        h.update(part.as_bytes());
        // A separator no part contains keeps ("a|b", "c") apart from ("a", "b|c").
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Delivers what is due now (e-mail when `[smtp]` is configured, then
/// webhooks, then the operator's reports of what was dead-lettered); logs
/// the outcome, never fails the caller (the rows stay queued).
pub fn deliver_logged(conn: &duckdb::Connection, config: &conveyor_config::Config) {
    let now = chrono::Utc::now().naive_utc();
    let email = config
        .smtp
        .as_ref()
        .map(|smtp| deliver_due(conn, smtp, now));
    let webhook = Some(deliver_webhooks_due(conn, config, now));
    let reports =
        config
            .smtp
            .as_ref()
            .and_then(|smtp| match report_dead_letters(conn, smtp, now) {
                Ok(0) => None,
                Ok(_) => Some(deliver_due(conn, smtp, now)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot queue the dead-letter reports");
                    None
                }
            });
    for (channel, result) in [
        ("email", email),
        ("webhook", webhook),
        ("operator", reports),
    ] {
        match result {
            None => {}
            Some(Ok(r)) if r.attempted() == 0 => {}
            Some(Ok(r)) => tracing::info!(
                channel,
                delivered = r.delivered,
                failed = r.failed,
                dead = r.dead,
                "outbox delivery"
            ),
            Some(Err(e)) => {
                tracing::error!(channel, error = %format!("{e:#}"), "outbox delivery could not run")
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod content_tests;
#[cfg(test)]
mod handover_tests;
#[cfg(test)]
pub(crate) mod tests;
