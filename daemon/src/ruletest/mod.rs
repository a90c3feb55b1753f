//! `conveyor test FILE`: offline rule tests, in the spirit of `promtool
//! test rules`. The file names a config whose `[[rules]]` are tested,
//! fixture tables for an in-memory warehouse, and evaluations on a
//! simulated clock with the alerts, e-mails and webhook calls each one
//! must leave. Nothing is delivered and no secret is read.
//!
//! `spec` parses the file (`cells` types its values, `located` places its
//! problems), `conveyor_config::load_offline` loads the rules (secret
//! references left unresolved), `fixtures` fills the warehouse, `observe`
//! reads what an evaluation left and `compare` diffs it against the
//! expectations.

mod cells;
mod compare;
mod diff;
mod fixtures;
mod located;
mod observe;
mod spec;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::Path;

use conveyor_config::{Diagnostic, ReportConfig, RuleConfig};
use duckdb::Connection;

use crate::warehouse::Warehouse;
use located::at_located;
use spec::{Evaluation, TestSpec};

/// How a test file went.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every evaluation step was as expected.
    Passed {
        steps: usize,
    },
    Failed {
        steps: usize,
        failed: usize,
    },
    /// The test file or the config it names is broken: each problem,
    /// located. Steps already run were printed.
    Invalid(Vec<Diagnostic>),
}

/// Runs the test file at `path`, printing one PASS/FAIL line per
/// evaluation (with the diff of a failing one) and a summary to `out`.
pub fn run(path: &Path, out: &mut dyn Write) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::Invalid(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                col: 0,
                key: String::new(),
                message: format!("cannot read test file: {e}"),
                hint: None,
            }])
        }
    };
    let spec = match spec::parse(&text, path) {
        Ok(s) => s,
        Err(problems) => return Outcome::Invalid(problems),
    };
    let (rules, reports) = match rules_under_test(&spec) {
        Ok(r) => r,
        Err(problems) => return Outcome::Invalid(problems),
    };
    let spec = match fill_in_rules(spec, &rules) {
        Ok(s) => s,
        Err(problems) => return Outcome::Invalid(problems),
    };
    // Kept alive for the run: the in-memory database lives with it.
    let (_warehouse, conn) = match memory_warehouse() {
        Ok(w) => w,
        Err(e) => return Outcome::Invalid(vec![at_located(&spec.config_at, e, None)]),
    };
    if let Err((i, message)) = fixtures::load(&conn, &spec.fixtures) {
        return Outcome::Invalid(vec![at_located(&spec.fixtures[i].at, message, None)]);
    }
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let _ = writeln!(
        out,
        "{}: {} rule(s) under test ({}), {} evaluation(s)",
        path.display(),
        rules.len(),
        names.join(", "),
        spec.evaluations.len()
    );
    let mut failed = 0;
    for step in &spec.evaluations {
        let report = match run_step(&conn, &rules, &reports, step) {
            Ok(r) => r,
            Err(problem) => return Outcome::Invalid(vec![problem]),
        };
        let label = step_label(step);
        if report.is_empty() {
            let _ = writeln!(out, "PASS  {label}");
        } else {
            failed += 1;
            let _ = writeln!(out, "FAIL  {label}");
            for line in report {
                let _ = writeln!(out, "      {}", line.trim_end());
            }
        }
    }
    let steps = spec.evaluations.len();
    let _ = writeln!(
        out,
        "{}: {steps} evaluation(s), {} passed, {failed} failed",
        path.display(),
        steps - failed
    );
    if failed == 0 {
        Outcome::Passed { steps }
    } else {
        Outcome::Failed { steps, failed }
    }
}

