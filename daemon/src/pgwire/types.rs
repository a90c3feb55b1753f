//! DuckDB results as Postgres sees them: which Postgres type (OID) each
//! Arrow column is announced as, and each value's text or binary encoding
//! in a `DataRow` or a COPY line. The OIDs match the shim catalog's
//! `pg_type` (catalog.sql), so a client that looks a column's type up
//! finds it.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, NaiveDate};
use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, MapArray, StructArray,
};
use duckdb::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, IntervalDayTimeType,
    IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::messages::data::DataRow;

/// One result column as announced to the client.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Type,
    pub format: FieldFormat,
}

impl Column {
    pub fn field(&self) -> FieldInfo {
        let size = match self.ty {
            Type::BOOL => 1,
            Type::INT2 => 2,
            Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
            Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
            Type::INTERVAL | Type::UUID => 16,
            _ => -1,
        };
        FieldInfo::new(self.name.clone(), None, None, self.ty.clone(), self.format)
            .with_type_size(size)
    }
}

/// What the DuckDB logical type adds to the Arrow type: DuckDB hands JSON
/// and UUID columns over as plain strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hint {
    pub json: bool,
    pub uuid: bool,
}

/// The Postgres type an Arrow column is announced as.
pub fn pg_type(dt: &DataType, hint: Hint) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if hint.json => Type::JSON,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if hint.uuid => Type::UUID,
        DataType::FixedSizeBinary(16) if hint.uuid => Type::UUID,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// Whether values of this type can be sent in binary (else the column is
/// sent as text whatever the client asked, which the protocol allows).
pub fn has_binary(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::TEXT
            | Type::VARCHAR
            | Type::JSON
            | Type::BYTEA
            | Type::UUID
            | Type::DATE
            | Type::TIME
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
            | Type::INTERVAL
    )
}

/// Dictionaries and the odd Arrow types become plain strings first, so
/// the encoders below see a handful of layouts.
fn normalise(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Dictionary(_, _) | DataType::Null | DataType::Utf8View | DataType::BinaryView => {
            let to = match array.data_type() {
                DataType::BinaryView => DataType::Binary,
                _ => DataType::Utf8,
            };
            duckdb::arrow::compute::cast(array, &to).unwrap_or_else(|_| array.clone())
        }
        _ => array.clone(),
    }
}

/// Encodes every row of `batch` as a `DataRow`.
pub fn data_rows(batch: &RecordBatch, columns: &[Column]) -> Vec<DataRow> {
    let arrays: Vec<ArrayRef> = batch.columns().iter().map(normalise).collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut buf = BytesMut::with_capacity(64 * batch.num_rows().max(1));
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (array, col) in arrays.iter().zip(columns) {
            if array.is_null(row) {
                buf.put_i32(-1);
                continue;
            }
            let at = buf.len();
            buf.put_i32(0);
            if col.format == FieldFormat::Binary {
                write_binary(array.as_ref(), row, &col.ty, &mut buf, &mut text);
            } else {
                text.clear();
                write_text(array.as_ref(), row, &col.ty, &mut text);
                buf.put_slice(text.as_bytes());
            }
            let len = (buf.len() - at - 4) as i32;
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        rows.push(DataRow::new(buf.split(), columns.len() as i16));
    }
    rows
}

/// Encodes every row of `batch` as one line of COPY text (tab-separated,
/// `\N` for NULL) or CSV.
pub fn copy_lines(batch: &RecordBatch, columns: &[Column], csv: bool) -> Vec<Bytes> {
    let arrays: Vec<ArrayRef> = batch.columns().iter().map(normalise).collect();
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        let mut line = String::new();
        for (i, (array, col)) in arrays.iter().zip(columns).enumerate() {
            if i > 0 {
                line.push(if csv { ',' } else { '\t' });
            }
            if array.is_null(row) {
                if !csv {
                    line.push_str("\\N");
                }
                continue;
            }
            text.clear();
            write_text(array.as_ref(), row, &col.ty, &mut text);
            if csv {
                line.push_str(&csv_field(&text));
            } else {
                copy_escape(&text, &mut line);
            }
        }
        line.push('\n');
        out.push(Bytes::from(line));
    }
    out
}

