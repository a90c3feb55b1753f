//! `conveyor query` and `conveyor status`: through the daemon when it runs,
//! straight from the file (read-only) when it does not. Both load the config
//! offline: a person who only reads needs no source's credentials.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use conveyor_config::Config;

use crate::query::{self, Format};
use crate::warehouse::Warehouse;
use crate::{server, EXIT_CONFIG};

/// Where the SQL of `conveyor query` comes from.
pub enum SqlSource {
    Text(String),
    Stdin,
    File(PathBuf),
}

impl SqlSource {
    pub fn from_args(sql: Option<String>, file: Option<PathBuf>) -> SqlSource {
        match (sql, file) {
            (_, Some(f)) => SqlSource::File(f),
            (Some(s), None) if s == "-" => SqlSource::Stdin,
            (Some(s), None) => SqlSource::Text(s),
            (None, None) => SqlSource::Stdin,
        }
    }

    fn read(self) -> Result<String> {
        match self {
            SqlSource::Text(s) => Ok(s),
            SqlSource::Stdin => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read SQL from standard input")?;
                Ok(s)
            }
            SqlSource::File(f) => std::fs::read_to_string(&f).with_context(|| {
                let hint = if matches!(f.to_str(), Some("table" | "csv" | "json" | "ndjson")) {
                    " (-f reads SQL from a file; the output format is --format)"
                } else {
                    ""
                };
                format!("cannot read SQL from {}{hint}", f.display())
            }),
        }
    }
}

pub async fn query_command(config: Config, sql: SqlSource, format: Format) -> Result<ExitCode> {
    let sql = match sql.read() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // Refused here, before anything is opened or sent: the guard needs only
    // DuckDB's parser, which an in-memory database has.
    let parser = duckdb::Connection::open_in_memory()?;
    if let Err(e) = query::check_read_only(&parser, &sql) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    drop(parser);
    let result = run_read_only(&config, vec![sql]).await?.remove(0);
    emit(&query::render(&result, format))?;
    Ok(ExitCode::SUCCESS)
}

/// `conveyor status`: the streams, then the outbox and its dead letters.
/// `--format json` prints one document: `{"streams": […], "notifications":
/// […], "dead_letters": […]}`.
pub async fn status_command(config: Config, format: Format) -> Result<ExitCode> {
    let sqls = [
        crate::status::STATUS_SQL,
        crate::status::OUTBOX_SQL,
        crate::status::DEAD_LETTERS_SQL,
    ];
    let mut results = run_read_only(&config, sqls.map(String::from).to_vec()).await?;
    with_next_run(&config, &mut results[0], chrono::Utc::now());
    let names = ["streams", "notifications", "dead_letters"];
    match format {
        Format::Json => {
            let doc: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(&results)
                .map(|(n, r)| {
                    let rows = serde_json::from_str(&query::render(r, Format::Json))
                        .expect("rendered JSON parses");
                    (n.to_string(), rows)
                })
                .collect();
            emit(&serde_json::to_string_pretty(&doc).expect("JSON serialises"))?;
        }
        Format::Ndjson => {
            // One object per line, each tagged with the section it is from.
            let mut lines = Vec::new();
            for (n, r) in names.iter().zip(&results) {
                for line in query::render(r, Format::Ndjson).lines() {
                    let mut v: serde_json::Value =
                        serde_json::from_str(line).expect("rendered JSON parses");
                    v["section"] = serde_json::Value::String(n.to_string());
                    lines.push(v.to_string());
                }
            }
            emit(&lines.join("\n"))?;
        }
        Format::Table | Format::Csv => {
            let table = format == Format::Table;
            for (i, result) in results.iter().enumerate() {
                match i {
                    1 | 2 if result.rows.is_empty() => continue,
                    1 if table => emit("\nNotifications:")?,
                    2 if table => emit(&format!(
                        "\nDead letters (given up after the last attempt; see last_error{}):",
                        config
                            .smtp
                            .as_ref()
                            .and_then(|s| s.operator.as_deref())
                            .map_or(String::new(), |o| format!("; reported to {o}"))
                    ))?,
                    _ => {}
                }
                emit(&query::render(result, format))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds `next_run` after `last_run`: the source's next scheduled firing
/// (empty for a source without a schedule or no longer configured).
fn with_next_run(
    config: &Config,
    streams: &mut query::QueryResult,
    now: chrono::DateTime<chrono::Utc>,
) {
    let Some(source_col) = streams.columns.iter().position(|c| c == "source") else {
        return;
    };
    let at = streams
        .columns
        .iter()
        .position(|c| c == "last_run")
        .map_or(streams.columns.len(), |i| i + 1);
    streams.columns.insert(at, "next_run".into());
    streams.literal.insert(at.min(streams.literal.len()), false);
    if !streams.json.is_empty() {
        streams.json.insert(at.min(streams.json.len()), false);
    }
    for row in &mut streams.rows {
        let source = row.get(source_col).cloned().flatten().unwrap_or_default();
        let next = config
            .sources
            .iter()
            .find(|s| s.name == source)
            .and_then(|s| s.schedule.as_ref())
            .and_then(|sch| crate::scheduler::next_fire(sch, now))
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string());
        row.insert(at.min(row.len()), next);
    }
}

/// Prints a line of output. A reader that went away (`| head`) is not an
/// error: the caller stops quietly (see [`crate::main`]).
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|_| out.flush())
        .map_err(anyhow::Error::from)
}

/// Runs read-only `sqls` through the daemon when it runs, else on the file.
async fn run_read_only(config: &Config, sqls: Vec<String>) -> Result<Vec<query::QueryResult>> {
    match server::find_daemon(&config.server, &config.warehouse.path).await? {
        Some(daemon) => {
            let mut out = Vec::new();
            for sql in &sqls {
                out.push(daemon.query(sql).await?);
            }
            Ok(out)
        }
        None => {
            let path = config.warehouse.path.clone();
            tokio::task::spawn_blocking(move || {
                let conn = Warehouse::open_read_only(&path)?;
                sqls.iter().map(|sql| query::run(&conn, sql)).collect()
            })
            .await?
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_shows_the_next_scheduled_run_per_source() {
        let config = conveyor_config::parse_offline(
            "[warehouse]\npath = \"w.duckdb\"\n[sources.src]\ntype = \"rest\"\nbase_url = \"https://a.example\"\n\
             schedule = \"0 0 2 * * *\"\n[[sources.src.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n",
            std::path::Path::new("/c/conveyor.toml"),
        )
        .unwrap();
        let mut r = crate::query::QueryResult {
            columns: vec!["source".into(), "stream".into(), "last_run".into()],
            literal: vec![false; 3],
            json: vec![],
            rows: vec![
                vec![Some("src".into()), Some("x".into()), None],
                vec![Some("gone".into()), Some("y".into()), None],
            ],
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-02T03:00:00Z")
            .unwrap()
            .to_utc();
        super::with_next_run(&config, &mut r, now);
        assert_eq!(r.columns[3], "next_run");
        assert_eq!(r.rows[0][3].as_deref(), Some("2026-12-03 02:00:00Z"));
        assert_eq!(r.rows[1][3], None);
    }
}
