//! Reading one dropped file (CSV with a header row, or NDJSON) into cells.

use std::path::Path;

use conveyor_plugin_api::{ConnectorError, ErrorKind, Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// The format a file name (or pattern) implies by its extension.
    pub fn of(name: &str) -> Result<Format, ConnectorError> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Ok(Format::Csv)
        } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
            Ok(Format::Ndjson)
        } else {
            Err(ConnectorError::new(
                ErrorKind::Config,
                format!("`{name}`: end the pattern in .csv, .ndjson or .jsonl"),
            ))
        }
    }
}

/// One value as read, before the column's type is decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Text; may still turn out to be a date or a timestamp.
    Text(String),
    /// A nested object or array, kept as JSON text.
    Json(String),
}

/// A file's rows; columns in first-seen order, rows aligned to them.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    fn column(&mut self, name: &str) -> usize {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.columns.push(name.to_string());
                self.columns.len() - 1
            }
        }
    }
}

pub fn read(path: &Path, format: Format) -> Result<Table, ConnectorError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bad = |e: String| ConnectorError::new(ErrorKind::Data, format!("{name}: {e}"));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    match format {
        Format::Csv => read_csv(&text).map_err(bad),
        Format::Ndjson => read_ndjson(&text).map_err(bad),
    }
}

/// A CSV cell: empty is null; numbers and booleans are typed, except
/// numbers with leading zeros (IDs, postcodes), which stay text.
fn csv_cell(raw: &str) -> Cell {
    let t = raw.trim();
    if t.is_empty() {
        return Cell::Null;
    }
    let digits = t.trim_start_matches(['-', '+']);
    let leading_zero = digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.");
    if !leading_zero {
        if let Ok(i) = t.parse::<i64>() {
            return Cell::Int(i);
        }
        if t.chars().any(|c| c.is_ascii_digit())
            && !t.chars().any(|c| c.is_alphabetic() && c != 'e' && c != 'E')
        {
            if let Ok(f) = t.parse::<f64>() {
                return Cell::Float(f);
            }
        }
    }
    match t {
        "true" | "TRUE" | "True" => Cell::Bool(true),
        "false" | "FALSE" | "False" => Cell::Bool(false),
        _ => Cell::Text(raw.to_string()),
    }
}

fn read_csv(text: &str) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut table = Table::default();
    let index: Vec<usize> = headers.iter().map(|h| table.column(h)).collect();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", line + 2))?;
        let mut row = vec![Cell::Null; table.columns.len()];
        for (i, value) in record.iter().enumerate() {
            if let Some(&col) = index.get(i) {
                row[col] = csv_cell(value);
            }
        }
        table.rows.push(row);
    }
    Ok(table)
}

fn json_cell(v: Json) -> Cell {
    match v {
        Json::Null => Cell::Null,
        Json::Bool(b) => Cell::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Cell::Text(s),
        nested => Cell::Json(nested.to_string()),
    }
}

fn read_ndjson(text: &str) -> Result<Table, String> {
    let mut table = Table::default();
    let mut rows: Vec<Vec<(usize, Cell)>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        let Json::Object(fields) = value else {
            return Err(format!("line {}: expected a JSON object", n + 1));
        };
        rows.push(
            fields
                .into_iter()
                .map(|(k, v)| (table.column(&k), json_cell(v)))
                .collect(),
        );
    }
    let width = table.columns.len();
    table.rows = rows
        .into_iter()
        .map(|cells| {
            let mut row = vec![Cell::Null; width];
            for (i, c) in cells {
                row[i] = c;
            }
            row
        })
        .collect();
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_typed_but_ids_keep_their_zeros() {
        assert_eq!(csv_cell("42"), Cell::Int(42));
        assert_eq!(csv_cell("-3.5"), Cell::Float(-3.5));
        assert_eq!(csv_cell("007"), Cell::Text("007".into()));
        assert_eq!(csv_cell("0.5"), Cell::Float(0.5));
        assert_eq!(csv_cell("true"), Cell::Bool(true));
        assert_eq!(csv_cell(""), Cell::Null);
        assert_eq!(csv_cell("inf"), Cell::Text("inf".into()));
        assert_eq!(csv_cell("2026-01-05"), Cell::Text("2026-01-05".into()));
    }

    #[test]
    fn ndjson_rows_align_to_the_union_of_keys() {
        let t = read_ndjson("{\"a\":1}\n\n{\"b\":\"x\",\"a\":2,\"n\":{\"k\":1}}\n").unwrap();
        assert_eq!(t.columns, ["a", "b", "n"]);
        assert_eq!(t.rows[0], [Cell::Int(1), Cell::Null, Cell::Null]);
        assert_eq!(
            t.rows[1],
            [
                Cell::Int(2),
                Cell::Text("x".into()),
                Cell::Json("{\"k\":1}".into())
            ]
        );
        assert!(read_ndjson("[1]").unwrap_err().contains("line 1"));
    }
}
