//! `[[rules]]` entries: a measure (SQL, one row per entity per period), the
//! thresholds it is judged by, how long a breach must last and when it counts
//! as over — parsed with spans and validated into [`RuleConfig`].

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{Located, Schedule};
use crate::validate::Checker;

const DIRECTIONS: &str = "\"above\", \"below\"";

/// `history` when the rule does not set it: two months of weeks.
pub const DEFAULT_HISTORY_PERIODS: u32 = 8;
/// `absent_after` when the rule does not set it: an entity missing from
/// the latest evaluation is over (as Alertmanager resolves what stops
/// arriving).
pub const DEFAULT_ABSENT_AFTER: u32 = 1;

/// One performance rule.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Also the `rule` column of `conveyor.rule_results` and `conveyor.alerts`.
    pub name: String,
    pub description: Option<String>,
    /// Who answers for the rule (free text: a team or an address).
    pub owner: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// What the rule watches, in a few words ("CSAT below target"): the
    /// built-in e-mail's subject and heading. Default: the name, spaced.
    pub title: String,
    /// The measure column a person knows an entity by (`agent_name`); the
    /// entity itself when unset (a reconciliation measure: its `label`).
    pub entity_label: Option<String>,
    /// What the recipient should do, rendered like the action templates
    /// ("Please book a coaching session this week").
    pub next_step: Option<crate::actions::Template>,
    /// Periods of the entity's history templates get (`history`).
    pub history_periods: u32,
    /// Evaluations in a row an entity may be missing from the measure
    /// before its alert resolves (0: never).
    pub absent_after: u32,
    /// The reconciliation a `{ reconciliation = … }` measure reads.
    pub reconciliation: Option<String>,
    /// A SELECT yielding columns `entity`, `period`, `value` and any
    /// context columns, one row per entity per period.
    pub measure: String,
    pub direction: Direction,
    /// At least one of `warn` and `critical` is set.
    pub warn: Option<f64>,
    pub critical: Option<f64>,
    /// Consecutive breaching evaluations before an alert fires (≥ 1).
    pub for_evaluations: u32,
    /// A firing alert resolves only once the value is back on the good side
    /// of this (hysteresis); defaults to `warn` (else `critical`).
    pub resolve: f64,
    /// Evaluate after any of these sources or reconciliations ran.
    pub after: Vec<String>,
    /// Evaluate on this schedule as well (daemon only).
    pub schedule: Option<Schedule>,
    /// Sent when an alert starts firing, through the outbox.
    pub actions: Vec<crate::actions::EmailAction>,
    /// Webhook actions (`type = "webhook"`), one POST per transition.
    pub webhooks: Vec<crate::actions::WebhookAction>,
    /// Also notify when a firing alert resolves.
    pub notify_resolved: bool,
    /// Breach only when N of the entity's last M periods breach (`n_of_m = [N, M]`).
    pub n_of_m: Option<(u32, u32)>,
    /// Judge each entity against its peers (the other members of its group
    /// in the same period).
    pub peer: Option<Peer>,
    /// Notify again while an alert keeps firing, this often (seconds).
    pub repeat_secs: Option<u64>,
    /// After a notification about an entity, none about it that starts
    /// firing again within this long (seconds): flapping stays quiet.
    pub cooldown_secs: Option<u64>,
    pub at: Located,
}

/// `peer = { group = "team", percentile = 10 }` or `{ group = "team", sole = true }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// The measure's context column that names the group; without it,
    /// everyone in the period is one group.
    pub group: Option<String>,
    pub condition: PeerCondition,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeerCondition {
    /// Breach when past the group's Nth percentile (in the rule's direction)
    /// — and past `warn`, when it is set.
    Percentile(f64),
    /// A breach counts only when the entity is the one member of its group
    /// breaching in that period ("nine of ten meet the objective").
    Sole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    group: Option<String>,
    percentile: Option<f64>,
    sole: Option<bool>,
}

