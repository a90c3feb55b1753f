//! A rule's measure: SQL as written, or one of two shorthands turned into
//! that SQL here — an aggregate of a column of a view per entity per period,
//! or the exceptions of a reconciliation's latest run.
//!
//! The generated SQL reads the evaluation's clock from
//! `getvariable('conveyor_now')` (set by the evaluator), so a simulated
//! clock in tests moves the "last N periods" window too.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::reconcile::{ReconcileConfig, Tolerance};
use crate::validate::Checker;

/// Aggregates a shorthand may name (DuckDB functions of one column).
const AGGREGATES: [&str; 6] = ["avg", "sum", "min", "max", "count", "median"];
/// `date_trunc` parts a shorthand may group by.
const PERIODS: [&str; 5] = ["day", "week", "month", "quarter", "year"];
/// Reconciliation statuses that are not exceptions.
const MATCHED: [&str; 2] = ["matched", "matched_within_tolerance"];
use crate::reconcile::RECON_STATUSES as STATUSES;

/// `measure = { … }`: one of the two shorthands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShorthand {
    // An aggregate of a view's column.
    view: Option<String>,
    aggregate: Option<String>,
    column: Option<String>,
    by: Option<String>,
    period: Option<String>,
    time: Option<String>,
    periods: Option<i64>,
    #[serde(default)]
    context: Vec<String>,
    // Or a reconciliation's exceptions.
    reconciliation: Option<String>,
    statuses: Option<Vec<String>>,
}

