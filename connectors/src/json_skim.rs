//! Finds a page's record list and counts its records without reading them.
//!
//! The pager needs only a page's envelope (its paging links) and its record
//! count before it can ask for the next page, and that wait is on the fetch
//! loop's critical path. serde_json skipping the records still tokenizes
//! every number and literal (~0.9 GB/s); this skim only tracks strings (found
//! with `memchr`) and brackets, several times faster. It checks the structure
//! it walks (brackets that match, strings that end, nothing after the
//! document) but not the tokens inside the records: the parse of the same
//! page reads every one of them and is the judge of a broken record. Anything
//! it is not sure of (a key with an escape, the selector's key twice or not
//! at all, a value at the selector that is not a list) is `None`, and the
//! caller reads the page the exact way instead.

use std::ops::Range;

/// Where the records at a selector are, and how many.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Skimmed {
    /// The byte range of the list at the selector, brackets included.
    pub span: Range<usize>,
    pub count: usize,
}

/// The list at `selector` (object keys; empty means the document itself) in
/// `body`, or `None` when the exact reading must decide.
pub(crate) fn skim(body: &[u8], selector: &[String]) -> Option<Skimmed> {
    let mut skim = Skim {
        body,
        at: 0,
        open: Vec::new(),
    };
    skim.whitespace();
    let found = skim.selected(selector)?;
    skim.whitespace();
    (skim.at == body.len()).then_some(found)
}

struct Skim<'a> {
    body: &'a [u8],
    at: usize,
    /// The closing bracket of each container the walk is inside of.
    open: Vec<u8>,
}

impl<'a> Skim<'a> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The value at the cursor, which holds the selector's list.
    fn selected(&mut self, selector: &[String]) -> Option<Skimmed> {
        let Some((first, rest)) = selector.split_first() else {
            return (self.peek()? == b'[').then(|| self.list())?;
        };
        self.expect(b'{')?;
        let mut found = None;
        self.whitespace();
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            self.whitespace();
            let key = self.string()?;
            if key.contains(&b'\\') {
                return None;
            }
            self.expect(b':')?;
            self.whitespace();
            if key == first.as_bytes() {
                if found.is_some() {
                    return None;
                }
                found = Some(self.selected(rest)?);
            } else {
                self.value()?;
            }
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return found;
                }
                _ => return None,
            }
        }
    }

    /// The string at the cursor (on its opening quote): its raw bytes,
    /// escapes as written. The cursor ends past the closing quote.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let body = self.body;
        self.at = string_end(body, start)?;
        Some(&body[start..self.at - 1])
    }

    /// Skips the value at the cursor.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'[' | b'{' => self.container().map(|_| ()),
            _ => {
                let start = self.at;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// The list at the cursor, its elements counted.
    fn list(&mut self) -> Option<Skimmed> {
        let start = self.at;
        self.at += 1;
        self.whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Skimmed {
                span: start..self.at,
                count: 0,
            });
        }
        self.at = start;
        let commas = self.container()?;
        Some(Skimmed {
            span: start..self.at,
            count: commas + 1,
        })
    }

    /// Skips the array or object at the cursor; returns how many commas
    /// separate its own members (not those of containers inside it).
    fn container(&mut self) -> Option<usize> {
        self.open.clear();
        let mut commas = 0;
        let body = self.body;
        let mut at = self.at;
        while let Some(&byte) = body.get(at) {
            at += 1;
            match byte {
                b'"' => at = string_end(body, at)?,
                b'[' => self.open.push(b']'),
                b'{' => self.open.push(b'}'),
                b']' | b'}' => {
                    if self.open.pop()? != byte {
                        return None;
                    }
                    if self.open.is_empty() {
                        self.at = at;
                        return Some(commas);
                    }
                }
                b',' if self.open.len() == 1 => commas += 1,
                _ => {}
            }
        }
        None
    }
}

/// The index past the closing quote of the string whose contents start at
/// `from`, or `None` if it never ends.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let i = from + memchr::memchr2(b'"', b'\\', &body[from..])?;
        if body[i] == b'"' {
            return Some(i + 1);
        }
        // An escape: the byte after the backslash cannot end the string.
        from = i + 2;
        if from > body.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Vec<String> {
        s.split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn count(body: &str, selector: &str) -> Option<usize> {
        skim(body.as_bytes(), &sel(selector)).map(|s| {
            assert_eq!(&body.as_bytes()[s.span.start], &b'[');
            assert_eq!(&body.as_bytes()[s.span.end - 1], &b']');
            s.count
        })
    }

    #[test]
    fn counts_the_records_at_the_selector_and_no_commas_inside_them() {
        let page = r#" {"count": 3, "calls": [ {"a": [1, 2], "b": "x,]\"}"}, {"c": {"d": 1, "e": 2}},
            {} ], "next_page": "https://api.test/calls?cursor=3,4"} "#;
        assert_eq!(count(page, "calls"), Some(3));
        assert_eq!(count(r#"{"calls": [ ]}"#, "calls"), Some(0));
        assert_eq!(count(r#"{"calls": [7]}"#, "calls"), Some(1));
        assert_eq!(count(r#"[{"a": 1}, {"a": 2}]"#, ""), Some(2));
        assert_eq!(
            count(
                r#"{"x": [], "data": {"items": [{}, {}], "n": 2}}"#,
                "data.items"
            ),
            Some(2)
        );
    }

    #[test]
    fn leaves_to_the_exact_reading_what_it_cannot_be_sure_of() {
        for (body, selector) in [
            (r#"{"calls": [{"a": 1}"#, "calls"),
            (r#"{"calls": [{"a": 1}]"#, "calls"),
            (r#"{"calls": [{"a": 1]}"#, "calls"),
            (r#"{"calls": [{"a": "1}]}"#, "calls"),
            (r#"{"calls": [{"a": "1\"}]}"#, "calls"),
            (r#"{"calls": []} x"#, "calls"),
            (r#"{"calls": [], "calls": []}"#, "calls"),
            (r#"{"call\u0073": []}"#, "calls"),
            (r#"{"other": []}"#, "calls"),
            (r#"{"calls": null}"#, "calls"),
            (r#"{"calls": {"a": 1}}"#, "calls"),
            (r#"{"calls": "[]"}"#, "calls"),
            (r#"{"calls" []}"#, "calls"),
            (r#"{"calls": [] "n": 1}"#, "calls"),
            (r#"{"n": , "calls": []}"#, "calls"),
            (r#"{}"#, "calls"),
            (r#"{"data": []}"#, "data.items"),
            (r#"{"a": 1}"#, ""),
            ("", "calls"),
            ("\"\\", ""),
        ] {
            assert_eq!(count(body, selector), None, "{body}");
        }
    }
}
