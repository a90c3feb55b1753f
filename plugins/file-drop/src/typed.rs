//! Typed columns: each column's type is inferred from all its values in a
//! file (BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP in UTC, else text).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use conveyor_plugin_api::{ConnectorError, ErrorKind};

use crate::formats::{Cell, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Date,
    Timestamp,
    Text,
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// An instant in UTC: RFC 3339 with any offset, or a naive date-time taken as UTC.
fn timestamp(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.naive_utc());
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

fn kind_of(cell: &Cell) -> Kind {
    match cell {
        Cell::Null => Kind::Null,
        Cell::Bool(_) => Kind::Bool,
        Cell::Int(_) => Kind::Int,
        Cell::Float(_) => Kind::Float,
        Cell::Text(s) if date(s).is_some() => Kind::Date,
        Cell::Text(s) if timestamp(s).is_some() => Kind::Timestamp,
        Cell::Text(_) | Cell::Json(_) => Kind::Text,
    }
}

/// The narrowest kind that holds both.
fn join(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Null, x) | (x, Null) => x,
        (Int, Float) | (Float, Int) => Float,
        (Date, Timestamp) | (Timestamp, Date) => Timestamp,
        _ => Text,
    }
}

fn as_text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Int(i) => Some(i.to_string()),
        Cell::Float(f) => Some(f.to_string()),
        Cell::Text(s) | Cell::Json(s) => Some(s.clone()),
    }
}

fn column(kind: Kind, cells: impl Iterator<Item = Cell>) -> (DataType, ArrayRef) {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    match kind {
        Kind::Bool => {
            let mut b = BooleanBuilder::new();
            cells.for_each(|c| b.append_option(if let Cell::Bool(v) = c { Some(v) } else { None }));
            (DataType::Boolean, Arc::new(b.finish()))
        }
        Kind::Int => {
            let mut b = Int64Builder::new();
            cells.for_each(|c| b.append_option(if let Cell::Int(v) = c { Some(v) } else { None }));
            (DataType::Int64, Arc::new(b.finish()))
        }
        Kind::Float => {
            let mut b = Float64Builder::new();
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Int(v) => Some(v as f64),
                    Cell::Float(v) => Some(v),
                    _ => None,
                })
            });
            (DataType::Float64, Arc::new(b.finish()))
        }
        Kind::Date => {
            let mut b = Date32Builder::new();
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Text(s) => date(&s).map(|d| (d - epoch).num_days() as i32),
                    _ => None,
                })
            });
            (DataType::Date32, Arc::new(b.finish()))
        }
        Kind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new();
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Text(s) => date(&s)
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .or_else(|| timestamp(&s))
                        .map(|t| t.and_utc().timestamp_micros()),
                    _ => None,
                })
            });
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Arc::new(b.finish()),
            )
        }
        Kind::Null | Kind::Text => {
            let mut b = StringBuilder::new();
            cells.for_each(|c| b.append_option(as_text(&c)));
            (DataType::Utf8, Arc::new(b.finish()))
        }
    }
}

/// The table as one record batch with a type per column.
pub fn to_batch(table: Table) -> Result<RecordBatch, ConnectorError> {
    let width = table.columns.len();
    let mut kinds = vec![Kind::Null; width];
    for row in &table.rows {
        for (k, cell) in kinds.iter_mut().zip(row) {
            *k = join(*k, kind_of(cell));
        }
    }
    let mut columns: Vec<Vec<Cell>> = (0..width)
        .map(|_| Vec::with_capacity(table.rows.len()))
        .collect();
    for row in table.rows {
        for (col, cell) in columns.iter_mut().zip(row) {
            col.push(cell);
        }
    }
    let mut fields = Vec::with_capacity(width);
    let mut arrays = Vec::with_capacity(width);
    for ((name, kind), cells) in table.columns.iter().zip(kinds).zip(columns) {
        let (dt, array) = column(kind, cells.into_iter());
        fields.push(Field::new(name, dt, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| ConnectorError::new(ErrorKind::Data, format!("building a batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type};

    #[test]
    fn columns_get_the_narrowest_type_that_fits_every_value() {
        let t = Table {
            columns: vec![
                "id".into(),
                "hours".into(),
                "day".into(),
                "at".into(),
                "note".into(),
            ],
            rows: vec![
                vec![
                    Cell::Int(1),
                    Cell::Int(8),
                    Cell::Text("2026-01-05".into()),
                    Cell::Text("2026-01-05T09:00:00-05:00".into()),
                    Cell::Int(3),
                ],
                vec![
                    Cell::Int(2),
                    Cell::Float(7.5),
                    Cell::Null,
                    Cell::Text("2026-01-06".into()),
                    Cell::Text("late".into()),
                ],
            ],
        };
        let b = to_batch(t).unwrap();
        let types: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Int64,
                DataType::Float64,
                DataType::Date32,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Utf8
            ]
        );
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 8.0);
        assert_eq!(b.column(2).as_primitive::<Date32Type>().value(0), 20458);
        assert!(b.column(2).is_null(1));
        let at = b
            .column(3)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        // 09:00 at -05:00 is 14:00 UTC.
        assert_eq!(
            at.value(0),
            NaiveDate::from_ymd_opt(2026, 1, 5)
                .unwrap()
                .and_hms_opt(14, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        );
        assert_eq!(b.column(4).as_string::<i32>().value(0), "3");
    }
}
