//! The facts of each alert a notification announces, as template
//! variables: the measure's context columns, the rule's own settings, the
//! entity's history of periods, its peers, how long it has fired and the
//! command that silences it. Read from the evaluation's temp tables and
//! `conveyor.rule_results`, set-based (one query each for all alerts).

use std::collections::BTreeMap;

use conveyor_config::{PeerCondition, RuleConfig};
use duckdb::Connection;
use serde_json::{json, Value};

use super::Transition;

/// How long a silence the e-mail suggests lasts.
const SILENCE_FOR: &str = "7d";

/// The transitions of this evaluation worth a notification (`rule_t.notify`:
/// started firing and not silenced or cooling down, an escalation, a repeat
/// due, or a resolve the rule announces), each with its variables.
pub(super) fn transitions(
    conn: &Connection,
    rule: &RuleConfig,
    now: &str,
) -> duckdb::Result<Vec<Transition>> {
    // An absent entity has no row in this evaluation: its context is that
    // of the evaluation that last saw it.
    let mut st = conn.prepare(&format!(
        "SELECT t.entity, t.notify, t.level, t.value, t.period,
                CAST(coalesce(l.context, r.context) AS VARCHAR),
                l.breaches, l.peer_threshold, l.peer_median, l.peer_size, l.peer_breaching,
                strftime(t.fired_at, '%Y-%m-%d %H:%M UTC'),
                epoch(CASE WHEN t.new_state = 'resolved' THEN t.resolved_at ELSE {now} END) - epoch(t.fired_at),
                t.absent, t.old_notified_level, strftime({now}, '%Y-%m-%d %H:%M UTC')
         FROM rule_t AS t
         LEFT JOIN rule_l AS l USING (entity)
         LEFT JOIN conveyor.rule_results AS r
           ON t.absent AND r.eval_id = t.seen_eval_id AND r.rule = ? AND r.entity = t.entity
          AND r.period IS NOT DISTINCT FROM t.period
         WHERE t.notify IS NOT NULL
         ORDER BY t.entity"
    ))?;
    let mut history = history(conn, rule)?;
    let window = rule.n_of_m.map(|(_, m)| m);
    let rows = st.query_map([&rule.name], |r| {
        let entity: String = r.get(0)?;
        let context: Option<String> = r.get(5)?;
        let mut vars: BTreeMap<String, Value> = context
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        let columns: Vec<String> = vars
            .keys()
            .filter(|k| !conveyor_config::actions::CORE_VARIABLES.contains(&k.as_str()))
            .cloned()
            .collect();
        let notify: String = r.get(1)?;
        let level: String = r.get(2)?;
        let transition = if notify == "resolved" {
            "resolved"
        } else {
            "firing"
        };
        let firing_secs: Option<f64> = r.get(12)?;
        let peer_threshold: Option<f64> = r.get(7)?;
        // The first variables win over measure columns of the same name,
        // as they always have; the later facts yield to them (a measure
        // with an `owner` column keeps it).
        let mut put = |k: &str, v: Value| {
            vars.insert(k.to_string(), v);
        };
        put("rule", rule.name.clone().into());
        put("entity", entity.clone().into());
        put("transition", transition.into());
        put("repeat", (notify == "repeat").into());
        put("escalated", (notify == "escalated").into());
        put("level", level.clone().into());
        put("value", r.get::<_, Option<f64>>(3)?.into());
        put("period", r.get::<_, Option<String>>(4)?.into());
        put("breaches", r.get::<_, Option<i64>>(6)?.into());
        put("window", window.into());
        put("peer_threshold", peer_threshold.into());
        let mut put = |k: &str, v: Value| {
            vars.entry(k.to_string()).or_insert(v);
        };
        put("peer_median", r.get::<_, Option<f64>>(8)?.into());
        put("peer_size", r.get::<_, Option<i64>>(9)?.into());
        put("peer_breaching", r.get::<_, Option<i64>>(10)?.into());
        put("firing_since", r.get::<_, Option<String>>(11)?.into());
        put("firing_for", firing_secs.map(human_duration).into());
        put("absent", r.get::<_, bool>(13)?.into());
        put("notified_level", r.get::<_, Option<String>>(14)?.into());
        put("now", r.get::<_, String>(15)?.into());
        put(
            "history",
            Value::Array(history.remove(&entity).unwrap_or_default()),
        );
        let threshold = match level.as_str() {
            "critical" => rule.critical,
            _ => rule.warn.or(peer_threshold).or(rule.critical),
        };
        put("threshold", threshold.into());
        Ok(Transition {
            entity,
            vars,
            columns,
        })
    })?;
    let mut out = rows.collect::<duckdb::Result<Vec<_>>>()?;
    for t in &mut out {
        rule_facts(rule, t);
    }
    Ok(out)
}

