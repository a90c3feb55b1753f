//! Inline fixture values: a TOML value as a typed SQL cell (dates,
//! date-times in UTC, times), the column type each kind gets, and TOML as
//! JSON for expected webhook bodies.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use toml::value::{Datetime, Offset};

/// A TOML value as SQL sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    /// UTC (an offset in the file is applied).
    Timestamp(NaiveDateTime),
    Time(NaiveTime),
}

impl Cell {
    /// The column type a value of this kind gets when none is declared.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Cell::Int(_) => "BIGINT",
            Cell::Float(_) => "DOUBLE",
            Cell::Bool(_) => "BOOLEAN",
            Cell::Text(_) => "VARCHAR",
            Cell::Date(_) => "DATE",
            Cell::Timestamp(_) => "TIMESTAMP",
            Cell::Time(_) => "TIME",
        }
    }
}

/// The cell a TOML value stands for; arrays and tables have none.
pub fn from_toml(v: &toml::Value) -> Result<Cell, String> {
    Ok(match v {
        toml::Value::String(s) => Cell::Text(s.clone()),
        toml::Value::Integer(i) => Cell::Int(*i),
        toml::Value::Float(f) => Cell::Float(*f),
        toml::Value::Boolean(b) => Cell::Bool(*b),
        toml::Value::Datetime(d) => {
            datetime_cell(d).ok_or_else(|| format!("`{d}` is not a valid date or time"))?
        }
        toml::Value::Array(_) | toml::Value::Table(_) => {
            return Err("a cell must be a string, number, boolean, date or time".into())
        }
    })
}

/// The one type holding values of kinds `a` and `b`, if any.
pub fn widen(a: &'static str, b: &'static str) -> Option<&'static str> {
    match (a, b) {
        _ if a == b => Some(a),
        ("BIGINT", "DOUBLE") | ("DOUBLE", "BIGINT") => Some("DOUBLE"),
        ("DATE", "TIMESTAMP") | ("TIMESTAMP", "DATE") => Some("TIMESTAMP"),
        _ => None,
    }
}

fn datetime_cell(d: &Datetime) -> Option<Cell> {
    match (d.date, d.time) {
        (Some(_), None) => date(d).map(Cell::Date),
        (Some(_), Some(_)) => instant(d).map(Cell::Timestamp),
        (None, Some(t)) => time(&t).map(Cell::Time),
        (None, None) => None,
    }
}

fn date(d: &Datetime) -> Option<NaiveDate> {
    let date = d.date?;
    NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
}

fn time(t: &toml::value::Time) -> Option<NaiveTime> {
    NaiveTime::from_hms_nano_opt(
        t.hour.into(),
        t.minute.into(),
        t.second.unwrap_or(0).into(),
        t.nanosecond.unwrap_or(0),
    )
}

/// A TOML date-time as a UTC instant; a date alone is midnight and a local
/// date-time (no offset) is taken as UTC.
pub fn instant(d: &Datetime) -> Option<NaiveDateTime> {
    let local = date(d)?.and_time(match &d.time {
        Some(t) => time(t)?,
        None => NaiveTime::MIN,
    });
    let shift = match d.offset {
        Some(Offset::Custom { minutes }) => chrono::Duration::minutes(minutes.into()),
        Some(Offset::Z) | None => chrono::Duration::zero(),
    };
    Some(local - shift)
}

/// A TOML value as JSON (date-times as their TOML text).
pub fn toml_to_json(v: toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => f.into(),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(t) => t
            .into_iter()
            .map(|(k, v)| (k, toml_to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
