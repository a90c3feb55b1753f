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
        format!(" AND rule IN ({})", names.join(", "))
    };
    format!(
        "SELECT rule, entity, state, level, last_value AS value, last_period AS period, \
                consecutive, since, fired_at, last_evaluated \
         FROM conveyor.alerts WHERE state IN ('firing', 'pending'){filter} \
         ORDER BY state = 'pending', level = 'warn', since, rule, entity"
    )
}
