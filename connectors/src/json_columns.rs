//! Parses a page of JSON records straight into Arrow columns.
//!
//! The hot path of every REST sync: instead of building a `serde_json::Value`
//! tree per record (a map, a hash and an allocation per field) and then
//! copying it into builders, each field value is appended to its column as it
//! is read, strings into one buffer per column. Types are inferred exactly as
//! [`records_to_batch`](crate::json_arrow::records_to_batch) infers them, so
//! both paths give the same batch. The rest of the page (the envelope with
//! the paging links) is kept as a `Value` for the pager.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, NullArray, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::json_arrow::{date_days, parse_timestamp, Kind, JSON_TYPE_KEY};
use crate::json_text::JsonText;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One parsed page: the envelope (the document with the records taken out,
/// as `take` leaves it) and the records as a batch.
#[derive(Debug)]
pub struct Page {
    pub envelope: Value,
    pub records: usize,
    /// `None` when the page holds no records.
    pub batch: Option<RecordBatch>,
}

/// Parses `body`, taking the records at `selector` (object keys; empty means
/// the document itself). Returns `None` when the selector steps into an
/// array, which this parser does not follow (the caller uses the `Value`
/// path then).
/// Record-shape problems (a record that is not an object) are
/// `serde_json::Error`s of category `Data`; broken JSON is `Syntax`/`Eof`.
pub fn parse_page(body: &[u8], selector: &[String]) -> Option<Result<Page, serde_json::Error>> {
    read_page(body, selector, false)
}

/// Reads `body` as [`parse_page`] does, but only counts the records at the
/// selector, building no columns (`batch` is `None`): the envelope and the
/// count are what the pager needs to ask for the next page, so that request
/// can be on its way while this page's records are parsed. The records are
/// usually only skimmed ([`json_skim`](crate::json_skim)): brackets and
/// strings, not the tokens inside. A problem with the document as a whole
/// (broken structure or envelope, a scalar at the selector) is the same
/// error as [`parse_page`]'s; a broken token inside a record, or a record
/// that is not an object, is only found by the parse.
pub fn scan_page(body: &[u8], selector: &[String]) -> Option<Result<Page, serde_json::Error>> {
    read_page(body, selector, true)
}

fn read_page(
    body: &[u8],
    selector: &[String],
    count_only: bool,
) -> Option<Result<Page, serde_json::Error>> {
    if selector.iter().any(|s| s.parse::<usize>().is_ok()) {
        return None;
    }
    if count_only {
        if let Some(page) = skim_page(body, selector) {
            return Some(Ok(page));
        }
    }
    let mut columns = Columns {
        count_only,
        ..Columns::default()
    };
    // The parse reads every string: checking the body's UTF-8 once is
    // cheaper than serde_json checking each string as it borrows it. The
    // scan skips record strings unchecked, so it reads the bytes as they are
    // (and so does the parse of a body that is not UTF-8, for its error).
    let read = match std::str::from_utf8(body) {
        Ok(text) if !count_only => read_document(
            serde_json::Deserializer::from_str(text),
            selector,
            &mut columns,
        ),
        _ => read_document(
            serde_json::Deserializer::from_slice(body),
            selector,
            &mut columns,
        ),
    };
    let envelope = match read {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    if let Some(msg) = columns.not_records {
        return Some(Err(<serde_json::Error as serde::de::Error>::custom(msg)));
    }
    let records = columns.rows;
    let batch = (records > 0 && !count_only).then(|| columns.finish());
    Some(Ok(Page {
        envelope,
        records,
        batch,
    }))
}

/// The scan's fast path: the records found and counted by
/// [`skim`](crate::json_skim::skim), the envelope read with null in their
/// place (which is what the exact reading leaves there). `None` when the
/// skim is unsure or the envelope does not read: the exact reading then
/// decides, and gives the error.
fn skim_page(body: &[u8], selector: &[String]) -> Option<Page> {
    let found = crate::json_skim::skim(body, selector)?;
    let envelope = if selector.is_empty() {
        Value::Null
    } else {
        let mut rest = Vec::with_capacity(body.len() - found.span.len() + 4);
        rest.extend_from_slice(&body[..found.span.start]);
        rest.extend_from_slice(b"null");
        rest.extend_from_slice(&body[found.span.end..]);
        serde_json::from_slice(&rest).ok()?
    };
    Some(Page {
        envelope,
        records: found.count,
        batch: None,
    })
}

/// The document read to its end by `de`: its envelope, the records going
/// into `columns`.
fn read_document<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    selector: &[String],
    columns: &mut Columns,
) -> Result<Value, serde_json::Error> {
    let envelope = DocSeed { selector, columns }.deserialize(&mut de)?;
    de.end()?;
    Ok(envelope)
}

/// Builds a batch from records already parsed as `Value`s (every one an
/// object; [`records_to_batch`](crate::json_arrow::records_to_batch) checks).
pub(crate) fn batch_from_records(records: &[Value]) -> Result<RecordBatch, serde_json::Error> {
    let mut columns = Columns::default();
    for record in records {
        RecordSeed {
            columns: &mut columns,
        }
        .deserialize(record)?;
    }
    Ok(columns.finish())
}

/// A field value as read, before the column's type is known.
#[derive(Clone, Copy)]
enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string or a nested document (as JSON text) in the column's buffer,
    /// with the kind it was read as.
    Text {
        start: u32,
        len: u32,
        kind: Kind,
    },
    /// A string that reads as an instant: its time, read once here (the
    /// column's type is known only at the end), and its text in the
    /// column's buffer should the column turn out to be text.
    Instant {
        micros: i64,
        start: u32,
        len: u32,
    },
}

