//! Turns JSON records into an Arrow record batch, inferring column types.
//!
//! Types come from the data: integers, floats, booleans, RFC 3339
//! timestamps (as UTC instants), ISO dates and strings; nested objects and arrays are kept
//! whole as JSON text in a column tagged [`JSON_TYPE_KEY`] = `json`. A column
//! whose values disagree gets the narrowest type that holds them all
//! (integer + float → float, date + timestamp → timestamp, else string), so
//! nothing is dropped. Columns keep first-seen order.

use arrow_array::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use conveyor_plugin_api::{ConnectorError, ErrorKind};
use serde_json::Value;

/// Field metadata key marking a Utf8 column that holds JSON documents.
pub const JSON_TYPE_KEY: &str = "conveyor.type";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Date,
    Timestamp,
    Str,
    Json,
}

impl Kind {
    pub(crate) fn of_str(s: &str) -> Kind {
        if parse_timestamp(s).is_some() {
            Kind::Timestamp
        } else if parse_date(s).is_some() {
            Kind::Date
        } else {
            Kind::Str
        }
    }

    pub(crate) fn merge(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Str,
        }
    }
}

/// Parses an RFC 3339 timestamp, also accepting a `+0000` offset without colon.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    // Cheap shape check first: most strings are not timestamps.
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

const EPOCH_DAYS_CE: i32 = 719_163;

/// An ISO date as days since 1970-01-01 (Arrow's Date32).
pub(crate) fn date_days(s: &str) -> Option<i32> {
    parse_date(s).map(|d| chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_CE)
}

/// Converts records (JSON objects) into one batch. A record that is not an
/// object is an error: the connector's record selector points at the wrong place.
/// The columns are built by [`json_columns`](crate::json_columns), the
/// same code that parses pages from bytes, so both paths type alike.
pub fn records_to_batch(records: &[Value]) -> Result<RecordBatch, ConnectorError> {
    if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| !r.is_object()) {
        return Err(ConnectorError::new(
            ErrorKind::Data,
            format!(
                "record {i} is a JSON {}, not an object; check the stream's `records` selector",
                type_name(r)
            ),
        ));
    }
    crate::json_columns::batch_from_records(records).map_err(|e| {
        ConnectorError::new(ErrorKind::Data, format!("cannot build record batch: {e}"))
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_schema::{DataType, TimeUnit};
    use serde_json::json;

    #[test]
    fn infers_types_and_keeps_nested_values() {
        let recs = vec![
            json!({"id": 1, "amount": 10, "ok": true, "at": "2024-06-01T00:00:00.000Z", "day": "2024-06-01", "addr": {"city": "Leeds"}, "tags": ["a"]}),
            json!({"id": 2, "amount": 10.5, "ok": null, "at": "2024-06-03T07:15:22-07:00", "day": "2024-06-02", "addr": null, "extra": "x"}),
        ];
        let b = records_to_batch(&recs).unwrap();
        let s = b.schema();
        let types: Vec<_> = s
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(types[0], ("id", DataType::Int64));
        assert_eq!(types[1], ("amount", DataType::Float64));
        assert_eq!(types[2], ("ok", DataType::Boolean));
        assert_eq!(types[3].1, DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(types[4], ("day", DataType::Date32));
        assert_eq!(
            s.field(5).metadata().get(JSON_TYPE_KEY).map(String::as_str),
            Some("json")
        );
        assert_eq!(types[7], ("extra", DataType::Utf8));
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(1), 2);
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(0), 10.0);
        // 07:15:22-07:00 is 14:15:22 UTC.
        let ts = b
            .column(3)
            .as_primitive::<TimestampMicrosecondType>()
            .value(1);
        assert_eq!(
            DateTime::from_timestamp_micros(ts).unwrap().to_rfc3339(),
            "2024-06-03T14:15:22+00:00"
        );
        assert_eq!(
            b.column(5).as_string::<i32>().value(0),
            r#"{"city":"Leeds"}"#
        );
        assert!(b.column(7).is_null(0));
    }

    #[test]
    fn mixed_values_widen_to_string_without_loss() {
        let recs = vec![json!({"v": 1}), json!({"v": "n/a"}), json!({"v": {"x": 1}})];
        let b = records_to_batch(&recs).unwrap();
        assert_eq!(b.schema().field(0).data_type(), &DataType::Utf8);
        let col = b.column(0).as_string::<i32>();
        assert_eq!(
            (col.value(0), col.value(1), col.value(2)),
            ("1", "n/a", r#"{"x":1}"#)
        );
    }

    #[test]
    fn non_object_record_is_a_clear_error() {
        let e = records_to_batch(&[json!(5)]).unwrap_err();
        assert!(e.message.contains("record 0 is a JSON number"), "{e}");
    }

    #[test]
    fn salesforce_offsets_parse() {
        assert!(parse_timestamp("2024-06-28T17:01:02.000+0000").is_some());
        assert!(parse_timestamp("Person 2024-06-28").is_none());
    }
}
