//! Writes a nested JSON value (an object or array inside a record) straight
//! from the parser as compact text, byte for byte what
//! `serde_json::Value::to_string` prints for it.
//!
//! The REST hot path keeps nested values as JSON text columns. Building a
//! `Value` tree for each only to print it again cost about a tenth of a
//! sync's CPU; this visitor prints as it reads. Equality with `Value` is the
//! contract (the fuzz target and the tests below compare the two), so every
//! rule `Value` follows is followed here: compact separators, serde_json's
//! string escapes, integers as read, floats by the shortest round-trip form,
//! and a key repeated within one object keeping its first position and its
//! last value (`preserve_order`'s `IndexMap::insert`).

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Appends the value being deserialized to `out` as compact JSON.
pub(crate) struct JsonText<'a> {
    pub out: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for JsonText<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonText<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.push_str("null");
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write!(self.out, "{v}").expect("writing to a String cannot fail");
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write!(self.out, "{v}").expect("writing to a String cannot fail");
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // `Value` keeps a finite float as a `Number` (printed shortest
        // round-trip, `1.0` not `1`) and turns any other into null.
        match serde_json::Number::from_f64(v) {
            Some(n) => write!(self.out, "{n}").expect("writing to a String cannot fail"),
            None => self.out.push_str("null"),
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        escape_into(self.out, v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push('[');
        let mut first = true;
        loop {
            let comma = self.out.len();
            if !first {
                self.out.push(',');
            }
            if seq.next_element_seed(JsonText { out: self.out })?.is_none() {
                self.out.truncate(comma);
                break;
            }
            first = false;
        }
        self.out.push(']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.out.len();
        self.out.push('{');
        // Where each member's key (escaped, with quotes) and value sit in
        // `out`, to find a repeated key and, if one came, to rewrite.
        let mut members: Vec<Member> = Vec::new();
        // Past a few members, keys are found through an index (key → member),
        // so an object with very many keys costs no more than `Value`'s map.
        let mut index: Option<HashMap<String, usize>> = None;
        let mut repeated = false;
        loop {
            let comma = self.out.len();
            if !members.is_empty() {
                self.out.push(',');
            }
            let key_start = self.out.len();
            if map.next_key_seed(KeyText { out: self.out })?.is_none() {
                self.out.truncate(comma);
                break;
            }
            let key = key_start..self.out.len();
            self.out.push(':');
            let value_start = self.out.len();
            map.next_value_seed(JsonText { out: self.out })?;
            let value = value_start..self.out.len();
            if index.is_none() && members.len() >= INDEX_AFTER {
                index = Some(
                    members
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| !m.replaced_later)
                        .map(|(i, m)| (self.out[m.key.clone()].to_string(), i))
                        .collect(),
                );
            }
            let text = &self.out[key.clone()];
            let earlier = match &mut index {
                Some(index) => match index.get(text) {
                    Some(&i) => Some(i),
                    None => {
                        index.insert(text.to_string(), members.len());
                        None
                    }
                },
                None => members
                    .iter()
                    .position(|m| !m.replaced_later && self.out[m.key.clone()] == *text),
            };
            match earlier {
                // The first position keeps the key, the last value wins.
                Some(i) => {
                    members[i].value = value;
                    repeated = true;
                    members.push(Member {
                        key,
                        value: 0..0,
                        replaced_later: true,
                    });
                }
                None => members.push(Member {
                    key,
                    value,
                    replaced_later: false,
                }),
            }
        }
        self.out.push('}');
        if repeated {
            let written = self.out[start..].to_string();
            let at = |r: &std::ops::Range<usize>| &written[r.start - start..r.end - start];
            self.out.truncate(start);
            self.out.push('{');
            for (i, m) in members.iter().filter(|m| !m.replaced_later).enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(at(&m.key));
                self.out.push(':');
                self.out.push_str(at(&m.value));
            }
            self.out.push('}');
        }
        Ok(())
    }
}

/// How many members an object may have before its keys are indexed.
const INDEX_AFTER: usize = 16;

