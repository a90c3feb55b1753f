//! A database column's type as Conveyor keeps it, and the Arrow builders a
//! chunk's rows are typed into (no JSON or text detour for the common types).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use conveyor_config::DatabaseEngine;
use conveyor_plugin_api::{ConnectorError, ErrorKind};

use crate::json_arrow::JSON_TYPE_KEY;
use crate::vendors::table::parse_decimal;

/// The precision and scale a NUMERIC without its own gets: DuckDB's widest
/// decimal, with room for fractions of a cent and of a unit price.
pub(crate) const UNCONSTRAINED_DECIMAL: (u8, i8) = (38, 10);

/// How a column is read and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    Integer,
    Float,
    /// Exact: DECIMAL(precision, scale), read as text and parsed exactly.
    Decimal(u8, i8),
    /// An instant (`timestamptz`, MySQL `TIMESTAMP`): stored as UTC.
    TimestampUtc,
    /// A wall-clock timestamp without zone, stored as written.
    Timestamp,
    Date,
    /// JSON documents (`json`, `jsonb`, MySQL `JSON`).
    Json,
    /// A Postgres array, kept as a JSON array.
    JsonArray,
    /// Everything else, as the server prints it (uuid, time, interval …).
    Text,
}

/// One output column of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    /// The type name the server reported (used to cast paging values back).
    pub db_type: String,
    pub kind: Kind,
}

impl Column {
    pub(crate) fn new(name: &str, db_type: &str, kind: Kind) -> Column {
        Column {
            name: name.into(),
            db_type: db_type.into(),
            kind,
        }
    }
}

/// The kind for a server type name (as sqlx reports it, upper-case) and the
/// NUMERIC/DECIMAL precision and scale from `information_schema`, if known.
pub(crate) fn kind_of(
    engine: DatabaseEngine,
    type_name: &str,
    numeric: Option<(u32, u32)>,
) -> Kind {
    let t = type_name.to_ascii_uppercase();
    let decimal = || match numeric {
        Some((p, s)) if (1..=38).contains(&p) && s <= p => Kind::Decimal(p as u8, s as i8),
        // Wider than DuckDB's DECIMAL: the exact digits as text.
        Some((p, _)) if p > 38 => Kind::Text,
        _ => Kind::Decimal(UNCONSTRAINED_DECIMAL.0, UNCONSTRAINED_DECIMAL.1),
    };
    if engine == DatabaseEngine::Postgres && (t.ends_with("[]") || t.starts_with('_')) {
        return Kind::JsonArray;
    }
    match t.as_str() {
        "BOOL" | "BOOLEAN" => Kind::Boolean,
        "INT2" | "INT4" | "INT8" | "SMALLINT" | "INTEGER" | "BIGINT" | "TINYINT" | "MEDIUMINT"
        | "INT" | "SMALLINT UNSIGNED" | "TINYINT UNSIGNED" | "MEDIUMINT UNSIGNED"
        | "INT UNSIGNED" | "YEAR" => Kind::Integer,
        // Past i64: exact, as DECIMAL(20,0).
        "BIGINT UNSIGNED" => Kind::Decimal(20, 0),
        "FLOAT4" | "FLOAT8" | "REAL" | "DOUBLE PRECISION" | "FLOAT" | "DOUBLE" => Kind::Float,
        "NUMERIC" | "DECIMAL" => decimal(),
        "TIMESTAMPTZ" => Kind::TimestampUtc,
        "TIMESTAMP" if engine == DatabaseEngine::MySql => Kind::TimestampUtc,
        "TIMESTAMP" | "DATETIME" => Kind::Timestamp,
        "DATE" => Kind::Date,
        "JSON" | "JSONB" => Kind::Json,
        _ => Kind::Text,
    }
}

