//! The unified model: views in schema `model` that give every later stage
//! one vocabulary (`people`, `placements`, `invoices`, `payments`,
//! `payroll_lines`, `agent_daily`, `evaluations`, and the per-system
//! `*_people` views that `people` joins), created and refreshed after syncs.
//!
//! Each view wraps its mappings (built-in presets or the user's SQL) in casts
//! to the contract's types and adds normalised keys, so a reconciliation or
//! rule never needs to know which vendor a column came from.

pub mod contract;
pub mod presets;

use conveyor_config::{Config, Located};
use duckdb::Connection;

use contract::{Kind, VIEWS};

/// A mapping that could not be used, and where it was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingProblem {
    pub view: String,
    pub at: Located,
    pub message: String,
    /// The raw tables are not there yet (the source never synced): not an
    /// error in the mapping itself.
    pub not_synced: bool,
}

/// One configured SELECT feeding a view.
struct Mapping {
    sql: String,
    at: Located,
}

/// The mappings configured for `view`: the user's own SQL wins over presets.
fn mappings_for(config: &Config, view: &str) -> Vec<Mapping> {
    let own: Vec<Mapping> = config
        .model
        .views
        .iter()
        .filter(|m| m.view == view)
        .map(|m| Mapping {
            sql: m.sql.clone(),
            at: m.at.clone(),
        })
        .collect();
    if !own.is_empty() {
        return own;
    }
    config
        .model
        .presets
        .iter()
        .filter_map(|p| {
            presets::sql(&p.preset, view, &p.source).map(|sql| Mapping {
                sql,
                at: p.at.clone(),
            })
        })
        .collect()
}

/// Checks every configured mapping against the warehouse on `conn`: each
/// must run and yield the view's columns with fitting types.
pub fn check(conn: &Connection, config: &Config) -> Vec<MappingProblem> {
    let mut problems = Vec::new();
    for (view, _) in VIEWS {
        for m in mappings_for(config, view) {
            if let Err(p) = check_mapping(conn, view, &m) {
                problems.push(p);
            }
        }
    }
    problems
}

fn check_mapping(conn: &Connection, view: &str, m: &Mapping) -> Result<(), MappingProblem> {
    let problem = |message: String, not_synced: bool| MappingProblem {
        view: view.to_string(),
        at: m.at.clone(),
        message,
        not_synced,
    };
    let described = describe(conn, &m.sql).map_err(|e| {
        let text = e.to_string();
        let not_synced = text.contains("Table with name") && text.contains("does not exist");
        problem(first_line(&text), not_synced)
    })?;
    let violations = contract::violations(view, &described);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(problem(violations.join("; "), false))
    }
}

fn describe(conn: &Connection, sql: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut st = conn.prepare(&format!("DESCRIBE SELECT * FROM ({sql}) LIMIT 0"))?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// (Re)creates every view of the model. A mapping that does not work yet
/// (its source never synced) or is wrong is left out and reported; the view
/// then holds the other mappings, or no rows, so downstream SQL still binds.
pub fn refresh(conn: &Connection, config: &Config) -> anyhow::Result<Vec<MappingProblem>> {
    let mut problems = Vec::new();
    let mut ddl = vec!["CREATE SCHEMA IF NOT EXISTS model".to_string()];
    for (view, columns) in VIEWS {
        let mut usable = Vec::new();
        for m in mappings_for(config, view) {
            match check_mapping(conn, view, &m) {
                Ok(()) => usable.push(m.sql),
                Err(p) => problems.push(p),
            }
        }
        ddl.push(format!(
            "CREATE OR REPLACE VIEW model.{view} AS {}",
            wrap(columns, &usable)
        ));
    }
    ddl.push(format!(
        "CREATE OR REPLACE VIEW model.people AS {}",
        PEOPLE_SQL.replace("{supervisor_email_key}", &email_key("supervisor_email"))
    ));
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = ddl.iter().try_for_each(|s| conn.execute_batch(s));
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(anyhow::Error::new(e).context("cannot create the unified model's views"));
        }
    }
    for p in &problems {
        if p.not_synced {
            tracing::debug!(view = %p.view, problem = %p.message, "model mapping waits for its source's first sync");
        } else {
            tracing::warn!(view = %p.view, key = %p.at.key, problem = %p.message, "model mapping left out");
        }
    }
    Ok(problems)
}

