//! The Alerts pages: every alert (firing, pending, resolved) with its level,
//! entity (named from the measure's context), value, period and since,
//! filterable by rule, level, team and state; an alert's own page with its
//! history against the rule's thresholds (`conveyor.rule_results`), the
//! notifications that named it (outbox rows and their delivery), and its
//! silences — created and expired from the page, with author and comment,
//! through `rules::silence` as `conveyor silence` does.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use conveyor_config::Config;
use duckdb::Connection;
use minijinja::context;
use serde::Serialize;

use super::chart::{self, Line, Threshold};
use super::reader::{read, rows};
use super::session::Session;
use super::view::{self, Failure, PageResult};
use super::Console;

/// Evaluations drawn on an alert's history chart.
const HISTORY: i64 = 200;
/// Notifications listed on an alert's page.
const NOTIFICATIONS: usize = 50;

/// The link to an alert's page.
fn alert_href(rule: &str, entity: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("rule", rule)
        .append_pair("entity", entity)
        .finish();
    format!("/console/alert?{q}")
}

/// Per rule, the measure column its entities are known by
/// (`entity_label`).
type Labels = BTreeMap<String, String>;

fn labels(config: &Config) -> Labels {
    config
        .rules
        .iter()
        .filter_map(|r| r.entity_label.clone().map(|l| (r.name.clone(), l)))
        .collect()
}

/// Who an entity is, from the measure's context columns: the rule's
/// `entity_label` column, else a `name`, a reconciliation's `label`, or a
/// `…_name` column (not the sides' names of a reconciliation); and a
/// `team` (or `…_team`), when the measure has them.
fn who(
    context: &serde_json::Map<String, serde_json::Value>,
    label: Option<&str>,
) -> (Option<String>, Option<String>) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let suffixed = |suffix: &str| {
        context
            .iter()
            .find(|(k, _)| {
                k.ends_with(suffix) && !["left_name", "right_name"].contains(&k.as_str())
            })
            .and_then(|(_, v)| text(v))
    };
    let name = label
        .and_then(|l| context.get(l))
        .and_then(text)
        .or_else(|| context.get("name").and_then(text))
        .or_else(|| context.get("label").and_then(text))
        .or_else(|| suffixed("_name"));
    let team = context
        .get("team")
        .and_then(text)
        .or_else(|| suffixed("_team"));
    (name, team)
}

