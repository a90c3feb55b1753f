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
    if let Some(t) = parse_rfc3339_fast(b) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, read by hand:
/// chrono's general parser took a tenth of a page's parse. Anything else — a leap
/// second, a `+0000` offset, a field out of range — is `None` and left to
/// chrono, which decides; what this accepts, chrono reads the same (tested).
fn parse_rfc3339_fast(b: &[u8]) -> Option<DateTime<Utc>> {
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(i + 1..i + 1 + digits)? * 10u32.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let days = i64::from(chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_CE);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    DateTime::from_timestamp(secs, nanos)
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

    #[test]
    fn the_hand_parser_reads_what_chrono_reads_and_nothing_else() {
        let mut checked = 0;
        for year in ["0000", "1969", "1970", "2024", "9999"] {
            for month in ["00", "01", "02", "12", "13"] {
                for day in ["00", "01", "28", "29", "30", "31", "32"] {
                    for time in [
                        "00:00:00", "23:59:59", "24:00:00", "12:60:00", "23:59:60", "1a:00:00",
                    ] {
                        for frac in ["", ".", ".1", ".123456", ".123456789", ".1234567891"] {
                            for offset in [
                                "Z", "z", "+00:00", "-07:30", "+23:59", "+24:00", "+0000",
                                "+05:60", "", "Zx",
                            ] {
                                let s = format!("{year}-{month}-{day}T{time}{frac}{offset}");
                                let chrono = DateTime::parse_from_rfc3339(&s)
                                    .ok()
                                    .map(|t| t.with_timezone(&Utc));
                                if let Some(fast) = parse_rfc3339_fast(s.as_bytes()) {
                                    assert_eq!(Some(fast), chrono, "{s}");
                                    checked += 1;
                                } else if s.len() > 19 && !s[19..].starts_with(".1234567891") {
                                    // Left to chrono only where the shape is unusual.
                                    assert!(
                                        chrono.is_none()
                                            || time == "23:59:60"
                                            || offset == "+0000"
                                            || offset == "+24:00",
                                        "{s} is left to chrono"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

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
