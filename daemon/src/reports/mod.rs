//! Scorecards (`[[reports]]`): per stakeholder, on a schedule, sections of
//! KPIs against goals, trends and correlations rendered to text, HTML and
//! inline charts, and sent through the outbox like an alert — so a report
//! is a row before it is an e-mail, and a period's report reaches each
//! recipient once (its key is the report, the period and the address).
//!
//! `sections.rs` computes each section in DuckDB, `render.rs` writes the
//! two parts, `chart.rs` draws the PNGs.

pub(crate) mod chart;
mod render;
mod sections;

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use conveyor_config::ReportConfig;
use duckdb::Connection;

use crate::query::guard::check_config_sql;
use crate::warehouse::transaction::{in_transaction, rolled_back};
use crate::warehouse::{literal, timestamp_literal};

/// One recipient's report, ready for the outbox.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rendered {
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `(content id, PNG)`, in section order.
    #[serde(skip)]
    pub images: Vec<(String, Vec<u8>)>,
    /// The content ids, for a preview that cannot show the images.
    pub charts: Vec<String>,
}

/// The outbox `rule` of a report's rows (never a rule's name: those are
/// identifiers without a colon).
pub fn outbox_rule(report: &str) -> String {
    format!("report:{report}")
}

/// The period a report run as of `at` stands for: its date.
pub fn period(at: NaiveDateTime) -> String {
    at.date().format("%Y-%m-%d").to_string()
}

/// Renders `report` as of `at` for each of its recipients; nothing is
/// written (every query runs in a transaction rolled back).
pub fn render_all(
    conn: &Connection,
    report: &ReportConfig,
    at: NaiveDateTime,
) -> Result<Vec<Rendered>, String> {
    let store = |e: duckdb::Error| crate::query::clean_error(&e.to_string());
    conn.execute_batch(&format!(
        "SET VARIABLE conveyor_now = {}",
        timestamp_literal(at)
    ))
    .map_err(store)?;
    let outcome = rolled_back(conn, || -> Result<Vec<Rendered>, Failed> {
        let mut out = Vec::new();
        for (email, vars) in recipients(conn, report)? {
            out.push(render_one(conn, report, at, &email, &vars)?);
        }
        Ok(out)
    });
    outcome.map_err(|f| match f {
        Failed::Report(m) => format!("report `{}`: {m}", report.name),
        Failed::Store(e) => format!("report `{}`: {}", report.name, store(e)),
    })
}

/// Renders `report` as of `at` and queues one e-mail per recipient that
/// has not had this period's report yet; the number queued.
pub fn enqueue(
    conn: &Connection,
    report: &ReportConfig,
    at: NaiveDateTime,
) -> Result<usize, String> {
    let rendered = render_all(conn, report, at)?;
    let rule = outbox_rule(&report.name);
    let period = period(at);
    let period_id: i64 = at.date().format("%Y%m%d").to_string().parse().unwrap_or(0);
    let now = timestamp_literal(chrono::Utc::now().naive_utc());
    in_transaction(conn, || -> duckdb::Result<usize> {
        let mut queued = 0;
        for r in &rendered {
            let key = crate::outbox::notification_key(&rule, period_id, "email", &r.recipient);
            let known: i64 = conn.query_row(
                "SELECT count(*) FROM conveyor.outbox WHERE key = ?",
                [&key],
                |row| row.get(0),
            )?;
            if known > 0 {
                continue;
            }
            let headers = serde_json::json!({
                "X-Conveyor-Report": report.name,
                "X-Conveyor-Period": period,
            })
            .to_string();
            let id: i64 = conn.query_row(
                &format!(
                    "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                         html_body, headers, created_at, attempts, next_attempt_at)
                     VALUES (nextval('conveyor.outbox_ids'), ?, ?, ?, 'email', ?, ?, ?, ?, ?, {now}, 0, {now})
                     RETURNING id"
                ),
                duckdb::params![key, rule, period_id, r.recipient, r.subject, r.text, r.html, headers],
                |row| row.get(0),
            )?;
            for (cid, png) in &r.images {
                conn.execute(
                    "INSERT INTO conveyor.outbox_images (outbox_id, cid, png) VALUES (?, ?, ?)",
                    duckdb::params![id, cid, png],
                )?;
            }
            queued += 1;
        }
        Ok(queued)
    })
    .map_err(|e| format!("report `{}`: cannot queue it: {}", report.name, crate::query::clean_error(&e.to_string())))
}