/// Which side of a threshold is a breach. A value exactly at a threshold
/// does not breach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Breach when the value is greater than the threshold (e.g. handle time).
    Above,
    /// Breach when the value is less than the threshold (e.g. CSAT).
    Below,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Spanned<String>,
    description: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    title: Option<Spanned<String>>,
    entity_label: Option<Spanned<String>>,
    next_step: Option<Spanned<String>>,
    history: Option<Spanned<i64>>,
    absent_after: Option<Spanned<i64>>,
    measure: Option<Spanned<toml::Value>>,
    direction: Option<Spanned<String>>,
    warn: Option<Spanned<toml::Value>>,
    critical: Option<Spanned<toml::Value>>,
    #[serde(rename = "for")]
    for_evaluations: Option<Spanned<i64>>,
    resolve: Option<Spanned<toml::Value>>,
    after: Option<Vec<Spanned<String>>>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    actions: Vec<Spanned<crate::actions::RawAction>>,
    notify_resolved: Option<bool>,
    n_of_m: Option<Spanned<Vec<i64>>>,
    peer: Option<Spanned<RawPeer>>,
    repeat: Option<Spanned<String>>,
    cooldown: Option<Spanned<String>>,
}

impl Checker<'_> {
    /// Validates every `[[rules]]` entry; `after` may name any of `sources`
    /// or `reconciles`.
    pub(crate) fn rules(
        &mut self,
        raws: Vec<Spanned<RawRule>>,
        sources: &[String],
        reconciles: &[String],
        recons: &[crate::ReconcileConfig],
    ) -> Vec<RuleConfig> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let key = format!("rules[{i}]");
            let span = raw.span();
            let raw = raw.into_inner();
            if !seen.insert(raw.name.get_ref().clone()) {
                self.error(
                    raw.name.span(),
                    &format!("{key}.name"),
                    format!("duplicate rule name `{}`", raw.name.get_ref()),
                );
            }
            if let Some(r) = self.rule(&key, span, raw, sources, reconciles, recons) {
                out.push(r);
            }
        }
        out
    }

    fn rule(
        &mut self,
        key: &str,
        span: Range<usize>,
        raw: RawRule,
        sources: &[String],
        reconciles: &[String],
        recons: &[crate::ReconcileConfig],
    ) -> Option<RuleConfig> {
        let errors_before = self.error_count();
        self.identifier(&raw.name, &format!("{key}.name"), "rule name");
        let measure = match &raw.measure {
            Some(m) => self.measure(key, m, reconciles, recons),
            None => {
                self.error(
                    span.clone(),
                    &format!("{key}.measure"),
                    "missing key `measure`",
                )
                .hint(
                    "a SELECT with columns entity, period, value (one row per entity per period), or a shorthand table",
                );
                None
            }
        };
        let direction = match raw.direction.as_ref().map(|d| d.get_ref().as_str()) {
            Some("above") => Direction::Above,
            Some("below") => Direction::Below,
            Some(other) => {
                let at = raw
                    .direction
                    .as_ref()
                    .map(|d| d.span())
                    .unwrap_or(span.clone());
                self.error(
                    at,
                    &format!("{key}.direction"),
                    format!("unknown direction `{other}`"),
                )
                .hint(format!("one of: {DIRECTIONS}"));
                Direction::Above
            }
            None => {
                self.error(
                    span.clone(),
                    &format!("{key}.direction"),
                    "missing key `direction`",
                )
                .hint(format!(
                    "one of: {DIRECTIONS} — which side of the threshold is a breach"
                ));
                Direction::Above
            }
        };
        let warn = raw.warn.as_ref().and_then(|v| self.number(key, "warn", v));
        let critical = raw
            .critical
            .as_ref()
            .and_then(|v| self.number(key, "critical", v));
        let resolve = raw
            .resolve
            .as_ref()
            .and_then(|v| self.number(key, "resolve", v));
        let peer = raw.peer.as_ref().and_then(|p| self.peer(key, p));
        let by_percentile = matches!(
            peer,
            Some(Peer {
                condition: PeerCondition::Percentile(_),
                ..
            })
        );
        if raw.warn.is_none() && raw.critical.is_none() && !by_percentile {
            self.error(span.clone(), key, "needs `warn`, `critical` or both")
                .hint("the value past which an entity breaches, e.g. warn = 4.2 (or a peer percentile)");
        }
        // A worse level must lie further along the breach direction, and the
        // resolve point on the good side of the first threshold crossed.
        let worse = |a: f64, b: f64| match direction {
            Direction::Above => a > b,
            Direction::Below => a < b,
        };
        if let (Some(w), Some(c), Some(at)) = (warn, critical, raw.critical.as_ref()) {
            if worse(w, c) {
                self.error(
                    at.span(),
                    &format!("{key}.critical"),
                    format!(
                        "critical {c} is less severe than warn {w} for direction `{}`",
                        direction.as_str()
                    ),
                )
                .hint("with direction = \"above\" critical ≥ warn; with \"below\" critical ≤ warn");
            }
        }
        let first = warn.or(critical);
        if let (Some(r), Some(f), Some(at)) = (resolve, first, raw.resolve.as_ref()) {
            if worse(r, f) {
                self.error(at.span(), &format!("{key}.resolve"), format!("resolve {r} lies past the breach threshold {f}"))
                    .hint("resolve is where a firing alert clears: below warn for \"above\", above warn for \"below\"");
            }
        }
        let for_evaluations = match &raw.for_evaluations {
            None => 1,
            Some(n) if (1..=10_000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                self.error(
                    n.span(),
                    &format!("{key}.for"),
                    "must be a whole number of evaluations ≥ 1",
                )
                .hint("1 fires on the first breach; 3 needs three breaching evaluations in a row");
                1
            }
        };
        for a in raw.after.iter().flatten() {
            let n = a.get_ref();
            if !sources.contains(n) && !reconciles.contains(n) {
                let mut known: Vec<&str> = sources
                    .iter()
                    .chain(reconciles)
                    .map(String::as_str)
                    .collect();
                known.sort_unstable();
                self.error(
                    a.span(),
                    &format!("{key}.after"),
                    format!("no source or reconciliation named `{n}`"),
                )
                .hint(format!("configured: {}", known.join(", ")));
            }
        }
        let n_of_m = raw.n_of_m.as_ref().and_then(|v| self.n_of_m(key, v));
        let repeat_secs = raw
            .repeat
            .as_ref()
            .and_then(|d| self.interval(key, "repeat", d));
        let cooldown_secs = raw
            .cooldown
            .as_ref()
            .and_then(|d| self.interval(key, "cooldown", d));
        let schedule = self.schedule(key, raw.schedule.as_ref(), raw.timezone.as_ref());
        let (actions, webhooks) = self.actions(key, raw.actions);
        let count =
            |c: &mut Self, v: &Option<Spanned<i64>>, name: &str, default: u32, min: i64| match v {
                None => default,
                Some(n) if (min..=1000).contains(n.get_ref()) => *n.get_ref() as u32,
                Some(n) => {
                    c.error(
                        n.span(),
                        &format!("{key}.{name}"),
                        format!("must be a whole number {min}–1000"),
                    );
                    default
                }
            };
        let history_periods = count(self, &raw.history, "history", DEFAULT_HISTORY_PERIODS, 1);
        let absent_after = count(
            self,
            &raw.absent_after,
            "absent_after",
            DEFAULT_ABSENT_AFTER,
            0,
        );
        let entity_label = raw.entity_label.as_ref().map(|l| {
            let plain = l
                .get_ref()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && l.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                self.error(
                    l.span(),
                    &format!("{key}.entity_label"),
                    format!("`{}` is not a plain column name", l.get_ref()),
                )
                .hint("a column of the measure, e.g. entity_label = \"agent_name\"");
            }
            l.get_ref().clone()
        });
        let next_step = raw
            .next_step
            .map(|n| self.template(key, "next_step", Some(n), &span));
        let title = match &raw.title {
            Some(t)
                if t.get_ref().trim().is_empty() || t.get_ref().chars().any(char::is_control) =>
            {
                self.error(
                    t.span(),
                    &format!("{key}.title"),
                    "must be one line of text",
                );
                String::new()
            }
            Some(t) => t.get_ref().trim().to_string(),
            None => spaced(raw.name.get_ref()),
        };
        if self.error_count() > errors_before {
            return None;
        }
        let measure = measure?;
        Some(RuleConfig {
            title,
            entity_label,
            next_step: next_step.flatten(),
            history_periods,
            absent_after,
            reconciliation: measure.reconciliation,
            name: raw.name.into_inner(),
            description: raw.description,
            owner: raw.owner,
            labels: raw.labels,
            measure: measure.sql,
            direction,
            warn,
            critical,
            for_evaluations,
            // A percentile-only rule has no absolute threshold: it resolves
            // once the entity is no longer past its peers.
            resolve: resolve.or(first).unwrap_or(match direction {
                Direction::Above => f64::INFINITY,
                Direction::Below => f64::NEG_INFINITY,
            }),
            after: raw
                .after
                .into_iter()
                .flatten()
                .map(Spanned::into_inner)
                .collect(),
            schedule: schedule.flatten(),
            actions,
            webhooks,
            notify_resolved: raw.notify_resolved.unwrap_or(false),
            n_of_m,
            peer,
            repeat_secs,
            cooldown_secs,
            at: self.located(span, key),
        })
    }

    fn n_of_m(&mut self, key: &str, v: &Spanned<Vec<i64>>) -> Option<(u32, u32)> {
        match v.get_ref().as_slice() {
            [n, m] if 1 <= *n && n <= m && *m <= 1000 => Some((*n as u32, *m as u32)),
            _ => {
                self.error(
                    v.span(),
                    &format!("{key}.n_of_m"),
                    "must be [N, M] with 1 ≤ N ≤ M ≤ 1000",
                )
                .hint("n_of_m = [3, 4]: breached in 3 of the entity's last 4 periods");
                None
            }
        }
    }

    fn peer(&mut self, key: &str, raw: &Spanned<RawPeer>) -> Option<Peer> {
        let p = raw.get_ref();
        let key = format!("{key}.peer");
        let condition = match (p.percentile, p.sole) {
            (Some(q), None | Some(false)) if q > 0.0 && q < 100.0 => PeerCondition::Percentile(q),
            (Some(_), None | Some(false)) => {
                self.error(raw.span(), &key, "`percentile` must lie between 0 and 100");
                return None;
            }
            (None, Some(true)) => PeerCondition::Sole,
            _ => {
                self.error(raw.span(), &key, "needs exactly one of `percentile` or `sole = true`")
                    .hint("percentile = 10: past the group's 10th percentile; sole = true: the only member of the group breaching");
                return None;
            }
        };
        if let Some(g) = &p.group {
            let plain = g
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                self.error(
                    raw.span(),
                    &key,
                    format!("group `{g}` is not a plain column name"),
                );
                return None;
            }
        }
        Some(Peer {
            group: p.group.clone(),
            condition,
        })
    }

    /// `"4h"`, `"7d"`, `"30m"` → seconds.
    fn interval(&mut self, key: &str, name: &str, v: &Spanned<String>) -> Option<u64> {
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d.as_secs() >= 1 => Some(d.as_secs()),
            Ok(_) => {
                self.error(
                    v.span(),
                    &format!("{key}.{name}"),
                    "must be at least one second",
                );
                None
            }
            Err(e) => {
                self.error(
                    v.span(),
                    &format!("{key}.{name}"),
                    format!("`{}` is not a duration: {e}", v.get_ref()),
                )
                .hint("e.g. \"30m\", \"4h\", \"7d\"");
                None
            }
        }
    }

    fn number(&mut self, key: &str, name: &str, v: &Spanned<toml::Value>) -> Option<f64> {
        let n = match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) if f.is_finite() => Some(*f),
            _ => None,
        };
        if n.is_none() {
            self.error(
                v.span(),
                &format!("{key}.{name}"),
                "must be a finite number",
            );
        }
        n
    }
}

