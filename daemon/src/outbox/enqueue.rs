//! Turns one evaluation's alert transitions into outbox rows, inside the
//! evaluation's transaction: one e-mail per recipient per action listing
//! every alert of that recipient that started firing (or resolved, when the
//! rule asks), rendered from the action's templates or the built-in ones,
//! with `X-Conveyor-*` headers stored on the row; and one webhook POST per
//! transition per webhook action.

mod facts;
mod templates;

use std::collections::BTreeMap;

use conveyor_config::{EmailAction, RuleConfig, Template};
use duckdb::Connection;
use minijinja::{AutoEscape, Environment, Value};

/// One transition to announce, as the templates see it.
struct Transition {
    entity: String,
    vars: BTreeMap<String, serde_json::Value>,
    /// The measure's context columns among `vars` (a webhook's `context`).
    columns: Vec<String>,
}

/// The four template environments: the user's and the built-in ones, each
/// as text and as HTML (data escaped: an agent called `<b>` stays text).
struct Envs {
    text: Environment<'static>,
    html: Environment<'static>,
    builtin_text: Environment<'static>,
    builtin_html: Environment<'static>,
}

impl Envs {
    fn new() -> Envs {
        Envs {
            text: templates::environment(AutoEscape::None, false),
            html: templates::environment(AutoEscape::Html, false),
            builtin_text: templates::environment(AutoEscape::None, true),
            builtin_html: templates::environment(AutoEscape::Html, true),
        }
    }
}

/// Inserts the outbox rows for the transitions in `rule_t` (the evaluation's
/// temp table). `now` is a SQL TIMESTAMP literal. A template that fails to
/// render fails the evaluation (never an empty e-mail).
pub(crate) fn enqueue(
    conn: &Connection,
    rule: &RuleConfig,
    eval_id: i64,
    now: &str,
) -> Result<usize, EnqueueError> {
    if rule.actions.is_empty() && rule.webhooks.is_empty() {
        return Ok(0);
    }
    let mut transitions = facts::transitions(conn, rule, now)?;
    if transitions.is_empty() {
        return Ok(0);
    }
    let envs = Envs::new();
    if let Some(step) = &rule.next_step {
        for t in &mut transitions {
            let text = render(&envs.text, &step.source, &Value::from_serialize(&t.vars))?;
            t.vars.insert("next_step".into(), text.into());
        }
    }
    let mut st = conn.prepare(&format!(
        "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                 html_body, headers, chart_png, created_at, attempts, next_attempt_at)
         VALUES (nextval('conveyor.outbox_ids'), ?, ?, ?, 'email', ?, ?, ?, ?, ?, ?, {now}, 0, {now})"
    ))?;
    let mut rows = 0;
    for action in &rule.actions {
        for (recipient, items) in by_recipient(action, &transitions) {
            let mut subjects = Vec::new();
            let mut bodies = Vec::new();
            let mut htmls = Vec::new();
            // One chart an e-mail (`cid:trend`): the first alert's with a
            // trend to draw; stored with the row, so a re-delivery sends
            // the same bytes.
            let mut chart_png: Option<Vec<u8>> = None;
            for t in &items {
                let ctx = Value::from_serialize(&t.vars);
                subjects.push(part(
                    &envs,
                    action.subject.as_ref(),
                    templates::SUBJECT,
                    &ctx,
                )?);
                bodies.push(part(&envs, action.body.as_ref(), templates::TEXT, &ctx)?);
                // The built-in e-mail has its HTML part; a body of one's own
                // has one only when the action writes it.
                // The built-in HTML part shows it; one's own if it refers to it.
                let wants = match (&action.body, &action.html) {
                    (_, Some(html)) => html.source.contains("cid:trend"),
                    (None, None) => true,
                    (Some(_), None) => false,
                };
                let chart = (wants && chart_png.is_none())
                    .then(|| trend_chart(t))
                    .flatten();
                let mut html_vars = t.vars.clone();
                html_vars.insert("chart".into(), chart.is_some().into());
                let html_ctx = Value::from_serialize(&html_vars);
                match (&action.body, &action.html) {
                    (_, Some(html)) => htmls.push(render(&envs.html, &html.source, &html_ctx)?),
                    (None, None) => {
                        htmls.push(render(&envs.builtin_html, templates::HTML, &html_ctx)?)
                    }
                    (Some(_), None) => {}
                }
                chart_png = chart_png.or(chart);
            }
            // One e-mail lists all the recipient's alerts: the first subject
            // stands for them all. CR/LF never reach a header.
            let mut subject = subjects[0].replace(['\r', '\n'], " ");
            if subjects.len() > 1 {
                subject += &format!(" (+{} more)", subjects.len() - 1);
            }
            let body = bodies.join("\n\n");
            let html = (!htmls.is_empty()).then(|| htmls.join("\n<hr>\n"));
            let headers = headers(rule, &items).to_string();
            let key = super::notification_key(&rule.name, eval_id, "email", &recipient);
            st.execute(duckdb::params![
                key, rule.name, eval_id, recipient, subject, body, html, headers, chart_png
            ])?;
            rows += 1;
        }
    }
    rows += enqueue_webhooks(conn, rule, eval_id, now, &envs.text, &transitions)?;
    Ok(rows)
}

/// The PNG of the alert's `history` against its thresholds, when it has
/// at least two periods with a value.
fn trend_chart(t: &Transition) -> Option<Vec<u8>> {
    let num = |k: &str| t.vars.get(k).and_then(|v| v.as_f64());
    super::chart::from_history(t.vars.get("history"), num("warn"), num("critical"))
}

