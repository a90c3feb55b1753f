//! The Scorecards page: per team, each agent's KPIs over the last four
//! weeks of `model.agent_daily` (the 28 days up to its latest day), judged
//! against the thresholds of the rules that measure those columns, with
//! how many of the team meet each one ("9 of 10 meet the quality
//! objective") and a weekly trend per team. `[[reports]]` do not exist yet;
//! when they do, their pages belong here.
//!
//! `model.agent_daily` is a view over raw tables, not a metadata table, so
//! the figures are read once (into a temporary table of the page's own
//! rolled-back transaction) and kept until `conveyor.runs` or the config
//! change: a load (any commit) or a reload starts a new reading.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::extract::State;
use axum::Extension;
use conveyor_config::{Config, Direction};
use duckdb::Connection;
use minijinja::context;
use serde::Serialize;

use super::chart::{self, Line, Threshold};
use super::reader::{read, relation_exists, rows};
use super::session::Session;
use super::view::{self, PageResult};
use super::Console;

/// The KPIs: `model.agent_daily`'s column, its label, and the SQL of the
/// agent's figure over the window.
const KPIS: [(&str, &str, &str); 5] = [
    ("contacts", "Contacts", "sum(d.contacts)"),
    (
        "handle_secs",
        "Avg handle (s)",
        "sum(d.handle_secs) / nullif(sum(d.contacts), 0)",
    ),
    ("csat", "CSAT", "avg(d.csat)"),
    ("quality_score", "Quality", "avg(d.quality_score)"),
    ("logged_hours", "Logged hours", "sum(d.logged_hours)"),
];

/// A rule's threshold that applies to a KPI.
#[derive(Serialize, Clone)]
struct Target {
    rule: String,
    direction: &'static str,
    warn: Option<f64>,
    critical: Option<f64>,
    text: String,
}

impl Target {
    /// `critical`, `warn` or `ok` for a value.
    fn judge(&self, v: f64) -> &'static str {
        let past = |t: Option<f64>| {
            t.is_some_and(|t| match self.direction {
                "below" => v < t,
                _ => v > t,
            })
        };
        if past(self.critical) {
            "critical"
        } else if past(self.warn) {
            "warn"
        } else {
            "ok"
        }
    }
}

/// Whether `text` uses `word` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Per KPI, the first rule whose measure reads that column of
/// `model.agent_daily`.
fn targets(config: &Config) -> BTreeMap<&'static str, Target> {
    let mut out = BTreeMap::new();
    for r in &config.rules {
        let m = r.measure.to_lowercase();
        if !m.contains("agent_daily") {
            continue;
        }
        for (col, _, _) in KPIS {
            if out.contains_key(col) || !mentions(&m, col) {
                continue;
            }
            let direction = match r.direction {
                Direction::Below => "below",
                Direction::Above => "above",
            };
            let text = [("warn", r.warn), ("critical", r.critical)]
                .iter()
                .filter_map(|(n, v)| {
                    v.map(|v| format!("{n} {direction} {}", view::number(Some(v))))
                })
                .collect::<Vec<_>>()
                .join(", ");
            out.insert(
                col,
                Target {
                    rule: r.name.clone(),
                    direction,
                    warn: r.warn,
                    critical: r.critical,
                    text,
                },
            );
        }
    }
    out
}

/// The figures last read, and what the warehouse's runs and the config were
/// then.
#[derive(Default)]
pub struct Cache(Mutex<Option<(String, Arc<Option<Data>>)>>);

/// Changes with every run started or finished and every commit (a commit
/// adds its rows to its run's counter).
fn fingerprint(conn: &Connection) -> Result<String> {
    Ok(conn.query_row(
        "SELECT coalesce(max(run_id), 0) || ':' || coalesce(sum(rows), 0) || ':'
                || count(*) FILTER (WHERE status = 'running')
         FROM conveyor.runs",
        [],
        |r| r.get(0),
    )?)
}

/// The figures for `config_key`: from the cache while the runs are the
/// same, else read again.
fn cached(conn: &Connection, cache: &Cache, config_key: usize) -> Result<Arc<Option<Data>>> {
    let key = format!("{config_key}:{}", fingerprint(conn)?);
    if let Some((k, data)) = &*cache.0.lock().unwrap_or_else(|e| e.into_inner()) {
        if *k == key {
            return Ok(data.clone());
        }
    }
    let data = Arc::new(load(conn)?);
    *cache.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, data.clone()));
    Ok(data)
}

struct AgentRow {
    team: String,
    agent: String,
    name: Option<String>,
    values: Vec<Option<f64>>,
}

