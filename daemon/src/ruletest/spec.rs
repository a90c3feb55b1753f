//! The rule-test file (`conveyor test FILE`): its TOML shape, parsed with
//! spans, and validated into a [`TestSpec`] whose problems are
//! `FILE:LINE:COL: key: message` diagnostics like the config's.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use conveyor_config::{Diagnostic, Located};
use serde::Deserialize;
use toml::value::Datetime;
use toml::Spanned;

use super::cells::{self, instant, toml_to_json, widen, Cell};
use super::located::{at_located, Problems};

/// A validated test file.
#[derive(Debug)]
pub struct TestSpec {
    /// The config whose `[[rules]]` are tested.
    pub config: PathBuf,
    pub config_at: Located,
    /// The rules under test, by name; `None`: every rule of the config.
    pub rules: Option<Vec<(String, Located)>>,
    pub fixtures: Vec<Fixture>,
    pub evaluations: Vec<Evaluation>,
}

/// A table (or anything SQL creates) present before the first evaluation.
#[derive(Debug)]
pub struct Fixture {
    pub table: Option<TableName>,
    pub data: FixtureData,
    /// Declared column types (`columns = { day = "DATE" }`), in file order.
    pub columns: Vec<(String, String)>,
    pub at: Located,
}

#[derive(Debug)]
pub enum FixtureData {
    /// Read with DuckDB's `read_csv` (header row, types detected).
    Csv(PathBuf),
    Rows(Vec<Row>),
    Sql(String),
}

/// `schema.table` or `table` (schema `main`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One inline row: a missing column is NULL (TOML has no null).
#[derive(Debug, Clone)]
pub struct Row {
    pub cells: Vec<(String, Cell)>,
    pub at: Located,
}

/// One tick of the simulated clock.
#[derive(Debug)]
pub struct Evaluation {
    /// 1-based, as printed.
    pub number: usize,
    pub name: Option<String>,
    /// UTC.
    pub at: NaiveDateTime,
    /// Rows appended before the rules are evaluated, per table.
    pub rows: Vec<(TableName, Vec<Row>, Located)>,
    /// Statements run before the rules are evaluated (after `rows`).
    pub sql: Option<(String, Located)>,
    /// `None`: not checked.
    pub expect_alerts: Option<Vec<ExpectedAlert>>,
    pub expect_emails: Option<Vec<ExpectedEmail>>,
    pub expect_webhooks: Option<Vec<ExpectedWebhook>>,
    /// The config's reports rendered as of `at` (`rule` names the report).
    pub expect_reports: Option<Vec<ExpectedEmail>>,
    pub located: Located,
}

#[derive(Debug, Clone)]
pub struct ExpectedAlert {
    /// Filled in with the only rule under test when the file leaves it out.
    pub rule: Option<String>,
    pub entity: String,
    pub state: String,
    pub level: Option<String>,
    pub value: Option<f64>,
    pub at: Located,
}

#[derive(Debug, Clone)]
pub struct ExpectedEmail {
    pub rule: Option<String>,
    pub to: String,
    pub subject: Option<String>,
    pub subject_contains: Vec<String>,
    pub body: Option<String>,
    pub body_contains: Vec<String>,
    /// The HTML part: exact (trailing whitespace aside) or containing.
    pub html: Option<String>,
    pub html_contains: Vec<String>,
    pub at: Located,
}

#[derive(Debug, Clone)]
pub struct ExpectedWebhook {
    pub rule: Option<String>,
    pub url: String,
    pub entity: Option<String>,
    pub body: Option<serde_json::Value>,
    pub at: Located,
}

const ALERT_STATES: [&str; 3] = ["pending", "firing", "resolved"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    config: Option<Spanned<String>>,
    rules: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    fixtures: Vec<Spanned<RawFixture>>,
    #[serde(default)]
    evaluations: Vec<Spanned<RawEvaluation>>,
}

