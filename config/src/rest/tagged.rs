//! A TOML table whose `type` key picks a serde-tagged variant, read with the
//! span of every key and value so problems stay located.
//!
//! serde's internally tagged enums buffer the table before choosing the
//! variant, which drops `toml::Spanned`; so a [`Tagged`] table keeps its
//! entries' spans itself, decodes the variant through a small deserializer
//! whose error says *which* key was unknown, missing or ill-typed, and
//! [`Checker::tagged`] turns those errors into located diagnostics.

use std::ops::Range;

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::validate::Checker;

/// A table's entries with their spans, in file order.
#[derive(Debug, Clone)]
pub(crate) struct Tagged {
    entries: Vec<(Spanned<String>, Spanned<toml::Value>)>,
}

impl<'de> Deserialize<'de> for Tagged {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tagged;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table with a `type` key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Tagged, A::Error> {
                let mut entries = Vec::new();
                while let Some(e) = m.next_entry::<Spanned<String>, Spanned<toml::Value>>()? {
                    entries.push(e);
                }
                Ok(Tagged { entries })
            }
        }
        d.deserialize_map(V)
    }
}

impl Tagged {
    fn entry(&self, name: &str) -> Option<&(Spanned<String>, Spanned<toml::Value>)> {
        self.entries.iter().find(|(k, _)| k.get_ref() == name)
    }

    /// The span of `name`'s value, if the table sets it.
    pub(crate) fn span_of(&self, name: &str) -> Option<Range<usize>> {
        self.entry(name).map(|(_, v)| v.span())
    }

    /// `value` (read from key `name`) with the span of that key's value.
    pub(crate) fn spanned<T>(&self, name: &str, value: &Option<T>) -> Option<Spanned<T>>
    where
        T: Clone,
    {
        let v = value.as_ref()?;
        Some(Spanned::new(self.span_of(name).unwrap_or(0..0), v.clone()))
    }

    /// The span of the `type` value, if the table has one.
    pub(crate) fn type_span(&self) -> Option<Range<usize>> {
        self.span_of("type")
    }

    fn decode<T: DeserializeOwned>(&self, skip: &[String]) -> Result<T, Shape> {
        T::deserialize(TableDe(
            self.entries
                .iter()
                .filter(|(k, _)| !skip.contains(k.get_ref()))
                .map(|(k, v)| (k.get_ref().as_str(), v.get_ref()))
                .collect(),
        ))
    }
}

/// What went wrong decoding a variant, precisely enough to locate it.
#[derive(Debug)]
enum Shape {
    UnknownVariant(String, &'static [&'static str]),
    UnknownField(String, &'static [&'static str]),
    MissingField(&'static str),
    /// A value of the wrong type or range: serde's message, and the value
    /// as serde describes it (to find its key).
    Invalid(String, String),
    Other(String),
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Shape {}

impl de::Error for Shape {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Shape::Other(msg.to_string())
    }
    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Shape::Invalid(
            format!("invalid type: {unexp}, expected {exp}"),
            unexp.to_string(),
        )
    }
    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        Shape::Invalid(
            format!("invalid value: {unexp}, expected {exp}"),
            unexp.to_string(),
        )
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Shape::UnknownVariant(variant.to_string(), expected)
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Shape::UnknownField(field.to_string(), expected)
    }
    fn missing_field(field: &'static str) -> Self {
        Shape::MissingField(field)
    }
}

/// How serde describes `v` in an "invalid type" message.
fn describe(v: &toml::Value) -> String {
    use de::Unexpected as U;
    match v {
        toml::Value::String(s) => U::Str(s).to_string(),
        toml::Value::Integer(i) => U::Signed(*i).to_string(),
        toml::Value::Float(f) => U::Float(*f).to_string(),
        toml::Value::Boolean(b) => U::Bool(*b).to_string(),
        toml::Value::Datetime(d) => U::Str(&d.to_string()).to_string(),
        toml::Value::Array(_) => U::Seq.to_string(),
        toml::Value::Table(_) => U::Map.to_string(),
    }
}

struct TableDe<'a>(Vec<(&'a str, &'a toml::Value)>);

impl<'de> de::Deserializer<'de> for TableDe<'_> {
    type Error = Shape;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Shape> {
        v.visit_map(de::value::MapDeserializer::new(
            self.0.into_iter().map(|(k, val)| (k, ValueDe(val))),
        ))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct ValueDe<'a>(&'a toml::Value);

