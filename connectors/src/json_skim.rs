//! Finds a page's record list and counts its records without reading them.
//!
//! The pager needs only a page's envelope (its paging links) and its record
//! count before it can ask for the next page, and that wait is on the fetch
//! loop's critical path. serde_json skipping the records still tokenizes
//! every number and literal (~1.4 GB/s here); this skim only tracks quotes
//! and brackets, 64 bytes at a time (~2.6 GB/s). It checks the structure it
//! walks (strings that end, lists and objects that close, nothing after the
//! document) but not the tokens inside the records, nor that each bracket
//! closes one of its own kind: the parse of the same page reads every byte
//! and is the judge of a broken record (the count is only the parse's for a
//! page the parse accepts). Anything it is not sure of (a key with an escape, the selector's key twice or not
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
    let mut skim = Skim { body, at: 0 };
    skim.whitespace();
    let found = skim.selected(selector)?;
    skim.whitespace();
    (skim.at == body.len()).then_some(found)
}

struct Skim<'a> {
    body: &'a [u8],
    at: usize,
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
            b'[' | b'{' => {
                self.at = container_end(self.body, self.at)?.0;
                Some(())
            }
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
        let (end, count) = container_end(self.body, start)?;
        self.at = end;
        Some(Skimmed {
            span: start..end,
            count,
        })
    }
}

/// Where the list or object opening at `start` ends (the index past its
/// closing bracket) and how many containers it holds: for a list the parse
/// accepts, how many records (a record is an object; anything else fails the
/// parse).
/// The bytes go 64 at a time: a mask per block of quotes and brackets, the
/// quotes' prefix XOR marks what is inside strings, and only the brackets
/// outside them (a few per record) are visited one by one. A block with a
/// backslash goes byte by byte, escapes being rare.
fn container_end(body: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut walk = ListWalk::default();
    let mut at = start;
    for block in body[start..].chunks(64) {
        let end = if block.len() == 64 && !walk.escaped && !block.contains(&b'\\') {
            walk.block(block)
        } else {
            walk.bytes(block)
        };
        if let Some(i) = end {
            return Some((at + i + 1, walk.count));
        }
        at += block.len();
    }
    None
}

/// The state of [`container_end`] between blocks.
#[derive(Default)]
struct ListWalk {
    in_string: bool,
    /// The last byte was a backslash inside a string.
    escaped: bool,
    depth: usize,
    count: usize,
}

impl ListWalk {
    /// One 64-byte block without a backslash; the index of the list's
    /// closing bracket if it is in this block.
    fn block(&mut self, block: &[u8]) -> Option<usize> {
        let (mut quotes, mut brackets) = (0u64, 0u64);
        for (k, word) in block.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            quotes |= byte_bits(word, b'"') << (8 * k);
            // `{ } [ ]` differ only in bits 1, 2 and 5: with those set, all
            // four read 0x7f. So do `Y _ y` and DEL, which valid JSON has
            // only inside strings; the byte itself is looked at below.
            brackets |= byte_bits(word | 0x2626_2626_2626_2626, 0x7f) << (8 * k);
        }
        // Bit i of `inside` is set when byte i is within a string (from its
        // opening quote up to, not including, its closing one).
        let mut inside = quotes;
        for shift in [1, 2, 4, 8, 16, 32] {
            inside ^= inside << shift;
        }
        if self.in_string {
            inside = !inside;
        }
        self.in_string ^= quotes.count_ones() % 2 == 1;
        let mut brackets = brackets & !inside;
        while brackets != 0 {
            let i = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            let opens = match block[i] {
                b'{' | b'[' => true,
                b'}' | b']' => false,
                _ => continue,
            };
            if let Some(end) = self.bracket(opens, i) {
                return Some(end);
            }
        }
        None
    }

    /// Any block, byte by byte.
    fn bytes(&mut self, block: &[u8]) -> Option<usize> {
        for (i, &b) in block.iter().enumerate() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' | b'}' | b']' => {
                    if let Some(end) = self.bracket(b == b'{' || b == b'[', i) {
                        return Some(end);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A bracket outside strings at `i`: `Some(i)` when it closes the list.
    fn bracket(&mut self, opens: bool, i: usize) -> Option<usize> {
        if opens {
            self.depth += 1;
            self.count += usize::from(self.depth == 2);
            None
        } else {
            self.depth = self.depth.saturating_sub(1);
            (self.depth == 0).then_some(i)
        }
    }
}

/// Bit k set when byte k of `word` (little-endian) is `byte`: eight
/// comparisons in a few word operations, exact (no borrow between bytes).
fn byte_bits(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let v = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // The high bit of each byte of `zero` is set when that byte of `v` is 0.
    let zero = !((v & LOW7).wrapping_add(LOW7) | v) & !LOW7;
    // Gathers the eight high bits (one per byte) into the top byte, in order.
    ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
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
        assert_eq!(count(r#"{"calls": [{}]}"#, "calls"), Some(1));
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
    fn counts_long_lists_whatever_falls_on_a_block_boundary() {
        // Strings with brackets, quotes and backslashes, shifted byte by
        // byte so that each lands on every position of a 64-byte block.
        for pad in 0..130 {
            let records: Vec<String> = (0..7)
                .map(|i| {
                    format!(
                        r#"{{"id": {i}, "pad": "{}", "s": "[{{\"x\\\\\" ]}}", "n": {{"a": [1, {{"b": "}}"}}]}}}}"#,
                        "p".repeat(pad + i)
                    )
                })
                .collect();
            let body = format!(
                r#"{{"calls": [{}], "next": "/p?a=[1]"}}"#,
                records.join(", ")
            );
            let doc: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
            assert_eq!(doc["calls"].as_array().map(Vec::len), Some(7));
            let found = skim(body.as_bytes(), &sel("calls")).expect("skimmed");
            assert_eq!(found.count, 7, "pad {pad}");
            let list: serde_json::Value =
                serde_json::from_slice(&body.as_bytes()[found.span]).expect("the span is the list");
            assert_eq!(list, doc["calls"], "pad {pad}");
        }
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