/// A row as the engine's driver hands it over: typed getters by position.
/// Each returns `None` for SQL NULL.
pub(crate) trait Cells {
    fn boolean(&self, i: usize) -> Result<Option<bool>, String>;
    fn integer(&self, i: usize) -> Result<Option<i64>, String>;
    fn float(&self, i: usize) -> Result<Option<f64>, String>;
    fn text(&self, i: usize) -> Result<Option<String>, String>;
    fn instant(&self, i: usize) -> Result<Option<DateTime<Utc>>, String>;
    fn wall_clock(&self, i: usize) -> Result<Option<NaiveDateTime>, String>;
    fn date(&self, i: usize) -> Result<Option<NaiveDate>, String>;
}

enum Builder {
    Boolean(BooleanBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Text(StringBuilder),
}

/// Rows of one chunk typed into Arrow columns, plus the paging position of
/// the last row.
pub(crate) struct ChunkBuilder {
    columns: Vec<Column>,
    builders: Vec<Builder>,
    /// The column whose being set means the row is deleted.
    soft_delete: Option<usize>,
    deleted: BooleanBuilder,
    pub rows: usize,
}

impl ChunkBuilder {
    pub(crate) fn new(columns: &[Column], soft_delete: Option<&str>, capacity: usize) -> Self {
        let builders = columns
            .iter()
            .map(|c| match c.kind {
                Kind::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(capacity)),
                Kind::Integer => Builder::Integer(Int64Builder::with_capacity(capacity)),
                Kind::Float => Builder::Float(Float64Builder::with_capacity(capacity)),
                Kind::Decimal(p, s) => {
                    Builder::Decimal(Decimal128Builder::with_capacity(capacity), p, s)
                }
                Kind::TimestampUtc | Kind::Timestamp => {
                    Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
                }
                Kind::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
                Kind::Json | Kind::JsonArray | Kind::Text => {
                    Builder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
                }
            })
            .collect();
        ChunkBuilder {
            columns: columns.to_vec(),
            builders,
            soft_delete: soft_delete.and_then(|s| columns.iter().position(|c| c.name == s)),
            deleted: BooleanBuilder::with_capacity(capacity),
            rows: 0,
        }
    }

    /// Appends one row; `cells` holds the stream's columns first, in order.
    pub(crate) fn push(&mut self, cells: &dyn Cells) -> Result<(), ConnectorError> {
        let bad = |c: &Column, e: String| {
            ConnectorError::new(
                ErrorKind::Data,
                format!("column `{}` ({}): {e}", c.name, c.db_type),
            )
        };
        let mut deleted = false;
        for (i, (b, c)) in self.builders.iter_mut().zip(&self.columns).enumerate() {
            let set = match b {
                Builder::Boolean(b) => {
                    let v = cells.boolean(i).map_err(|e| bad(c, e))?;
                    b.append_option(v);
                    v.unwrap_or(false)
                }
                Builder::Integer(b) => {
                    let v = cells.integer(i).map_err(|e| bad(c, e))?;
                    b.append_option(v);
                    v.is_some()
                }
                Builder::Float(b) => {
                    let v = cells.float(i).map_err(|e| bad(c, e))?;
                    b.append_option(v);
                    v.is_some()
                }
                Builder::Decimal(b, p, s) => {
                    let text = cells.text(i).map_err(|e| bad(c, e))?;
                    let set = text.is_some();
                    match text {
                        None => b.append_null(),
                        Some(t) => match parse_decimal(&t, *p, *s) {
                            Some(v) => b.append_value(v),
                            None => {
                                return Err(bad(
                                    c,
                                    format!("the value {t} does not fit DECIMAL({p},{s}) exactly (declare the column numeric(p,s), or cast it in a query stream)"),
                                ))
                            }
                        },
                    }
                    set
                }
                Builder::Timestamp(b) => {
                    let v = match c.kind {
                        Kind::TimestampUtc => cells.instant(i).map_err(|e| bad(c, e))?,
                        _ => cells
                            .wall_clock(i)
                            .map_err(|e| bad(c, e))?
                            .map(|t| t.and_utc()),
                    };
                    b.append_option(v.map(|t| t.timestamp_micros()));
                    v.is_some()
                }
                Builder::Date(b) => {
                    let v = cells.date(i).map_err(|e| bad(c, e))?;
                    b.append_option(v.map(days_since_epoch));
                    v.is_some()
                }
                Builder::Text(b) => {
                    let v = cells.text(i).map_err(|e| bad(c, e))?;
                    let set = v.is_some();
                    b.append_option(v);
                    set
                }
            };
            if Some(i) == self.soft_delete {
                deleted = set;
            }
        }
        self.deleted.append_value(deleted);
        self.rows += 1;
        Ok(())
    }

