//! A report checked against the warehouse: its recipients query returns an
//! `email` column, every section's measures bind with `entity`, `period`
//! and `value` (and the `only` and `entity_label` columns they name), and
//! every table query binds.

use conveyor_config::{ReportConfig, SectionKind};
use duckdb::Connection;

use super::{located, place, Findings};
use crate::rules::{measure_sql_columns, sql_columns, MeasureProblem};

pub fn check(conn: &Connection, report: &ReportConfig, f: &mut Findings) {
    if let Some(sql) = &report.recipients {
        match sql_columns(conn, sql) {
            Ok(columns) if !columns.iter().any(|c| c == "email") => f.problems.push(located(
                &report.at,
                Some("recipients"),
                format!(
                    "the query has no `email` column (it returns {})",
                    columns.join(", ")
                ),
                Some("one row per report: SELECT supervisor_email AS email, team FROM …".into()),
            )),
            Ok(_) => {}
            Err(p) => problem(
                f,
                report,
                "recipients",
                &format!("`{}` recipients", report.name),
                p,
            ),
        }
    }
    for (i, section) in report.sections.iter().enumerate() {
        let key = format!("sections[{i}]");
        let measures: Vec<(String, &str)> = match &section.kind {
            SectionKind::Kpis(kpis) => kpis
                .iter()
                .enumerate()
                .map(|(k, kpi)| {
                    (
                        format!("{key}.kpis[{k}].measure"),
                        kpi.series.measure.as_str(),
                    )
                })
                .collect(),
            SectionKind::Trend(series, _) => {
                vec![(format!("{key}.measure"), series.measure.as_str())]
            }
            SectionKind::Correlation { x, y } => vec![
                (format!("{key}.x.measure"), x.measure.as_str()),
                (format!("{key}.y.measure"), y.measure.as_str()),
            ],
            SectionKind::Table { sql } => {
                if let Err(p) = sql_columns(conn, sql) {
                    problem(
                        f,
                        report,
                        &format!("{key}.sql"),
                        &format!("`{}` table", report.name),
                        p,
                    );
                }
                continue;
            }
        };
        for (key, sql) in measures {
            match measure_sql_columns(conn, sql) {
                Ok(columns) => {
                    for (name, column) in [
                        ("only", &section.only),
                        ("entity_label", &section.entity_label),
                    ] {
                        if let Some(c) = column.as_ref().filter(|c| !columns.contains(c)) {
                            f.problems.push(located(
                                &section.at,
                                Some(name),
                                format!("the measure at {key} has no column `{c}`"),
                                Some(format!("it returns {}", columns.join(", "))),
                            ));
                        }
                    }
                }
                Err(p) => problem(f, report, &key, &format!("`{}` measure", report.name), p),
            }
        }
    }
}

fn problem(f: &mut Findings, report: &ReportConfig, key: &str, what: &str, p: MeasureProblem) {
    if p.not_there_yet {
        f.notes.push(format!(
            "note: {}.{key}: not checked yet: {} (sync its sources first)",
            place(&report.at),
            p.message
        ));
    } else {
        f.problems.push(located(
            &report.at,
            Some(key),
            format!("{what} does not run: {}", p.message),
            None,
        ));
    }
}
