//! `conveyor check`: validate the config and its secrets, then check it
//! against the warehouse ([`crate::checks`]) and every plugin library, and
//! list every problem at once, sorted by position.

use std::path::Path;
use std::process::ExitCode;

use conveyor_config::{Config, Diagnostic};

use crate::checks::{needs_warehouse, warehouse_findings, Findings};
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
            findings
                .problems
                .extend(problems.into_iter().map(|p| Diagnostic {
                    file: c.file.clone(),
                    line: 0,
                    col: 0,
                    key: String::new(),
                    message: p,
                    hint: None,
                }));
            let file = c.file.display();
            findings
                .notes
                .extend(notes.into_iter().map(|n| format!("note: {file}: {n}")));
            findings.sort();
            if let Some(code) = report(&findings, &c) {
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
                    conveyor_config::ConnectorConfig::Database(d) => d.streams.len(),
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

/// Prints the notes (stderr) and problems (stdout); the exit status when
/// there are problems.
fn report(findings: &Findings, config: &Config) -> Option<ExitCode> {
    for n in &findings.notes {
        eprintln!("{n}");
    }
    for p in &findings.problems {
        println!("{p}");
    }
    (!findings.problems.is_empty()).then(|| {
        eprintln!(
            "{}: {} problem(s)",
            config.file.display(),
            findings.problems.len()
        );
        ExitCode::from(EXIT_CONFIG)
    })
}
