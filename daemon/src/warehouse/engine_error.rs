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

/// Whether the error says a table, view or schema it reads is missing.
pub fn is_missing_object(text: &str) -> bool {
    text.contains("Catalog Error")
        && text.contains("does not exist")
        && (text.contains("Table with name") || text.contains("Schema with name"))
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
}