/// The view body: the mappings' rows cast to the contract, plus normalised
/// keys (`email_key` lower-cased and trimmed, `phone_key` digits only).
fn wrap(columns: &[(&str, Kind)], mappings: &[String]) -> String {
    let mut select: Vec<String> = columns
        .iter()
        .map(|(c, k)| format!("CAST({c} AS {}) AS {c}", k.sql_type()))
        .collect();
    if columns.iter().any(|(c, _)| *c == "email") {
        select.push(format!("{} AS email_key", email_key("email")));
    }
    if columns.iter().any(|(c, _)| *c == "phone") {
        select.push(
            "nullif(regexp_replace(CAST(phone AS VARCHAR), '[^0-9]', '', 'g'), '') AS phone_key"
                .into(),
        );
    }
    let from = if mappings.is_empty() {
        let nulls: Vec<String> = columns
            .iter()
            .map(|(c, k)| format!("CAST(NULL AS {}) AS {c}", k.sql_type()))
            .collect();
        format!("(SELECT {} WHERE false)", nulls.join(", "))
    } else {
        let parts: Vec<String> = mappings
            .iter()
            .map(|m| format!("SELECT * FROM ({m})"))
            .collect();
        format!("({})", parts.join(" UNION ALL BY NAME "))
    };
    format!("SELECT {} FROM {from} AS mapped", select.join(", "))
}

/// Characters no e-mail address holds: ASCII and Unicode whitespace, plus
/// the zero-width space and BOM that copy-paste leaves behind (RE2 syntax).
pub const EMAIL_JUNK: &str = r"[\s\p{Z}\x{200B}\x{FEFF}]";

/// `expr` as an e-mail key: every whitespace character removed, lower-cased,
/// NULL when nothing is left. The one definition for the model's
/// `email_key` and reconciliations' `normalize = "email"`.
pub fn email_key(expr: &str) -> String {
    format!("nullif(lower(regexp_replace(CAST({expr} AS VARCHAR), '{EMAIL_JUNK}', '', 'g')), '')")
}

/// One row per person (by normalised e-mail) with their id in each system.
const PEOPLE_SQL: &str = "
WITH a AS (SELECT email_key, min(ats_id) AS ats_id, any_value(first_name || ' ' || last_name) AS name,
                  any_value(phone_key) AS phone_key
           FROM model.ats_people WHERE email_key IS NOT NULL GROUP BY email_key),
     p AS (SELECT email_key, min(payroll_id) AS payroll_id, any_value(first_name || ' ' || last_name) AS name,
                  any_value(phone_key) AS phone_key
           FROM model.payroll_people WHERE email_key IS NOT NULL GROUP BY email_key),
     c AS (SELECT email_key, min(agent_id) AS agent_id, any_value(name) AS name, any_value(phone_key) AS phone_key,
                  any_value(team) AS team, any_value({supervisor_email_key}) AS supervisor_email_key
           FROM model.contact_center_people WHERE email_key IS NOT NULL GROUP BY email_key)
SELECT coalesce(a.email_key, p.email_key, c.email_key) AS email_key,
       coalesce(p.name, a.name, c.name) AS name,
       coalesce(a.phone_key, p.phone_key, c.phone_key) AS phone_key,
       a.ats_id, p.payroll_id, c.agent_id, c.team, c.supervisor_email_key
FROM a FULL JOIN p ON p.email_key = a.email_key
       FULL JOIN c ON c.email_key = coalesce(a.email_key, p.email_key)";

#[cfg(test)]
mod preset_tests;
#[cfg(test)]
mod tests;
