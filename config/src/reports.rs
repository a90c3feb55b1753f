//! `[[reports]]` entries: a scorecard for a stakeholder — who gets it
//! (fixed addresses, or one report per row of a recipients query), when
//! (a cron schedule), and its sections (KPIs against goals, a trend, a
//! correlation between two measures, or a table of a query) — parsed with
//! spans and validated into [`ReportConfig`].
//!
//! A section's measures are rule measures (SQL with `entity`, `period`,
//! `value`, or the same shorthand over a `model.*` view), so a KPI on a
//! scorecard and the rule that alerts on it read the numbers the same way.

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::actions::Template;
use crate::model::{Located, Schedule};
use crate::reconcile::ReconcileConfig;
use crate::rules::Direction;
use crate::validate::Checker;

/// Periods a section looks back over when it does not say.
pub const DEFAULT_REPORT_PERIODS: u32 = 8;

const SECTION_TYPES: &str = "\"kpis\", \"trend\", \"correlation\", \"table\"";

/// One scorecard.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Also the report's key in the outbox.
    pub name: String,
    /// The subject and heading; may use the recipients query's columns
    /// (`"Team {{ team }} — week {{ period }}"`).
    pub title: Template,
    /// A paragraph before the sections (a template like the title).
    pub intro: Option<Template>,
    pub schedule: Option<Schedule>,
    /// Every report goes to these addresses (with `recipients`: as well).
    pub to: Vec<String>,
    /// A SELECT with an `email` column: one report per row, addressed to
    /// it; the row's other columns are the report's variables — in the
    /// title and intro, and in section SQL as `getvariable('team')`.
    pub recipients: Option<String>,
    pub sections: Vec<ReportSection>,
    pub at: Located,
}

/// One section of a report.
#[derive(Debug, Clone)]
pub struct ReportSection {
    pub title: String,
    pub kind: SectionKind,
    /// Periods the section reads back from the report's period.
    pub periods: u32,
    /// Keep only the measure rows whose column of this name equals the
    /// recipient row's (`only = "team"`: a supervisor sees their team).
    pub only: Option<String>,
    /// The measure column a person knows an entity by (`agent_name`).
    pub entity_label: Option<String>,
    pub at: Located,
}

#[derive(Debug, Clone)]
pub enum SectionKind {
    /// Per entity: each KPI's latest value against its goal (red, amber,
    /// green) and in how many of the section's periods it met it.
    Kpis(Vec<Kpi>),
    /// One value per period (the entities' average) against a goal.
    Trend(Series, Option<Goal>),
    /// Two measures per entity: their correlation, the slope of y on x,
    /// and a scatter chart.
    Correlation { x: Series, y: Series },
    /// The rows of a query, as they come.
    Table { sql: String },
}

/// A measure with the name a reader knows it by.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// SQL yielding `entity`, `period`, `value` (and context columns).
    pub measure: String,
}

/// Where a KPI should be, and which side of it is good.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    pub goal: f64,
    /// Between `amber` and the goal a value is amber, past it red; without
    /// it, a value short of the goal is red.
    pub amber: Option<f64>,
    /// `above`: at or above the goal meets it; `below`: at or below.
    pub direction: Direction,
}

impl Goal {
    /// Whether `value` meets the goal.
    pub fn met(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value >= self.goal,
            Direction::Below => value <= self.goal,
        }
    }
}

