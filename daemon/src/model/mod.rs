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
    /// The mapping is used, but an optional table is missing and the
    /// columns it feeds are NULL: a warning.
    pub degraded: bool,
}

/// One configured SELECT feeding a view.
struct Mapping {
    sql: String,
    at: Located,
    /// The source a preset reads (None for the user's own SQL).
    source: Option<String>,
    /// Optional tables the preset's source lacks.
    missing: Vec<String>,
}

/// The mappings configured for `view`: the user's own SQL wins over presets.
fn mappings_for(conn: &Connection, config: &Config, view: &str) -> Vec<Mapping> {
    let own: Vec<Mapping> = config
        .model
        .views
        .iter()
        .filter(|m| m.view == view)
        .map(|m| Mapping {
            sql: m.sql.clone(),
            at: m.at.clone(),
            source: None,
            missing: Vec::new(),
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
            let has_table = |t: &str| table_exists(conn, &p.source, t);
            presets::sql(p, view, &has_table).map(|s| Mapping {
                sql: s.sql,
                at: p.at.clone(),
                source: Some(p.source.clone()),
                missing: s.missing,
            })
        })
        .collect()
}

fn table_exists(conn: &Connection, schema: &str, table: &str) -> bool {
    conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [schema, table],
        |r| r.get(0),
    )
    .unwrap_or(false)
}

/// Whether `source` has finished a sync successfully (so a table it lacks
/// is not merely "not synced yet").
fn has_synced(conn: &Connection, source: &str) -> bool {
    conn.query_row(
        "SELECT count(*) > 0 FROM conveyor.runs WHERE source = ? AND status = 'succeeded'",
        [source],
        |r| r.get(0),
    )
    .unwrap_or(false)
}

/// Checks every configured mapping against the warehouse on `conn`: each
/// must run and yield the view's columns with fitting types.
pub fn check(conn: &Connection, config: &Config) -> Vec<MappingProblem> {
    let mut problems = Vec::new();
    for (view, _) in VIEWS {
        for m in mappings_for(conn, config, view) {
            match check_mapping(conn, view, &m) {
                Ok(_) => problems.extend(degraded(view, &m)),
                Err(p) => problems.push(p),
            }
        }
    }
    problems
}

/// The warning for a mapping that runs without some optional tables.
fn degraded(view: &str, m: &Mapping) -> Option<MappingProblem> {
    if m.missing.is_empty() {
        return None;
    }
    let source = m.source.as_deref().unwrap_or("?");
    let tables: Vec<String> = m.missing.iter().map(|t| format!("{source}.{t}")).collect();
    Some(MappingProblem {
        view: view.to_string(),
        at: m.at.clone(),
        message: format!(
            "built without {} (not in the warehouse: its stream has not loaded, or is left out of `streams`); \
             the columns it feeds are NULL, the rest of the view is filled",
            tables.join(", ")
        ),
        not_synced: false,
        degraded: true,
    })
}

/// Checks one mapping; returns the columns it yields.
fn check_mapping(
    conn: &Connection,
    view: &str,
    m: &Mapping,
) -> Result<Vec<String>, MappingProblem> {
    let problem = |message: String, not_synced: bool| MappingProblem {
        view: view.to_string(),
        at: m.at.clone(),
        message,
        not_synced,
        degraded: false,
    };
    if let Err(message) = crate::query::guard::check_config_sql(conn, &m.sql) {
        return Err(problem(message, false));
    }
    let described = describe(conn, &m.sql).map_err(|e| {
        let text = e.to_string();
        let missing_table = is_missing_object(&text);
        match &m.source {
            // The source synced, yet a table the preset needs is not there:
            // say which, and that syncing again will not help.
            Some(source) if missing_table && has_synced(conn, source) => problem(
                format!(
                    "{} — although source `{source}` has synced: the stream behind it was left out of \
                     `streams` or failed (see `conveyor status`); model.{view} cannot be built from this \
                     preset without it (map it yourself under [model.views] to do without)",
                    first_line(&text)
                ),
                false,
            ),
            _ => problem(first_line(&text), missing_table),
        }
    })?;
    let violations = contract::violations(view, &described);
    if violations.is_empty() {
        Ok(described
            .into_iter()
            .map(|(c, _)| c.to_ascii_lowercase())
            .collect())
    } else {
        Err(problem(violations.join("; "), false))
    }
}

fn describe(conn: &Connection, sql: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut st = conn.prepare(&format!("DESCRIBE SELECT * FROM ({sql}) LIMIT 0"))?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

use crate::warehouse::engine_error::{first_line, is_missing_object};

/// (Re)creates every view of the model. A mapping that does not work yet
/// (its source never synced) or is wrong is left out and reported; the view
/// then holds the other mappings, or no rows, so downstream SQL still binds.
pub fn refresh(conn: &Connection, config: &Config) -> anyhow::Result<Vec<MappingProblem>> {
    let mut problems = Vec::new();
    let mut ddl = vec!["CREATE SCHEMA IF NOT EXISTS model".to_string()];
    for (view, columns) in VIEWS {
        let mut usable = Vec::new();
        let mut present: Vec<String> = Vec::new();
        for m in mappings_for(conn, config, view) {
            match check_mapping(conn, view, &m) {
                Ok(cols) => {
                    problems.extend(degraded(view, &m));
                    present.extend(cols);
                    usable.push(m.sql);
                }
                Err(p) => problems.push(p),
            }
        }
        ddl.push(format!(
            "CREATE OR REPLACE VIEW model.{view} AS {}",
            wrap(columns, &usable, &present)
        ));
    }
    ddl.push(format!(
        "CREATE OR REPLACE VIEW model.people AS {}",
        PEOPLE_SQL.replace("{supervisor_email_key}", &email_key("supervisor_email"))
    ));
    crate::warehouse::transaction::in_transaction(conn, || {
        ddl.iter().try_for_each(|s| conn.execute_batch(s))
    })
    .map_err(|e| anyhow::Error::new(e).context("cannot create the unified model's views"))?;
    for p in &problems {
        if p.degraded {
            tracing::info!(view = %p.view, key = %p.at.key, problem = %p.message, "model view partly filled");
        } else if p.not_synced {
            tracing::debug!(view = %p.view, problem = %p.message, "model mapping waits for its source's first sync");
        } else {
            tracing::warn!(view = %p.view, key = %p.at.key, problem = %p.message, "model mapping left out");
        }
    }
    Ok(problems)
}

/// The view body: the mappings' rows cast to the contract, plus normalised
/// keys (`email_key` without whitespace and lower-cased, `phone_key` digits
/// only). A column no mapping yields (an optional one) is NULL.
fn wrap(columns: &[(&str, Kind)], mappings: &[String], present: &[String]) -> String {
    let mut select: Vec<String> = columns
        .iter()
        .map(|(c, k)| {
            if present.iter().any(|p| p == c) {
                format!("CAST({c} AS {}) AS {c}", k.sql_type())
            } else {
                format!("CAST(NULL AS {}) AS {c}", k.sql_type())
            }
        })
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