/// The variables that come from the rule's config (and the context the
/// measure returned): who the entity is, the thresholds, the peers' group.
fn rule_facts(rule: &RuleConfig, t: &mut Transition) {
    let who = match (&rule.entity_label, &rule.reconciliation) {
        (Some(column), _) => t.vars.get(column).cloned(),
        (None, Some(_)) => t.vars.get("label").cloned(),
        (None, None) => None,
    }
    .filter(|v| !v.is_null())
    .map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    })
    .unwrap_or_else(|| t.entity.clone());
    let finite = |x: f64| x.is_finite().then_some(x);
    let peer_group = rule
        .peer
        .as_ref()
        .and_then(|p| p.group.as_ref())
        .and_then(|g| t.vars.get(g).cloned())
        .unwrap_or(Value::Null);
    let peer_percentile = match rule.peer.as_ref().map(|p| p.condition) {
        Some(PeerCondition::Percentile(q)) => json!(q),
        _ => Value::Null,
    };
    let resolved = t.vars.get("transition") == Some(&json!("resolved"));
    let level = t
        .vars
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("warn");
    let subject_tag = if resolved {
        "[RESOLVED]".to_string()
    } else {
        format!("[FIRING {level}]")
    };
    let facts = [
        ("title", json!(rule.title)),
        ("description", json!(rule.description)),
        ("owner", json!(rule.owner)),
        ("labels", json!(rule.labels)),
        ("who", json!(who)),
        ("direction", json!(rule.direction.as_str())),
        ("warn", json!(rule.warn)),
        ("critical", json!(rule.critical)),
        ("resolve", json!(finite(rule.resolve))),
        ("peer_group", peer_group),
        ("peer_percentile", peer_percentile),
        ("silence_command", json!(silence_command(rule, &t.entity))),
        ("subject_tag", json!(subject_tag)),
        ("next_step", Value::Null),
    ];
    for (k, v) in facts {
        t.vars.entry(k.to_string()).or_insert(v);
    }
}

/// Each notified entity's last `history_periods` periods of this rule,
/// oldest first: `{period, value, level, breach}`, the latest evaluation's
/// verdict for each period (the current one included: its rows are in).
fn history(conn: &Connection, rule: &RuleConfig) -> duckdb::Result<BTreeMap<String, Vec<Value>>> {
    // Periods are text in rule_results; ordered as instants, else numbers,
    // else text, so that `2026-10-05` and `9` < `10` both sort in time.
    let order = "TRY_CAST(period AS TIMESTAMP) DESC NULLS LAST, TRY_CAST(period AS DOUBLE) DESC NULLS LAST, period DESC";
    let mut st = conn.prepare(&format!(
        "SELECT entity, period, value, level FROM (
           SELECT entity, period, value, level FROM conveyor.rule_results
           WHERE rule = ? AND entity IN (SELECT entity FROM rule_t WHERE notify IS NOT NULL)
           QUALIFY row_number() OVER (PARTITION BY entity, period ORDER BY eval_id DESC) = 1
         )
         QUALIFY row_number() OVER (PARTITION BY entity ORDER BY {order}) <= ?
         ORDER BY entity, TRY_CAST(period AS TIMESTAMP) NULLS FIRST, TRY_CAST(period AS DOUBLE) NULLS FIRST, period"
    ))?;
    let rows = st.query_map(duckdb::params![rule.name, rule.history_periods], |r| {
        let level: String = r.get(3)?;
        Ok((
            r.get::<_, String>(0)?,
            json!({
                "period": r.get::<_, Option<String>>(1)?,
                "value": r.get::<_, Option<f64>>(2)?,
                "breach": level == "warn" || level == "critical",
                "level": level,
            }),
        ))
    })?;
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in rows {
        let (entity, h) = row?;
        out.entry(entity).or_default().push(h);
    }
    Ok(out)
}