struct Data {
    window: Option<(String, String)>,
    agents: Vec<AgentRow>,
    /// (team, week, values)
    weeks: Vec<(String, String, Vec<Option<f64>>)>,
}

fn load(conn: &Connection) -> Result<Option<Data>> {
    if !relation_exists(conn, "model", "agent_daily")? {
        return Ok(None);
    }
    let people = relation_exists(conn, "model", "contact_center_people")?;
    let (join, team, name) = if people {
        (
            "LEFT JOIN model.contact_center_people p USING (agent_id)",
            "p.team",
            "p.name",
        )
    } else {
        ("", "NULL", "NULL")
    };
    // The views are evaluated once; the window and both tables read this.
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE console_daily AS
         SELECT d.*, coalesce(CAST({team} AS VARCHAR), '(no team)') AS team,
                CAST({name} AS VARCHAR) AS name
         FROM model.agent_daily d {join}"
    ))?;
    let (join, team, name) = ("", "d.team", "any_value(d.name)");
    let window: Option<(String, String)> = conn.query_row(
        "SELECT CAST(max(day) - INTERVAL 27 DAY AS DATE)::VARCHAR, max(day)::VARCHAR FROM console_daily",
        [],
        |r| Ok(r.get::<_, Option<String>>(0)?.zip(r.get::<_, Option<String>>(1)?)),
    )?;
    let Some((from, to)) = window else {
        return Ok(Some(Data {
            window: None,
            agents: Vec::new(),
            weeks: Vec::new(),
        }));
    };
    let figures = KPIS
        .iter()
        .map(|(_, _, sql)| format!("CAST({sql} AS DOUBLE)"))
        .collect::<Vec<_>>()
        .join(", ");
    let agents = rows(
        conn,
        &format!(
            "SELECT {team}, d.agent_id, {name}, {figures}
             FROM console_daily d {join}
             WHERE d.day >= CAST(? AS DATE) AND d.day <= CAST(? AS DATE)
             GROUP BY ALL ORDER BY 1, 3, 2"
        ),
        &[&from, &to],
        |r| {
            Ok(AgentRow {
                team: r.get(0)?,
                agent: r.get(1)?,
                name: r.get(2)?,
                values: (0..KPIS.len())
                    .map(|i| r.get(3 + i))
                    .collect::<duckdb::Result<_>>()?,
            })
        },
    )?;
    let weeks = rows(
        conn,
        &format!(
            "SELECT {team}, CAST(date_trunc('week', d.day) AS DATE)::VARCHAR, {figures}
             FROM console_daily d {join}
             WHERE d.day >= CAST(? AS DATE) - INTERVAL 28 DAY AND d.day <= CAST(? AS DATE)
             GROUP BY ALL ORDER BY 1, 2"
        ),
        &[&from, &to],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                (0..KPIS.len())
                    .map(|i| r.get(2 + i))
                    .collect::<duckdb::Result<_>>()?,
            ))
        },
    )?;
    Ok(Some(Data {
        window: Some((from, to)),
        agents,
        weeks,
    }))
}

#[derive(Serialize)]
struct Cell {
    value: String,
    class: &'static str,
}

