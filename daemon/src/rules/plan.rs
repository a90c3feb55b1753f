//! The SQL of one rule evaluation, as text: classify the measure's rows,
//! append them to `conveyor.rule_results`, and compute each entity's alert
//! transition. Set-based; Rust never loops over rows.

use conveyor_config::{Direction, PeerCondition, RuleConfig};

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
/// With a `peer` condition each row is also judged against the other
/// members of its group in the same period.
pub fn classify(rule: &RuleConfig, context_columns: &[String]) -> String {
    let past = |threshold: &str| match rule.direction {
        Direction::Above => format!("value > {threshold}"),
        Direction::Below => format!("value < {threshold}"),
    };
    let condition = rule.peer.as_ref().map(|p| p.condition);
    let percentile = match condition {
        Some(PeerCondition::Percentile(q)) => Some(q),
        _ => None,
    };
    // Past the group's percentile, when the rule has one: a NULL threshold
    // (a group of NULLs) is never a breach.
    let past_peer = percentile.map(|_| format!("coalesce({}, false)", past("peer_threshold")));
    let mut level = String::from("CASE WHEN value IS NULL THEN 'no_data'");
    if let Some(c) = rule.critical {
        level += &format!(" WHEN {} THEN 'critical'", past(&num(c)));
    }
    match (rule.warn, &past_peer) {
        (Some(w), Some(peer)) => {
            level += &format!(" WHEN {} AND {peer} THEN 'warn'", past(&num(w)))
        }
        (Some(w), None) => level += &format!(" WHEN {} THEN 'warn'", past(&num(w))),
        (None, Some(peer)) => level += &format!(" WHEN {peer} THEN 'warn'"),
        (None, None) => {}
    }
    level += " ELSE 'ok' END";
    // At the resolve point counts as recovered: with the default (resolve =
    // warn) a value exactly at warn is neither a breach nor still firing.
    let mut recovered = match rule.direction {
        Direction::Above => format!("coalesce(value <= {}, false)", num(rule.resolve)),
        Direction::Below => format!("coalesce(value >= {}, false)", num(rule.resolve)),
    };
    // Without an absolute threshold the peers are the only yardstick: it
    // recovers once no longer past them. With `warn`, hysteresis is on the
    // absolute scale (being the lowest of a good team is not a breach).
    if let (Some(peer), None, None) = (&past_peer, rule.warn, rule.critical) {
        recovered = format!("({recovered} AND NOT {peer})");
    }
    let context = if context_columns.is_empty() {
        "CAST(NULL AS JSON)".to_string()
    } else {
        let pairs: Vec<String> = context_columns
            .iter()
            .map(|c| format!("{}, m.{}", literal(c), ident(c)))
            .collect();
        format!("json_object({})", pairs.join(", "))
    };
    // An entity without a group (NULL) has no peers: it is its own group,
    // never pooled with the other group-less entities.
    let group = match rule.peer.as_ref().and_then(|p| p.group.as_deref()) {
        Some(g) => format!(
            "coalesce('g:' || CAST(m.{} AS VARCHAR), 'e:' || CAST(m.entity AS VARCHAR))",
            ident(g)
        ),
        None => "''".to_string(),
    };
    let peers = "OVER (PARTITION BY peer_group, period_raw)";
    let threshold = match percentile {
        Some(q) => format!("quantile_cont(value, {}) {peers}", num(q / 100.0)),
        None => "CAST(NULL AS DOUBLE)".to_string(),
    };
    // What the templates tell of the peers: the group's median, its size
    // and how many of it breach (before `sole` keeps only a lone breach).
    let (median, size, breaching) = if rule.peer.is_some() {
        (
            format!("median(value) {peers}"),
            format!("count(*) {peers}"),
            format!("count(*) FILTER (WHERE raw_level IN ('warn', 'critical')) {peers}"),
        )
    } else {
        (
            "CAST(NULL AS DOUBLE)".to_string(),
            "CAST(NULL AS BIGINT)".to_string(),
            "CAST(NULL AS BIGINT)".to_string(),
        )
    };
    // Sole: a breach counts only when nobody else in the group breaches.
    let final_level = if condition == Some(PeerCondition::Sole) {
        format!(
            "CASE WHEN raw_level IN ('warn', 'critical')
                   AND count(*) FILTER (WHERE raw_level IN ('warn', 'critical')) {peers} > 1
                  THEN 'ok' ELSE raw_level END"
        )
    } else {
        "raw_level".to_string()
    };
    format!(
        "CREATE TEMP TABLE rule_c AS
         WITH b AS (
           SELECT CAST(m.entity AS VARCHAR) AS entity, m.period AS period_raw,
                  CAST(m.value AS DOUBLE) AS value, {context} AS context, {group} AS peer_group
           FROM rule_m AS m
         ), p AS (SELECT *, {threshold} AS peer_threshold, {median} AS peer_median, {size} AS peer_size FROM b),
         l AS (SELECT *, {level} AS raw_level, {recovered} AS recovered FROM p)
         SELECT entity, period_raw, value, {final_level} AS level, recovered, context, peer_threshold,
                peer_median, peer_size, {breaching} AS peer_breaching
         FROM l"
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
    let latest = match rule.n_of_m {
        None => "CREATE TEMP TABLE rule_l AS
         SELECT *, CAST(NULL AS BIGINT) AS breaches FROM rule_c WHERE entity IS NOT NULL
         QUALIFY row_number() OVER (PARTITION BY entity ORDER BY period_raw DESC NULLS LAST) = 1"
            .to_string(),
        // The latest period carries the verdict over the last M: breached
        // when N of them breach (critical when N are critical); recovered
        // once fewer than N breach and the latest is past `resolve`.
        Some((n, m)) => format!(
            "CREATE TEMP TABLE rule_l AS
             WITH r AS (
               SELECT *, row_number() OVER (PARTITION BY entity ORDER BY period_raw DESC NULLS LAST) AS rn
               FROM rule_c WHERE entity IS NOT NULL
             ), w AS (
               SELECT entity,
                      count(*) FILTER (WHERE level IN ('warn', 'critical')) AS breaches,
                      count(*) FILTER (WHERE level = 'critical') AS criticals
               FROM r WHERE rn <= {m} GROUP BY entity
             )
             SELECT r.entity, r.period_raw, r.value,
                    CASE WHEN w.criticals >= {n} THEN 'critical'
                         WHEN w.breaches >= {n} THEN 'warn'
                         WHEN r.level = 'no_data' THEN 'no_data'
                         ELSE 'ok' END AS level,
                    w.breaches < {n} AND r.recovered AS recovered,
                    r.context, r.peer_threshold, r.peer_median, r.peer_size, r.peer_breaching, w.breaches
             FROM r JOIN w USING (entity) WHERE r.rn = 1"
        ),
    };
    let for_n = rule.for_evaluations;
    // An entity with an alert that the measure no longer returns is absent:
    // its alert waits `absent_after` evaluations, then is over (resolved,
    // or dropped if it never fired). 0: it waits for ever.
    let gone = match rule.absent_after {
        0 => "false".to_string(),
        n => format!("coalesce(a.absent, 0) + 1 >= {n}"),
    };
    let t = format!(
        "CREATE TEMP TABLE rule_t AS
         WITH a AS (SELECT * FROM conveyor.alerts WHERE rule = {name}),
         s AS (
           SELECT l.entity, CAST(l.period_raw AS VARCHAR) AS period, l.value, l.level, l.recovered,
                  false AS absent, 0 AS new_absent, CAST(NULL AS BIGINT) AS seen_eval_id,
                  a.state AS old_state, a.level AS old_level, a.since AS old_since,
                  a.fired_at AS old_fired_at, a.resolved_at AS old_resolved_at,
                  a.last_notified_at AS old_notified_at, a.notified_level AS old_notified_level,
                  coalesce(l.level IN ('warn', 'critical'), false) AS breach,
                  CASE WHEN l.level IN ('warn', 'critical')
                       THEN CASE WHEN a.state IN ('pending', 'firing') THEN a.consecutive ELSE 0 END + 1
                       ELSE 0 END AS new_consecutive
           FROM rule_l AS l
           LEFT JOIN a USING (entity)
           UNION ALL
           SELECT a.entity, a.last_period, a.last_value, CAST(NULL AS VARCHAR), {gone},
                  true, coalesce(a.absent, 0) + 1, a.last_eval_id,
                  a.state, a.level, a.since, a.fired_at, a.resolved_at,
                  a.last_notified_at, a.notified_level, false, a.consecutive
           FROM a
           WHERE a.state IN ('pending', 'firing')
             AND a.entity NOT IN (SELECT entity FROM rule_l)
         ), n AS (
           SELECT *,
             CASE
               -- absent, not for long enough yet: as it was
               WHEN absent AND NOT recovered THEN old_state
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
         , o AS (
         SELECT entity, old_state, new_state, new_consecutive, absent, new_absent, seen_eval_id,
                CASE WHEN breach THEN level ELSE old_level END AS level,
                CASE WHEN old_state = 'pending' AND new_state = 'resolved' THEN old_resolved_at
                     WHEN new_state IS DISTINCT FROM old_state THEN {now}
                     ELSE old_since END AS since,
                period, value,
                CASE WHEN new_state = 'firing' AND old_state IS DISTINCT FROM 'firing' THEN {now}
                     ELSE old_fired_at END AS fired_at,
                CASE WHEN new_state = 'resolved' AND old_state = 'firing' THEN {now}
                     WHEN new_state = 'firing' THEN NULL
                     ELSE old_resolved_at END AS resolved_at,
                old_notified_at, old_fired_at, old_notified_level,
                EXISTS (SELECT 1 FROM conveyor.silences AS x
                        WHERE x.rule = {name} AND (x.entity IS NULL OR x.entity = n.entity)
                          AND x.removed_at IS NULL AND x.starts_at <= {now} AND {now} < x.expires_at) AS silenced
         FROM n
         ), d AS (
           SELECT *,
             -- firing and not announced since it (last) started firing: a
             -- silence or a cooldown delays the announcement, never drops it
             new_state = 'firing' AND (old_notified_at IS NULL OR old_notified_at < fired_at) AS unannounced
           FROM o
         )
         SELECT entity, old_state, new_state, new_consecutive, absent, new_absent, seen_eval_id,
                level, since, period, value,
                fired_at, resolved_at, silenced, old_notified_at, old_notified_level,
                CASE WHEN silenced THEN NULL
                     WHEN unannounced AND NOT {cooling} THEN 'firing'
                     WHEN unannounced THEN NULL
                     -- announced as warn, critical now: worth telling (once)
                     WHEN new_state = 'firing' AND NOT absent AND level = 'critical'
                          AND old_notified_level IS DISTINCT FROM 'critical' THEN 'escalated'
                     -- no reminder with stale figures while the entity is away
                     WHEN new_state = 'firing' AND NOT absent AND {repeat_due} THEN 'repeat'
                     -- a resolve whose firing was announced and which was not
                     -- announced itself yet (a silence delays it too)
                     WHEN new_state = 'resolved' AND {notify_resolved}
                          AND old_notified_at >= fired_at AND old_notified_at < resolved_at THEN 'resolved'
                END AS notify
         FROM d",
        cooling = match rule.cooldown_secs {
            Some(secs) => format!("coalesce(old_notified_at > {now} - INTERVAL ({secs}) SECOND, false)"),
            None => "false".to_string(),
        },
        repeat_due = match rule.repeat_secs {
            Some(secs) => format!("coalesce(old_notified_at <= {now} - INTERVAL ({secs}) SECOND, false)"),
            None => "false".to_string(),
        },
        notify_resolved = rule.notify_resolved,
        name = literal(&rule.name),
    );
    [latest, t]
}

/// Replaces the alert rows of the entities evaluated (DELETE + INSERT, as
/// the loader merges: no primary key for DuckDB to trip over mid-transaction).
pub fn apply(rule: &RuleConfig, eval_id: i64, now: &str) -> [String; 2] {
    let name = literal(&rule.name);
    // A rule without actions announces nothing: actions added later then
    // announce the alerts already firing.
    let announces = !rule.actions.is_empty() || !rule.webhooks.is_empty();
    [
        format!("DELETE FROM conveyor.alerts WHERE rule = {name} AND entity IN (SELECT entity FROM rule_t)"),
        format!(
            "INSERT INTO conveyor.alerts
             (rule, entity, state, level, since, last_evaluated, last_eval_id, last_period,
              last_value, consecutive, fired_at, resolved_at, last_notified_at, notified_level, absent)
             SELECT {name}, entity, new_state, level, since, {now},
                    -- an absent entity keeps the evaluation that last saw it
                    -- (its context, for the notice when it resolves)
                    coalesce(seen_eval_id, {eval_id}), period, value,
                    new_consecutive, fired_at, resolved_at,
                    CASE WHEN notify IS NOT NULL AND {announces} THEN {now} ELSE old_notified_at END,
                    CASE WHEN notify IS NOT NULL AND {announces} THEN level ELSE old_notified_level END,
                    new_absent
             FROM rule_t WHERE new_state IS NOT NULL"
        ),
    ]
}
