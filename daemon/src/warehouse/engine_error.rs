//! DuckDB's error text, read in one place: its first line for a message,
//! and whether it says an object (table, view, schema) does not exist —
//! which for a mapping, measure or relation means "not synced yet" rather
//! than "wrong".

/// The first non-empty line of an engine error, without the C API's
/// trailing `: Error code 1: …` filler.
pub fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    crate::query::clean_error(line)
}

/// What kind of catalog object an engine error says does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A table or view.
    Relation,
    Schema,
    /// A function or macro.
    Function,
    /// Anything else in the catalog (a type, a sequence …).
    Other,
}

/// The kind of object the error says is missing, if it says one is.
pub fn missing_object(text: &str) -> Option<Missing> {
    if !(text.contains("Catalog Error") && text.contains("does not exist")) {
        return None;
    }
    Some(
        if text.contains("Table with name") || text.contains("View with name") {
            Missing::Relation
        } else if text.contains("Schema with name") {
            Missing::Schema
        } else if text.contains("Function with name") || text.contains("Macro") {
            Missing::Function
        } else {
            Missing::Other
        },
    )
}

/// Whether the error says a table, view or schema it reads is missing
/// (for a mapping, measure or relation: not synced yet).
pub fn is_missing_object(text: &str) -> bool {
    matches!(
        missing_object(text),
        Some(Missing::Relation | Missing::Schema)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_read_once() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let e = conn
            .prepare("SELECT * FROM src.nothing")
            .err()
            .unwrap()
            .to_string();
        assert!(is_missing_object(&e), "{e}");
        assert!(first_line(&e).starts_with("Catalog Error"), "{e}");
        assert!(!first_line(&e).contains("Error code"));
        let e = conn
            .prepare("SELECT nope FROM range(1)")
            .err()
            .unwrap()
            .to_string();
        assert!(!is_missing_object(&e), "{e}");
    }

    #[test]
    fn missing_objects_are_told_apart_by_kind() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let error = |sql: &str| conn.prepare(sql).err().unwrap().to_string();
        assert_eq!(
            missing_object(&error("SELECT * FROM t_absent")),
            Some(Missing::Relation)
        );
        // As in Postgres, a table in a missing schema is a missing relation.
        assert_eq!(
            missing_object(&error("SELECT * FROM nowhere.t")),
            Some(Missing::Relation)
        );
        assert_eq!(
            missing_object(&error("CREATE TABLE nowhere.t (x INT)")),
            Some(Missing::Schema)
        );
        assert_eq!(
            missing_object(&error("SELECT * FROM no_such_tf()")),
            Some(Missing::Function)
        );
        assert_eq!(
            missing_object(&error("SELECT no_such_fn(1)")),
            Some(Missing::Function)
        );
        assert_eq!(
            missing_object(&error("SELECT 1::no_such_type")),
            Some(Missing::Other)
        );
        assert_eq!(missing_object(&error("SELECT nope FROM range(1)")), None);
    }
}