impl Checker<'_> {
    /// The measure's SQL, from a string or a shorthand table; `None` after
    /// reporting what is wrong. `reconciles` are the configured names (valid
    /// or not), `recons` the valid entries.
    pub(crate) fn measure(
        &mut self,
        key: &str,
        raw: &Spanned<toml::Value>,
        reconciles: &[String],
        recons: &[ReconcileConfig],
    ) -> Option<Measure> {
        let key = format!("{key}.measure");
        let span = raw.span();
        match raw.get_ref() {
            toml::Value::String(sql) => {
                let sql = sql.trim().trim_end_matches(';').trim();
                if sql.is_empty() {
                    self.error(span, &key, "must not be empty");
                    return None;
                }
                Some(Measure {
                    sql: sql.to_string(),
                    reconciliation: None,
                })
            }
            toml::Value::Table(t) => {
                let shorthand: RawShorthand = match toml::Value::Table(t.clone()).try_into() {
                    Ok(s) => s,
                    Err(e) => {
                        self.error(span, &key, e.message().to_string()).hint(
                            "a shorthand is { view, aggregate, column, by, period, time } or { reconciliation }",
                        );
                        return None;
                    }
                };
                self.shorthand(&key, span, shorthand, reconciles, recons)
            }
            _ => {
                self.error(span, &key, "must be SQL text or a shorthand table")
                    .hint("measure = \"SELECT … AS entity, … AS period, … AS value FROM …\"");
                None
            }
        }
    }

    fn shorthand(
        &mut self,
        key: &str,
        span: Range<usize>,
        s: RawShorthand,
        reconciles: &[String],
        recons: &[ReconcileConfig],
    ) -> Option<Measure> {
        if let Some(name) = &s.reconciliation {
            let aggregate_keys = [
                s.view.is_some(),
                s.aggregate.is_some(),
                s.column.is_some(),
                s.by.is_some(),
                s.period.is_some(),
                s.time.is_some(),
                s.periods.is_some(),
                !s.context.is_empty(),
            ];
            if aggregate_keys.iter().any(|k| *k) {
                self.error(span, key, "`reconciliation` stands alone (with `statuses`)")
                    .hint("the aggregate shorthand's keys (view, aggregate, …) belong to another kind of measure");
                return None;
            }
            if !reconciles.contains(name) {
                self.error(span, key, format!("no reconciliation named `{name}`"))
                    .hint(format!("configured: {}", reconciles.join(", ")));
                return None;
            }
            let statuses = match &s.statuses {
                None => None,
                Some(list) => {
                    if let Some(bad) = list.iter().find(|x| !STATUSES.contains(&x.as_str())) {
                        self.error(span, key, format!("unknown reconciliation status `{bad}`"))
                            .hint(format!("one of: {}", STATUSES.join(", ")));
                        return None;
                    }
                    Some(list.as_slice())
                }
            };
            // A reconciliation with problems of its own has them reported.
            let recon = recons.iter().find(|r| &r.name == name)?;
            return Some(Measure {
                sql: reconciliation_sql(recon, statuses),
                reconciliation: Some(name.clone()),
            });
        }
        if s.statuses.is_some() {
            self.error(
                span.clone(),
                key,
                "`statuses` belongs to a `reconciliation` measure",
            );
        }
        let mut missing = Vec::new();
        for (name, v) in [
            ("view", &s.view),
            ("aggregate", &s.aggregate),
            ("by", &s.by),
            ("period", &s.period),
            ("time", &s.time),
        ] {
            if v.is_none() {
                missing.push(name);
            }
        }
        if s.column.is_none() && s.aggregate.as_deref() != Some("count") {
            missing.push("column");
        }
        if !missing.is_empty() {
            self.error(span, key, format!("the shorthand lacks {}", missing.join(", ")))
                .hint("e.g. { view = \"agent_daily\", aggregate = \"avg\", column = \"csat\", by = \"agent_id\", period = \"week\", time = \"day\" }");
            return None;
        }
        let aggregate = s.aggregate.as_deref().unwrap_or_default();
        let period = s.period.as_deref().unwrap_or_default();
        let mut ok = true;
        if !AGGREGATES.contains(&aggregate) {
            self.error(
                span.clone(),
                key,
                format!("unknown aggregate `{aggregate}`"),
            )
            .hint(format!("one of: {}", AGGREGATES.join(", ")));
            ok = false;
        }
        if !PERIODS.contains(&period) {
            self.error(span.clone(), key, format!("unknown period `{period}`"))
                .hint(format!("one of: {}", PERIODS.join(", ")));
            ok = false;
        }
        let names = [&s.view, &s.column, &s.by, &s.time]
            .into_iter()
            .flatten()
            .chain(s.context.iter());
        for name in names {
            if !plain_name(name) {
                self.error(span.clone(), key, format!("`{name}` is not a plain column or view name"))
                    .hint("letters, digits and underscores (a view may be schema.name); write SQL for anything else");
                ok = false;
            }
        }
        if let Some(n) = s.periods {
            if !(1..=1000).contains(&n) {
                self.error(span.clone(), key, "`periods` must be between 1 and 1000");
                ok = false;
            }
        }
        ok.then(|| Measure {
            reconciliation: None,
            sql: aggregate_sql(&Aggregate {
                view: s.view.as_deref().unwrap_or_default(),
                aggregate,
                column: s.column.as_deref(),
                by: s.by.as_deref().unwrap_or_default(),
                period,
                time: s.time.as_deref().unwrap_or_default(),
                periods: s.periods,
                context: &s.context,
            }),
        })
    }
}

/// A validated measure: its SQL, and the reconciliation it reads when it is
/// the reconciliation shorthand.
pub(crate) struct Measure {
    pub sql: String,
    pub reconciliation: Option<String>,
}

/// Letters, digits and underscores, with at most one dot (schema.name).
fn plain_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

struct Aggregate<'a> {
    view: &'a str,
    aggregate: &'a str,
    column: Option<&'a str>,
    by: &'a str,
    period: &'a str,
    time: &'a str,
    periods: Option<i64>,
    context: &'a [String],
}

/// `SELECT by AS entity, date_trunc(period, time) AS period, agg(column) AS
/// value, any_value(context…)` over the view (schema `model` unless named),
/// limited to the last `periods` complete periods before the clock.
fn aggregate_sql(a: &Aggregate) -> String {
    let view = if a.view.contains('.') {
        a.view.to_string()
    } else {
        format!("model.{}", a.view)
    };
    let value = format!("{}({})", a.aggregate, a.column.unwrap_or("*"));
    let context: String = a
        .context
        .iter()
        .map(|c| format!(", any_value({c}) AS {c}"))
        .collect();
    let (period, time) = (a.period, a.time);
    let window = a.periods.map_or(String::new(), |n| {
        // Complete periods only: the current one is still filling up.
        let this =
            format!("date_trunc('{period}', CAST(getvariable('conveyor_now') AS TIMESTAMP))");
        format!("\n  AND {time} >= {this} - INTERVAL ({n}) {period}\n  AND {time} < {this}")
    });
    format!(
        "SELECT CAST({by} AS VARCHAR) AS entity, CAST(date_trunc('{period}', {time}) AS DATE) AS period,\n       {value} AS value{context}\nFROM {view}\nWHERE {by} IS NOT NULL{window}\nGROUP BY 1, 2",
        by = a.by,
    )
}

