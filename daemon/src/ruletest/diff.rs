//! A line diff (longest common subsequence) for showing an expected text
//! against the one produced: ` ` both, `-` expected only, `+` got only.

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Same(String),
    Expected(String),
    Got(String),
}

impl Line {
    /// The line with its `-`/`+`/` ` marker.
    pub fn marked(&self) -> String {
        match self {
            Line::Same(l) => format!("  {l}"),
            Line::Expected(l) => format!("- {l}"),
            Line::Got(l) => format!("+ {l}"),
        }
    }
}

/// The lines of `expected` and `got` interleaved so that the lines they
/// share stay in place. Texts here are a few dozen lines: the quadratic
/// table is fine.
pub fn lines(expected: &[String], got: &[String]) -> Vec<Line> {
    let (n, m) = (expected.len(), got.len());
    // common[i][j]: length of the LCS of expected[i..] and got[j..].
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == got[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == got[j] {
            out.push(Line::Same(expected[i].clone()));
            i += 1;
            j += 1;
        } else if j == m || (i < n && common[i + 1][j] >= common[i][j + 1]) {
            out.push(Line::Expected(expected[i].clone()));
            i += 1;
        } else {
            out.push(Line::Got(got[j].clone()));
            j += 1;
        }
    }
    out
}