/// The header line of a CSV COPY.
pub fn copy_header(columns: &[Column]) -> Bytes {
    let names: Vec<String> = columns.iter().map(|c| csv_field(&c.name)).collect();
    Bytes::from(format!("{}\n", names.join(",")))
}

fn csv_field(s: &str) -> String {
    if s.is_empty() || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn copy_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------
// Text format: what Postgres itself prints (DateStyle ISO, IntervalStyle
// postgres, bytea hex), so drivers parse it as they would Postgres'.

fn write_text(a: &dyn Array, row: usize, ty: &Type, out: &mut String) {
    match a.data_type() {
        DataType::Boolean => out.push(if a.as_boolean().value(row) { 't' } else { 'f' }),
        DataType::Int8 => push(out, a.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push(out, a.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push(out, a.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push(out, a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push(out, a.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push(out, a.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push(out, a.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push(out, a.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => float_text(a.as_primitive::<Float16Type>().value(row).to_f64(), out),
        DataType::Float32 => float_text(a.as_primitive::<Float32Type>().value(row) as f64, out),
        DataType::Float64 => float_text(a.as_primitive::<Float64Type>().value(row), out),
        DataType::Decimal128(_, scale) => {
            decimal_text(a.as_primitive::<Decimal128Type>().value(row), *scale, out)
        }
        DataType::Utf8 => out.push_str(a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => out.push_str(a.as_string::<i64>().value(row)),
        DataType::FixedSizeBinary(16) if *ty == Type::UUID => uuid_text(
            a.as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .expect("fixed binary")
                .value(row),
            out,
        ),
        DataType::Binary => hex_text(a.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => hex_text(a.as_binary::<i64>().value(row), out),
        DataType::FixedSizeBinary(_) => hex_text(
            a.as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .expect("fixed binary")
                .value(row),
            out,
        ),
        DataType::Date32 => date_text(a.as_primitive::<Date32Type>().value(row) as i64, out),
        DataType::Date64 => date_text(a.as_primitive::<Date64Type>().value(row) / 86_400_000, out),
        DataType::Time32(_) | DataType::Time64(_) => time_text(time_micros(a, row), out),
        DataType::Timestamp(_, tz) => {
            timestamp_text(timestamp_micros(a, row), out);
            if tz.is_some() {
                out.push_str("+00");
            }
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            let (months, days, micros) = interval_parts(a, row);
            interval_text(months, days, micros, out)
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => json_value(a, row, out),
        _ => display(a, row, out),
    }
}

fn push(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

fn display(a: &dyn Array, row: usize, out: &mut String) {
    match ArrayFormatter::try_new(a, &FormatOptions::default()) {
        Ok(f) => push(out, f.value(row)),
        Err(_) => out.push('?'),
    }
}

fn float_text(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // Shortest text that reads back as the same number, as Postgres
        // prints it by default (with an exponent when very large or small).
        let abs = v.abs();
        if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
            let e = format!("{v:e}");
            let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
            let (sign, digits) = match x.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', x),
            };
            let _ = write!(out, "{m}e{sign}{digits:0>2}");
        } else {
            push(out, v);
        }
    }
}

fn decimal_text(v: i128, scale: i8, out: &mut String) {
    if scale <= 0 {
        push(out, v * 10i128.pow((-scale) as u32));
        return;
    }
    let scale = scale as usize;
    let digits = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    if digits.len() <= scale {
        out.push_str("0.");
        out.push_str(&"0".repeat(scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

fn hex_text(b: &[u8], out: &mut String) {
    out.push_str("\\x");
    for byte in b {
        let _ = write!(out, "{byte:02x}");
    }
}

fn uuid_text(b: &[u8], out: &mut String) {
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (`… BC` before year 1).
fn date_text(days: i64, out: &mut String) {
    match i32::try_from(days + 719_163)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
    {
        Some(d) => ymd(d, out),
        None => out.push_str(if days > 0 { "infinity" } else { "-infinity" }),
    }
}

fn ymd(d: NaiveDate, out: &mut String) {
    use chrono::Datelike;
    let (y, bc) = if d.year() <= 0 {
        (1 - d.year(), true)
    } else {
        (d.year(), false)
    };
    let _ = write!(out, "{y:04}-{:02}-{:02}", d.month(), d.day());
    if bc {
        out.push_str(" BC");
    }
}

fn time_micros(a: &dyn Array, row: usize) -> i64 {
    match a.data_type() {
        DataType::Time32(TimeUnit::Second) => {
            a.as_primitive::<Time32SecondType>().value(row) as i64 * 1_000_000
        }
        DataType::Time32(_) => a.as_primitive::<Time32MillisecondType>().value(row) as i64 * 1_000,
        DataType::Time64(TimeUnit::Nanosecond) => {
            a.as_primitive::<Time64NanosecondType>().value(row) / 1_000
        }
        _ => a.as_primitive::<Time64MicrosecondType>().value(row),
    }
}

fn time_text(micros: i64, out: &mut String) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    fraction(frac, out);
}

fn fraction(micros: i64, out: &mut String) {
    if micros != 0 {
        let f = format!("{micros:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

fn timestamp_micros(a: &dyn Array, row: usize) -> i64 {
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => a
            .as_primitive::<TimestampSecondType>()
            .value(row)
            .saturating_mul(1_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .saturating_mul(1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            a.as_primitive::<TimestampNanosecondType>().value(row) / 1_000
        }
        _ => a.as_primitive::<TimestampMicrosecondType>().value(row),
    }
}

fn timestamp_text(micros: i64, out: &mut String) {
    match DateTime::from_timestamp_micros(micros) {
        Some(t) if micros != i64::MAX && micros != -i64::MAX => {
            let t = t.naive_utc();
            ymd(t.date(), out);
            // Strip the " BC" to put the time before it.
            let bc = out.ends_with(" BC");
            if bc {
                out.truncate(out.len() - 3);
            }
            out.push(' ');
            time_text(micros.rem_euclid(86_400_000_000), out);
            if bc {
                out.push_str(" BC");
            }
        }
        _ => out.push_str(if micros > 0 { "infinity" } else { "-infinity" }),
    }
}

/// (months, days, microseconds) of an interval or duration.
fn interval_parts(a: &dyn Array, row: usize) -> (i32, i32, i64) {
    match a.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
            (v.months, v.days, v.nanoseconds / 1_000)
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = a.as_primitive::<IntervalDayTimeType>().value(row);
            (0, v.days, v.milliseconds as i64 * 1_000)
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            (a.as_primitive::<IntervalYearMonthType>().value(row), 0, 0)
        }
        DataType::Duration(TimeUnit::Second) => (
            0,
            0,
            a.as_primitive::<DurationSecondType>().value(row) * 1_000_000,
        ),
        DataType::Duration(TimeUnit::Millisecond) => (
            0,
            0,
            a.as_primitive::<DurationMillisecondType>().value(row) * 1_000,
        ),
        DataType::Duration(TimeUnit::Nanosecond) => (
            0,
            0,
            a.as_primitive::<DurationNanosecondType>().value(row) / 1_000,
        ),
        _ => (0, 0, a.as_primitive::<DurationMicrosecondType>().value(row)),
    }
}

/// IntervalStyle `postgres`: `1 year 2 mons 3 days 04:05:06.5`.
fn interval_text(months: i32, days: i32, micros: i64, out: &mut String) {
    let mut parts: Vec<String> = Vec::new();
    let (years, mons) = (months / 12, months % 12);
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if years != 0 {
        parts.push(unit(years as i64, "year", "years"));
    }
    if mons != 0 {
        parts.push(unit(mons as i64, "mon", "mons"));
    }
    if days != 0 {
        parts.push(unit(days as i64, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let mut t = String::new();
        if micros < 0 {
            t.push('-');
        }
        let abs = micros.unsigned_abs() as i64;
        let secs = abs / 1_000_000;
        let _ = write!(
            t,
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        fraction(abs % 1_000_000, &mut t);
        parts.push(t);
    }
    out.push_str(&parts.join(" "));
}

/// Nested values (LIST, STRUCT, MAP) as JSON text.
fn json_value(a: &dyn Array, row: usize, out: &mut String) {
    if a.is_null(row) {
        out.push_str("null");
        return;
    }
    match a.data_type() {
        DataType::Boolean => {
            let b = a
                .as_any()
                .downcast_ref::<BooleanArray>()
                .expect("bool")
                .value(row);
            out.push_str(if b { "true" } else { "false" })
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..) => write_text(a, row, &Type::NUMERIC, out),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let mut s = String::new();
            write_text(a, row, &Type::FLOAT8, &mut s);
            if s.parse::<f64>().is_ok_and(f64::is_finite) {
                out.push_str(&s);
            } else {
                out.push_str("null");
            }
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let values = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(row),
                DataType::LargeList(_) => a.as_list::<i64>().value(row),
                _ => a.as_fixed_size_list().value(row),
            };
            let values = normalise(&values);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                json_value(values.as_ref(), i, out);
            }
            out.push(']');
        }
        DataType::Struct(fields) => {
            let s = a.as_any().downcast_ref::<StructArray>().expect("struct");
            out.push('{');
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(f.name()).expect("string"));
                out.push(':');
                json_value(normalise(s.column(i)).as_ref(), row, out);
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let m = a.as_any().downcast_ref::<MapArray>().expect("map");
            let entries = m.value(row);
            let keys = normalise(entries.column(0));
            let values = normalise(entries.column(1));
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let mut key = String::new();
                write_text(keys.as_ref(), i, &Type::TEXT, &mut key);
                out.push_str(&serde_json::to_string(&key).expect("string"));
                out.push(':');
                json_value(values.as_ref(), i, out);
            }
            out.push('}');
        }
        _ => {
            let mut s = String::new();
            write_text(a, row, &Type::TEXT, &mut s);
            out.push_str(&serde_json::to_string(&s).expect("string"));
        }
    }
}

// ---------------------------------------------------------------------------
// Binary format: Postgres' send functions.

/// Microseconds between 1970-01-01 and Postgres' epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i64 = 10_957;

fn write_binary(a: &dyn Array, row: usize, ty: &Type, buf: &mut BytesMut, scratch: &mut String) {
    let int = || -> i64 {
        match a.data_type() {
            DataType::Int8 => a.as_primitive::<Int8Type>().value(row) as i64,
            DataType::Int16 => a.as_primitive::<Int16Type>().value(row) as i64,
            DataType::Int32 => a.as_primitive::<Int32Type>().value(row) as i64,
            DataType::Int64 => a.as_primitive::<Int64Type>().value(row),
            DataType::UInt8 => a.as_primitive::<UInt8Type>().value(row) as i64,
            DataType::UInt16 => a.as_primitive::<UInt16Type>().value(row) as i64,
            DataType::UInt32 => a.as_primitive::<UInt32Type>().value(row) as i64,
            _ => 0,
        }
    };
    match *ty {
        Type::BOOL => buf.put_u8(a.as_boolean().value(row) as u8),
        Type::INT2 => buf.put_i16(int() as i16),
        Type::INT4 => buf.put_i32(int() as i32),
        Type::INT8 => buf.put_i64(int()),
        Type::FLOAT4 => buf.put_f32(match a.data_type() {
            DataType::Float16 => a.as_primitive::<Float16Type>().value(row).to_f32(),
            _ => a.as_primitive::<Float32Type>().value(row),
        }),
        Type::FLOAT8 => buf.put_f64(a.as_primitive::<Float64Type>().value(row)),
        Type::NUMERIC => {
            scratch.clear();
            write_text(a, row, ty, scratch);
            numeric_binary(scratch, buf);
        }
        Type::BYTEA => match a.data_type() {
            DataType::Binary => buf.put_slice(a.as_binary::<i32>().value(row)),
            DataType::LargeBinary => buf.put_slice(a.as_binary::<i64>().value(row)),
            _ => buf.put_slice(
                a.as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .expect("fixed binary")
                    .value(row),
            ),
        },
        Type::UUID => match a.data_type() {
            DataType::FixedSizeBinary(16) => buf.put_slice(
                a.as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .expect("fixed binary")
                    .value(row),
            ),
            _ => {
                scratch.clear();
                write_text(a, row, ty, scratch);
                let hex: String = scratch.chars().filter(|c| c.is_ascii_hexdigit()).collect();
                let bytes = u128::from_str_radix(&hex, 16).unwrap_or(0);
                buf.put_u128(bytes);
            }
        },
        Type::DATE => {
            let days = match a.data_type() {
                DataType::Date64 => a.as_primitive::<Date64Type>().value(row) / 86_400_000,
                _ => a.as_primitive::<Date32Type>().value(row) as i64,
            };
            buf.put_i32((days - PG_EPOCH_DAYS) as i32)
        }
        Type::TIME => buf.put_i64(time_micros(a, row)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = timestamp_micros(a, row);
            // DuckDB's ±infinity are Postgres' too.
            buf.put_i64(if micros == i64::MAX || micros == -i64::MAX {
                micros.signum() * i64::MAX
            } else {
                micros - PG_EPOCH_MICROS
            })
        }
        Type::INTERVAL => {
            let (months, days, micros) = interval_parts(a, row);
            buf.put_i64(micros);
            buf.put_i32(days);
            buf.put_i32(months);
        }
        // text, varchar, json: the text is the binary form.
        _ => {
            scratch.clear();
            write_text(a, row, ty, scratch);
            buf.put_slice(scratch.as_bytes());
        }
    }
}

/// Postgres' binary numeric: base-10000 digits, a weight, a sign and the
/// display scale, from a decimal text like `-123.4500`.
pub fn numeric_binary(text: &str, buf: &mut BytesMut) {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let dscale = frac.len() as i16;
    let mut groups: Vec<i16> = Vec::new();
    let pad = (4 - int.len() % 4) % 4;
    let int_padded = format!("{}{int}", "0".repeat(pad));
    for chunk in int_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0),
        );
    }
    let mut weight = groups.len() as i16 - 1;
    let frac_padded = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    for chunk in frac_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .unwrap_or("0")
                .parse()
                .unwrap_or(0),
        );
    }
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if neg && !groups.is_empty() { 0x4000 } else { 0 });
    buf.put_i16(dscale);
    for g in groups {
        buf.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn text_forms_match_postgres() {
        assert_eq!(text_of(|o| decimal_text(12345, 2, o)), "123.45");
        assert_eq!(text_of(|o| decimal_text(-5, 3, o)), "-0.005");
        assert_eq!(text_of(|o| decimal_text(7, 0, o)), "7");
        assert_eq!(text_of(|o| date_text(19_723, o)), "2024-01-01");
        assert_eq!(
            text_of(|o| timestamp_text(1_704_103_200_500_000, o)),
            "2024-01-01 10:00:00.5"
        );
        assert_eq!(
            text_of(|o| interval_text(14, 3, 4 * 3_600_000_000 + 5_000_000, o)),
            "1 year 2 mons 3 days 04:00:05"
        );
        assert_eq!(text_of(|o| interval_text(0, 0, 0, o)), "00:00:00");
        assert_eq!(
            text_of(|o| interval_text(0, -1, -1_500_000, o)),
            "-1 days -00:00:01.5"
        );
        assert_eq!(text_of(|o| float_text(f64::NAN, o)), "NaN");
        assert_eq!(text_of(|o| float_text(0.1, o)), "0.1");
        assert_eq!(text_of(|o| float_text(1e100, o)), "1e+100");
        assert_eq!(text_of(|o| float_text(-1.5e-7, o)), "-1.5e-07");
        assert_eq!(text_of(|o| hex_text(&[0xde, 0xad], o)), "\\xdead");
        assert_eq!(
            text_of(|o| uuid_text(&0x0123456789abcdef0123456789abcdefu128.to_be_bytes(), o)),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn numeric_binary_is_base_10000() {
        let enc = |s: &str| {
            let mut b = BytesMut::new();
            numeric_binary(s, &mut b);
            b.to_vec()
        };
        // 12345.678 = 1|2345.6780: ndigits 3, weight 1, +, dscale 3.
        assert_eq!(
            enc("12345.678"),
            vec![0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        assert_eq!(
            enc("-0.05"),
            vec![0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4]
        );
        assert_eq!(enc("0.00"), vec![0, 0, 0, 0, 0, 0, 0, 2]);
    }
}