/// `csat_below_target` → `Csat below target`: a title for a rule without one.
fn spaced(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"
"#;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(&format!("{BASE}{extra}"), Path::new("/c/conveyor.toml"))
    }

    #[test]
    fn rules_a_full_entry_builds_the_model() {
        let c = parse(
            r#"
[[rules]]
name = "csat_low"
description = "Agents below the CSAT target"
owner = "ops@example.com"
labels = { team = "support" }
measure = "SELECT agent AS entity, week AS period, csat AS value, supervisor FROM t;"
direction = "below"
warn = 4.2
critical = 3
for = 3
resolve = 4.4
after = ["ats"]
schedule = "0 6 * * mon"
"#,
        )
        .unwrap();
        let r = &c.rules[0];
        assert_eq!(
            r.measure,
            "SELECT agent AS entity, week AS period, csat AS value, supervisor FROM t"
        );
        assert_eq!(r.direction, Direction::Below);
        assert_eq!(
            (r.warn, r.critical, r.resolve, r.for_evaluations),
            (Some(4.2), Some(3.0), 4.4, 3)
        );
        assert_eq!(r.labels.get("team").map(String::as_str), Some("support"));
        assert_eq!(r.owner.as_deref(), Some("ops@example.com"));
        assert_eq!(r.after, vec!["ats".to_string()]);
        assert!(r.schedule.is_some());
        assert_eq!((r.at.line, r.at.key.as_str()), (13, "rules[0]"));
    }

    #[test]
    fn rules_defaults_resolve_to_warn_then_critical_and_for_to_one() {
        let c = parse(
            r#"
[[rules]]
name = "a"
measure = "SELECT 1"
direction = "above"
warn = 10
critical = 20

[[rules]]
name = "b"
measure = "SELECT 1"
direction = "above"
critical = 20
"#,
        )
        .unwrap();
        assert_eq!((c.rules[0].resolve, c.rules[0].for_evaluations), (10.0, 1));
        assert_eq!(c.rules[1].resolve, 20.0);
    }

    #[test]
    fn rules_every_mistake_is_reported_with_its_location() {
        let errs = parse(
            r#"
[[reconcile]]
name = "placed"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]

[[rules]]
name = "no_measure"
direction = "sideways"
warn = 1
after = ["placed", "crm"]

[[rules]]
name = "bad_levels"
measure = "SELECT 1"
direction = "above"
warn = 10
critical = 5
resolve = 12
for = 0

[[rules]]
name = "nothing"
measure = "SELECT 1"
direction = "below"
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:19:1: rules[0].measure: missing key `measure`",
            "/c/conveyor.toml:21:13: rules[0].direction: unknown direction `sideways`",
            "/c/conveyor.toml:23:20: rules[0].after: no source or reconciliation named `crm` (hint: configured: ats, placed)",
            "/c/conveyor.toml:30:12: rules[1].critical: critical 5 is less severe than warn 10 for direction `above`",
            "/c/conveyor.toml:31:11: rules[1].resolve: resolve 12 lies past the breach threshold 10",
            "/c/conveyor.toml:32:7: rules[1].for: must be a whole number",
            "/c/conveyor.toml:34:1: rules[2]: needs `warn`, `critical` or both",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn rules_an_unknown_key_is_located() {
        let errs = parse(
            r#"
[[rules]]
name = "r"
measure = "SELECT 1"
direction = "above"
warn = 1
threshold = 2
"#,
        )
        .unwrap_err();
        let text = errs.to_string();
        assert!(
            text.starts_with("/c/conveyor.toml:18:1: rules: unknown field `threshold`"),
            "{text}"
        );
    }

    #[test]
    fn rules_email_actions_and_smtp_build_the_model() {
        let c = parse(
            r#"
[smtp]
host = "smtp.example.com"
username = "conveyor"
password = "env:PATH"
from = "Conveyor <ops@example.com>"

[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 4
notify_resolved = true
[[rules.actions]]
type = "email"
to = ["ops@example.com"]
to_column = "supervisor"
subject = "{{ entity }} is {{ level }}"
body = "{% if value < 3 %}{{ agent_name }}{% endif %}"
"#,
        )
        .unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.port, smtp.tls, smtp.max_attempts),
            (587, crate::SmtpTls::StartTls, 8)
        );
        let r = &c.rules[0];
        assert!(r.notify_resolved);
        let a = &r.actions[0];
        assert_eq!(a.to_column.as_deref(), Some("supervisor"));
        let body = a.body.as_ref().unwrap();
        let vars: Vec<&str> = body.variables.iter().map(String::as_str).collect();
        assert_eq!(vars, ["agent_name", "value"]);
        let subject = a.subject.as_ref().unwrap();
        assert_eq!(
            (subject.at.line, subject.at.key.as_str()),
            (29, "rules[0].actions[0].subject")
        );
    }

    #[test]
    fn rules_action_mistakes_are_located() {
        let errs = parse(
            r#"
[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 4
[[rules.actions]]
type = "email"
subject = "{{ entity "
body = "x"
[[rules.actions]]
type = "pager"
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:18:1: rules[0].actions[0]: needs `to`, `to_column` or both",
            "/c/conveyor.toml:20:11: rules[0].actions[0].subject: template does not parse",
            "/c/conveyor.toml:23:8: rules[0].actions[1].type: unknown action type `pager`",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn rules_an_email_action_without_smtp_is_an_error() {
        let errs = parse(
            r#"
[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 4
[[rules.actions]]
type = "email"
to = ["ops@example.com"]
subject = "s"
body = "b"
"#,
        )
        .unwrap_err();
        assert!(
            errs.to_string()
                .contains("rules[0].actions[0]: an e-mail action needs an [smtp] section"),
            "{errs}"
        );
    }

    #[test]
    fn rules_webhook_actions_build_the_model_and_locate_mistakes() {
        let config = parse(
            r#"
[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 4
[[rules.actions]]
type = "webhook"
url = "https://lms.example.com/enrol"
secret = "env:HOME"
body = '{"agent": {{ entity|tojson }}}'
"#,
        )
        .unwrap();
        let w = &config.rules[0].webhooks[0];
        assert!(config.rules[0].actions.is_empty());
        assert_eq!(w.url, "https://lms.example.com/enrol");
        assert_eq!(w.secret, Some(crate::SecretRef::Env("HOME".into())));
        assert_eq!(
            w.body
                .as_ref()
                .unwrap()
                .variables
                .iter()
                .collect::<Vec<_>>(),
            ["entity"]
        );

        let errs = parse(
            r#"
[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 4
[[rules.actions]]
type = "webhook"
url = "ftp://x"
secret = "hunter2-inline"
[[rules.actions]]
type = "webhook"
to = ["a@example.com"]
body = "{{ x "
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        assert!(
            lines.iter().all(|l| !l.contains("hunter2-inline")),
            "{lines:#?}"
        );
        let expect = [
            "/c/conveyor.toml:20:7: rules[0].actions[0].url: `ftp://x` is not an http(s) URL",
            "/c/conveyor.toml:21:10: rules[0].actions[0].secret: a secret must be a reference",
            "/c/conveyor.toml:22:1: rules[0].actions[1].to: `to` belongs to an e-mail action",
            "/c/conveyor.toml:22:1: rules[0].actions[1].url: missing key `url`",
            "/c/conveyor.toml:25:8: rules[0].actions[1].body: template does not parse",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn rules_lifecycle_peer_and_shorthand_keys_build_the_model() {
        let c = parse(
            r#"
[[reconcile]]
name = "placed"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]

[[rules]]
name = "csat"
measure = { view = "agent_daily", aggregate = "avg", column = "csat", by = "agent_id", period = "week", time = "day", periods = 4, context = ["team"] }
direction = "below"
warn = 3.5
n_of_m = [3, 4]
repeat = "1d"
cooldown = "6h"

[[rules]]
name = "quality"
measure = "SELECT 1"
direction = "below"
warn = 80
peer = { group = "team", sole = true }

[[rules]]
name = "slowest"
measure = "SELECT 1"
direction = "above"
peer = { percentile = 90 }

[[rules]]
name = "never_invoiced"
measure = { reconciliation = "placed", statuses = ["missing_right"] }
direction = "above"
warn = 0
"#,
        )
        .unwrap();
        let [csat, quality, slowest, invoiced] = &c.rules[..] else {
            panic!("four rules")
        };
        assert_eq!(csat.n_of_m, Some((3, 4)));
        assert_eq!(
            (csat.repeat_secs, csat.cooldown_secs),
            (Some(86_400), Some(21_600))
        );
        assert!(csat.measure.contains("avg(csat)") && csat.measure.contains("model.agent_daily"));
        assert_eq!(
            quality.peer,
            Some(Peer {
                group: Some("team".into()),
                condition: PeerCondition::Sole
            })
        );
        assert_eq!(
            slowest.peer.as_ref().unwrap().condition,
            PeerCondition::Percentile(90.0)
        );
        assert_eq!(slowest.resolve, f64::INFINITY);
        assert!(
            invoiced.measure.contains("status IN ('missing_right')"),
            "{}",
            invoiced.measure
        );
    }

    #[test]
    fn rules_lifecycle_peer_and_shorthand_mistakes_are_located() {
        let errs = parse(
            r#"
[[rules]]
name = "a"
measure = { view = "agent_daily", aggregate = "mode", column = "csat" }
direction = "below"
warn = 3
n_of_m = [5, 4]
repeat = "soon"

[[rules]]
name = "b"
measure = { reconciliation = "nope" }
direction = "above"
peer = { group = "team" }
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:15:11: rules[0].measure: the shorthand lacks by, period, time",
            "/c/conveyor.toml:18:10: rules[0].n_of_m: must be [N, M] with 1 ≤ N ≤ M ≤ 1000",
            "/c/conveyor.toml:19:10: rules[0].repeat: `soon` is not a duration",
            "/c/conveyor.toml:21:1: rules[1]: needs `warn`, `critical` or both",
            "/c/conveyor.toml:23:11: rules[1].measure: no reconciliation named `nope`",
            "/c/conveyor.toml:25:8: rules[1].peer: needs exactly one of `percentile` or `sole = true`",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn rules_alert_facts_keys_build_the_model_with_defaults() {
        let c = parse(
            r#"
[smtp]
host = "smtp.example.com"
from = "c@example.com"

[[reconcile]]
name = "hours"
left_name = "payroll"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]

[[rules]]
name = "csat_below_target"
measure = "SELECT 1"
direction = "below"
warn = 3.5
title = "CSAT below target"
entity_label = "agent_name"
next_step = "Book a coaching session with {{ agent_name }}."
history = 12
absent_after = 3
[[rules.actions]]
type = "email"
to = ["ops@example.com"]

[[rules]]
name = "hours_disagree"
measure = { reconciliation = "hours" }
direction = "above"
warn = 0
"#,
        )
        .unwrap();
        let [csat, hours] = &c.rules[..] else {
            panic!("two rules")
        };
        assert_eq!(csat.title, "CSAT below target");
        assert_eq!(csat.entity_label.as_deref(), Some("agent_name"));
        let next = csat.next_step.as_ref().unwrap();
        assert_eq!(next.variables.iter().collect::<Vec<_>>(), ["agent_name"]);
        assert_eq!((csat.history_periods, csat.absent_after), (12, 3));
        // An action without subject and body gets the built-in e-mail.
        let a = &csat.actions[0];
        assert!(a.subject.is_none() && a.body.is_none() && a.html.is_none());
        assert_eq!(csat.reconciliation, None);
        assert_eq!(hours.title, "Hours disagree");
        assert_eq!(
            (hours.history_periods, hours.absent_after),
            (DEFAULT_HISTORY_PERIODS, DEFAULT_ABSENT_AFTER)
        );
        assert_eq!(hours.reconciliation.as_deref(), Some("hours"));
        assert!(
            hours.measure.contains("'payroll' AS left_name"),
            "{}",
            hours.measure
        );
        assert_eq!(c.reconciles[0].right_name, "right");
    }

    #[test]
    fn rules_alert_facts_mistakes_are_located() {
        let errs = parse(
            r#"
[[reconcile]]
name = "hours"
left_name = "value"
right_name = "Contact Center"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]

[[rules]]
name = "r"
measure = "SELECT 1"
direction = "below"
warn = 3.5
entity_label = "name; DROP"
next_step = "{{ oops "
history = 0
absent_after = -1
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:15:13: reconcile[0].left_name: `value` is already a template variable",
            "/c/conveyor.toml:16:14: reconcile[0].right_name: `Contact Center` must be lower-case",
            "/c/conveyor.toml:26:16: rules[0].entity_label: `name; DROP` is not a plain column name",
            "/c/conveyor.toml:27:13: rules[0].next_step: template does not parse",
            "/c/conveyor.toml:28:11: rules[0].history: must be a whole number 1–1000",
            "/c/conveyor.toml:29:16: rules[0].absent_after: must be a whole number 0–1000",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn rules_smtp_ca_file_needs_tls_and_a_readable_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.path().join("notes.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let smtp = |tls: &str, ca: &std::path::Path| {
            parse(&format!(
                "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"c@example.com\"\ntls = \"{tls}\"\nca_file = \"{}\"\n",
                ca.display()
            ))
        };
        let ok = smtp("starttls", &pem).unwrap();
        assert_eq!(ok.smtp.unwrap().ca_file.as_deref(), Some(pem.as_path()));
        for (tls, ca, want) in [
            ("none", pem.as_path(), "smtp.ca_file: a CA file needs tls"),
            ("tls", not_pem.as_path(), "holds no PEM certificate"),
            (
                "tls",
                dir.path().join("missing.pem").as_path(),
                "cannot read",
            ),
        ] {
            let errs = smtp(tls, ca).unwrap_err().to_string();
            assert!(errs.contains(want), "{tls}: {errs}");
        }
    }
}
