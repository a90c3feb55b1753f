//! Dead letters reported to `[smtp] operator`: each pass queues one digest
//! e-mail listing every notification given up on and not reported yet, and
//! marks them with that digest in the same transaction, so each is reported
//! once — unless the digest itself is given up on (SMTP down for longer than
//! its retries), then the next digest lists them again.

use chrono::NaiveDateTime;
use conveyor_config::SmtpConfig;
use duckdb::Connection;

use super::notification_key;

/// The `rule` of the digests (never reported themselves: that would loop).
pub const OPERATOR_RULE: &str = "conveyor.dead_letters";

struct DeadLetter {
    id: i64,
    rule: String,
    channel: String,
    recipient: String,
    subject: String,
    attempts: i32,
    dead_at: String,
    error: Option<String>,
}

/// Queues one digest to the operator about the dead letters not reported
/// yet; returns how many it lists (0: nothing queued).
pub fn report_dead_letters(
    conn: &Connection,
    smtp: &SmtpConfig,
    now: NaiveDateTime,
) -> duckdb::Result<usize> {
    let Some(operator) = &smtp.operator else {
        return Ok(0);
    };
    let dead = unreported(conn)?;
    let (Some(first), Some(last)) = (dead.first(), dead.last()) else {
        return Ok(0);
    };
    // The digest's own id keeps a re-listing apart from a lost digest.
    let digest_id: i64 =
        conn.query_row("SELECT nextval('conveyor.outbox_ids')", [], |r| r.get(0))?;
    let key = notification_key(
        OPERATOR_RULE,
        digest_id,
        "email",
        &format!("{operator}\u{1}{}\u{1}{}", first.id, last.id),
    );
    let subject = format!(
        "Conveyor: {} notification(s) could not be delivered",
        dead.len()
    );
    let ts = crate::warehouse::timestamp_text(now);
    let ids: Vec<String> = dead.iter().map(|d| d.id.to_string()).collect();
    crate::warehouse::transaction::in_transaction(conn, || {
        conn.execute(
            "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                     created_at, attempts, next_attempt_at)
             VALUES (?, ?, ?, ?, 'email', ?, ?, ?, CAST(? AS TIMESTAMP), 0, CAST(? AS TIMESTAMP))",
            duckdb::params![digest_id, key, OPERATOR_RULE, last.id, operator, subject, body(&dead), ts, ts],
        )
        .and_then(|_| {
            conn.execute(
                &format!(
                    "UPDATE conveyor.outbox SET reported_at = CAST(? AS TIMESTAMP), reported_by = ?
                     WHERE id IN ({})",
                    ids.join(", ")
                ),
                duckdb::params![ts, digest_id],
            )
        })
    })?;
    Ok(dead.len())
}

fn unreported(conn: &Connection) -> duckdb::Result<Vec<DeadLetter>> {
    let mut st = conn.prepare(
        "SELECT id, rule, channel, recipient, subject, attempts, CAST(dead_at AS VARCHAR), last_error
         FROM conveyor.outbox
         WHERE dead_at IS NOT NULL AND rule <> ?
           AND (reported_by IS NULL
                OR reported_by IN (SELECT id FROM conveyor.outbox WHERE rule = ? AND dead_at IS NOT NULL))
         ORDER BY id",
    )?;
    let rows = st.query_map([OPERATOR_RULE, OPERATOR_RULE], |r| {
        Ok(DeadLetter {
            id: r.get(0)?,
            rule: r.get(1)?,
            channel: r.get(2)?,
            recipient: r.get(3)?,
            subject: r.get(4)?,
            attempts: r.get(5)?,
            dead_at: r.get(6)?,
            error: r.get(7)?,
        })
    })?;
    rows.collect()
}

fn body(dead: &[DeadLetter]) -> String {
    let mut text = format!(
        "Conveyor gave up on {} notification(s). They stay in conveyor.outbox \
         (see `conveyor status`); nothing will retry them.\n",
        dead.len()
    );
    for d in dead {
        text += &format!(
            "\nNotification {id} (rule {rule}, {channel} to {recipient})\n  \
             Subject: {subject}\n  Gave up at {dead_at} UTC after {attempts} attempt(s)\n  \
             Last error: {error}\n",
            id = d.id,
            rule = d.rule,
            channel = d.channel,
            recipient = d.recipient,
            subject = d.subject,
            dead_at = d.dead_at,
            attempts = d.attempts,
            error = d.error.as_deref().unwrap_or("(none)"),
        );
    }
    text
}
