//! The config checked against the warehouse: every model mapping,
//! reconciliation relation and rule measure bound (and each rule's
//! templates against its measure's columns), with located diagnostics.
//! `conveyor check` prints them; `conveyor run` refuses to start, and a
//! reload (SIGHUP) to apply, while any remains.

mod reports;
mod rule_columns;

use conveyor_config::{Config, Diagnostic, Located};
use duckdb::Connection;

pub use rule_columns::check_templates;

/// What the warehouse-bound checks found: `problems` make the config
/// invalid; `notes` are warnings and things that cannot be checked yet (a
/// source that never synced).
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<Diagnostic>,
    pub notes: Vec<String>,
}

impl Findings {
    /// Sorts the problems by file and position, as `check` prints them.
    pub fn sort(&mut self) {
        self.problems.sort();
    }

    /// Each problem as `FILE:LINE:COL: key: message (hint: …)`.
    pub fn problem_lines(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }
}

/// Whether anything in `config` reads the warehouse.
pub fn needs_warehouse(c: &Config) -> bool {
    !(c.model.presets.is_empty()
        && c.model.views.is_empty()
        && c.reconciles.is_empty()
        && c.rules.is_empty()
        && c.reports.is_empty())
}

/// A problem at an entry located when the config was read; `sub_key`
/// (`measure`, `left` …) extends its key.
pub fn located(
    at: &Located,
    sub_key: Option<&str>,
    message: String,
    hint: Option<String>,
) -> Diagnostic {
    Diagnostic {
        file: at.file.clone(),
        line: at.line,
        col: at.col,
        key: match sub_key {
            Some(k) => format!("{}.{k}", at.key),
            None => at.key.clone(),
        },
        message,
        hint,
    }
}

/// Binds every `[model]` mapping, `[[reconcile]]` relation and `[[rules]]`
/// measure (and the templates against the measure's columns) on `conn`, as
/// the warehouse is now; problems sorted by position. Nothing is written:
/// only `DESCRIBE`/`LIMIT 0` statements run (and the clock variable the
/// measures read is set on the connection).
pub fn warehouse_findings(conn: &Connection, config: &Config) -> Findings {
    let mut f = Findings::default();
    if !needs_warehouse(config) {
        return f;
    }
    mappings(conn, config, &mut f);
    relations(conn, config, &mut f);
    measures(conn, config, &mut f);
    for report in &config.reports {
        reports::check(conn, report, &mut f);
    }
    f.sort();
    f
}

fn place(at: &Located) -> String {
    format!("{}:{}:{}: {}", at.file.display(), at.line, at.col, at.key)
}

fn mappings(conn: &Connection, config: &Config, f: &mut Findings) {
    for p in crate::model::check(conn, config) {
        if p.degraded {
            f.notes.push(format!(
                "warning: {}: model.{} {}",
                place(&p.at),
                p.view,
                p.message
            ));
        } else if p.not_synced {
            f.notes.push(format!(
                "note: {}: not checked yet: {} (sync the source first)",
                place(&p.at),
                p.message
            ));
        } else {
            f.problems.push(located(
                &p.at,
                None,
                format!(
                    "mapping into model.{} does not fit: {} (the view needs: {})",
                    p.view,
                    p.message,
                    crate::model::contract::describe_view(&p.view)
                ),
                None,
            ));
        }
    }
}

fn relations(conn: &Connection, config: &Config, f: &mut Findings) {
    for r in &config.reconciles {
        for p in crate::recon::check_relations(conn, r) {
            if p.not_there_yet {
                f.notes.push(format!(
                    "note: {}.{}: not checked yet: {} (sync its sources first)",
                    place(&r.at),
                    p.side,
                    p.message
                ));
            } else {
                f.problems.push(located(
                    &r.at,
                    Some(p.side),
                    format!("`{}` does not run: {}", r.name, p.message),
                    Some("check the relation and its key and compare expressions".into()),
                ));
            }
        }
    }
}

