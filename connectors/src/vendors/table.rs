//! Typed vendor tables: declared columns (DECIMAL money, UTC instants,
//! dates) built from projected JSON rows, with undeclared fields kept.
//!
//! A vendor connector projects each API record into a flat JSON object and
//! hands the rows here. Declared columns get their declared Arrow type.
//! Nothing is silently dropped: fields the declaration does not know are
//! appended with inferred types (via [`crate::json_arrow`]), and a declared
//! column holding a value that does not fit its type is built by inference
//! for that batch instead, so the warehouse widens the column and records
//! the schema change rather than losing the value.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use conveyor_plugin_api::{ConnectorError, ErrorKind, StreamDescriptor};
use serde_json::{Map, Value};

use crate::json_arrow::{parse_timestamp, records_to_batch, JSON_TYPE_KEY};

/// A declared column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Float,
    Bool,
    Str,
    /// Exact decimal with this precision and scale (money, hours).
    Decimal(u8, i8),
    /// An instant, stored as UTC; any RFC 3339 offset is accepted.
    Instant,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A nested value kept whole as JSON text.
    Json,
}

/// Money as the vendors send it: cents are exact, totals fit easily.
pub const MONEY: Col = Col::Decimal(18, 2);

/// One warehouse table a vendor stream fills.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub primary_key: &'static [&'static str],
    /// The column the incremental cursor follows, if any.
    pub cursor: Option<&'static str>,
    pub columns: &'static [(&'static str, Col)],
}

impl Table {
    pub fn descriptor(&self) -> StreamDescriptor {
        StreamDescriptor {
            name: self.name.to_string(),
            primary_key: self.primary_key.iter().map(|s| s.to_string()).collect(),
            cursor_field: self.cursor.map(str::to_string),
        }
    }

    /// Builds one batch from projected rows (JSON objects).
    pub fn batch(&self, rows: &[Map<String, Value>]) -> Result<RecordBatch, ConnectorError> {
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (name, col) in self.columns {
            let values: Vec<&Value> = rows
                .iter()
                .map(|r| r.get(*name).unwrap_or(&Value::Null))
                .collect();
            match typed(name, *col, &values) {
                Some((f, a)) => {
                    fields.push(f);
                    arrays.push(a);
                }
                None => {
                    // A value does not fit the declared type: keep it by
                    // inference; the loader widens the column.
                    tracing::warn!(
                        table = self.name,
                        column = *name,
                        "values do not fit the declared type; column inferred"
                    );
                    let (f, a) = inferred(name, &values)?;
                    fields.push(f);
                    arrays.push(a);
                }
            }
        }
        // Fields the declaration does not know, in first-seen order.
        let mut extra: Vec<&str> = Vec::new();
        for r in rows {
            for k in r.keys() {
                if !self.columns.iter().any(|(n, _)| n == k) && !extra.contains(&k.as_str()) {
                    extra.push(k);
                }
            }
        }
        for name in extra {
            let values: Vec<&Value> = rows
                .iter()
                .map(|r| r.get(name).unwrap_or(&Value::Null))
                .collect();
            let (f, a) = inferred(name, &values)?;
            fields.push(f);
            arrays.push(a);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options).map_err(
            |e| {
                ConnectorError::new(
                    ErrorKind::Data,
                    format!("{}: cannot build record batch: {e}", self.name),
                )
            },
        )
    }
}

fn inferred(name: &str, values: &[&Value]) -> Result<(Field, ArrayRef), ConnectorError> {
    let rows: Vec<Value> = values
        .iter()
        .map(|v| serde_json::json!({ name: v }))
        .collect();
    let b = records_to_batch(&rows)?;
    Ok((b.schema().field(0).clone(), b.column(0).clone()))
}

