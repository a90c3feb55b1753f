//! `conveyor check`: validate the config and its secrets, list every problem.

use std::path::Path;
use std::process::ExitCode;

use crate::EXIT_CONFIG;

pub fn check(path: &Path) -> ExitCode {
    match conveyor_config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("warning: {w}");
            }
            if let Some(code) = super::recon::check_mappings(&c) {
                return code;
            }
            if let Some(code) = super::rules::check_measures(&c) {
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
