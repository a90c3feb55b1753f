//! `conveyor check`: validate the config and its secrets, then bind every
//! model mapping, reconciliation relation, rule measure and template against
//! the warehouse, and list every problem. The same checks gate `conveyor
//! run` at start and every reload (SIGHUP): [`warehouse_findings`] runs them
//! on any connection, the CLI's read-only one or the daemon's own.

use std::path::Path;
use std::process::ExitCode;

use conveyor_config::Config;
use duckdb::Connection;

use crate::warehouse::Warehouse;
use crate::EXIT_CONFIG;

pub fn check(path: &Path) -> ExitCode {
    match conveyor_config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            let mut findings = if !needs_warehouse(&c) {
                Findings::default()
            } else if !c.warehouse.path.exists() {
                // No warehouse yet: what does not depend on synced data (a
                // measure's shape, its templates, a relation's SQL) is
                // still checked, on an empty one — as `run` will.
                let empty = Warehouse::open(Path::new(":memory:"));
                let conn = empty
                    .as_ref()
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|w| w.connection().map_err(|e| format!("{e:#}")));
                let mut f = match conn {
                    Ok(conn) => warehouse_findings(&conn, &c),
                    Err(e) => Findings {
                        notes: vec![format!("note: not checked against a warehouse: {e}")],
                        problems: Vec::new(),
                    },
                };
                f.notes.push("note: the warehouse does not exist yet; what reads synced tables is checked after the first sync".into());
                f
            } else {
                match Warehouse::open_read_only(&c.warehouse.path) {
                    Ok(conn) => warehouse_findings(&conn, &c),
                    Err(e) => Findings {
                        notes: vec![format!(
                            "note: model mappings, reconciliations and rule measures not checked: {e:#}"
                        )],
                        problems: Vec::new(),
                    },
                }
            };
            // Every library a plugin source names, checked as the loader
            // checks it before mapping it (pin, structure, ABI symbols).
            let (problems, notes) = crate::plugins::check_sources(&c);
            let file = c.file.display();
            findings
                .problems
                .extend(problems.into_iter().map(|p| format!("{file}: {p}")));
            findings
                .notes
                .extend(notes.into_iter().map(|n| format!("note: {file}: {n}")));
            if let Some(code) = findings.report(&c) {
                return code;
            }
            let streams: usize = c
                .sources
                .iter()
                .map(|s| match &s.connector {
                    conveyor_config::ConnectorConfig::Rest(r) => r.streams.len(),
                    // A plugin declares its streams when loaded (`conveyor plugins list`).
                    conveyor_config::ConnectorConfig::Plugin(_) => 0,
                    conveyor_config::ConnectorConfig::Vendor(v) => v.streams.len(),
                })
                .sum();
            let plugin_sources = c
                .sources
                .iter()
                .filter(|s| matches!(s.connector, conveyor_config::ConnectorConfig::Plugin(_)))
                .count();
            let scheduled = c.sources.iter().filter(|s| s.schedule.is_some()).count();
            println!(
                "{}: ok — {} source(s), {streams} stream(s){}, {scheduled} scheduled; warehouse {}",
                path.display(),
                c.sources.len(),
                if plugin_sources > 0 {
                    format!(
                        " (+ those of {plugin_sources} plugin source(s): `conveyor plugins list`)"
                    )
                } else {
                    String::new()
                },
                c.warehouse.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{errors}");
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn needs_warehouse(c: &Config) -> bool {
    !(c.model.presets.is_empty()
        && c.model.views.is_empty()
        && c.reconciles.is_empty()
        && c.rules.is_empty())
}

/// What the warehouse-bound checks found: `problems` make the config
/// invalid (each `FILE:LINE:COL: key: message`); `notes` are warnings and
/// things that cannot be checked yet (a source that never synced).
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl Findings {
    /// Prints the notes (stderr) and problems (stdout), as `check` does;
    /// the exit status when there are problems.
    pub fn report(&self, config: &Config) -> Option<ExitCode> {
        for n in &self.notes {
            eprintln!("{n}");
        }
        for p in &self.problems {
            println!("{p}");
        }
        (!self.problems.is_empty()).then(|| {
            eprintln!(
                "{}: {} problem(s)",
                config.file.display(),
                self.problems.len()
            );
            ExitCode::from(EXIT_CONFIG)
        })
    }
}

/// Binds every `[model]` mapping, `[[reconcile]]` relation and `[[rules]]`
/// measure (and the templates against the measure's columns) on `conn`, as
/// the warehouse is now. Nothing is written: only `DESCRIBE`/`LIMIT 0`
/// statements run (and the clock variable the measures read is set on the
/// connection).
pub fn warehouse_findings(conn: &Connection, config: &Config) -> Findings {
    let mut f = Findings::default();
    if !needs_warehouse(config) {
        return f;
    }
    mappings(conn, config, &mut f);
    measures(conn, config, &mut f);
    f
}

fn mappings(conn: &Connection, config: &Config, f: &mut Findings) {
    for p in crate::model::check(conn, config) {
        let at = &p.at;
        let place = format!("{}:{}:{}: {}", at.file.display(), at.line, at.col, at.key);
        if p.degraded {
            f.notes
                .push(format!("warning: {place}: model.{} {}", p.view, p.message));
        } else if p.not_synced {
            f.notes.push(format!(
                "note: {place}: not checked yet: {} (sync the source first)",
                p.message
            ));
        } else {
            f.problems.push(format!(
                "{place}: mapping into model.{} does not fit: {} (the view needs: {})",
                p.view,
                p.message,
                crate::model::contract::describe_view(&p.view)
            ));
        }
    }
    for r in &config.reconciles {
        let at = &r.at;
        for p in crate::recon::check_relations(conn, r) {
            let place = format!(
                "{}:{}:{}: {}.{}",
                at.file.display(),
                at.line,
                at.col,
                at.key,
                p.side
            );
            if p.not_there_yet {
                f.notes.push(format!(
                    "note: {place}: not checked yet: {} (sync its sources first)",
                    p.message
                ));
            } else {
                f.problems.push(format!("{place}: `{}` does not run: {} (hint: check the relation and its key and compare expressions)", r.name, p.message));
            }
        }
    }
}

fn measures(conn: &Connection, config: &Config, f: &mut Findings) {
    for r in &config.rules {
        let p = match crate::rules::measure_columns(conn, r) {
            Ok(columns) => {
                f.problems
                    .extend(super::rules::check_templates(r, &columns));
                continue;
            }
            Err(p) => p,
        };
        let at = &r.at;
        let place = format!(
            "{}:{}:{}: {}.measure",
            at.file.display(),
            at.line,
            at.col,
            at.key
        );
        if p.not_there_yet {
            f.notes.push(format!(
                "note: {place}: not checked yet: {} (sync its sources first)",
                p.message
            ));
        } else {
            f.problems.push(format!("{place}: `{}` does not run: {} (hint: one row per entity per period, columns entity, period, value)", r.name, p.message));
        }
    }
}