fn measures(conn: &Connection, config: &Config, f: &mut Findings) {
    for r in &config.rules {
        let p = match crate::rules::measure_columns(conn, r) {
            Ok(columns) => {
                f.problems.extend(check_templates(r, &columns));
                continue;
            }
            Err(p) => p,
        };
        if p.not_there_yet {
            f.notes.push(format!(
                "note: {}.measure: not checked yet: {} (sync its sources first)",
                place(&r.at),
                p.message
            ));
        } else {
            f.problems.push(located(
                &r.at,
                Some("measure"),
                format!("`{}` does not run: {}", r.name, p.message),
                Some("one row per entity per period, columns entity, period, value".into()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template problem (rule 1), a relation that does not bind (the
    /// reconciliation) and a measure of the wrong shape (rule 2): all
    /// found in one pass and printed in file order, whatever phase found
    /// them.
    #[test]
    fn every_warehouse_problem_is_reported_at_once_in_file_order() {
        let text = r#"[warehouse]
path = "wh.duckdb"
[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "Conveyor <conveyor@example.com>"
[[rules]]
name = "first"
measure = "SELECT 'a' AS entity, 1 AS period, 2.0 AS value"
direction = "below"
warn = 1
[[rules.actions]]
type = "email"
to = ["ops@example.com"]
subject = "{{ nope }}"
[[reconcile]]
name = "middle"
left = { sql = "SELECT 1 AS id, no_such_column" }
right = { sql = "SELECT 1 AS id" }
keys = [{ left = "id" }]
[[rules]]
name = "last"
measure = "SELECT 1 AS x"
direction = "below"
warn = 1
"#;
        let config =
            conveyor_config::parse(text, std::path::Path::new("/c/conveyor.toml")).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        let findings = warehouse_findings(&conn, &config);
        let lines = findings.problem_lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let at: Vec<usize> = findings.problems.iter().map(|d| d.line).collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "sorted by line: {lines:#?}"
        );
        assert!(
            lines[0].contains("unknown template variable `nope`"),
            "{lines:#?}"
        );
        assert!(lines[1].contains("`middle` does not run"), "{lines:#?}");
        assert!(lines[2].contains("`last` does not run"), "{lines:#?}");
        assert!(lines[2]
            .ends_with("(hint: one row per entity per period, columns entity, period, value)"));
    }

    #[test]
    fn a_report_is_checked_against_the_warehouse_like_a_rule() {
        let text = r#"[warehouse]
path = "wh.duckdb"
[smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
from = "Conveyor <conveyor@example.com>"
[[reports]]
name = "team"
title = "Team {{ team }}"
recipients = "SELECT 'sup@example.com' AS address, 'north' AS team"
[[reports.sections]]
type = "kpis"
only = "tean"
kpis = [{ label = "CSAT", measure = "SELECT 'a' AS entity, 1 AS period, 4.5 AS value, 'north' AS team", goal = 4.2, direction = "above" }]
[[reports.sections]]
type = "trend"
label = "CSAT"
measure = "SELECT 'a' AS entity, 4.5 AS value"
[[reports.sections]]
type = "table"
sql = "SELECT * FROM not_synced_yet.t"
"#;
        let config =
            conveyor_config::parse(text, std::path::Path::new("/c/conveyor.toml")).unwrap();
        let conn = Connection::open_in_memory().unwrap();
        let findings = warehouse_findings(&conn, &config);
        let lines = findings.problem_lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.contains(
                "reports[0].recipients: the query has no `email` column (it returns address, team)"
            )),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.contains("reports[0].sections[0].only: the measure at sections[0].kpis[0].measure has no column `tean`")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("reports[0].sections[1].measure: `team` measure does not run: lacks column(s) period")), "{lines:#?}");
        // A table of a source not synced yet is a note, not a problem.
        assert!(
            findings
                .notes
                .iter()
                .any(|n| n.contains("reports[0].sections[2].sql: not checked yet")),
            "{:#?}",
            findings.notes
        );
    }
}
