//! Turns one evaluation's alert transitions into outbox rows, inside the
//! evaluation's transaction: one e-mail per recipient per action listing
//! every alert of that recipient that started firing (or resolved, when the
//! rule asks), rendered from the action's templates; and one webhook POST
//! per transition per webhook action.

use std::collections::BTreeMap;

use conveyor_config::{EmailAction, RuleConfig};
use duckdb::Connection;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

/// One transition to announce, as the templates see it.
struct Transition {
    entity: String,
    vars: BTreeMap<String, serde_json::Value>,
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
    let transitions = transitions(conn, rule)?;
    if transitions.is_empty() {
        return Ok(0);
    }
    let env = environment(AutoEscape::None);
    // Data in an HTML part is escaped: an agent called `<b>` stays text.
    let html_env = environment(AutoEscape::Html);
    let mut st = conn.prepare(&format!(
        "INSERT INTO conveyor.outbox (id, key, rule, eval_id, channel, recipient, subject, body,
                 html_body, created_at, attempts, next_attempt_at)
         VALUES (nextval('conveyor.outbox_ids'), ?, ?, ?, 'email', ?, ?, ?, ?, {now}, 0, {now})"
    ))?;
    let mut rows = 0;
    for action in &rule.actions {
        for (recipient, items) in by_recipient(action, &transitions) {
            let mut subjects = Vec::new();
            let mut bodies = Vec::new();
            let mut htmls = Vec::new();
            for t in items {
                let ctx = Value::from_serialize(&t.vars);
                subjects.push(render(&env, &action.subject.source, &ctx)?);
                bodies.push(render(&env, &action.body.source, &ctx)?);
                if let Some(html) = &action.html {
                    htmls.push(render(&html_env, &html.source, &ctx)?);
                }
            }
            // One e-mail lists all the recipient's alerts: the first subject
            // stands for them all. CR/LF never reach a header.
            let mut subject = subjects[0].replace(['\r', '\n'], " ");
            if subjects.len() > 1 {
                subject += &format!(" (+{} more)", subjects.len() - 1);
            }
            let body = bodies.join("\n\n");
            let html = (!htmls.is_empty()).then(|| htmls.join("\n<hr>\n"));
            let key = super::notification_key(&rule.name, eval_id, "email", &recipient);
            st.execute(duckdb::params![
                key, rule.name, eval_id, recipient, subject, body, html
            ])?;
            rows += 1;
        }
    }
    rows += enqueue_webhooks(conn, rule, eval_id, now, &env, &transitions)?;
    Ok(rows)
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

/// Built-in variables left out of the default webhook body when null.
const OPTIONAL_BUILTINS: [&str; 3] = ["breaches", "window", "peer_threshold"];
/// Built-ins that are always false for a webhook (reminders and
/// escalations go by e-mail only).
const EMAIL_ONLY_BUILTINS: [&str; 2] = ["repeat", "escalated"];

/// `{rule, entity, level, value, period, transition, context: {column: value}}`.
fn default_body(t: &Transition) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut context = serde_json::Map::new();
    for (k, v) in &t.vars {
        if conveyor_config::BUILTIN_VARIABLES.contains(&k.as_str()) {
            // `breaches`, `window`, `peer_threshold` only when the rule has them.
            let k_str = k.as_str();
            let kept = (!v.is_null() || !OPTIONAL_BUILTINS.contains(&k_str))
                && !EMAIL_ONLY_BUILTINS.contains(&k_str);
            if kept {
                out.insert(k.clone(), v.clone());
            }
        } else {
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

/// A template environment: an unknown variable is an error, not an empty
/// string in an e-mail.
fn environment(escape: AutoEscape) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(move |_| escape);
    env
}

/// The transitions of this evaluation worth a notification (`rule_t.notify`:
/// started firing and not silenced or cooling down, a repeat due, or a
/// resolve the rule announces), with the measure's context columns and the
/// built-in variables.
fn transitions(conn: &Connection, rule: &RuleConfig) -> duckdb::Result<Vec<Transition>> {
    let mut st = conn.prepare(
        "SELECT t.entity, t.notify, t.level, t.value, t.period, CAST(l.context AS VARCHAR),
                l.breaches, l.peer_threshold
         FROM rule_t AS t JOIN rule_l AS l USING (entity)
         WHERE t.notify IS NOT NULL
         ORDER BY t.entity",
    )?;
    let window = rule.n_of_m.map(|(_, m)| m);
    let rows = st.query_map([], |r| {
        let entity: String = r.get(0)?;
        let context: Option<String> = r.get(5)?;
        let mut vars: BTreeMap<String, serde_json::Value> = context
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        let notify: String = r.get(1)?;
        let transition = if notify == "resolved" {
            "resolved"
        } else {
            "firing"
        };
        vars.insert("rule".into(), rule.name.clone().into());
        vars.insert("entity".into(), entity.clone().into());
        vars.insert("transition".into(), transition.into());
        vars.insert("repeat".into(), (notify == "repeat").into());
        vars.insert("escalated".into(), (notify == "escalated").into());
        vars.insert("level".into(), r.get::<_, String>(2)?.into());
        vars.insert("value".into(), r.get::<_, Option<f64>>(3)?.into());
        vars.insert("period".into(), r.get::<_, Option<String>>(4)?.into());
        vars.insert("breaches".into(), r.get::<_, Option<i64>>(6)?.into());
        vars.insert("window".into(), window.into());
        vars.insert("peer_threshold".into(), r.get::<_, Option<f64>>(7)?.into());
        Ok(Transition { entity, vars })
    })?;
    rows.collect()
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
