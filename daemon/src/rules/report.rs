//! What `conveyor alerts` and `conveyor rules eval` print, as SQL over
//! `conveyor.alerts`, so it reads the same through the daemon's endpoint or
//! from the file.

use crate::warehouse::literal;

/// Firing and pending alerts (of the rules in `only`; all when empty),
/// worst first: firing before pending, critical before warn, oldest first.
pub fn alerts_sql(only: &[&str]) -> String {
    let filter = if only.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = only.iter().map(|n| literal(n)).collect();
        format!(" AND a.rule IN ({})", names.join(", "))
    };
    // The measure's context columns of the row the alert follows (names,
    // teams, …): an entity id alone rarely says who it is.
    format!(
        "SELECT a.rule, a.entity, a.state, a.level, a.last_value AS value, a.last_period AS period, \
                a.consecutive, a.since, a.fired_at, a.last_evaluated, CAST(r.context AS VARCHAR) AS context \
         FROM conveyor.alerts AS a \
         LEFT JOIN conveyor.rule_results AS r \
           ON r.eval_id = a.last_eval_id AND r.rule = a.rule AND r.entity = a.entity \
              AND r.period IS NOT DISTINCT FROM a.last_period \
         WHERE a.state IN ('firing', 'pending'){filter} \
         ORDER BY a.state = 'pending', a.level = 'warn', a.since, a.rule, a.entity"
    )
}
