//! Config problems with `FILE:LINE:COL: key.path: message` locations.
//!
//! Public so that other parts of Conveyor (the daemon's `conveyor check`
//! findings, `conveyor test` files) report their own located problems in
//! the same form: build one with [`Diagnostic::at`] from the text and a
//! byte span, add a [`hint`](Diagnostic::hint), sort a list of them (by
//! file, line, column), and print with `Display`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::model::Located;

/// One problem in a config file, printed as
/// `FILE:LINE:COL: key.path: message (hint: …)`.
///
/// Ordered by file, then line, then column (then key, message and hint), so
/// a sorted list reads in file order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line and column; 0 when the problem concerns the whole file.
    pub line: usize,
    pub col: usize,
    /// Dotted key path, e.g. `sources.crm.auth.token`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at byte `span.start` of `text` (the contents of `file`),
    /// about the dotted `key` (may be empty); line and column are computed
    /// with [`line_col`].
    pub fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, col) = line_col(text, span.start);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// A problem at a place the config recorded (a [`Located`]), for
    /// problems found after validation, e.g. against the warehouse.
    pub fn from_located(at: &Located, message: impl Into<String>) -> Self {
        Diagnostic {
            file: at.file.clone(),
            line: at.line,
            col: at.col,
            key: at.key.clone(),
            message: message.into(),
            hint: None,
        }
    }

    /// A problem with the whole file (no line or column), e.g. one that
    /// cannot be read.
    pub fn whole_file(file: &Path, message: String, hint: Option<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            key: String::new(),
            message,
            hint,
        }
    }

    /// Sets the hint printed after the message as `(hint: …)`.
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column (in characters, not bytes) of byte `offset` in
/// `text`; an offset past the end is clamped to the end.
///
/// ```
/// assert_eq!(conveyor_config::line_col("a = 1\nbb = 2\n", 11), (2, 6));
/// ```
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Test helper: `lines` (diagnostics as text) are exactly `expect`, each
/// line starting with its expected prefix, in order.
#[cfg(test)]
pub(crate) fn assert_prefixes(lines: &[String], expect: &[&str]) {
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(expect) {
        assert!(line.starts_with(want), "got {line:?}, want prefix {want:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 11), (2, 6));
    }

    #[test]
    fn located_diagnostics_print_and_sort_by_position() {
        let text = "[a]\nx = 1\n\n[b]\ny = 2\n";
        let f = Path::new("c.toml");
        let mut later = Diagnostic::at(f, text, 15..16, "b.y", "too big");
        later.hint("at most 1");
        let earlier = Diagnostic::at(f, text, 4..5, "a.x", "odd");
        let other_file = Diagnostic::at(Path::new("a.toml"), text, 15..16, "b.y", "no");
        assert_eq!(
            later.to_string(),
            "c.toml:5:1: b.y: too big (hint: at most 1)"
        );
        assert_eq!(earlier.to_string(), "c.toml:2:1: a.x: odd");
        let mut all = vec![later.clone(), earlier.clone(), other_file.clone()];
        all.sort();
        assert_eq!(all, [other_file, earlier.clone(), later]);
        let at = Located {
            file: f.to_path_buf(),
            line: 2,
            col: 1,
            key: "a.x".into(),
        };
        assert_eq!(Diagnostic::from_located(&at, "odd"), earlier);
        assert_eq!(
            Diagnostic::whole_file(f, "cannot read".into(), None).to_string(),
            "c.toml: cannot read"
        );
    }
}