/// Renders the action's template for a text part (or the subject), or the
/// built-in one.
fn part(
    envs: &Envs,
    own: Option<&Template>,
    builtin: &str,
    ctx: &Value,
) -> Result<String, EnqueueError> {
    match own {
        Some(t) => render(&envs.text, &t.source, ctx),
        None => render(&envs.builtin_text, builtin, ctx),
    }
}

/// `X-Conveyor-Rule`, `X-Conveyor-Level` (the worst of the e-mail's
/// alerts) and `X-Conveyor-State` (`firing`, `resolved`, or both when one
/// e-mail tells of both): for filters and mail rules, kept on the row so a
/// re-delivery sends the same headers.
fn headers(rule: &RuleConfig, items: &[&Transition]) -> serde_json::Value {
    let var = |t: &Transition, k: &str| {
        t.vars
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let level = if items.iter().any(|t| var(t, "level") == "critical") {
        "critical"
    } else {
        "warn"
    };
    let mut states: Vec<String> = items.iter().map(|t| var(t, "transition")).collect();
    states.sort();
    states.dedup();
    serde_json::json!({
        "X-Conveyor-Rule": rule.name,
        "X-Conveyor-Level": level,
        "X-Conveyor-State": states.join(", "),
    })
}

/// One row per transition per webhook action: recipient is the URL (the
/// secret is looked up again at delivery, never stored), body the JSON.
fn enqueue_webhooks(
    conn: &Connection,
    rule: &RuleConfig,
    eval_id: i64,
    now: &str,
    env: &Environment,
    transitions: &[Transition],
) -> Result<usize, EnqueueError> {
    let mut st = conn.prepare(&format!(
        "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                 created_at, attempts, next_attempt_at)
         VALUES (nextval('conveyor.outbox_ids'), ?, ?, ?, 'webhook', ?, ?, ?, {now}, 0, {now})"
    ))?;
    let mut rows = 0;
    for (i, hook) in rule.webhooks.iter().enumerate() {
        // A webhook acts (enrols, opens a ticket) once per firing: reminders
        // and escalations are for people, so they go by e-mail only.
        let acts = transitions.iter().filter(|t| {
            t.vars.get("repeat") != Some(&true.into())
                && t.vars.get("escalated") != Some(&true.into())
        });
        for t in acts {
            let body = match &hook.body {
                Some(template) => {
                    let text = render(env, &template.source, &Value::from_serialize(&t.vars))?;
                    // A body the receiver cannot parse would only fail there,
                    // over and over: refuse it here, located.
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                        return Err(EnqueueError::Render(format!(
                            "{}: webhook body is not JSON ({e}); quote strings with |tojson",
                            hook.at.key
                        )));
                    }
                    text
                }
                None => default_body(t).to_string(),
            };
            // The action's index and the entity keep two hooks to one URL,
            // and two entities of one evaluation, apart.
            let key = super::notification_key(
                &rule.name,
                eval_id,
                "webhook",
                &format!("{i}\u{1}{}\u{1}{}", hook.url, t.entity),
            );
            st.execute(duckdb::params![
                key, rule.name, eval_id, hook.url, t.entity, body
            ])?;
            rows += 1;
        }
    }
    Ok(rows)
}

/// The built-in variables the default webhook body carries (the alert's
/// other facts are for the people reading e-mails; `repeat` and
/// `escalated` are always false here); the three last only when not null.
const WEBHOOK_BUILTINS: [&str; 9] = [
    "rule",
    "entity",
    "level",
    "value",
    "period",
    "transition",
    "breaches",
    "window",
    "peer_threshold",
];
const OPTIONAL_BUILTINS: [&str; 3] = ["breaches", "window", "peer_threshold"];

/// `{rule, entity, level, value, period, transition, context: {column: value}}`.
fn default_body(t: &Transition) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut context = serde_json::Map::new();
    for (k, v) in &t.vars {
        let k_str = k.as_str();
        if WEBHOOK_BUILTINS.contains(&k_str) {
            // `breaches`, `window`, `peer_threshold` only when the rule has them.
            if !v.is_null() || !OPTIONAL_BUILTINS.contains(&k_str) {
                out.insert(k.clone(), v.clone());
            }
        } else if t.columns.contains(k) {
            context.insert(k.clone(), v.clone());
        }
    }
    out.insert("context".into(), context.into());
    out.into()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EnqueueError {
    #[error("action template: {0}")]
    Render(String),
    #[error(transparent)]
    Store(#[from] duckdb::Error),
}

fn render(env: &Environment, source: &str, ctx: &Value) -> Result<String, EnqueueError> {
    env.render_str(source, ctx)
        .map_err(|e| EnqueueError::Render(e.to_string()))
}

/// Groups transitions by recipient (static `to` first, then `to_column`),
/// recipients in a stable order. A row without a usable address in
/// `to_column` is logged and gets no e-mail of its own.
fn by_recipient<'t>(
    action: &EmailAction,
    transitions: &'t [Transition],
) -> BTreeMap<String, Vec<&'t Transition>> {
    let mut out: BTreeMap<String, Vec<&Transition>> = BTreeMap::new();
    for t in transitions {
        for to in &action.to {
            out.entry(to.clone()).or_default().push(t);
        }
        if let Some(col) = &action.to_column {
            match t.vars.get(col).and_then(|v| v.as_str()).map(str::trim) {
                Some(a) if a.parse::<lettre::Address>().is_ok() => {
                    out.entry(a.to_string()).or_default().push(t)
                }
                other => {
                    tracing::warn!(entity = %t.entity, column = %col, value = ?other, "no valid recipient address in to_column; no e-mail for this row")
                }
            }
        }
    }
    out
}
