//! Loads the tested config without its secrets: a rule test runs offline,
//! so an `env:` variable that is not set or a `file:` that is not there
//! must not stop it, and no secret should be read at all.
//!
//! `conveyor_config::load` resolves every secret reference, so each string
//! value written as `env:…` or `file:…` is replaced in the text by an
//! inline placeholder of the same length before validating: every other
//! problem keeps its `FILE:LINE:COL`.

use std::ops::Range;
use std::path::Path;

use conveyor_config::{Config, ConfigErrors, Diagnostic};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Reads and validates the config at `path` with its secret references
/// stood in for. Warnings (inline secrets among them) are dropped.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message: format!("cannot read config file: {e}"),
            hint: None,
        }])
    })?;
    conveyor_config::parse(&without_secret_refs(&text), path)
}

/// `text` with every `"env:…"` / `"file:…"` string value replaced by
/// `"xxx…"` of the same byte length. Text that does not parse is returned
/// as is, for the config's own error.
pub fn without_secret_refs(text: &str) -> String {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return text.to_string();
    }
    let mut spans = Vec::new();
    for (_, value) in doc.get_ref().iter() {
        secret_ref_spans(value, &mut spans);
    }
    let mut out = text.to_string();
    for span in spans {
        let original = &text[span.clone()];
        // Only a one-line quoted string can be swapped without moving
        // anything after it.
        let quoted = original.len() >= 2
            && (original.starts_with('"') || original.starts_with('\''))
            && !original.contains('\n');
        if quoted {
            let placeholder = format!("\"{}\"", "x".repeat(original.len() - 2));
            out.replace_range(span, &placeholder);
        }
    }
    out
}

fn secret_ref_spans(value: &Spanned<DeValue<'_>>, out: &mut Vec<Range<usize>>) {
    match value.get_ref() {
        DeValue::String(s) if s.starts_with("env:") || s.starts_with("file:") => {
            out.push(value.span())
        }
        DeValue::Table(t) => {
            for (_, v) in t.iter() {
                secret_ref_spans(v, out);
            }
        }
        DeValue::Array(a) => {
            for v in a.iter() {
                secret_ref_spans(v, out);
            }
        }
        _ => {}
    }
}