impl Cell {
    fn kind(&self) -> Kind {
        match self {
            Cell::Null => Kind::Null,
            Cell::Bool(_) => Kind::Bool,
            Cell::Int(_) => Kind::Int,
            Cell::Float(_) => Kind::Float,
            Cell::Text { kind, .. } => *kind,
            Cell::Instant { .. } => Kind::Timestamp,
        }
    }
}

/// How many kinds there are (`Kind as usize` indexes `Column::kinds`).
const KINDS: usize = Kind::Json as usize + 1;

struct Column {
    name: String,
    /// How many of the column's cells hold each kind; the column's type is
    /// their merge. Counted rather than merged as read so that a value
    /// replaced by a repeated key no longer counts.
    kinds: [usize; KINDS],
    cells: Vec<Cell>,
    text: String,
}

impl Column {
    fn set(&mut self, row: usize, cell: Cell) {
        self.kinds[cell.kind() as usize] += 1;
        if self.cells.len() > row {
            // A key repeated within one record: the last value wins, as in
            // `serde_json::Value`, and the replaced one no longer counts.
            let old = std::mem::replace(&mut self.cells[row], cell);
            self.kinds[old.kind() as usize] -= 1;
        } else {
            self.cells.resize(row, Cell::Null);
            self.cells.push(cell);
        }
    }

    /// The narrowest kind that holds every value of the column.
    fn kind(&self) -> Kind {
        const ALL: [Kind; KINDS] = [
            Kind::Null,
            Kind::Bool,
            Kind::Int,
            Kind::Float,
            Kind::Date,
            Kind::Timestamp,
            Kind::Str,
            Kind::Json,
        ];
        ALL.iter()
            .filter(|k| self.kinds[**k as usize] > 0)
            .fold(Kind::Null, |acc, k| acc.merge(*k))
    }

    /// A string value, typed by what it reads as.
    fn push_str(&mut self, row: usize, s: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        let len = s.len() as u32;
        let cell = match parse_timestamp(s) {
            Some(t) => Cell::Instant {
                micros: t.timestamp_micros(),
                start,
                len,
            },
            None => Cell::Text {
                start,
                len,
                kind: if date_days(s).is_some() {
                    Kind::Date
                } else {
                    Kind::Str
                },
            },
        };
        self.set(row, cell);
    }

    /// The cell at `row` is the text written from `start` to the end of the
    /// column's buffer.
    fn set_text(&mut self, row: usize, start: usize, kind: Kind) {
        let len = self.text.len() - start;
        self.set(
            row,
            Cell::Text {
                start: start as u32,
                len: len as u32,
                kind,
            },
        );
    }

    fn str_at(&self, start: u32, len: u32) -> &str {
        &self.text[start as usize..(start + len) as usize]
    }
}

#[derive(Default)]
struct Columns {
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    rows: usize,
    /// Records usually list their keys in the same order: the column after
    /// the previous key is tried before the hash lookup.
    next_guess: usize,
    /// The selector reached a scalar: what to say if no later duplicate of
    /// its key replaces it (the last of a repeated key wins, as in
    /// `serde_json::Value`, so this cannot fail on the spot).
    not_records: Option<&'static str>,
    /// Only count the records (see [`scan_page`]).
    count_only: bool,
}