/// The exact command that silences this rule for this entity; `-c` names
/// the config unless it is the default file in the working directory.
pub(super) fn silence_command(rule: &RuleConfig, entity: &str) -> String {
    let file = rule.at.file.to_string_lossy();
    let config = if file == conveyor_config::DEFAULT_CONFIG_FILE {
        String::new()
    } else {
        format!(" -c {}", shell_quote(&file))
    };
    let (rule, entity) = (shell_quote(&rule.name), shell_quote(entity));
    let options = format!(
        "--for {SILENCE_FOR} --reason {}",
        shell_quote("being handled")
    );
    // Entities come from vendor data: one starting with `-` would be read
    // as an option (quoting does not help), so it goes after `--`.
    if rule.starts_with('-') || entity.starts_with('-') {
        format!("conveyor{config} silence add {options} -- {rule} {entity}")
    } else {
        format!("conveyor{config} silence add {rule} {entity} {options}")
    }
}

/// `word` as one shell word: as it is when it is plain, else single-quoted.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `3 days`, `2 weeks 1 day`, `5 hours 10 minutes`, `less than a minute`:
/// the two largest units, for people.
pub(super) fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    if secs < 60 {
        return "less than a minute".to_string();
    }
    let units = [
        ("week", 7 * 86_400),
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
    ];
    let mut left = secs;
    let mut parts = Vec::new();
    for (name, size) in units {
        let n = left / size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            left -= n * size;
        } else if !parts.is_empty() {
            // `2 weeks 5 minutes` says less than it seems: stop at a gap.
            break;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_durations_read_as_people_say_them() {
        assert_eq!(human_duration(0.0), "less than a minute");
        assert_eq!(human_duration(3.0 * 86_400.0), "3 days");
        assert_eq!(human_duration(15.0 * 86_400.0 + 3_600.0), "2 weeks 1 day");
        assert_eq!(human_duration(5.0 * 3_600.0 + 600.0), "5 hours 10 minutes");
        assert_eq!(human_duration(86_400.0 + 60.0), "1 day");
    }

    #[test]
    fn outbox_a_silence_command_quotes_what_a_shell_would_split() {
        let config = crate::outbox::tests::config(25, r#"to = ["ops@example.com"]"#);
        let mut rule = config.rules[0].clone();
        rule.at.file = "conveyor.toml".into();
        assert_eq!(
            silence_command(&rule, "agent-17"),
            "conveyor silence add csat_low agent-17 --for 7d --reason 'being handled'"
        );
        rule.at.file = "/etc/conveyor/prod.toml".into();
        assert_eq!(
            silence_command(&rule, "globex retail|2026-03-09"),
            "conveyor -c /etc/conveyor/prod.toml silence add csat_low 'globex retail|2026-03-09' --for 7d --reason 'being handled'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            silence_command(&rule, "--for=100y"),
            "conveyor -c /etc/conveyor/prod.toml silence add --for 7d --reason 'being handled' -- csat_low --for=100y"
        );
    }
}
