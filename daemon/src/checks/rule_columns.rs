//! A rule checked against its measure's columns: every template variable
//! is a column or a built-in fact, and the columns it names (`peer.group`,
//! `entity_label`, an action's `to_column`) exist.

use conveyor_config::{RuleConfig, BUILTIN_VARIABLES};

use super::located;
use conveyor_config::Diagnostic;

/// Each template variable of `rule`'s actions that is neither a measure
/// column nor a built-in (and a `to_column`, `entity_label` or `peer.group`
/// the measure lacks), located.
pub fn check_templates(rule: &RuleConfig, columns: &[String]) -> Vec<Diagnostic> {
    let mut wrong = Vec::new();
    let returns = || Some(format!("it returns {}", columns.join(", ")));
    // The built-in subject and body need nothing the measure might lack.
    let email = rule
        .actions
        .iter()
        .flat_map(|a| [a.subject.as_ref(), a.body.as_ref(), a.html.as_ref()])
        .flatten();
    let webhook = rule.webhooks.iter().filter_map(|w| w.body.as_ref());
    for t in email.chain(webhook).chain(rule.next_step.as_ref()) {
        for v in &t.variables {
            if BUILTIN_VARIABLES.contains(&v.as_str()) || columns.iter().any(|c| c == v) {
                continue;
            }
            wrong.push(located(
                &t.at,
                None,
                format!("unknown template variable `{v}`"),
                Some(format!(
                    "the measure returns {}; also {}",
                    columns.join(", "),
                    BUILTIN_VARIABLES.join(", ")
                )),
            ));
        }
    }
    if let Some(group) = rule
        .peer
        .as_ref()
        .and_then(|p| p.group.as_ref())
        .filter(|g| !columns.contains(g))
    {
        wrong.push(located(
            &rule.at,
            Some("peer.group"),
            format!("the measure has no column `{group}`"),
            returns(),
        ));
    }
    if let Some(col) = rule.entity_label.as_ref().filter(|c| !columns.contains(c)) {
        wrong.push(located(
            &rule.at,
            Some("entity_label"),
            format!("the measure has no column `{col}`"),
            returns(),
        ));
    }
    for action in &rule.actions {
        if let Some(col) = action.to_column.as_ref().filter(|c| !columns.contains(c)) {
            wrong.push(located(
                &action.at,
                Some("to_column"),
                format!("the measure has no column `{col}`"),
                returns(),
            ));
        }
    }
    wrong
}