/// The config's rules named by the test file (all when it names none), and
/// its reports.
fn rules_under_test(
    spec: &TestSpec,
) -> Result<(Vec<RuleConfig>, Vec<ReportConfig>), Vec<Diagnostic>> {
    if !spec.config.is_file() {
        return Err(vec![at_located(
            &spec.config_at,
            format!("config file {} does not exist", spec.config.display()),
            Some("`config` is relative to the test file".into()),
        )]);
    }
    let config = conveyor_config::load_offline(&spec.config).map_err(|e| e.0)?;
    let Some(wanted) = &spec.rules else {
        if config.rules.is_empty() && config.reports.is_empty() {
            return Err(vec![at_located(
                &spec.config_at,
                format!(
                    "{} has no [[rules]] or [[reports]] to test",
                    spec.config.display()
                ),
                None,
            )]);
        }
        return Ok((config.rules, config.reports));
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, at) in wanted {
        match config.rules.iter().find(|r| r.name == *name) {
            Some(r) => out.push(r.clone()),
            None => {
                let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
                problems.push(at_located(
                    at,
                    format!("no rule named `{name}` in {}", spec.config.display()),
                    Some(format!("configured: {}", known.join(", "))),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok((out, config.reports))
    } else {
        Err(problems)
    }
}

/// Expected alerts name their rule; with one rule under test they may
/// leave it out. A rule that is not under test is a mistake in the file.
fn fill_in_rules(mut spec: TestSpec, rules: &[RuleConfig]) -> Result<TestSpec, Vec<Diagnostic>> {
    let only = (rules.len() == 1).then(|| rules[0].name.clone());
    let tested = |r: &str| rules.iter().any(|x| x.name == r);
    let mut problems = Vec::new();
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let not_tested = |rule: &str| {
        format!(
            "rule `{rule}` is not under test (tested: {})",
            names.join(", ")
        )
    };
    for step in &mut spec.evaluations {
        for a in step.expect_alerts.iter_mut().flatten() {
            match &a.rule {
                None if only.is_some() => a.rule = only.clone(),
                None => problems.push(at_located(
                    &a.at,
                    "say which rule: more than one rule is under test",
                    Some(format!("add rule = \"…\", one of: {}", names.join(", "))),
                )),
                Some(r) if !tested(r) => problems.push(at_located(&a.at, not_tested(r), None)),
                Some(_) => {}
            }
        }
        let other_rules = step
            .expect_emails
            .iter()
            .flatten()
            .map(|e| (&e.rule, &e.at))
            .chain(
                step.expect_webhooks
                    .iter()
                    .flatten()
                    .map(|w| (&w.rule, &w.at)),
            );
        for (rule, at) in other_rules {
            if let Some(r) = rule.as_ref().filter(|r| !tested(r)) {
                problems.push(at_located(at, not_tested(r), None));
            }
        }
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems)
    }
}

/// A fresh in-memory warehouse with Conveyor's metadata tables, made by
/// the warehouse itself so the test runs against the real schema.
fn memory_warehouse() -> Result<(Warehouse, Connection), String> {
    let warehouse = Warehouse::open_scratch_with_file_access()
        .map_err(|e| format!("cannot create the in-memory warehouse: {e:#}"))?;
    let conn = warehouse
        .connection()
        .map_err(|e| format!("cannot connect to the in-memory warehouse: {e:#}"))?;
    Ok((warehouse, conn))
}

fn step_label(step: &Evaluation) -> String {
    let at = step.at.format("%Y-%m-%d %H:%M:%S");
    match &step.name {
        Some(name) => format!("evaluation {} ({name}) at {at}", step.number),
        None => format!("evaluation {} at {at}", step.number),
    }
}

/// Runs one step: appends its rows, runs its SQL, evaluates every rule
/// under test at its time and compares. Returns the report lines of what
/// differs (empty: passed); a row or statement that does not apply is a
/// problem with the file.
fn run_step(
    conn: &Connection,
    rules: &[RuleConfig],
    reports: &[ReportConfig],
    step: &Evaluation,
) -> Result<Vec<String>, Diagnostic> {
    for (table, rows, at) in &step.rows {
        if let Err((i, message)) = fixtures::append(conn, table, rows) {
            let row_at = rows.get(i).map_or(at, |r| &r.at);
            return Err(at_located(row_at, message, None));
        }
    }
    if let Some((sql, at)) = &step.sql {
        fixtures::run(conn, sql).map_err(|m| at_located(at, m, None))?;
    }
    let mut report = Vec::new();
    let mut eval_ids = Vec::new();
    for rule in rules {
        match crate::rules::evaluate_at(conn, rule, step.at) {
            Ok(summary) => eval_ids.push(summary.eval_id),
            Err(e) => report.push(format!("evaluation failed: {e}")),
        }
    }
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let store =
        |e: duckdb::Error| at_located(&step.located, format!("cannot read the results: {e}"), None);
    let show_rule = rules.len() > 1;
    if let Some(expected) = &step.expect_alerts {
        let got = observe::alerts(conn, &names, step.at).map_err(store)?;
        if let Some(lines) = compare::alerts(expected, &got, show_rule) {
            section(&mut report, "alerts", lines);
        }
    }
    if step.expect_emails.is_some() || step.expect_webhooks.is_some() {
        let (emails, hooks) = observe::outbox(conn, &eval_ids).map_err(store)?;
        if let Some(expected) = &step.expect_emails {
            if let Some(lines) = compare::emails(expected, &emails, show_rule) {
                section(&mut report, "e-mails", lines);
            }
        }
        if let Some(expected) = &step.expect_webhooks {
            if let Some(lines) = compare::webhooks(expected, &hooks, show_rule) {
                section(&mut report, "webhooks", lines);
            }
        }
    }
    if let Some(expected) = &step.expect_reports {
        let got = rendered_reports(reports, expected, conn, step.at)?;
        if let Some(lines) = compare::emails(expected, &got, reports.len() > 1) {
            section(&mut report, "reports", lines);
        }
    }
    Ok(report)
}

/// Every report of the config rendered as of `at`, as the e-mails it would
/// send; an expected report the config lacks is a problem with the file.
fn rendered_reports(
    reports: &[ReportConfig],
    expected: &[spec::ExpectedEmail],
    conn: &Connection,
    at: chrono::NaiveDateTime,
) -> Result<Vec<observe::Email>, Diagnostic> {
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    for e in expected {
        match &e.rule {
            Some(r) if !names.contains(&r.as_str()) => {
                return Err(at_located(
                    &e.at,
                    format!("the config has no report named `{r}`"),
                    Some(format!("configured: {}", names.join(", "))),
                ))
            }
            None if reports.len() > 1 => {
                return Err(at_located(
                    &e.at,
                    "say which report: the config has more than one",
                    Some(format!("add report = \"…\", one of: {}", names.join(", "))),
                ))
            }
            _ => {}
        }
    }
    let mut got = Vec::new();
    for report in reports {
        let rendered = crate::reports::render_all(conn, report, at)
            .map_err(|m| at_located(&report.at, m, None))?;
        got.extend(rendered.into_iter().map(|r| observe::Email {
            rule: report.name.clone(),
            to: r.recipient,
            subject: r.subject,
            body: r.text,
            html: Some(r.html),
        }));
    }
    Ok(got)
}

fn section(report: &mut Vec<String>, title: &str, lines: Vec<diff::Line>) {
    report.push(format!("{title} (- expected, + got):"));
    report.extend(lines.iter().map(|l| format!("  {}", l.marked())));
}