enum Failed {
    Report(String),
    Store(duckdb::Error),
}

impl From<duckdb::Error> for Failed {
    fn from(e: duckdb::Error) -> Self {
        Failed::Store(e)
    }
}

/// An address and the variables of its report (the recipients row's other
/// columns).
type Recipient = (String, BTreeMap<String, String>);

/// Each recipient with the variables of its report: the static `to`
/// addresses with none, then a row of the recipients query each.
fn recipients(conn: &Connection, report: &ReportConfig) -> Result<Vec<Recipient>, Failed> {
    let mut out: Vec<Recipient> = report
        .to
        .iter()
        .map(|t| (t.clone(), BTreeMap::new()))
        .collect();
    let Some(sql) = &report.recipients else {
        return Ok(out);
    };
    check_config_sql(conn, sql).map_err(|e| Failed::Report(format!("recipients: {e}")))?;
    let result =
        crate::query::run(conn, sql).map_err(|e| Failed::Report(format!("recipients: {e:#}")))?;
    let Some(email) = result.columns.iter().position(|c| c == "email") else {
        return Err(Failed::Report(format!(
            "recipients: the query has no `email` column (it returns {})",
            result.columns.join(", ")
        )));
    };
    for row in result.rows {
        let Some(address) = row[email]
            .clone()
            .filter(|a| a.contains('@') && !a.chars().any(char::is_control))
        else {
            continue;
        };
        let vars = result
            .columns
            .iter()
            .zip(&row)
            .filter(|(c, _)| c.as_str() != "email")
            .map(|(c, v)| (c.clone(), v.clone().unwrap_or_default()))
            .collect();
        out.push((address, vars));
    }
    Ok(out)
}

fn render_one(
    conn: &Connection,
    report: &ReportConfig,
    at: NaiveDateTime,
    email: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Rendered, Failed> {
    // The row's columns, for the sections' `getvariable('team')`.
    for (name, value) in vars {
        if variable_name(name) {
            conn.execute_batch(&format!("SET VARIABLE {name} = {}", literal(value)))?;
        }
    }
    let mut context: BTreeMap<String, String> = vars.clone();
    context.insert("period".into(), period(at));
    context.insert("report".into(), report.name.clone());
    let subject = template(&report.title.source, &context)?.replace(['\r', '\n'], " ");
    let intro = report
        .intro
        .as_ref()
        .map(|t| template(&t.source, &context))
        .transpose()?;
    let mut text = vec![subject.clone(), "=".repeat(subject.chars().count())];
    let mut html = format!("<h1>{}</h1>\n", render::escape(&subject));
    if let Some(intro) = &intro {
        text.push(intro.clone());
        html.push_str(&format!("<p>{}</p>\n", render::escape(intro)));
    }
    let mut images = Vec::new();
    for (i, section) in report.sections.iter().enumerate() {
        let facts = sections::compute(conn, section).map_err(|m| {
            let name = if section.title.is_empty() {
                format!("section {}", i + 1)
            } else {
                format!("section `{}`", section.title)
            };
            Failed::Report(format!("{name}: {m}"))
        })?;
        let part = render::part(i + 1, section, &facts);
        text.push(String::new());
        text.push(part.text);
        html.push_str(&part.html);
        images.extend(part.image);
    }
    for name in vars.keys().filter(|n| variable_name(n)) {
        conn.execute_batch(&format!("RESET VARIABLE {name}"))?;
    }
    text.push(String::new());
    text.push(format!(
        "— Conveyor, report `{}` for the period of {}",
        report.name,
        period(at)
    ));
    html.push_str(&format!(
        "<p style=\"color:#666\">{}</p>\n",
        render::escape(&format!(
            "— Conveyor, report `{}` for the period of {}",
            report.name,
            period(at)
        ))
    ));
    Ok(Rendered {
        recipient: email.to_string(),
        subject,
        text: text.join("\n"),
        html,
        charts: images.iter().map(|(cid, _)| cid.clone()).collect(),
        images,
    })
}

/// A recipients column that can be a DuckDB variable (others are left to
/// the title's template only).
fn variable_name(name: &str) -> bool {
    name != "conveyor_now"
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn template(source: &str, context: &BTreeMap<String, String>) -> Result<String, Failed> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(source, context)
        .map_err(|e| Failed::Report(format!("template: {e}")))
}

#[cfg(test)]
mod tests;
