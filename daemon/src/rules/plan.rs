//! The SQL of one rule evaluation, as text: classify the measure's rows,
//! append them to `conveyor.rule_results`, and compute each entity's alert
//! transition. Set-based; Rust never loops over rows.

use conveyor_config::{Direction, RuleConfig};

use crate::warehouse::{ident, literal};

/// The temporary tables an evaluation creates, dropped afterwards.
pub const TEMP_TABLES: [&str; 4] = ["rule_m", "rule_c", "rule_l", "rule_t"];

/// The measure's rows, materialised once so a slow measure runs once.
/// The newline before `)` keeps a measure ending in a `-- comment` whole.
pub fn materialise(rule: &RuleConfig) -> String {
    format!(
        "CREATE TEMP TABLE rule_m AS SELECT * FROM ({}\n) AS measure",
        rule.measure
    )
}

/// A number as a DOUBLE literal (never exponent syntax DuckDB might read
/// as DECIMAL).
fn num(v: f64) -> String {
    format!("CAST('{v:?}' AS DOUBLE)")
}

/// `rule_c`: every measure row with its level and whether its value is
/// back on the good side of `resolve`. `context` holds the other columns.
pub fn classify(rule: &RuleConfig, context_columns: &[String]) -> String {
    let past = |threshold: f64| match rule.direction {
        Direction::Above => format!("value > {}", num(threshold)),
        Direction::Below => format!("value < {}", num(threshold)),
    };
    let mut level = String::from("CASE WHEN value IS NULL THEN 'no_data'");
    if let Some(c) = rule.critical {
        level += &format!(" WHEN {} THEN 'critical'", past(c));
    }
    if let Some(w) = rule.warn {
        level += &format!(" WHEN {} THEN 'warn'", past(w));
    }
    level += " ELSE 'ok' END";
    // At the resolve point counts as recovered: with the default (resolve =
    // warn) a value exactly at warn is neither a breach nor still firing.
    let recovered = match rule.direction {
        Direction::Above => format!("coalesce(value <= {}, false)", num(rule.resolve)),
        Direction::Below => format!("coalesce(value >= {}, false)", num(rule.resolve)),
    };
    let context = if context_columns.is_empty() {
        "CAST(NULL AS JSON)".to_string()
    } else {
        let pairs: Vec<String> = context_columns
            .iter()
            .map(|c| format!("{}, m.{}", literal(c), ident(c)))
            .collect();
        format!("json_object({})", pairs.join(", "))
    };
    format!(
        "CREATE TEMP TABLE rule_c AS
         SELECT entity, period_raw, value, {level} AS level, {recovered} AS recovered, context
         FROM (SELECT CAST(m.entity AS VARCHAR) AS entity, m.period AS period_raw,
                      CAST(m.value AS DOUBLE) AS value, {context} AS context
               FROM rule_m AS m)"
    )
}

/// Appends every classified row (passes included) under `eval_id`.
pub fn insert_results(rule: &RuleConfig, eval_id: i64, now: &str) -> String {
    format!(
        "INSERT INTO conveyor.rule_results
         SELECT {eval_id}, {name}, entity, CAST(period_raw AS VARCHAR), value, level, context, {now}
         FROM rule_c",
        name = literal(&rule.name)
    )
}

/// `rule_l`: each entity's latest period, the row its alert follows.
/// `rule_t`: the alert row each of those entities has after this
/// evaluation (`new_state` NULL: no alert row) and the transition made.
pub fn transitions(rule: &RuleConfig, now: &str) -> [String; 2] {
    let latest = "CREATE TEMP TABLE rule_l AS
         SELECT * FROM rule_c WHERE entity IS NOT NULL
         QUALIFY row_number() OVER (PARTITION BY entity ORDER BY period_raw DESC NULLS LAST) = 1"
        .to_string();
    let for_n = rule.for_evaluations;
    let t = format!(
        "CREATE TEMP TABLE rule_t AS
         WITH s AS (
           SELECT l.*, a.state AS old_state, a.level AS old_level, a.since AS old_since,
                  a.fired_at AS old_fired_at, a.resolved_at AS old_resolved_at,
                  l.level IN ('warn', 'critical') AS breach,
                  CASE WHEN l.level IN ('warn', 'critical')
                       THEN CASE WHEN a.state IN ('pending', 'firing') THEN a.consecutive ELSE 0 END + 1
                       ELSE 0 END AS new_consecutive
           FROM rule_l AS l
           LEFT JOIN (SELECT * FROM conveyor.alerts WHERE rule = {name}) AS a USING (entity)
         ), n AS (
           SELECT *,
             CASE
               WHEN breach AND (old_state = 'firing' OR new_consecutive >= {for_n}) THEN 'firing'
               WHEN breach THEN 'pending'
               -- hysteresis: a firing alert clears only once recovered
               WHEN old_state = 'firing' AND recovered THEN 'resolved'
               WHEN old_state = 'firing' THEN 'firing'
               -- a pending breach that stops was never an alert; one that
               -- fired before goes back to its resolved state
               WHEN old_state = 'pending' AND old_fired_at IS NOT NULL THEN 'resolved'
               WHEN old_state = 'pending' THEN NULL
               ELSE old_state
             END AS new_state
           FROM s
         )
         SELECT entity, old_state, new_state, new_consecutive,
                CASE WHEN breach THEN level ELSE old_level END AS level,
                CASE WHEN old_state = 'pending' AND new_state = 'resolved' THEN old_resolved_at
                     WHEN new_state IS DISTINCT FROM old_state THEN {now}
                     ELSE old_since END AS since,
                CAST(period_raw AS VARCHAR) AS period, value,
                CASE WHEN new_state = 'firing' AND old_state IS DISTINCT FROM 'firing' THEN {now}
                     ELSE old_fired_at END AS fired_at,
                CASE WHEN new_state = 'resolved' AND old_state = 'firing' THEN {now}
                     WHEN new_state = 'firing' THEN NULL
                     ELSE old_resolved_at END AS resolved_at
         FROM n",
        name = literal(&rule.name),
    );
    [latest, t]
}

/// Replaces the alert rows of the entities evaluated (DELETE + INSERT, as
/// the loader merges: no primary key for DuckDB to trip over mid-transaction).
pub fn apply(rule: &RuleConfig, eval_id: i64, now: &str) -> [String; 2] {
    let name = literal(&rule.name);
    [
        format!("DELETE FROM conveyor.alerts WHERE rule = {name} AND entity IN (SELECT entity FROM rule_t)"),
        format!(
            "INSERT INTO conveyor.alerts
             SELECT {name}, entity, new_state, level, since, {now}, {eval_id}, period, value,
                    new_consecutive, fired_at, resolved_at
             FROM rule_t WHERE new_state IS NOT NULL"
        ),
    ]
}