/// One object member as written: byte ranges of its key and value in `out`.
/// A repeat of an earlier key is kept (`replaced_later`) only so that its
/// bytes are skipped when the object is rewritten.
struct Member {
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
    replaced_later: bool,
}

/// An object key, written escaped and quoted.
struct KeyText<'a> {
    out: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for KeyText<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyText<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        escape_into(self.out, v);
        Ok(())
    }
}

/// `s` as a JSON string, escaped as serde_json's serializer escapes it: `"`
/// and `\`, the short escapes `\b \f \n \r \t`, any other control character
/// as `\u00XX` (lower-case hex); everything else, `/` and non-ASCII included,
/// as is.
fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Bytes before `i` are whole characters: only ASCII is escaped.
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            write!(out, "\\u{b:04x}").expect("writing to a String cannot fail");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The text this module writes for `doc`, and `Value`'s.
    fn both(doc: &str) -> (String, String) {
        let mut out = String::new();
        let mut de = serde_json::Deserializer::from_str(doc);
        JsonText { out: &mut out }.deserialize(&mut de).unwrap();
        de.end().unwrap();
        (out, serde_json::from_str::<Value>(doc).unwrap().to_string())
    }

    #[test]
    fn nested_values_print_exactly_as_value_prints_them() {
        let docs = [
            r#"{"phone": "+15550000000", "region": "us-east"}"#,
            r#"{}"#,
            r#"[]"#,
            r#"[ 1 , -2, 3.0, 1e300, -0.0, 1.5e-7, 0.1, 18446744073709551615, -9223372036854775808 ]"#,
            r#"{"a": {"b": [true, false, null, {"c": []}]}, "d": [[], [{}]]}"#,
            r#"{"s": "quote \" backslash \\ slash \/ tab \t nl \n cr \r bs \b ff \f nul \u0000 us \u001f del \u007f"}"#,
            r#"{"é": "naïve ☃ \u00e9 \ud83d\ude00 😀", "\u0041": 1}"#,
            r#"{"a": 1, "b": 2, "a": 3}"#,
            r#"{"a": 1, "b": 2, "a": 3, "b": {"x": 1, "x": [2]}, "c": 4, "a": 5}"#,
            r#"{"k": {"k": 1, "k": 2}, "k": {"j": 1, "j": 2}}"#,
            r#"{"a\"b": 1, "a\u0022b": 2}"#,
            r#"[{"a": 1, "a": 1}, {"a": 1}]"#,
            r#"12.5"#,
            r#""text""#,
        ];
        for doc in docs {
            let (ours, value) = both(doc);
            assert_eq!(ours, value, "for {doc}");
        }
    }

    #[test]
    fn an_object_with_many_keys_and_repeats_prints_as_value_prints_it() {
        // Past INDEX_AFTER members the repeats are found through the index.
        let mut members: Vec<String> = (0..5_000).map(|i| format!(r#""k{i}": {i}"#)).collect();
        members.extend(
            (0..5_000)
                .step_by(7)
                .map(|i| format!(r#""k{i}": "again {i}""#)),
        );
        members.push(r#""k3": [1]"#.to_string());
        let doc = format!("{{{}}}", members.join(", "));
        let (ours, value) = both(&doc);
        assert_eq!(ours, value);
    }

    #[test]
    fn every_control_character_and_ascii_byte_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x80).chain([0xe9, 0x2028, 0x2029, 0xfeff, 0x1f600]) {
            let s = format!("a{}b", char::from_u32(c).unwrap());
            let mut ours = String::new();
            escape_into(&mut ours, &s);
            assert_eq!(ours, serde_json::to_string(&s).unwrap(), "for U+{c:04X}");
        }
    }

    #[test]
    fn a_broken_nested_value_is_an_error_not_text() {
        for doc in [r#"{"a": 1,}"#, r#"[1 2]"#, r#"{"a" 1}"#, r#"{"a": tru}"#] {
            let mut out = String::new();
            let mut de = serde_json::Deserializer::from_str(doc);
            let result = JsonText { out: &mut out }.deserialize(&mut de);
            assert!(result.is_err(), "{doc} was accepted as {out}");
        }
    }
}