#[derive(Serialize)]
struct AgentView {
    agent: String,
    name: Option<String>,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct TeamView {
    team: String,
    agents: Vec<AgentView>,
    /// Per KPI: "9 of 10 meet" when it has a target.
    meets: Vec<String>,
    averages: Vec<String>,
}

#[derive(Serialize)]
struct KpiView {
    label: &'static str,
    target: Option<Target>,
}

pub async fn page(State(c): State<Console>, Extension(s): Extension<Session>) -> PageResult {
    let tz = c.tz;
    let config = c.live.config();
    let (cache, config_key) = (c.scorecards.clone(), Arc::as_ptr(&config) as usize);
    let read_data = read(c.wh.clone(), move |conn| cached(conn, &cache, config_key)).await?;
    let data: &Option<Data> = &read_data;
    let targets = targets(&config);
    let kpis: Vec<KpiView> = KPIS
        .iter()
        .map(|(col, label, _)| KpiView {
            label,
            target: targets.get(col).cloned(),
        })
        .collect();
    let mut teams: Vec<TeamView> = Vec::new();
    let mut charts = Vec::new();
    if let Some(data) = data {
        let mut by: BTreeMap<&str, Vec<&AgentRow>> = BTreeMap::new();
        for a in &data.agents {
            by.entry(a.team.as_str()).or_default().push(a);
        }
        for (team, agents) in by {
            let mut meets = Vec::new();
            let mut averages = Vec::new();
            for (i, (col, _, _)) in KPIS.iter().enumerate() {
                let vals: Vec<f64> = agents.iter().filter_map(|a| a.values[i]).collect();
                averages.push(if vals.is_empty() {
                    String::new()
                } else {
                    view::number(Some(vals.iter().sum::<f64>() / vals.len() as f64))
                });
                meets.push(match targets.get(col) {
                    Some(t) if !vals.is_empty() => format!(
                        "{} of {} meet",
                        vals.iter().filter(|v| t.judge(**v) == "ok").count(),
                        vals.len()
                    ),
                    _ => String::new(),
                });
            }
            teams.push(TeamView {
                team: team.to_string(),
                agents: agents
                    .iter()
                    .map(|a| AgentView {
                        agent: a.agent.clone(),
                        name: a.name.clone(),
                        cells: KPIS
                            .iter()
                            .enumerate()
                            .map(|(i, (col, _, _))| Cell {
                                value: view::number(a.values[i]),
                                class: match (a.values[i], targets.get(col)) {
                                    (Some(v), Some(t)) => t.judge(v),
                                    _ => "",
                                },
                            })
                            .collect(),
                    })
                    .collect(),
                meets,
                averages,
            });
        }
        // A weekly trend per KPI with a target: one line per team.
        for (i, (col, label, _)) in KPIS.iter().enumerate() {
            let Some(t) = targets.get(col) else { continue };
            // The weeks with a figure for this KPI.
            let weeks: std::collections::BTreeSet<&str> = data
                .weeks
                .iter()
                .filter(|w| w.2[i].is_some())
                .map(|w| w.1.as_str())
                .collect();
            let mut lines = Vec::new();
            let team_names: std::collections::BTreeSet<&str> =
                data.weeks.iter().map(|w| w.0.as_str()).collect();
            for (n, team) in team_names.into_iter().enumerate() {
                let points = weeks
                    .iter()
                    .map(|wk| {
                        let v = data
                            .weeks
                            .iter()
                            .find(|w| w.0 == team && w.1 == *wk)
                            .and_then(|w| w.2[i]);
                        (wk.to_string(), v)
                    })
                    .collect();
                lines.push(Line {
                    name: team.to_string(),
                    class: ["s0", "s1", "s2", "s3", "s4", "s5"][n % 6],
                    points,
                });
            }
            let thresholds: Vec<Threshold> = [
                ("warn", t.warn, "t-warn"),
                ("critical", t.critical, "t-critical"),
            ]
            .into_iter()
            .filter_map(|(name, v, class)| {
                v.map(|value| Threshold {
                    name: format!("{} {name}", t.rule),
                    value,
                    class,
                })
            })
            .collect();
            let legend: Vec<(String, &str)> =
                lines.iter().map(|l| (l.name.clone(), l.class)).collect();
            charts.push(context! {
                title => format!("{label} per week, by team ({})", t.text),
                svg => view::svg(chart::lines(&format!("{label} per week"), &lines, &thresholds, false, "no weeks yet")),
                legend => legend,
            });
        }
    }
    Ok(view::render(
        "scorecards.html",
        context! {
            available => data.is_some(),
            window => data.as_ref().and_then(|d| d.window.clone()),
            kpis => kpis,
            teams => teams,
            charts => charts,
            ..view::page(&s, "scorecards", "Scorecards", tz)
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_scorecard_targets_come_from_rules_on_agent_daily() {
        let config = conveyor_config::parse_offline(
            r#"[warehouse]
path = "w.duckdb"
[[rules]]
name = "csat_low"
measure = "SELECT agent_id AS entity, day AS period, avg(csat) AS value FROM model.agent_daily GROUP BY ALL"
direction = "below"
warn = 3.5
critical = 3.0
[[rules]]
name = "other_view"
measure = "SELECT 1 AS entity, 1 AS period, avg(csat_x) AS value FROM model.contacts"
direction = "above"
warn = 1
"#,
            std::path::Path::new("/x/conveyor.toml"),
        )
        .unwrap();
        let t = targets(&config);
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), ["csat"]);
        let csat = &t["csat"];
        assert_eq!(csat.rule, "csat_low");
        assert_eq!(csat.text, "warn below 3.5, critical below 3");
        assert_eq!(csat.judge(4.0), "ok");
        assert_eq!(csat.judge(3.2), "warn");
        assert_eq!(csat.judge(2.5), "critical");
    }

    #[test]
    fn console_scorecard_columns_match_whole_words() {
        assert!(mentions("avg(d.csat) as value", "csat"));
        assert!(!mentions("avg(d.csat_weighted)", "csat"));
        assert!(!mentions("supercontacts", "contacts"));
        assert!(mentions("sum(contacts)", "contacts"));
    }
}