/// A KPI column of a `kpis` section.
#[derive(Debug, Clone)]
pub struct Kpi {
    pub series: Series,
    pub goal: Goal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReport {
    name: Spanned<String>,
    title: Option<Spanned<String>>,
    intro: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    recipients: Option<Spanned<String>>,
    #[serde(default)]
    sections: Vec<Spanned<RawSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    periods: Option<Spanned<i64>>,
    only: Option<Spanned<String>>,
    entity_label: Option<Spanned<String>>,
    // kpis
    kpis: Option<Vec<Spanned<RawKpi>>>,
    // trend
    label: Option<Spanned<String>>,
    measure: Option<Spanned<toml::Value>>,
    goal: Option<Spanned<toml::Value>>,
    amber: Option<Spanned<toml::Value>>,
    direction: Option<Spanned<String>>,
    // correlation
    x: Option<Spanned<RawSeries>>,
    y: Option<Spanned<RawSeries>>,
    // table
    sql: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKpi {
    label: Option<Spanned<String>>,
    measure: Option<Spanned<toml::Value>>,
    goal: Option<Spanned<toml::Value>>,
    amber: Option<Spanned<toml::Value>>,
    direction: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    label: Option<Spanned<String>>,
    measure: Option<Spanned<toml::Value>>,
}

/// What the checks of one section need besides the checker.
struct Context<'r> {
    reconciles: &'r [String],
    recons: &'r [ReconcileConfig],
}

impl Checker<'_> {
    /// Validates every `[[reports]]` entry.
    pub(crate) fn reports(
        &mut self,
        raws: Vec<Spanned<RawReport>>,
        reconciles: &[String],
        recons: &[ReconcileConfig],
    ) -> Vec<ReportConfig> {
        let cx = Context { reconciles, recons };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let key = format!("reports[{i}]");
            let span = raw.span();
            let raw = raw.into_inner();
            if !seen.insert(raw.name.get_ref().clone()) {
                self.error(
                    raw.name.span(),
                    &format!("{key}.name"),
                    format!("duplicate report name `{}`", raw.name.get_ref()),
                );
            }
            if let Some(r) = self.report(&key, span, raw, &cx) {
                out.push(r);
            }
        }
        out
    }

    fn report(
        &mut self,
        key: &str,
        span: Range<usize>,
        raw: RawReport,
        cx: &Context,
    ) -> Option<ReportConfig> {
        let errors_before = self.error_count();
        self.identifier(&raw.name, &format!("{key}.name"), "report name");
        let title = match raw.title {
            Some(t) if t.get_ref().trim().is_empty() || t.get_ref().contains('\n') => {
                self.error(
                    t.span(),
                    &format!("{key}.title"),
                    "must be one line of text",
                );
                None
            }
            Some(t) => self.template(key, "title", Some(t), &span),
            None => {
                self.error(span.clone(), &format!("{key}.title"), "missing key `title`")
                    .hint("the subject and heading, e.g. title = \"Team {{ team }} scorecard\"");
                None
            }
        };
        let intro = raw
            .intro
            .map(|t| self.template(key, "intro", Some(t), &span));
        for t in &raw.to {
            if !t.get_ref().contains('@') || t.get_ref().chars().any(char::is_control) {
                self.error(
                    t.span(),
                    &format!("{key}.to"),
                    format!("`{}` is not an e-mail address", t.get_ref()),
                );
            }
        }
        let recipients = raw.recipients.as_ref().and_then(|r| {
            let sql = r.get_ref().trim().trim_end_matches(';').trim();
            if sql.is_empty() {
                self.error(r.span(), &format!("{key}.recipients"), "must not be empty");
                None
            } else {
                Some(sql.to_string())
            }
        });
        if raw.to.is_empty() && raw.recipients.is_none() {
            self.error(span.clone(), key, "needs `to`, `recipients` or both")
                .hint("to = [\"exec@example.com\"], or recipients = \"SELECT supervisor_email AS email, team FROM …\" for one report per row");
        }
        let schedule = self.schedule(key, raw.schedule.as_ref(), raw.timezone.as_ref());
        if raw.sections.is_empty() {
            self.error(span.clone(), &format!("{key}.sections"), "a report needs at least one section")
                .hint("[[reports.sections]] with type = \"kpis\", \"trend\", \"correlation\" or \"table\"");
        }
        let sections: Vec<Option<ReportSection>> = raw
            .sections
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.report_section(&format!("{key}.sections[{i}]"), s, cx))
            .collect();
        if self.error_count() > errors_before {
            return None;
        }
        Some(ReportConfig {
            name: raw.name.into_inner(),
            title: title?,
            intro: intro.flatten(),
            schedule: schedule.flatten(),
            to: raw.to.into_iter().map(Spanned::into_inner).collect(),
            recipients,
            sections: sections.into_iter().collect::<Option<_>>()?,
            at: self.located(span, key),
        })
    }

    fn report_section(
        &mut self,
        key: &str,
        raw: Spanned<RawSection>,
        cx: &Context,
    ) -> Option<ReportSection> {
        let span = raw.span();
        let raw = raw.into_inner();
        let errors_before = self.error_count();
        let kind_name = match &raw.kind {
            Some(k) => k.get_ref().as_str(),
            None => {
                self.error(span.clone(), &format!("{key}.type"), "missing key `type`")
                    .hint(format!("one of: {SECTION_TYPES}"));
                return None;
            }
        };
        // Which keys each type reads; any other given is a mistake.
        let given: [(&str, bool); 9] = [
            ("kpis", raw.kpis.is_some()),
            ("label", raw.label.is_some()),
            ("measure", raw.measure.is_some()),
            ("goal", raw.goal.is_some()),
            ("amber", raw.amber.is_some()),
            ("direction", raw.direction.is_some()),
            ("x", raw.x.is_some()),
            ("y", raw.y.is_some()),
            ("sql", raw.sql.is_some()),
        ];
        let reads: &[&str] = match kind_name {
            "kpis" => &["kpis"],
            "trend" => &["label", "measure", "goal", "amber", "direction"],
            "correlation" => &["x", "y"],
            "table" => &["sql"],
            other => {
                let at = raw.kind.as_ref().map_or(span.clone(), Spanned::span);
                self.error(
                    at,
                    &format!("{key}.type"),
                    format!("unknown section type `{other}`"),
                )
                .hint(format!("one of: {SECTION_TYPES}"));
                return None;
            }
        };
        for (name, present) in given {
            if present && !reads.contains(&name) {
                self.error(
                    span.clone(),
                    &format!("{key}.{name}"),
                    format!("`{name}` does not belong to a `{kind_name}` section"),
                )
                .hint(format!(
                    "a `{kind_name}` section reads: {}",
                    reads.join(", ")
                ));
            }
        }
        let periods = match &raw.periods {
            None => DEFAULT_REPORT_PERIODS,
            Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                self.error(
                    n.span(),
                    &format!("{key}.periods"),
                    "must be a whole number 1–1000",
                );
                DEFAULT_REPORT_PERIODS
            }
        };
        for (name, column) in [("only", &raw.only), ("entity_label", &raw.entity_label)] {
            if let Some(c) = column {
                if !plain_column(c.get_ref()) {
                    self.error(
                        c.span(),
                        &format!("{key}.{name}"),
                        format!("`{}` is not a plain column name", c.get_ref()),
                    );
                }
            }
        }
        let title = match &raw.title {
            Some(t) if t.get_ref().trim().is_empty() || t.get_ref().contains('\n') => {
                self.error(
                    t.span(),
                    &format!("{key}.title"),
                    "must be one line of text",
                );
                String::new()
            }
            Some(t) => t.get_ref().trim().to_string(),
            None => String::new(),
        };
        let kind = match kind_name {
            "kpis" => self.kpis(key, &span, raw.kpis, cx),
            "trend" => {
                let series = self.series(key, &span, raw.label, raw.measure.as_ref(), cx);
                let goal = match &raw.goal {
                    None => Some(None),
                    Some(g) => self
                        .goal(key, g, raw.amber.as_ref(), raw.direction.as_ref(), &span)
                        .map(Some),
                };
                series.zip(goal).map(|(s, g)| SectionKind::Trend(s, g))
            }
            "correlation" => {
                let side = |c: &mut Self, name: &str, raw: Option<Spanned<RawSeries>>| match raw {
                    Some(s) => {
                        let s = s.into_inner();
                        c.series(
                            &format!("{key}.{name}"),
                            &span,
                            s.label,
                            s.measure.as_ref(),
                            cx,
                        )
                    }
                    None => {
                        c.error(
                            span.clone(),
                            &format!("{key}.{name}"),
                            format!("missing key `{name}`"),
                        )
                        .hint(format!("{name} = {{ label = \"…\", measure = … }}"));
                        None
                    }
                };
                let x = side(self, "x", raw.x);
                let y = side(self, "y", raw.y);
                x.zip(y).map(|(x, y)| SectionKind::Correlation { x, y })
            }
            _ => match &raw.sql {
                Some(sql) if !sql.get_ref().trim().is_empty() => Some(SectionKind::Table {
                    sql: sql
                        .get_ref()
                        .trim()
                        .trim_end_matches(';')
                        .trim()
                        .to_string(),
                }),
                _ => {
                    let at = raw.sql.as_ref().map_or(span.clone(), Spanned::span);
                    self.error(at, &format!("{key}.sql"), "a table section needs its query")
                        .hint("sql = \"SELECT …\"");
                    None
                }
            },
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(ReportSection {
            title,
            kind: kind?,
            periods,
            only: raw.only.map(Spanned::into_inner),
            entity_label: raw.entity_label.map(Spanned::into_inner),
            at: self.located(span, key),
        })
    }

    fn kpis(
        &mut self,
        key: &str,
        span: &Range<usize>,
        raws: Option<Vec<Spanned<RawKpi>>>,
        cx: &Context,
    ) -> Option<SectionKind> {
        let raws = raws.unwrap_or_default();
        if raws.is_empty() {
            self.error(
                span.clone(),
                &format!("{key}.kpis"),
                "a kpis section needs at least one KPI",
            )
            .hint("kpis = [{ label = \"CSAT\", measure = …, goal = 4.2, direction = \"above\" }]");
            return None;
        }
        let mut out = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let key = format!("{key}.kpis[{i}]");
            let span = raw.span();
            let raw = raw.into_inner();
            let series = self.series(&key, &span, raw.label, raw.measure.as_ref(), cx);
            let goal = match &raw.goal {
                Some(g) => self.goal(&key, g, raw.amber.as_ref(), raw.direction.as_ref(), &span),
                None => {
                    self.error(span.clone(), &format!("{key}.goal"), "missing key `goal`")
                        .hint("the objective, e.g. goal = 4.2 with direction = \"above\"");
                    None
                }
            };
            out.push(series.zip(goal).map(|(series, goal)| Kpi { series, goal }));
        }
        out.into_iter()
            .collect::<Option<_>>()
            .map(SectionKind::Kpis)
    }

    fn series(
        &mut self,
        key: &str,
        span: &Range<usize>,
        label: Option<Spanned<String>>,
        measure: Option<&Spanned<toml::Value>>,
        cx: &Context,
    ) -> Option<Series> {
        let label = match label {
            Some(l) if !l.get_ref().trim().is_empty() && !l.get_ref().contains('\n') => {
                Some(l.get_ref().trim().to_string())
            }
            Some(l) => {
                self.error(
                    l.span(),
                    &format!("{key}.label"),
                    "must be one line of text",
                );
                None
            }
            None => {
                self.error(span.clone(), &format!("{key}.label"), "missing key `label`")
                    .hint("what a reader calls the measure, e.g. label = \"CSAT\"");
                None
            }
        };
        let measure = match measure {
            Some(m) => self.measure(key, m, cx.reconciles, cx.recons),
            None => {
                self.error(span.clone(), &format!("{key}.measure"), "missing key `measure`")
                    .hint("SQL with columns entity, period, value, or a shorthand such as { view = \"agent_daily\", aggregate = \"avg\", column = \"csat\", by = \"agent_id\", period = \"week\", time = \"day\" }");
                None
            }
        };
        Some(Series {
            label: label?,
            measure: measure?.sql,
        })
    }

    fn goal(
        &mut self,
        key: &str,
        goal: &Spanned<toml::Value>,
        amber: Option<&Spanned<toml::Value>>,
        direction: Option<&Spanned<String>>,
        span: &Range<usize>,
    ) -> Option<Goal> {
        let number = |c: &mut Self, name: &str, v: &Spanned<toml::Value>| match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) if f.is_finite() => Some(*f),
            _ => {
                c.error(v.span(), &format!("{key}.{name}"), "must be a number");
                None
            }
        };
        let g = number(self, "goal", goal);
        let a = amber.map(|a| number(self, "amber", a));
        let direction = match direction.map(|d| (d.get_ref().as_str(), d.span())) {
            Some(("above", _)) => Some(Direction::Above),
            Some(("below", _)) => Some(Direction::Below),
            Some((other, at)) => {
                self.error(
                    at,
                    &format!("{key}.direction"),
                    format!("unknown direction `{other}`"),
                )
                .hint("\"above\" (at or above the goal meets it) or \"below\"");
                None
            }
            None => {
                self.error(
                    span.clone(),
                    &format!("{key}.direction"),
                    "missing key `direction`",
                )
                .hint("\"above\" when more is better (CSAT), \"below\" when less is (handle time)");
                None
            }
        };
        let (g, direction) = (g?, direction?);
        let amber = match a {
            None => None,
            Some(None) => return None,
            Some(Some(a)) => {
                let short = match direction {
                    Direction::Above => a < g,
                    Direction::Below => a > g,
                };
                if !short {
                    self.error(
                        amber.map_or(span.clone(), Spanned::span),
                        &format!("{key}.amber"),
                        format!("amber {a} must lie short of the goal {g}"),
                    )
                    .hint("amber marks \"close\": below the goal for \"above\", above it for \"below\"");
                    return None;
                }
                Some(a)
            }
        };
        Some(Goal {
            goal: g,
            amber,
            direction,
        })
    }
}