type RawRow = BTreeMap<String, Spanned<toml::Value>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixture {
    table: Option<Spanned<String>>,
    csv: Option<Spanned<String>>,
    rows: Option<Spanned<Vec<Spanned<RawRow>>>>,
    sql: Option<Spanned<String>>,
    #[serde(default)]
    columns: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvaluation {
    at: Option<Spanned<Datetime>>,
    name: Option<String>,
    #[serde(default)]
    rows: BTreeMap<String, Spanned<Vec<Spanned<RawRow>>>>,
    sql: Option<Spanned<String>>,
    expect_alerts: Option<Vec<Spanned<RawAlert>>>,
    expect_emails: Option<Vec<Spanned<RawEmail>>>,
    expect_webhooks: Option<Vec<Spanned<RawWebhook>>>,
    expect_reports: Option<Vec<Spanned<RawEmail>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    rule: Option<String>,
    entity: String,
    state: Spanned<String>,
    level: Option<Spanned<String>>,
    value: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    /// In `expect_reports`, written `report = "…"`.
    #[serde(alias = "report")]
    rule: Option<String>,
    to: String,
    subject: Option<String>,
    subject_contains: Option<OneOrMany>,
    body: Option<String>,
    body_contains: Option<OneOrMany>,
    html: Option<String>,
    html_contains: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    rule: Option<String>,
    url: String,
    entity: Option<String>,
    body: Option<toml::Value>,
}

/// `"text"` or `["text", "other"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Parses and validates the test file `text` read from `file`; every
/// problem found, in file order, on failure.
pub fn parse(text: &str, file: &Path) -> Result<TestSpec, Vec<Diagnostic>> {
    let mut p = Problems {
        file,
        text,
        found: Vec::new(),
    };
    let raw: RawTest = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            p.add(e.span().unwrap_or(0..0), "", e.message().trim());
            return Err(p.found);
        }
    };
    let dir = file.parent().unwrap_or(Path::new(""));
    let (config, config_at) = match &raw.config {
        Some(c) if !c.get_ref().trim().is_empty() => {
            (dir.join(c.get_ref()), p.located(c.span(), "config"))
        }
        Some(c) => {
            p.add(c.span(), "config", "must not be empty");
            (PathBuf::new(), p.located(c.span(), "config"))
        }
        None => {
            p.add_hint(
                0..0,
                "config",
                "missing key `config`",
                "the config whose [[rules]] are tested, relative to this file, e.g. config = \"conveyor.toml\"",
            );
            (PathBuf::new(), p.located(0..0, "config"))
        }
    };
    let rules = raw.rules.as_ref().map(|names| {
        names
            .iter()
            .map(|n| (n.get_ref().clone(), p.located(n.span(), "rules")))
            .collect()
    });
    let fixtures = raw
        .fixtures
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| fixture(&mut p, dir, &format!("fixtures[{i}]"), f))
        .collect();
    if raw.evaluations.is_empty() {
        p.add_hint(
            0..0,
            "evaluations",
            "no [[evaluations]]",
            "add [[evaluations]] with `at = 2026-10-12T06:00:00Z` and the alerts you expect",
        );
    }
    let mut evaluations = Vec::new();
    let mut previous: Option<NaiveDateTime> = None;
    for (i, e) in raw.evaluations.into_iter().enumerate() {
        if let Some(e) = evaluation(&mut p, i, e) {
            if previous.is_some_and(|t| e.at <= t) {
                p.found.push(at_located(
                    &e.located,
                    "`at` must be later than the previous evaluation's",
                    Some("the simulated clock only moves forward".into()),
                ));
            }
            previous = Some(e.at);
            evaluations.push(e);
        }
    }
    if !p.found.is_empty() {
        p.found.sort_by_key(|d| (d.line, d.col));
        return Err(p.found);
    }
    Ok(TestSpec {
        config,
        config_at,
        rules,
        fixtures,
        evaluations,
    })
}