/// One row per key of the reconciliation's latest successful run: value 1
/// for an exception (of `statuses`, when given), 0 otherwise; as context
/// the status, both keys, the differences, and for people: each side's row
/// as an object (`left`, `right`, and under the sides' names), `label` (the
/// row's keys as written) and `compared` (each compared column with both
/// values and the delta). The period is the evaluation's date: the run's
/// own clock is the wall clock, which a simulated evaluation does not share.
/// A key the run no longer reports is absent, and its alert resolves after
/// the rule's `absent_after` evaluations.
fn reconciliation_sql(recon: &ReconcileConfig, statuses: Option<&[String]>) -> String {
    let exception = match statuses {
        Some(list) => format!(
            "r.status IN ({})",
            list.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
        ),
        None => format!(
            "r.status NOT IN ({})",
            MATCHED
                .iter()
                .map(|s| quote(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let columns = recon.row_columns();
    let label = |side: &str, keys: &[Option<String>]| {
        let parts: Vec<String> = keys
            .iter()
            .flatten()
            .map(|k| format!("\"{side}\"->>{}", quote(k)))
            .collect();
        if parts.is_empty() {
            "NULL".to_string()
        } else {
            format!("nullif(concat_ws(', ', {}), '')", parts.join(", "))
        }
    };
    let compared: Vec<String> = recon
        .compare
        .iter()
        .map(|c| {
            let n = quote(&c.name);
            let (l, r) = (format!("\"left\"->>{n}"), format!("\"right\"->>{n}"));
            let delta = match c.tolerance {
                Tolerance::Days(_) => {
                    format!("date_diff('day', TRY_CAST({l} AS DATE), TRY_CAST({r} AS DATE))")
                }
                _ => format!("round(TRY_CAST({r} AS DOUBLE) - TRY_CAST({l} AS DOUBLE), 9)"),
            };
            format!(
                "json_object('column', {n}, 'left', \"left\"->{n}, 'right', \"right\"->{n}, 'delta', {delta},
    'status', CASE WHEN \"left\" IS NULL OR \"right\" IS NULL THEN 'missing'
                   ELSE coalesce(list_filter(json_extract(differences, '$[*]'), lambda d: d->>'column' = {n})[1]->>'status', 'equal') END)"
            )
        })
        .collect();
    let compared = if compared.is_empty() {
        "json('[]')".to_string()
    } else {
        // A matched key keeps no rows: nothing to show.
        format!(
            "CASE WHEN \"left\" IS NULL AND \"right\" IS NULL THEN json('[]') ELSE json_array(\n    {}) END",
            compared.join(",\n    ")
        )
    };
    // The rows under the sides' own names too ({{ payroll.hours }}).
    let mut aliases = String::new();
    for (side, name) in [("left", &recon.left_name), ("right", &recon.right_name)] {
        if name != side {
            aliases += &format!(", \"{side}\" AS \"{name}\"");
        }
    }
    format!(
        "WITH run AS (
  SELECT run_id FROM conveyor.recon_runs
  WHERE reconciliation = {name} AND status = 'succeeded'
  ORDER BY run_id DESC LIMIT 1
), latest AS (
  SELECT coalesce(r.left_key, r.right_key) AS entity,
         CAST(CAST(getvariable('conveyor_now') AS TIMESTAMP) AS DATE) AS period,
         max(CASE WHEN {exception} THEN 1 ELSE 0 END) AS value,
         string_agg(DISTINCT r.status, ', ') AS status,
         any_value(r.left_key) AS left_key, any_value(r.right_key) AS right_key,
         any_value(r.differences) AS differences,
         any_value(r.left_row) AS \"left\", any_value(r.right_row) AS \"right\"
  FROM conveyor.recon_results AS r JOIN run USING (run_id)
  GROUP BY 1
)
SELECT entity, period, value, status, left_key, right_key, CAST(differences AS VARCHAR) AS differences,
       coalesce({left_label}, {right_label}, entity) AS label,
       {left_name} AS left_name, {right_name} AS right_name, \"left\", \"right\",
       {compared} AS compared{aliases}
FROM latest",
        name = quote(&recon.name),
        left_label = label("left", &columns.left_keys),
        right_label = label("right", &columns.right_keys),
        left_name = quote(&recon.left_name),
        right_name = quote(&recon.right_name),
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_aggregate_shorthand_builds_grouped_sql_over_model_views() {
        let sql = aggregate_sql(&Aggregate {
            view: "agent_daily",
            aggregate: "avg",
            column: Some("csat"),
            by: "agent_id",
            period: "week",
            time: "day",
            periods: Some(4),
            context: &["team".to_string()],
        });
        assert!(
            sql.contains("avg(csat) AS value, any_value(team) AS team"),
            "{sql}"
        );
        assert!(sql.contains("FROM model.agent_daily"), "{sql}");
        assert!(sql.contains("INTERVAL (4) week"), "{sql}");
        assert!(sql.contains("GROUP BY 1, 2"), "{sql}");
    }

    fn recon(name: &str, left_name: &str) -> ReconcileConfig {
        let text = format!(
            "[warehouse]\npath = \"wh.duckdb\"\n[[reconcile]]\nname = \"{name}\"\nleft_name = \"{left_name}\"\n\
             left = {{ table = \"a\" }}\nright = {{ table = \"b\" }}\n\
             keys = [{{ left = \"lower(email)\" }}, {{ left = \"period_start\" }}]\n\
             compare = [{{ left = \"hours\", absolute = 0.25 }}, {{ name = \"start\", left = \"s\", days = 1 }}]\n"
        );
        crate::parse(&text, std::path::Path::new("c.toml"))
            .unwrap()
            .reconciles
            .remove(0)
    }

    #[test]
    fn measure_reconciliation_shorthand_counts_only_the_named_statuses() {
        let all = reconciliation_sql(&recon("p", "payroll"), None);
        assert!(all.contains("r.status NOT IN ('matched', 'matched_within_tolerance')"));
        assert!(all.contains("reconciliation = 'p'"), "{all}");
        let some = reconciliation_sql(&recon("p", "payroll"), Some(&["missing_right".to_string()]));
        assert!(some.contains("r.status IN ('missing_right')"), "{some}");
    }

    #[test]
    fn measure_reconciliation_shorthand_names_the_sides_and_compares_each_column() {
        let sql = reconciliation_sql(&recon("p", "payroll"), None);
        // The evaluation's clock, never the run's wall clock.
        assert!(
            sql.contains("CAST(CAST(getvariable('conveyor_now') AS TIMESTAMP) AS DATE) AS period"),
            "{sql}"
        );
        assert!(!sql.contains("started_at"), "{sql}");
        assert!(
            sql.contains("'payroll' AS left_name, 'right' AS right_name"),
            "{sql}"
        );
        assert!(sql.contains("\"left\" AS \"payroll\""), "{sql}");
        assert!(
            !sql.contains("\"right\" AS \"right\""),
            "no alias for a default name: {sql}"
        );
        // The label: the keys as written (an expression gets a plain name).
        assert!(
            sql.contains("concat_ws(', ', \"left\"->>'key1', \"left\"->>'period_start')"),
            "{sql}"
        );
        // Hours differ by number, the start date by days.
        assert!(
            sql.contains(
                "TRY_CAST(\"right\"->>'hours' AS DOUBLE) - TRY_CAST(\"left\"->>'hours' AS DOUBLE)"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("date_diff('day', TRY_CAST(\"left\"->>'start' AS DATE)"),
            "{sql}"
        );
    }

    #[test]
    fn measure_plain_names_refuse_sql() {
        assert!(plain_name("model.agent_daily") && plain_name("csat"));
        assert!(!plain_name("csat); DROP TABLE x; --") && !plain_name("a.b.c") && !plain_name(""));
    }
}