impl Columns {
    fn column(&mut self, key: &str) -> &mut Column {
        let i = match self.columns.get(self.next_guess) {
            Some(c) if c.name == key => self.next_guess,
            _ => match self.index.get(key) {
                Some(&i) => i,
                None => {
                    self.index.insert(key.to_string(), self.columns.len());
                    self.columns.push(Column {
                        name: key.to_string(),
                        kinds: [0; KINDS],
                        cells: Vec::new(),
                        text: String::new(),
                    });
                    self.columns.len() - 1
                }
            },
        };
        self.next_guess = i + 1;
        &mut self.columns[i]
    }

    fn finish(self) -> RecordBatch {
        let rows = self.rows;
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for mut col in self.columns {
            col.cells.resize(rows, Cell::Null);
            let (field, array) = build(&col, rows);
            fields.push(field);
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
            .expect("columns are built to the schema's types and length")
    }
}

fn build(col: &Column, len: usize) -> (Field, ArrayRef) {
    let name = col.name.as_str();
    let cells = col.cells.iter();
    let kind = col.kind();
    match kind {
        Kind::Null => (
            Field::new(name, DataType::Null, true),
            Arc::new(NullArray::new(len)),
        ),
        Kind::Bool => {
            let mut b = BooleanBuilder::with_capacity(len);
            cells.for_each(|c| {
                b.append_option(if let Cell::Bool(v) = c {
                    Some(*v)
                } else {
                    None
                })
            });
            (
                Field::new(name, DataType::Boolean, true),
                Arc::new(b.finish()),
            )
        }
        Kind::Int => {
            let mut b = Int64Builder::with_capacity(len);
            cells.for_each(|c| b.append_option(if let Cell::Int(v) = c { Some(*v) } else { None }));
            (
                Field::new(name, DataType::Int64, true),
                Arc::new(b.finish()),
            )
        }
        Kind::Float => {
            let mut b = Float64Builder::with_capacity(len);
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Int(v) => Some(*v as f64),
                    Cell::Float(v) => Some(*v),
                    _ => None,
                })
            });
            (
                Field::new(name, DataType::Float64, true),
                Arc::new(b.finish()),
            )
        }
        Kind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(len);
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Instant { micros, .. } => Some(*micros),
                    // A date in a column of instants (the kinds merge to
                    // Timestamp) is its midnight UTC — what DuckDB makes of
                    // a date stored into a TIMESTAMP column, as happens when
                    // a later batch holds only dates — not a null.
                    Cell::Text { start, len, .. } => {
                        let text = col.str_at(*start, *len);
                        parse_timestamp(text)
                            .map(|t| t.timestamp_micros())
                            .or_else(|| date_days(text).map(|d| i64::from(d) * MICROS_PER_DAY))
                    }
                    _ => None,
                })
            });
            (
                Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, None), true),
                Arc::new(b.finish()),
            )
        }
        Kind::Date => {
            let mut b = Date32Builder::with_capacity(len);
            cells.for_each(|c| {
                b.append_option(match c {
                    Cell::Text { start, len, .. } => date_days(col.str_at(*start, *len)),
                    _ => None,
                })
            });
            (
                Field::new(name, DataType::Date32, true),
                Arc::new(b.finish()),
            )
        }
        Kind::Str | Kind::Json => {
            let mut b = StringBuilder::with_capacity(len, col.text.len() + len * 4);
            let mut scratch = String::new();
            for c in cells {
                match c {
                    Cell::Null => b.append_null(),
                    Cell::Text { start, len, .. } | Cell::Instant { start, len, .. } => {
                        b.append_value(col.str_at(*start, *len))
                    }
                    // Numbers and booleans in a mixed column, written as
                    // `Value::to_string` writes them.
                    other => {
                        scratch.clear();
                        scratch.push_str(&scalar_value(other).to_string());
                        b.append_value(&scratch);
                    }
                }
            }
            let mut field = Field::new(name, DataType::Utf8, true);
            if kind == Kind::Json {
                field = field.with_metadata(std::collections::HashMap::from([(
                    JSON_TYPE_KEY.to_string(),
                    "json".to_string(),
                )]));
            }
            (field, Arc::new(b.finish()))
        }
    }
}