fn parse_context(text: Option<String>) -> serde_json::Map<String, serde_json::Value> {
    text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| match v {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

#[derive(Serialize, Clone)]
struct AlertView {
    rule: String,
    entity: String,
    name: Option<String>,
    team: Option<String>,
    state: String,
    level: String,
    value: String,
    period: Option<String>,
    since: String,
    fired_at: String,
    last_evaluated: String,
    consecutive: i64,
    silenced: bool,
    href: String,
    #[serde(skip)]
    context: serde_json::Map<String, serde_json::Value>,
}

const ALERTS_SQL: &str = "
SELECT a.rule, a.entity, a.state, a.level, a.last_value, a.last_period, epoch_us(a.since),
       epoch_us(a.fired_at), epoch_us(a.last_evaluated), a.consecutive, CAST(r.context AS VARCHAR),
       EXISTS (SELECT 1 FROM conveyor.silences s
               WHERE s.rule = a.rule AND (s.entity IS NULL OR s.entity = a.entity)
                 AND s.removed_at IS NULL AND s.starts_at <= CAST(now() AS TIMESTAMP)
                 AND s.expires_at > CAST(now() AS TIMESTAMP))
FROM conveyor.alerts AS a
LEFT JOIN conveyor.rule_results AS r
  ON r.eval_id = a.last_eval_id AND r.rule = a.rule AND r.entity = a.entity
     AND r.period IS NOT DISTINCT FROM a.last_period";

const ALERTS_ORDER: &str =
    " ORDER BY CASE a.state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END,
           a.level = 'warn', a.since DESC, a.rule, a.entity";

fn alert_rows(
    conn: &Connection,
    filter: &str,
    params: &[&dyn duckdb::ToSql],
    labels: &Labels,
    tz: chrono_tz::Tz,
) -> Result<Vec<AlertView>> {
    rows(
        conn,
        &format!("{ALERTS_SQL}{filter}{ALERTS_ORDER}"),
        params,
        |r| {
            let rule: String = r.get(0)?;
            let entity: String = r.get(1)?;
            let context = parse_context(r.get(10)?);
            let (name, team) = who(&context, labels.get(&rule).map(String::as_str));
            Ok(AlertView {
                href: alert_href(&rule, &entity),
                rule,
                entity,
                name,
                team,
                state: r.get(2)?,
                level: r.get(3)?,
                value: view::number(r.get(4)?),
                period: r.get(5)?,
                since: view::time(r.get(6)?, tz),
                fired_at: view::time(r.get(7)?, tz),
                last_evaluated: view::time(r.get(8)?, tz),
                consecutive: r.get(9)?,
                silenced: r.get(11)?,
                context,
            })
        },
    )
}

#[derive(Serialize)]
struct SilenceView {
    id: i64,
    rule: String,
    entity: Option<String>,
    reason: String,
    author: Option<String>,
    starts: String,
    expires: String,
    ended: String,
    in_force: bool,
}

/// Silences of `rule` (and `entity`, or every entity) — in force only, or
/// the recent past too.
fn silences(
    conn: &Connection,
    only: Option<(&str, &str)>,
    past_too: bool,
    tz: chrono_tz::Tz,
) -> Result<Vec<SilenceView>> {
    let in_force = "s.removed_at IS NULL AND s.expires_at > CAST(now() AS TIMESTAMP)";
    let (filter, params): (String, Vec<String>) = match only {
        Some((rule, entity)) => (
            "s.rule = ? AND (s.entity IS NULL OR s.entity = ?)".into(),
            vec![rule.into(), entity.into()],
        ),
        None => ("true".into(), vec![]),
    };
    let when = if past_too { "true" } else { in_force };
    let sql = format!(
        "SELECT s.id, s.rule, s.entity, s.reason, s.created_by, epoch_us(s.starts_at), epoch_us(s.expires_at),
                epoch_us(s.removed_at), {in_force}
         FROM conveyor.silences s WHERE {filter} AND {when}
         ORDER BY {in_force} DESC, s.expires_at DESC, s.id DESC LIMIT 50"
    );
    let p: Vec<&dyn duckdb::ToSql> = params.iter().map(|p| p as &dyn duckdb::ToSql).collect();
    rows(conn, &sql, &p, |r| {
        Ok(SilenceView {
            id: r.get(0)?,
            rule: r.get(1)?,
            entity: r.get(2)?,
            reason: r.get(3)?,
            author: r.get(4)?,
            starts: view::time(r.get(5)?, tz),
            expires: view::time(r.get(6)?, tz),
            ended: view::time(r.get(7)?, tz),
            in_force: r.get(8)?,
        })
    })
}

#[derive(serde::Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    rule: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    state: String,
}

fn matches(a: &AlertView, f: &Filter) -> bool {
    (f.rule.is_empty() || a.rule == f.rule)
        && (f.level.is_empty() || a.level == f.level)
        && (f.state.is_empty() || a.state == f.state)
        && (f.team.is_empty() || a.team.as_deref() == Some(f.team.as_str()))
}

pub async fn list(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Query(f): Query<Filter>,
) -> PageResult {
    let tz = c.tz;
    let config = c.live.config();
    let names = labels(&config);
    let (alerts, silenced) = read(c.wh.clone(), move |conn| {
        Ok((
            alert_rows(conn, "", &[], &names, tz)?,
            silences(conn, None, false, tz)?,
        ))
    })
    .await?;
    let mut rules: BTreeSet<String> = config.rules.iter().map(|r| r.name.clone()).collect();
    rules.extend(alerts.iter().map(|a| a.rule.clone()));
    let teams: BTreeSet<String> = alerts.iter().filter_map(|a| a.team.clone()).collect();
    let count = |state: &str| alerts.iter().filter(|a| a.state == state).count();
    let counts = context! {
        firing => count("firing"), pending => count("pending"), resolved => count("resolved"),
    };
    let shown: Vec<&AlertView> = alerts.iter().filter(|a| matches(a, &f)).collect();
    Ok(view::render(
        "alerts.html",
        context! {
            alerts => shown,
            total => alerts.len(),
            counts => counts,
            silences => silenced,
            rules => rules,
            teams => teams,
            levels => ["warn", "critical"],
            states => ["firing", "pending", "resolved"],
            filter => context! { rule => f.rule, level => f.level, team => f.team, state => f.state },
            ..view::page(&s, "alerts", "Alerts", tz)
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct Which {
    rule: String,
    entity: String,
}

#[derive(Serialize)]
struct ResultView {
    evaluated: String,
    period: Option<String>,
    value: String,
    level: String,
}

#[derive(Serialize)]
struct NotificationView {
    id: i64,
    channel: String,
    recipient: String,
    subject: String,
    created: String,
    attempts: i64,
    state: String,
    when: String,
    last_error: Option<String>,
}

struct Notification {
    view: NotificationView,
    text: String,
}

/// One `conveyor.rule_results` row: eval id, evaluated at (µs), period,
/// value, level.
type HistoryRow = (i64, Option<i64>, Option<String>, Option<f64>, String);

struct AlertData {
    alert: Option<AlertView>,
    history: Vec<HistoryRow>,
    notifications: Vec<Notification>,
    silences: Vec<SilenceView>,
}

fn load_alert(
    conn: &Connection,
    w: &Which,
    labels: &Labels,
    tz: chrono_tz::Tz,
) -> Result<AlertData> {
    let alert = alert_rows(
        conn,
        " WHERE a.rule = ? AND a.entity = ?",
        &[&w.rule, &w.entity],
        labels,
        tz,
    )?
    .into_iter()
    .next();
    let mut history = rows(
        conn,
        "SELECT eval_id, epoch_us(evaluated_at), period, value, level FROM conveyor.rule_results
         WHERE rule = ? AND entity = ? ORDER BY eval_id DESC, period DESC LIMIT ?",
        &[&w.rule, &w.entity, &HISTORY],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    history.reverse();
    // The notifications of the evaluations that judged this entity; which
    // of them name it is decided by the caller (an e-mail lists all of a
    // recipient's alerts of one evaluation).
    let notifications = rows(
        conn,
        "SELECT id, channel, recipient, subject, body, epoch_us(created_at), attempts,
                epoch_us(delivered_at), epoch_us(dead_at), epoch_us(next_attempt_at), last_error
         FROM conveyor.outbox
         WHERE rule = ? AND eval_id IN (SELECT eval_id FROM conveyor.rule_results WHERE rule = ? AND entity = ?)
         ORDER BY id DESC LIMIT 1000",
        &[&w.rule, &w.rule, &w.entity],
        |r| {
            let delivered: Option<i64> = r.get(7)?;
            let dead: Option<i64> = r.get(8)?;
            let (state, when) = match (delivered, dead) {
                (Some(t), _) => ("delivered", Some(t)),
                (None, Some(t)) => ("dead", Some(t)),
                (None, None) => ("queued", r.get(9)?),
            };
            Ok(Notification {
                text: format!(
                    "{}\n{}",
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?
                ),
                view: NotificationView {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    recipient: r.get(2)?,
                    subject: r.get(3)?,
                    created: view::time(r.get(5)?, tz),
                    attempts: r.get(6)?,
                    state: state.into(),
                    when: view::time(when, tz),
                    last_error: r.get(10)?,
                },
            })
        },
    )?;
    let silences = silences(conn, Some((&w.rule, &w.entity)), true, tz)?;
    Ok(AlertData {
        alert,
        history,
        notifications,
        silences,
    })
}

/// What in a notification's text names this alert: the entity itself, and
/// the names and e-mail addresses of its context — but not the column the
/// rule's e-mails go to (a supervisor's address names every alert sent to
/// them).
fn needles(config: &Config, alert: &AlertView) -> Vec<String> {
    let recipients: BTreeSet<&str> = config
        .rules
        .iter()
        .filter(|r| r.name == alert.rule)
        .flat_map(|r| r.actions.iter().filter_map(|a| a.to_column.as_deref()))
        .collect();
    let mut out = vec![alert.entity.clone()];
    for (k, v) in &alert.context {
        if recipients.contains(k.as_str()) || !(k.ends_with("name") || k.ends_with("email")) {
            continue;
        }
        if let Some(s) = v.as_str() {
            out.push(s.to_string());
        }
    }
    out.retain(|n| n.chars().count() >= 2);
    out
}

pub async fn page(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Query(w): Query<Which>,
) -> PageResult {
    let tz = c.tz;
    let which = Which {
        rule: w.rule.clone(),
        entity: w.entity.clone(),
    };
    let config = c.live.config();
    let names = labels(&config);
    let data = read(c.wh.clone(), move |conn| {
        load_alert(conn, &which, &names, tz)
    })
    .await?;
    let Some(alert) = data.alert else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no alert of rule {:?} for entity {:?}", w.rule, w.entity),
        ));
    };
    let rule = config.rules.iter().find(|r| r.name == alert.rule);
    let names = needles(&config, &alert);
    let notifications: Vec<NotificationView> = data
        .notifications
        .into_iter()
        .filter(|n| names.iter().any(|x| n.text.contains(x.as_str())))
        .take(NOTIFICATIONS)
        .map(|n| n.view)
        .collect();
    // One point per period when the rule judges several (a weekly measure
    // re-judges its window each time: the latest verdict per week counts);
    // otherwise one per evaluation.
    let periods: BTreeSet<&Option<String>> = data.history.iter().map(|h| &h.2).collect();
    let points: Vec<(String, Option<f64>)> = if periods.len() > 1 {
        let mut latest: std::collections::BTreeMap<String, Option<f64>> = Default::default();
        for (_, _, period, value, _) in &data.history {
            latest.insert(period.clone().unwrap_or_default(), *value);
        }
        latest.into_iter().collect()
    } else {
        data.history
            .iter()
            .map(|(_, at, _, v, _)| (view::short_time(*at, tz), *v))
            .collect()
    };
    let mut thresholds = Vec::new();
    if let Some(r) = rule {
        if let Some(v) = r.warn {
            thresholds.push(Threshold {
                name: "warn".into(),
                value: v,
                class: "t-warn",
            });
        }
        if let Some(v) = r.critical {
            thresholds.push(Threshold {
                name: "critical".into(),
                value: v,
                class: "t-critical",
            });
        }
    }
    let chart = chart::lines(
        &format!("{} for {}: value per period", alert.rule, alert.entity),
        &[Line {
            name: alert.entity.clone(),
            class: "s0",
            points,
        }],
        &thresholds,
        false,
        "no evaluations recorded",
    );
    let results: Vec<ResultView> = data
        .history
        .iter()
        .rev()
        .take(20)
        .map(|(_, at, period, value, level)| ResultView {
            evaluated: view::time(*at, tz),
            period: period.clone(),
            value: view::number(*value),
            level: level.clone(),
        })
        .collect();
    let rule_view = rule.map(|r| {
        context! {
            description => r.description,
            owner => r.owner,
            direction => format!("{:?}", r.direction).to_lowercase(),
            warn => view::number(r.warn),
            critical => view::number(r.critical),
            resolve => view::number(Some(r.resolve)),
        }
    });
    let context_rows: Vec<(String, String)> = alert
        .context
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            )
        })
        .collect();
    let back = alert.href.clone();
    let title = format!("Alert: {}", alert.rule);
    Ok(view::render(
        "alert.html",
        context! {
            alert => alert,
            rule => rule_view,
            context_rows => context_rows,
            chart => view::svg(chart),
            results => results,
            notifications => notifications,
            silences => data.silences,
            back => back,
            durations => [("1h", "1 hour"), ("4h", "4 hours"), ("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days")],
            ..view::page(&s, "alerts", &title, tz)
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct SilenceForm {
    rule: String,
    /// Empty: every entity of the rule.
    #[serde(default)]
    entity: String,
    duration: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    back: String,
}

/// Runs a write on a connection of its own (not the rolled-back reader).
async fn write<T: Send + 'static>(
    c: &Console,
    f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let wh = c.wh.clone();
    tokio::task::spawn_blocking(move || f(&wh.connection()?)).await?
}

/// Creates a silence (validated as `/v1/silences` validates it).
pub async fn silence(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Form(f): Form<SilenceForm>,
) -> Response {
    let back = super::safe_next(Some(&f.back));
    let seconds = match humantime::parse_duration(f.duration.trim()) {
        Ok(d) if d.as_secs() >= 1 => d.as_secs(),
        _ => {
            c.sessions.flash(
                &s,
                format!("Not a duration: {:?} (for example 2h, 7d).", f.duration),
            );
            return view::see_other(&back);
        }
    };
    let author = if f.author.trim().is_empty() {
        s.author.clone()
    } else {
        f.author.trim().to_string()
    };
    let new = crate::rules::silence::NewSilence {
        rule: f.rule.clone(),
        entity: Some(f.entity.clone()).filter(|e| !e.is_empty()),
        seconds,
        reason: f.comment.trim().to_string(),
        author,
    };
    let message = match crate::rules::silence::validate(&c.live.config(), &new) {
        Err(e) => format!("No silence created: {e}."),
        Ok(()) => {
            let now = chrono::Utc::now().naive_utc();
            let n = new.clone();
            match write(&c, move |conn| {
                Ok(crate::rules::silence::add(conn, &n, now)?)
            })
            .await
            {
                Ok(id) => {
                    tracing::info!(id, rule = %new.rule, author = %new.author, "console: silence created");
                    format!(
                        "Silence {id} created: {} for {}, {} ({}).",
                        new.rule,
                        new.entity.as_deref().unwrap_or("every entity"),
                        humantime::format_duration(std::time::Duration::from_secs(seconds)),
                        new.reason
                    )
                }
                Err(e) => format!("No silence created: {e:#}."),
            }
        }
    };
    c.sessions.flash(&s, message);
    view::see_other(&back)
}

#[derive(serde::Deserialize)]
pub struct ExpireForm {
    #[serde(default)]
    back: String,
}

/// Lifts a silence now (`conveyor silence remove`).
pub async fn expire(
    State(c): State<Console>,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(f): Form<ExpireForm>,
) -> Response {
    let now = chrono::Utc::now().naive_utc();
    let message = match write(&c, move |conn| {
        Ok(crate::rules::silence::remove(conn, id, now)?)
    })
    .await
    {
        Ok(true) => {
            tracing::info!(id, author = %s.author, "console: silence expired");
            format!("Silence {id} expired; its alerts are announced at the next evaluation if still firing.")
        }
        Ok(false) => format!("Silence {id} was not in force."),
        Err(e) => format!("Silence {id} could not be expired: {e:#}."),
    };
    c.sessions.flash(&s, message);
    view::see_other(&super::safe_next(Some(&f.back)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_alert_names_and_teams_come_from_the_context() {
        let ctx = parse_context(Some(
            r#"{"agent_name": "Ann", "team": "Back Office", "supervisor_email": "s@x"}"#.into(),
        ));
        assert_eq!(
            who(&ctx, None),
            (Some("Ann".into()), Some("Back Office".into()))
        );
        let ctx = parse_context(Some(r#"{"name": 7, "home_team": "B"}"#.into()));
        assert_eq!(who(&ctx, None), (Some("7".into()), Some("B".into())));
        assert_eq!(
            who(&parse_context(Some("not json".into())), None),
            (None, None)
        );
        // A reconciliation's context: its label, never a side's name.
        let ctx = parse_context(Some(
            r#"{"left_name": "placements", "label": "69 · Northwind", "full_name": "x"}"#.into(),
        ));
        assert_eq!(who(&ctx, None).0.as_deref(), Some("69 · Northwind"));
        let ctx = parse_context(Some(r#"{"left_name": "placements"}"#.into()));
        assert_eq!(who(&ctx, None).0, None);
        // The rule's entity_label wins.
        let ctx = parse_context(Some(r#"{"name": "a", "nick": "b"}"#.into()));
        assert_eq!(who(&ctx, Some("nick")).0.as_deref(), Some("b"));
    }

    #[test]
    fn console_alert_links_encode_rule_and_entity() {
        assert_eq!(
            alert_href("csat", "a&b c/<x>"),
            "/console/alert?rule=csat&entity=a%26b+c%2F%3Cx%3E"
        );
    }
}