impl<'a> IntoDeserializer<'_, Shape> for ValueDe<'a> {
    type Deserializer = ValueDe<'a>;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDe<'_> {
    type Error = Shape;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Shape> {
        match self.0 {
            toml::Value::String(s) => v.visit_str(s),
            toml::Value::Integer(i) => v.visit_i64(*i),
            toml::Value::Float(f) => v.visit_f64(*f),
            toml::Value::Boolean(b) => v.visit_bool(*b),
            toml::Value::Datetime(d) => v.visit_string(d.to_string()),
            toml::Value::Array(a) => {
                v.visit_seq(de::value::SeqDeserializer::new(a.iter().map(ValueDe)))
            }
            toml::Value::Table(t) => v.visit_map(de::value::MapDeserializer::new(
                t.iter().map(|(k, val)| (k.as_str(), ValueDe(val))),
            )),
        }
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The variants of `T` (a `#[serde(tag = "type")]` enum), as serde lists them.
fn variants<T: DeserializeOwned>() -> &'static [&'static str] {
    let probe = Tagged {
        entries: vec![(
            Spanned::new(0..0, "type".into()),
            Spanned::new(0..0, toml::Value::String("\u{0}".into())),
        )],
    };
    match probe.decode::<T>(&[]) {
        Err(Shape::UnknownVariant(_, expected)) => expected,
        _ => &[],
    }
}

/// The keys variant `kind` of `T` takes besides `type`, as serde lists them.
fn keys_of<T: DeserializeOwned>(kind: &str) -> &'static [&'static str] {
    let probe = Tagged {
        entries: vec![
            (
                Spanned::new(0..0, "type".into()),
                Spanned::new(0..0, toml::Value::String(kind.into())),
            ),
            (
                Spanned::new(0..0, "\u{0}".into()),
                Spanned::new(0..0, toml::Value::Integer(0)),
            ),
        ],
    };
    match probe.decode::<T>(&[]) {
        Err(Shape::UnknownField(_, expected)) => expected,
        _ => &[],
    }
}

fn list(names: &[&str]) -> String {
    names.join(", ")
}

impl Checker<'_> {
    /// Decodes `t` (the table at `key`) as the variant of `T` its `type`
    /// names (`what` says what it is, e.g. "auth"), reporting every key the
    /// variant does not take, every ill-typed value and an unknown or
    /// missing `type`, each at its place. Returns the variant and its type
    /// name; `None` when no variant could be chosen.
    pub(crate) fn tagged<T: DeserializeOwned>(
        &mut self,
        key: &str,
        t: &Spanned<Tagged>,
        what: &str,
    ) -> Option<(T, String)> {
        let table = t.get_ref();
        let kind = match table.entry("type") {
            None => {
                self.error(t.span(), &format!("{key}.type"), "missing key `type`")
                    .hint(format!("one of: {}", list(variants::<T>())));
                return None;
            }
            Some((_, v)) => match v.get_ref() {
                toml::Value::String(s) => s.clone(),
                _ => {
                    self.error(v.span(), &format!("{key}.type"), "must be a string")
                        .hint(format!("one of: {}", list(variants::<T>())));
                    return None;
                }
            },
        };
        let mut skip: Vec<String> = Vec::new();
        loop {
            match table.decode::<T>(&skip) {
                Ok(v) => return Some((v, kind)),
                Err(Shape::UnknownVariant(found, expected)) => {
                    let span = table.type_span().unwrap_or(t.span());
                    self.error(
                        span,
                        &format!("{key}.type"),
                        format!("unknown {what} type `{found}`"),
                    )
                    .hint(format!("one of: {}", list(expected)));
                    return None;
                }
                Err(Shape::UnknownField(field, expected)) => {
                    let Some((k, v)) = table.entry(&field) else {
                        self.error(t.span(), key, format!("unknown field `{field}`"));
                        return None;
                    };
                    let elsewhere = variants::<T>()
                        .iter()
                        .any(|other| keys_of::<T>(other).contains(&field.as_str()));
                    if elsewhere {
                        self.error(
                            v.span(),
                            &format!("{key}.{field}"),
                            format!("not used by type = \"{kind}\""),
                        );
                    } else {
                        let takes = if expected.is_empty() {
                            "no other keys".to_string()
                        } else {
                            list(expected)
                        };
                        self.error(
                            k.span(),
                            &format!("{key}.{field}"),
                            format!("unknown field `{field}`"),
                        )
                        .hint(format!("type = \"{kind}\" takes: type, {takes}"));
                    }
                    skip.push(field);
                }
                Err(Shape::Invalid(message, found)) => {
                    let hit = table.entries.iter().find(|(k, v)| {
                        k.get_ref() != "type"
                            && !skip.contains(k.get_ref())
                            && describe(v.get_ref()) == found
                    });
                    match hit {
                        Some((k, v)) => {
                            self.error(v.span(), &format!("{key}.{}", k.get_ref()), message);
                            skip.push(k.get_ref().clone());
                        }
                        None => {
                            self.error(t.span(), key, message);
                            return None;
                        }
                    }
                }
                Err(Shape::MissingField(field)) => {
                    let span = table.type_span().unwrap_or(t.span());
                    self.error(
                        span,
                        &format!("{key}.{field}"),
                        format!("missing key `{field}` (required by type = \"{kind}\")"),
                    );
                    return None;
                }
                Err(Shape::Other(message)) => {
                    self.error(t.span(), key, message);
                    return None;
                }
            }
        }
    }
}
