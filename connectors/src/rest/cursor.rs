//! The incremental cursor: tracking the newest value seen, and rendering
//! the saved cursor (minus the look-back) into a request.

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, Utc};
use conveyor_config::JsonPath;
use conveyor_config::{CursorFormat, IncrementalConfig};
use serde_json::Value;

use crate::json_arrow::{parse_timestamp, JSON_TYPE_KEY};

fn is_json(batch: &RecordBatch, column: &str) -> bool {
    batch
        .schema()
        .field_with_name(column)
        .is_ok_and(|f| f.metadata().get(JSON_TYPE_KEY).is_some_and(|t| t == "json"))
}

/// A cursor value: a timestamp, a number, or opaque text.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorValue {
    Time(DateTime<Utc>),
    Number(f64),
    Text(String),
}

impl CursorValue {
    /// The newest cursor among a batch's records: the maximum of the
    /// column `path` names (its first segment; deeper segments are looked up
    /// in that column's JSON text). Same result as taking
    /// [`from_json`](Self::from_json) of every record's value and the max.
    pub fn newest_in(batch: &RecordBatch, path: &JsonPath) -> Option<CursorValue> {
        let (first, rest) = path.0.split_first()?;
        let col = batch.column_by_name(first)?;
        let mut newest: Option<CursorValue> = None;
        let mut offer = |c: CursorValue| {
            newest = Some(match newest.take() {
                Some(n) => n.max(c),
                None => c,
            })
        };
        if !rest.is_empty() {
            let text = col.as_string_opt::<i32>()?;
            let rest = JsonPath(rest.to_vec());
            for doc in text.iter().flatten() {
                let Ok(v) = serde_json::from_str::<Value>(doc) else {
                    continue;
                };
                if let Some(c) = super::select::select(&v, &rest).and_then(CursorValue::from_json) {
                    offer(c);
                }
            }
            return newest;
        }
        match col.data_type() {
            DataType::Int64 => col
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .max()
                .map(|v| CursorValue::Number(v as f64)),
            DataType::Float64 => col
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .max_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal))
                .map(CursorValue::Number),
            DataType::Timestamp(TimeUnit::Microsecond, _) => col
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .flatten()
                .max()
                .and_then(DateTime::from_timestamp_micros)
                .map(CursorValue::Time),
            // Dates are not timestamps, so `from_json` keeps them as text;
            // ISO dates sort as text.
            DataType::Date32 => col
                .as_primitive::<Date32Type>()
                .iter()
                .flatten()
                .max()
                .and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163))
                .map(|d| CursorValue::Text(d.format("%Y-%m-%d").to_string())),
            DataType::Utf8 if !is_json(batch, first) => {
                for s in col.as_string::<i32>().iter().flatten() {
                    if let Some(c) = CursorValue::from_json(&Value::String(s.to_string())) {
                        offer(c);
                    }
                }
                newest
            }
            _ => None,
        }
    }

    pub fn from_json(v: &Value) -> Option<CursorValue> {
        match v {
            Value::String(s) => Some(match parse_timestamp(s) {
                Some(t) => CursorValue::Time(t),
                None => CursorValue::Text(s.clone()),
            }),
            Value::Number(n) => n.as_f64().map(CursorValue::Number),
            _ => None,
        }
    }

    /// How the cursor is saved in the stream state.
    pub fn to_json(&self) -> Value {
        match self {
            CursorValue::Time(t) => {
                Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            }
            CursorValue::Number(n) => serde_json::json!(n),
            CursorValue::Text(s) => Value::String(s.clone()),
        }
    }

    fn compare(&self, other: &CursorValue) -> Ordering {
        match (self, other) {
            (CursorValue::Time(a), CursorValue::Time(b)) => a.cmp(b),
            (CursorValue::Number(a), CursorValue::Number(b)) => {
                a.partial_cmp(b).unwrap_or(Ordering::Equal)
            }
            (a, b) => a.text().cmp(&b.text()),
        }
    }

    fn text(&self) -> String {
        match self.to_json() {
            Value::String(s) => s,
            v => v.to_string(),
        }
    }

    /// Keeps the larger of two cursors.
    pub fn max(self, other: CursorValue) -> CursorValue {
        if other.compare(&self) == Ordering::Greater {
            other
        } else {
            self
        }
    }
}

/// The request value for a saved cursor: look-back applied, formatted, and
/// placed in the template (`gte|{cursor}`).
pub fn render(cfg: &IncrementalConfig, saved: &CursorValue) -> String {
    let lookback = chrono::Duration::from_std(cfg.lookback).unwrap_or_default();
    let value = match saved {
        CursorValue::Time(t) => {
            let t = *t - lookback;
            match cfg.value_format {
                CursorFormat::Rfc3339 => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                CursorFormat::UnixSeconds => t.timestamp().to_string(),
                CursorFormat::UnixMillis => t.timestamp_millis().to_string(),
            }
        }
        CursorValue::Number(n) => {
            let secs = lookback.num_seconds() as f64;
            let v = match cfg.value_format {
                CursorFormat::UnixMillis => n - secs * 1000.0,
                _ => n - secs,
            };
            if v.fract() == 0.0 {
                format!("{}", v as i64)
            } else {
                v.to_string()
            }
        }
        CursorValue::Text(s) => s.clone(),
    };
    cfg.template.replace("{cursor}", &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conveyor_config::KeyLocation;
    use std::time::Duration;

    fn cfg(format: CursorFormat, lookback: u64, template: &str) -> IncrementalConfig {
        IncrementalConfig {
            cursor_field: "updated_at".into(),
            location: Some(KeyLocation::Query("since".into())),
            value_format: format,
            template: template.into(),
            lookback: Duration::from_secs(lookback),
            start: None,
        }
    }

    #[test]
    fn renders_with_lookback_and_template() {
        let c = CursorValue::from_json(&serde_json::json!("2024-06-01T01:00:00.000Z")).unwrap();
        assert_eq!(
            render(&cfg(CursorFormat::Rfc3339, 3600, "gte|{cursor}"), &c),
            "gte|2024-06-01T00:00:00.000Z"
        );
        assert_eq!(
            render(&cfg(CursorFormat::UnixSeconds, 0, "{cursor}"), &c),
            "1717203600"
        );
    }

    #[test]
    fn max_compares_instants_not_text() {
        // 07:00-07:00 is 14:00Z, later than 10:00Z although it sorts lower as text.
        let a = CursorValue::from_json(&serde_json::json!("2024-06-03T10:00:00Z")).unwrap();
        let b = CursorValue::from_json(&serde_json::json!("2024-06-03T07:00:00-07:00")).unwrap();
        assert_eq!(a.max(b.clone()), b);
    }
}
