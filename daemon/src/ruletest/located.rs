//! Where things are in the test file: byte spans to `FILE:LINE:COL`, and
//! the problems found, as the config's own diagnostics.

use std::ops::Range;
use std::path::Path;

use conveyor_config::{line_col, Diagnostic, Located};

/// Collects located problems while validating one file.
pub(crate) struct Problems<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    pub found: Vec<Diagnostic>,
}

impl Problems<'_> {
    pub fn located(&self, span: Range<usize>, key: &str) -> Located {
        let (line, col) = line_col(self.text, span.start);
        Located {
            file: self.file.to_path_buf(),
            line,
            col,
            key: key.to_string(),
        }
    }

    pub fn add(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let at = self.located(span, key);
        self.found.push(at_located(&at, message, None));
    }

    pub fn add_hint(
        &mut self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
        hint: &str,
    ) {
        let at = self.located(span, key);
        self.found
            .push(at_located(&at, message, Some(hint.to_string())));
    }
}

/// A diagnostic pointing at an already located entry.
pub fn at_located(at: &Located, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
    let mut d = Diagnostic::from_located(at, message);
    if let Some(h) = hint {
        d.hint(h);
    }
    d
}