    /// The chunk as one batch (with `_deleted` when the stream has a
    /// soft-delete column); the builders start empty again.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ConnectorError> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (b, c) in self.builders.iter_mut().zip(&self.columns) {
            let (data_type, array): (DataType, ArrayRef) = match b {
                Builder::Boolean(b) => (DataType::Boolean, Arc::new(b.finish())),
                Builder::Integer(b) => (DataType::Int64, Arc::new(b.finish())),
                Builder::Float(b) => (DataType::Float64, Arc::new(b.finish())),
                Builder::Decimal(b, p, s) => {
                    let a = b
                        .finish()
                        .with_precision_and_scale(*p, *s)
                        .map_err(|e| ConnectorError::new(ErrorKind::Data, e.to_string()))?;
                    (DataType::Decimal128(*p, *s), Arc::new(a))
                }
                Builder::Timestamp(b) => (
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    Arc::new(b.finish()),
                ),
                Builder::Date(b) => (DataType::Date32, Arc::new(b.finish())),
                Builder::Text(b) => (DataType::Utf8, Arc::new(b.finish())),
            };
            let mut field = Field::new(&c.name, data_type, true);
            if matches!(c.kind, Kind::Json | Kind::JsonArray) {
                field = field.with_metadata(std::collections::HashMap::from([(
                    JSON_TYPE_KEY.to_string(),
                    "json".to_string(),
                )]));
            }
            fields.push(field);
            arrays.push(array);
        }
        let deleted: BooleanArray = self.deleted.finish();
        if self.soft_delete.is_some() {
            fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
            arrays.push(Arc::new(deleted));
        }
        self.rows = 0;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| ConnectorError::new(ErrorKind::Data, e.to_string()))
    }
}

/// The column a stream with `soft_delete` gets: whether the row is deleted.
pub const DELETED_COLUMN: &str = "_deleted";

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_types_map_to_the_warehouse_types_people_expect() {
        use DatabaseEngine::*;
        assert_eq!(
            kind_of(Postgres, "NUMERIC", Some((12, 2))),
            Kind::Decimal(12, 2)
        );
        assert_eq!(kind_of(Postgres, "NUMERIC", None), Kind::Decimal(38, 10));
        assert_eq!(kind_of(Postgres, "NUMERIC", Some((50, 2))), Kind::Text);
        assert_eq!(kind_of(Postgres, "TIMESTAMPTZ", None), Kind::TimestampUtc);
        assert_eq!(kind_of(Postgres, "TIMESTAMP", None), Kind::Timestamp);
        assert_eq!(kind_of(MySql, "TIMESTAMP", None), Kind::TimestampUtc);
        assert_eq!(kind_of(MySql, "DATETIME", None), Kind::Timestamp);
        assert_eq!(kind_of(Postgres, "JSONB", None), Kind::Json);
        assert_eq!(kind_of(Postgres, "TEXT[]", None), Kind::JsonArray);
        assert_eq!(kind_of(Postgres, "UUID", None), Kind::Text);
        assert_eq!(
            kind_of(MySql, "BIGINT UNSIGNED", None),
            Kind::Decimal(20, 0)
        );
        assert_eq!(kind_of(MySql, "BOOLEAN", None), Kind::Boolean);
    }
}