fn fixture(p: &mut Problems, dir: &Path, key: &str, raw: Spanned<RawFixture>) -> Option<Fixture> {
    let span = raw.span();
    let raw = raw.into_inner();
    let table = raw
        .table
        .as_ref()
        .and_then(|t| table_name(p, t.get_ref(), t.span(), &format!("{key}.table")));
    let given = [raw.csv.is_some(), raw.rows.is_some(), raw.sql.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        p.add_hint(
            span.clone(),
            key,
            "needs exactly one of `csv`, `rows` or `sql`",
            "csv = \"fixtures/agent_daily.csv\", rows = [{ agent_id = \"a1\", csat = 3.1 }], or sql = \"CREATE VIEW …\"",
        );
        return None;
    }
    if raw.sql.is_none() && raw.table.is_none() {
        p.add_hint(
            span.clone(),
            &format!("{key}.table"),
            "missing key `table`",
            "the table the rows go to, e.g. table = \"model.agent_daily\"",
        );
        return None;
    }
    let columns: Vec<(String, String)> = raw
        .columns
        .iter()
        .map(|(c, t)| (c.clone(), t.get_ref().clone()))
        .collect();
    let data = if let Some(csv) = raw.csv {
        let path = dir.join(csv.get_ref());
        if !path.is_file() {
            p.add_hint(
                csv.span(),
                &format!("{key}.csv"),
                format!("CSV file {} does not exist", path.display()),
                "`csv` is relative to the test file",
            );
        }
        FixtureData::Csv(path)
    } else if let Some(sql) = raw.sql {
        if !raw.columns.is_empty() {
            p.add(
                span.clone(),
                &format!("{key}.columns"),
                "`columns` goes with `csv` or `rows`, not `sql`",
            );
        }
        FixtureData::Sql(sql.into_inner())
    } else {
        let rows_span = raw.rows.as_ref().map(|r| r.span()).unwrap_or(span.clone());
        let rows = rows(
            p,
            &format!("{key}.rows"),
            raw.rows.map(Spanned::into_inner).unwrap_or_default(),
        );
        if rows.is_empty() && columns.is_empty() {
            p.add_hint(
                rows_span,
                &format!("{key}.rows"),
                "an empty table needs its column types",
                "columns = { agent_id = \"VARCHAR\", day = \"DATE\", csat = \"DOUBLE\" }",
            );
        }
        check_column_kinds(p, &rows, &columns);
        FixtureData::Rows(rows)
    };
    Some(Fixture {
        table,
        data,
        columns,
        at: p.located(span, key),
    })
}

/// A column whose values are of kinds no one SQL type holds (other than
/// integers with floats) needs a declared type.
fn check_column_kinds(p: &mut Problems, rows: &[Row], declared: &[(String, String)]) {
    let mut kinds: BTreeMap<&str, (&'static str, &Located)> = BTreeMap::new();
    for row in rows {
        for (column, cell) in &row.cells {
            if declared.iter().any(|(c, _)| c == column) {
                continue;
            }
            let kind = cell.sql_type();
            match kinds.get(column.as_str()) {
                None => {
                    kinds.insert(column, (kind, &row.at));
                }
                Some((first, _)) if widen(first, kind).is_some() => {
                    let wide = widen(first, kind).expect("checked");
                    kinds.insert(column, (wide, &row.at));
                }
                Some((first, _)) => {
                    let at = row.at.clone();
                    p.found.push(at_located(
                        &at,
                        format!("column `{column}` mixes {first} and {kind} values"),
                        Some(format!(
                            "declare its type: columns = {{ {column} = \"VARCHAR\" }}"
                        )),
                    ));
                    return;
                }
            }
        }
    }
}

fn rows(p: &mut Problems, key: &str, raws: Vec<Spanned<RawRow>>) -> Vec<Row> {
    let mut out = Vec::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let key = format!("{key}[{i}]");
        let at = p.located(raw.span(), &key);
        let mut cells = Vec::new();
        for (column, value) in raw.into_inner() {
            if let Some(cell) = cell(p, &format!("{key}.{column}"), &value) {
                cells.push((column, cell));
            }
        }
        out.push(Row { cells, at });
    }
    out
}

fn cell(p: &mut Problems, key: &str, v: &Spanned<toml::Value>) -> Option<Cell> {
    match cells::from_toml(v.get_ref()) {
        Ok(c) => Some(c),
        Err(message) if v.get_ref().is_table() || v.get_ref().is_array() => {
            p.add_hint(
                v.span(),
                key,
                message,
                "write nested data as a JSON string and cast it in the measure",
            );
            None
        }
        Err(message) => {
            p.add(v.span(), key, message);
            None
        }
    }
}

fn table_name(p: &mut Problems, text: &str, span: Range<usize>, key: &str) -> Option<TableName> {
    let plain = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [name] if plain(name) => Some(TableName {
            schema: None,
            name: name.to_string(),
        }),
        [schema, name] if plain(schema) && plain(name) => Some(TableName {
            schema: Some(schema.to_string()),
            name: name.to_string(),
        }),
        _ => {
            p.add_hint(
                span,
                key,
                format!("`{text}` is not a table name"),
                "`table` or `schema.table`, letters, digits and underscores",
            );
            None
        }
    }
}

