//! Column types: Arrow to DuckDB, and the widening lattice of schema evolution.
//!
//! A column only ever widens: BIGINT → DOUBLE → VARCHAR, DATE → TIMESTAMP
//! → VARCHAR, BOOLEAN/JSON → VARCHAR. VARCHAR holds anything, so no value
//! loses its place; it keeps its text.

use arrow_schema::{DataType, Field};
use conveyor_connectors::json_arrow::JSON_TYPE_KEY;

/// The DuckDB type for an Arrow field, `None` for an all-null column
/// (its type is unknown until a value arrives).
pub fn sql_type(field: &Field) -> Option<String> {
    Some(match field.data_type() {
        DataType::Null => return None,
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => "BIGINT".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        // Instants are stored as TIMESTAMP in UTC. The bundled DuckDB has no
        // ICU extension (it needs a CMake build of DuckDB's sources), and
        // without ICU a TIMESTAMPTZ column cannot be cast to DATE, shifted by
        // an INTERVAL or truncated to a week: useless for ops queries.
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            if field.metadata().get(JSON_TYPE_KEY).map(String::as_str) == Some("json") {
                "JSON".into()
            } else {
                "VARCHAR".into()
            }
        }
        _ => "VARCHAR".into(),
    })
}

/// The type an existing column must change to so that `incoming` values
/// fit, or `None` if they already fit.
pub fn widen(existing: &str, incoming: &str) -> Option<String> {
    let e = existing.to_ascii_uppercase();
    let i = incoming.to_ascii_uppercase();
    if e == i || e == "VARCHAR" {
        return None;
    }
    let fits = matches!(
        (e.as_str(), i.as_str()),
        ("DOUBLE", "BIGINT") | ("BIGINT", "INTEGER") | ("TIMESTAMP", "DATE")
    ) || (e.starts_with("DECIMAL") && i == "BIGINT");
    if fits {
        return None;
    }
    let wider = match (e.as_str(), i.as_str()) {
        ("BIGINT", "DOUBLE") | ("INTEGER", "DOUBLE") => "DOUBLE",
        ("INTEGER", "BIGINT") => "BIGINT",
        ("DATE", "TIMESTAMP") => "TIMESTAMP",
        (d, "DOUBLE") if d.starts_with("DECIMAL") => "DOUBLE",
        _ => "VARCHAR",
    };
    Some(wider.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_follows_the_lattice() {
        assert_eq!(widen("BIGINT", "BIGINT"), None);
        assert_eq!(widen("BIGINT", "DOUBLE").as_deref(), Some("DOUBLE"));
        assert_eq!(widen("DOUBLE", "BIGINT"), None);
        assert_eq!(widen("DOUBLE", "VARCHAR").as_deref(), Some("VARCHAR"));
        assert_eq!(widen("DATE", "TIMESTAMP").as_deref(), Some("TIMESTAMP"));
        assert_eq!(widen("JSON", "BIGINT").as_deref(), Some("VARCHAR"));
        assert_eq!(widen("VARCHAR", "JSON"), None);
        assert_eq!(widen("BOOLEAN", "BIGINT").as_deref(), Some("VARCHAR"));
    }
}
