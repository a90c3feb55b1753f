//! Query results as people and scripts read them: a table that fits the
//! terminal, CSV, one JSON document, or one JSON object per line.

use super::QueryResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table, wrapped to the terminal's width.
    Table,
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per row and line.
    Ndjson,
}

pub fn render(result: &QueryResult, format: Format) -> String {
    match format {
        Format::Table => table(result),
        Format::Csv => csv(result),
        Format::Json => {
            serde_json::to_string_pretty(&json_rows(result)).expect("JSON values serialise")
        }
        Format::Ndjson => json_rows(result)
            .iter()
            .map(|r| serde_json::to_string(r).expect("JSON values serialise"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn table(result: &QueryResult) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    // Wraps long cells to the terminal's width (when stdout is one); a pipe
    // gets whole cells.
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(&result.columns);
    for r in &result.rows {
        t.add_row(r.iter().map(|v| v.clone().unwrap_or_default()));
    }
    format!(
        "{t}\n({} row{})",
        result.rows.len(),
        if result.rows.len() == 1 { "" } else { "s" }
    )
}

fn csv(result: &QueryResult) -> String {
    let mut out = String::new();
    let header: Vec<String> = result.columns.iter().map(|c| csv_field(c)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in &result.rows {
        let fields: Vec<String> = r
            .iter()
            .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Rows as JSON objects: numbers and booleans unquoted, JSON columns
/// embedded as JSON, everything else a string.
fn json_rows(result: &QueryResult) -> Vec<serde_json::Value> {
    let is = |flags: &[bool], i: usize| flags.get(i).copied().unwrap_or(false);
    result
        .rows
        .iter()
        .map(|r| {
            let obj = result.columns.iter().zip(r).enumerate().map(|(i, (c, v))| {
                let value = match v {
                    None => serde_json::Value::Null,
                    Some(s) if is(&result.literal, i) || is(&result.json, i) => {
                        serde_json::from_str(s)
                            .unwrap_or_else(|_| serde_json::Value::String(s.clone()))
                    }
                    Some(s) => serde_json::Value::String(s.clone()),
                };
                (c.clone(), value)
            });
            serde_json::Value::Object(obj.collect())
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueryResult {
        QueryResult {
            columns: vec!["a".into(), "b".into(), "doc".into()],
            literal: vec![true, false, false],
            json: vec![false, false, true],
            rows: vec![
                vec![
                    Some("1".into()),
                    Some("x, \"y\"".into()),
                    Some(r#"{"k":[1,2]}"#.into()),
                ],
                vec![None, Some("z".into()), None],
            ],
        }
    }

    #[test]
    fn csv_quotes_when_needed() {
        let r = sample();
        assert_eq!(
            render(&r, Format::Csv),
            "a,b,doc\n1,\"x, \"\"y\"\"\",\"{\"\"k\"\":[1,2]}\"\n,z,"
        );
    }

    #[test]
    fn json_is_one_document_with_json_columns_embedded() {
        let j: serde_json::Value = serde_json::from_str(&render(&sample(), Format::Json)).unwrap();
        assert_eq!(j[0]["a"], serde_json::json!(1));
        assert_eq!(j[0]["doc"], serde_json::json!({"k": [1, 2]}));
        assert_eq!(j[1]["a"], serde_json::Value::Null);
    }

    #[test]
    fn ndjson_is_one_object_per_line() {
        let out = render(&sample(), Format::Ndjson);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["doc"]["k"][1], serde_json::json!(2));
        assert_eq!(lines[1]["b"], serde_json::json!("z"));
    }
}