fn evaluation(p: &mut Problems, i: usize, raw: Spanned<RawEvaluation>) -> Option<Evaluation> {
    let key = format!("evaluations[{i}]");
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(at_raw) = raw.at else {
        p.add_hint(
            span,
            &format!("{key}.at"),
            "missing key `at`",
            "when this evaluation happens, e.g. at = 2026-10-12T06:00:00Z",
        );
        return None;
    };
    let at = match at_raw.get_ref() {
        d if d.date.is_some() => instant(d),
        _ => None,
    };
    let Some(at) = at else {
        p.add_hint(
            at_raw.span(),
            &format!("{key}.at"),
            format!("`{}` is not a date-time", at_raw.get_ref()),
            "e.g. at = 2026-10-12T06:00:00Z",
        );
        return None;
    };
    let located = p.located(at_raw.span(), &format!("{key}.at"));
    let mut appended = Vec::new();
    for (table, rows_raw) in raw.rows {
        let table_key = format!("{key}.rows.\"{table}\"");
        let rows_at = p.located(rows_raw.span(), &table_key);
        let name = table_name(p, &table, rows_raw.span(), &table_key);
        let rows = rows(p, &table_key, rows_raw.into_inner());
        if let Some(name) = name {
            appended.push((name, rows, rows_at));
        }
    }
    let sql = raw.sql.map(|s| {
        (
            s.get_ref().clone(),
            p.located(s.span(), &format!("{key}.sql")),
        )
    });
    let expect_alerts = raw.expect_alerts.map(|alerts| {
        alerts
            .into_iter()
            .enumerate()
            .map(|(j, a)| alert(p, &format!("{key}.expect_alerts[{j}]"), a))
            .collect()
    });
    let expect_emails = raw
        .expect_emails
        .map(|list| emails(p, &format!("{key}.expect_emails"), list));
    let expect_reports = raw
        .expect_reports
        .map(|list| emails(p, &format!("{key}.expect_reports"), list));
    let expect_webhooks = raw.expect_webhooks.map(|hooks| {
        hooks
            .into_iter()
            .enumerate()
            .map(|(j, h)| {
                let at = p.located(h.span(), &format!("{key}.expect_webhooks[{j}]"));
                let h = h.into_inner();
                ExpectedWebhook {
                    rule: h.rule,
                    url: h.url,
                    entity: h.entity,
                    body: h.body.map(toml_to_json),
                    at,
                }
            })
            .collect()
    });
    Some(Evaluation {
        number: i + 1,
        name: raw.name,
        at,
        rows: appended,
        sql,
        expect_alerts,
        expect_emails,
        expect_webhooks,
        expect_reports,
        located,
    })
}

/// Expected e-mails (of rules, or of reports), located at `key[j]`.
fn emails(p: &mut Problems, key: &str, list: Vec<Spanned<RawEmail>>) -> Vec<ExpectedEmail> {
    list.into_iter()
        .enumerate()
        .map(|(j, e)| {
            let at = p.located(e.span(), &format!("{key}[{j}]"));
            let e = e.into_inner();
            ExpectedEmail {
                rule: e.rule,
                to: e.to,
                subject: e.subject,
                subject_contains: e
                    .subject_contains
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
                body: e.body,
                body_contains: e.body_contains.map(OneOrMany::into_vec).unwrap_or_default(),
                html: e.html,
                html_contains: e.html_contains.map(OneOrMany::into_vec).unwrap_or_default(),
                at,
            }
        })
        .collect()
}

fn alert(p: &mut Problems, key: &str, raw: Spanned<RawAlert>) -> ExpectedAlert {
    let at = p.located(raw.span(), key);
    let raw = raw.into_inner();
    if !ALERT_STATES.contains(&raw.state.get_ref().as_str()) {
        p.add_hint(
            raw.state.span(),
            &format!("{key}.state"),
            format!("unknown state `{}`", raw.state.get_ref()),
            "one of: \"pending\", \"firing\", \"resolved\" (resolved: resolved by this evaluation)",
        );
    }
    if let Some(level) = &raw.level {
        if !crate::rules::Level::parse(level.get_ref())
            .is_some_and(|l| crate::rules::Level::ALERTING.contains(&l))
        {
            p.add_hint(
                level.span(),
                &format!("{key}.level"),
                format!("unknown level `{}`", level.get_ref()),
                "one of: \"warn\", \"critical\"",
            );
        }
    }
    ExpectedAlert {
        rule: raw.rule,
        entity: raw.entity,
        state: raw.state.into_inner(),
        level: raw.level.map(Spanned::into_inner),
        value: raw.value,
        at,
    }
}