fn scalar_value(c: &Cell) -> Value {
    match c {
        Cell::Bool(v) => Value::Bool(*v),
        Cell::Int(v) => Value::from(*v),
        Cell::Float(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Cell::Null | Cell::Text { .. } | Cell::Instant { .. } => Value::Null,
    }
}

/// The document (or the part of it on the way to the records): every key
/// is kept as a `Value` except the one the selector follows.
struct DocSeed<'a> {
    selector: &'a [String],
    columns: &'a mut Columns,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.selector.is_empty() {
            d.deserialize_any(RecordsVisitor {
                columns: self.columns,
            })
            .map(|()| Value::Null)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let (first, rest) = self.selector.split_first().expect("selector is not empty");
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == *first {
                // Records come only from the selector's key: a repeated key
                // replaces the earlier one's records (the last wins, as in
                // `serde_json::Value`), so start the columns afresh.
                *self.columns = Columns {
                    count_only: self.columns.count_only,
                    ..Columns::default()
                };
                map.next_value_seed(DocSeed {
                    selector: rest,
                    columns: &mut *self.columns,
                })?
            } else {
                map.next_value::<Value>()?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
    // Anything else has no records under the selector: kept whole.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
}

/// The value at the selector: a list of records, one record, or null.
struct RecordsVisitor<'a> {
    columns: &'a mut Columns,
}

impl<'de> Visitor<'de> for RecordsVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.columns.count_only {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                self.columns.rows += 1;
            }
            return Ok(());
        }
        while seq
            .next_element_seed(RecordSeed {
                columns: &mut *self.columns,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.columns.count_only {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            self.columns.rows = 1;
            return Ok(());
        }
        RecordSeed {
            columns: self.columns,
        }
        .visit_map(map)
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.columns.not_records =
            Some("the records selector holds a boolean, not a list of records");
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.columns.not_records =
            Some("the records selector holds a number, not a list of records");
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.columns.not_records =
            Some("the records selector holds a number, not a list of records");
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.columns.not_records =
            Some("the records selector holds a number, not a list of records");
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.columns.not_records =
            Some("the records selector holds a string, not a list of records");
        Ok(())
    }
}

/// One record: an object whose fields go to their columns.
struct RecordSeed<'a> {
    columns: &'a mut Columns,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "record {} to be an object (check the stream's `records` selector)",
            self.columns.rows
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let row = self.columns.rows;
        self.columns.next_guess = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let column = self.columns.column(key.as_str());
            map.next_value_seed(CellSeed { column, row })?;
        }
        self.columns.rows += 1;
        Ok(())
    }
}

/// A key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_string()))
    }
}

