//! What an evaluation step left behind: the alerts of the rules under test
//! and the outbox rows the step's evaluations wrote (never delivered).

use chrono::NaiveDateTime;
use duckdb::Connection;

use crate::warehouse::literal;

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub entity: String,
    pub state: String,
    pub level: String,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub rule: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The HTML alternative, when the action has one.
    pub html: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub rule: String,
    pub url: String,
    pub entity: String,
    /// The JSON as enqueued; text that is not JSON is kept as a string.
    pub body: serde_json::Value,
}

/// The alerts of `rules` that are pending or firing after the step at
/// `at`, plus those this step resolved; by rule and entity.
pub fn alerts(conn: &Connection, rules: &[&str], at: NaiveDateTime) -> duckdb::Result<Vec<Alert>> {
    let names: Vec<String> = rules.iter().map(|r| literal(r)).collect();
    let at = crate::warehouse::timestamp_literal(at);
    let mut st = conn.prepare(&format!(
        "SELECT rule, entity, state, level, last_value FROM conveyor.alerts
         WHERE rule IN ({}) AND (state IN ('pending', 'firing') OR (state = 'resolved' AND resolved_at = {at}))
         ORDER BY rule, entity",
        names.join(", ")
    ))?;
    let rows = st.query_map([], |r| {
        Ok(Alert {
            rule: r.get(0)?,
            entity: r.get(1)?,
            state: r.get(2)?,
            level: r.get(3)?,
            value: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The e-mails and webhook calls enqueued by the evaluations `eval_ids`,
/// in the order they were written.
pub fn outbox(conn: &Connection, eval_ids: &[i64]) -> duckdb::Result<(Vec<Email>, Vec<Webhook>)> {
    if eval_ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let ids: Vec<String> = eval_ids.iter().map(i64::to_string).collect();
    let mut st = conn.prepare(&format!(
        "SELECT channel, rule, recipient, subject, body, html_body FROM conveyor.outbox
         WHERE eval_id IN ({}) ORDER BY id",
        ids.join(", ")
    ))?;
    let mut rows = st.query([])?;
    let (mut emails, mut hooks) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        let channel: String = r.get(0)?;
        let (rule, recipient, subject, body): (String, String, String, String) =
            (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        if channel == "webhook" {
            hooks.push(Webhook {
                rule,
                url: recipient,
                // A webhook row keeps the entity where an e-mail has its subject.
                entity: subject,
                body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
            });
        } else {
            emails.push(Email {
                rule,
                to: recipient,
                subject,
                body,
                html: r.get(5)?,
            });
        }
    }
    Ok((emails, hooks))
}