fn plain_column(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"[warehouse]
path = "wh.duckdb"
[smtp]
host = "127.0.0.1"
from = "Conveyor <c@example.com>"
"#;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(&format!("{BASE}{extra}"), Path::new("/c/conveyor.toml"))
    }

    #[test]
    fn reports_every_section_type_builds_the_model() {
        let c = parse(
            r#"
[[reports]]
name = "team"
title = "Team {{ team }}"
schedule = "0 7 * * MON"
to = ["ops@example.com"]
recipients = "SELECT 'a@example.com' AS email, 'north' AS team;"
[[reports.sections]]
title = "KPIs"
type = "kpis"
only = "team"
entity_label = "agent_name"
periods = 4
kpis = [{ label = "CSAT", measure = "SELECT 1 AS entity, 2 AS period, 3 AS value", goal = 4.2, amber = 4, direction = "above" }]
[[reports.sections]]
type = "trend"
label = "AHT"
measure = { view = "agent_daily", aggregate = "avg", column = "handle_secs", by = "agent_id", period = "week", time = "day" }
goal = 300
direction = "below"
[[reports.sections]]
type = "correlation"
x = { label = "AHT", measure = "SELECT 1 AS entity, 2 AS period, 3 AS value" }
y = { label = "CSAT", measure = "SELECT 1 AS entity, 2 AS period, 4 AS value" }
[[reports.sections]]
type = "table"
sql = "SELECT 1"
"#,
        )
        .unwrap();
        let r = &c.reports[0];
        assert_eq!(r.name, "team");
        assert!(
            r.title.variables.iter().eq(["team"].iter()),
            "{:?}",
            r.title.variables
        );
        assert_eq!(
            r.recipients.as_deref(),
            Some("SELECT 'a@example.com' AS email, 'north' AS team")
        );
        assert!(r.schedule.is_some());
        assert_eq!(r.sections.len(), 4);
        let kpis = &r.sections[0];
        assert_eq!((kpis.periods, kpis.only.as_deref()), (4, Some("team")));
        let SectionKind::Kpis(k) = &kpis.kind else {
            panic!("{kpis:?}")
        };
        assert_eq!(
            k[0].goal,
            Goal {
                goal: 4.2,
                amber: Some(4.0),
                direction: Direction::Above
            }
        );
        assert!(k[0].goal.met(4.2) && !k[0].goal.met(4.19));
        let SectionKind::Trend(series, Some(goal)) = &r.sections[1].kind else {
            panic!()
        };
        assert!(
            series.measure.contains("model.agent_daily"),
            "{}",
            series.measure
        );
        assert!(goal.met(299.0) && !goal.met(301.0));
        assert_eq!(r.sections[1].periods, DEFAULT_REPORT_PERIODS);
        assert!(matches!(
            r.sections[2].kind,
            SectionKind::Correlation { .. }
        ));
        assert!(matches!(&r.sections[3].kind, SectionKind::Table { sql } if sql == "SELECT 1"));
    }

    #[test]
    fn reports_every_mistake_is_reported_with_its_location() {
        let errs = parse(
            r#"
[[reports]]
name = "Bad Name"
to = ["nobody"]
[[reports.sections]]
type = "pie"
[[reports.sections]]
type = "kpis"
sql = "SELECT 1"
kpis = [{ label = "CSAT", measure = "SELECT 1", goal = 4, amber = 5, direction = "above" }]
[[reports.sections]]
type = "trend"
label = "x"
[[reports]]
name = "nobody"
title = "T"
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:7:1: reports[0].title: missing key `title`",
            "/c/conveyor.toml:8:8: reports[0].name: ",
            "/c/conveyor.toml:9:7: reports[0].to: `nobody` is not an e-mail address",
            "/c/conveyor.toml:11:8: reports[0].sections[0].type: unknown section type `pie`",
            "/c/conveyor.toml:12:1: reports[0].sections[1].sql: `sql` does not belong to a `kpis` section",
            "/c/conveyor.toml:15:67: reports[0].sections[1].kpis[0].amber: amber 5 must lie short of the goal 4",
            "/c/conveyor.toml:16:1: reports[0].sections[2].measure: missing key `measure`",
            "/c/conveyor.toml:19:1: reports[1]: needs `to`, `recipients` or both",
            "/c/conveyor.toml:19:1: reports[1].sections: a report needs at least one section",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn reports_need_smtp() {
        let text = r#"[warehouse]
path = "wh.duckdb"
[[reports]]
name = "r"
title = "T"
to = ["a@example.com"]
[[reports.sections]]
type = "table"
sql = "SELECT 1"
"#;
        let errs = crate::parse(text, Path::new("/c/conveyor.toml")).unwrap_err();
        assert!(
            errs.to_string()
                .contains("reports[0]: a report is e-mailed: it needs an [smtp] section"),
            "{errs}"
        );
    }
}