/// A field value, appended to its column.
struct CellSeed<'a> {
    column: &'a mut Column,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.column.set(self.row, Cell::Null);
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.column.set(self.row, Cell::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.column.set(self.row, Cell::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(i) => self.column.set(self.row, Cell::Int(i)),
            Err(_) => self.column.set(self.row, Cell::Float(v as f64)),
        }
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.column.set(self.row, Cell::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.column.push_str(self.row, v);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let start = self.column.text.len();
        JsonText {
            out: &mut self.column.text,
        }
        .visit_map(map)?;
        self.column.set_text(self.row, start, Kind::Json);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let start = self.column.text.len();
        JsonText {
            out: &mut self.column.text,
        }
        .visit_seq(seq)?;
        self.column.set_text(self.row, start, Kind::Json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_arrow::records_to_batch;
    use serde_json::json;

    fn selector(s: &str) -> Vec<String> {
        conveyor_config::JsonPath::parse(s).0
    }

    #[test]
    fn gives_the_same_batch_as_the_value_path() {
        let records = json!([
            {"id": 1, "amount": 10, "ok": true, "at": "2024-06-01T00:00:00.000Z", "day": "2024-06-01", "addr": {"city": "Leeds"}, "tags": ["a"]},
            {"amount": 10.5, "id": 2, "ok": null, "at": "2024-06-03T07:15:22-07:00", "day": "2024-06-02", "addr": null, "extra": "x", "mixed": 1},
            {"id": 18446744073709551615u64, "mixed": "n/a", "esc\"aped": "q\"uote", "day": "2024-06-01T10:00:00Z"},
            {"id": 4, "id": 5, "mixed": {"x": 1}}
        ]);
        let body = json!({"data": {"items": records.clone()}, "next": "/p2"}).to_string();
        let page = parse_page(body.as_bytes(), &selector("data.items"))
            .unwrap()
            .unwrap();
        let want = records_to_batch(records.as_array().unwrap()).unwrap();
        assert_eq!(page.records, 4);
        assert_eq!(page.batch.unwrap(), want);
        assert_eq!(
            page.envelope,
            json!({"data": {"items": null}, "next": "/p2"})
        );
    }

    #[test]
    fn repeated_keys_last_wins_like_the_value_path() {
        // Found by the page_columns fuzz target (fuzz/corpus/page_columns/
        // duplicate_keys.json): a replaced value still typed its column,
        // and a repeated records key kept both lists.
        let body = br#"{"data": [{"a": "x", "a": 1, "b": "2024-06-01T00:00:00Z", "b": "2024-06-01"}], "data": [{"a": 2, "a": 3}, {"a": 4}]}"#;
        let page = parse_page(body, &selector("data")).unwrap().unwrap();
        let doc: Value = serde_json::from_slice(body).unwrap();
        let want = records_to_batch(doc["data"].as_array().unwrap()).unwrap();
        assert_eq!(page.records, 2);
        assert_eq!(page.batch.unwrap(), want);
        let first = br#"[{"a": "x", "a": 1, "b": "2024-06-01T00:00:00Z", "b": "2024-06-01"}]"#;
        let page = parse_page(first, &[]).unwrap().unwrap();
        let want = records_to_batch(
            serde_json::from_slice::<Value>(first)
                .unwrap()
                .as_array()
                .unwrap(),
        )
        .unwrap();
        let batch = page.batch.unwrap();
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Date32);
        assert_eq!(batch, want);
    }

    #[test]
    fn a_date_among_instants_is_its_midnight_not_a_null() {
        let body = br#"[{"at": "2024-06-01T10:30:00Z"}, {"at": "2024-06-02"}, {"at": null}]"#;
        let page = parse_page(body, &[]).unwrap().unwrap();
        let batch = page.batch.unwrap();
        assert_eq!(
            batch.schema().field(0).data_type(),
            &DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
        );
        let at = arrow_array::cast::AsArray::as_primitive::<
            arrow_array::types::TimestampMicrosecondType,
        >(batch.column(0));
        let midnight = chrono::NaiveDate::from_ymd_opt(2024, 6, 2)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(at.value(1), midnight);
        use arrow_array::Array;
        assert!(at.is_valid(0) && at.is_valid(1) && at.is_null(2));
        // The same through records already parsed.
        let doc: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(records_to_batch(doc.as_array().unwrap()).unwrap(), batch);
    }

    #[test]
    fn top_level_lists_single_objects_and_empty_pages() {
        let page = parse_page(br#"[{"a": 1}, {"a": 2}]"#, &[])
            .unwrap()
            .unwrap();
        assert_eq!(page.records, 2);
        let page = parse_page(br#"{"calls": {"a": 1}}"#, &selector("calls"))
            .unwrap()
            .unwrap();
        assert_eq!(page.records, 1);
        let page = parse_page(br#"{"calls": [], "next_page": null}"#, &selector("calls"))
            .unwrap()
            .unwrap();
        assert!(page.batch.is_none());
        let page = parse_page(br#"{"count": 0}"#, &selector("calls"))
            .unwrap()
            .unwrap();
        assert_eq!((page.records, page.envelope), (0, json!({"count": 0})));
    }

    #[test]
    fn a_scan_counts_what_the_parse_reads_and_keeps_the_same_envelope() {
        let bodies: [(&[u8], &str); 5] = [
            (
                br#"{"data": {"items": [{"a": 1}, {"b": [2]}, {}]}, "next": "/p2"}"#,
                "data.items",
            ),
            (
                br#"{"data": [{"a": 1}], "data": [{"a": 2}, {"a": 3}]}"#,
                "data",
            ),
            (br#"{"calls": {"a": 1}, "count": 1}"#, "calls"),
            (br#"{"calls": null, "count": 0}"#, "calls"),
            (br#"[{"a": 1}, {"a": 2}]"#, ""),
        ];
        for (body, sel) in bodies {
            let parsed = parse_page(body, &selector(sel)).unwrap().unwrap();
            let scanned = scan_page(body, &selector(sel)).unwrap().unwrap();
            assert_eq!(scanned.records, parsed.records, "{sel}");
            assert_eq!(scanned.envelope, parsed.envelope, "{sel}");
            assert!(scanned.batch.is_none());
        }
    }

    #[test]
    fn bad_records_are_clear_errors() {
        let e = parse_page(br#"{"calls": [{"a": 1}, 5]}"#, &selector("calls"))
            .unwrap()
            .unwrap_err();
        assert!(
            e.is_data() && e.to_string().contains("record 1 to be an object"),
            "{e}"
        );
        // Problems with the document as a whole: the same from the scan.
        for read in [parse_page, scan_page] {
            let e = read(br#"{"calls": "nope"}"#, &selector("calls"))
                .unwrap()
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("holds a string, not a list of records"),
                "{e}"
            );
            let e = read(br#"{"calls": [{"a": 1}"#, &selector("calls"))
                .unwrap()
                .unwrap_err();
            assert!(e.is_eof(), "{e}");
            assert!(read(b"{}", &selector("pages.0.items")).is_none());
        }
    }
}