/// The column in its declared type, or `None` if some value does not fit.
fn typed(name: &str, col: Col, values: &[&Value]) -> Option<(Field, ArrayRef)> {
    let n = values.len();
    let (dt, array): (DataType, ArrayRef) = match col {
        Col::Int => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Number(x) => b.append_value(x.as_i64()?),
                    Value::String(s) => b.append_value(s.trim().parse().ok()?),
                    _ => return None,
                }
            }
            (DataType::Int64, Arc::new(b.finish()))
        }
        Col::Float => {
            let mut b = Float64Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Number(x) => b.append_value(x.as_f64()?),
                    Value::String(s) => b.append_value(s.trim().parse().ok()?),
                    _ => return None,
                }
            }
            (DataType::Float64, Arc::new(b.finish()))
        }
        Col::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::Bool(x) => b.append_value(*x),
                    // HubSpot-style string booleans.
                    Value::String(s) if s == "true" || s == "false" => b.append_value(s == "true"),
                    _ => return None,
                }
            }
            (DataType::Boolean, Arc::new(b.finish()))
        }
        Col::Str => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(s) => b.append_value(s),
                    Value::Number(x) => b.append_value(x.to_string()),
                    Value::Bool(x) => b.append_value(x.to_string()),
                    _ => return None,
                }
            }
            (DataType::Utf8, Arc::new(b.finish()))
        }
        Col::Decimal(p, s) => {
            let mut b = Decimal128Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(t) if t.trim().is_empty() => b.append_null(),
                    Value::String(t) => b.append_value(parse_decimal(t, p, s)?),
                    Value::Number(x) => b.append_value(parse_decimal(&x.to_string(), p, s)?),
                    _ => return None,
                }
            }
            let a = b.finish().with_precision_and_scale(p, s).ok()?;
            (DataType::Decimal128(p, s), Arc::new(a))
        }
        Col::Instant => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(t) => b.append_value(parse_timestamp(t)?.timestamp_micros()),
                    _ => return None,
                }
            }
            // Naive UTC, like every instant in the warehouse.
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Arc::new(b.finish()),
            )
        }
        Col::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    Value::String(t) => b.append_value(days_since_epoch(
                        NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok()?,
                    )),
                    _ => return None,
                }
            }
            (DataType::Date32, Arc::new(b.finish()))
        }
        Col::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 32);
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    other => b.append_value(other.to_string()),
                }
            }
            let f = Field::new(name, DataType::Utf8, true).with_metadata(
                std::collections::HashMap::from([(JSON_TYPE_KEY.to_string(), "json".to_string())]),
            );
            return Some((f, Arc::new(b.finish())));
        }
    };
    Some((Field::new(name, dt, true), array))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// `"3076.92"`, `"-0.5"`, `"40.000"` → the unscaled integer at `scale`.
/// `None` when the text is not a plain decimal, has more non-zero
/// fractional digits than `scale`, or exceeds `precision`.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = scale.max(0) as usize;
    let (kept, dropped) = if frac.len() > scale {
        frac.split_at(scale)
    } else {
        (frac, "")
    };
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let digits = format!("{int}{kept}{}", "0".repeat(scale - kept.len()));
    let digits = digits.trim_start_matches('0');
    if digits.len() > precision as usize {
        return None;
    }
    let v: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A flat row from `pairs`; `None` values become JSON null.
pub fn row<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Decimal128Type, TimestampMicrosecondType};
    use serde_json::json;

    const T: Table = Table {
        name: "t",
        primary_key: &["id"],
        cursor: None,
        columns: &[
            ("id", Col::Int),
            ("amount", MONEY),
            ("at", Col::Instant),
            ("on", Col::Date),
            ("meta", Col::Json),
        ],
    };

    #[test]
    fn decimals_parse_exactly_or_not_at_all() {
        assert_eq!(parse_decimal("3076.92", 18, 2), Some(307692));
        assert_eq!(parse_decimal("40.000", 18, 3), Some(40000));
        assert_eq!(parse_decimal("-0.5", 18, 2), Some(-50));
        assert_eq!(parse_decimal("388.89", 18, 2), Some(38889));
        assert_eq!(parse_decimal("1.005", 18, 2), None, "would lose a digit");
        assert_eq!(parse_decimal("1e5", 18, 2), None);
        assert_eq!(parse_decimal("12345", 4, 0), None, "over precision");
    }

    #[test]
    fn declared_types_apply_and_extra_fields_are_kept() {
        let rows = vec![
            row([
                ("id", json!(1)),
                ("amount", json!("3076.92")),
                ("at", json!("2024-06-03T07:15:22-07:00")),
                ("on", json!("2024-06-03")),
                ("meta", json!({"a": 1})),
            ]),
            row([
                ("id", json!(2)),
                ("amount", json!(150.5)),
                ("at", Value::Null),
                ("surprise", json!("x")),
            ]),
        ];
        let b = T.batch(&rows).unwrap();
        let s = b.schema();
        assert_eq!(s.field(1).data_type(), &DataType::Decimal128(18, 2));
        assert_eq!(
            b.column(1).as_primitive::<Decimal128Type>().value(0),
            307692
        );
        assert_eq!(b.column(1).as_primitive::<Decimal128Type>().value(1), 15050);
        let at = b
            .column(2)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0);
        assert_eq!(
            chrono::DateTime::from_timestamp_micros(at)
                .unwrap()
                .to_rfc3339(),
            "2024-06-03T14:15:22+00:00"
        );
        assert_eq!(s.field(3).data_type(), &DataType::Date32);
        assert_eq!(s.field(5).name(), "surprise");
    }

    #[test]
    fn a_value_that_does_not_fit_widens_instead_of_vanishing() {
        let rows = vec![row([("id", json!(1)), ("amount", json!("n/a"))])];
        let b = T.batch(&rows).unwrap();
        assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(b.column(1).as_string::<i32>().value(0), "n/a");
    }
}
