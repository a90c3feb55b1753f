//! A warehouse table read out as Parquet files for Iceberg: each DuckDB
//! column type mapped to an Iceberg type (casting in the SELECT where the
//! two differ), the rows written with each column's Iceberg field id, and
//! the run they stand for read in the same transaction.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema as ArrowSchema};
use duckdb::Connection;
use iceberg::spec::{PrimitiveType, Type};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows per Parquet file: files of a few tens of MB, which engines split
/// work by.
const ROWS_PER_FILE: usize = 1_000_000;

/// One column as published.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: PrimitiveType,
    /// The SELECT expression that gives it that type.
    select: String,
}

/// The table's columns, in order, with the types they are published as.
pub fn columns(conn: &Connection, schema: &str, table: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT column_name, data_type FROM duckdb_columns()
          WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
          ORDER BY column_index",
    )?;
    let rows = stmt.query_map([schema, table], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, data_type) = row?;
        out.push(column(name, &data_type));
    }
    anyhow::ensure!(!out.is_empty(), "table {schema}.{table} does not exist");
    Ok(out)
}

fn column(name: String, data_type: &str) -> Column {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let cast = |to: &str| format!("CAST({quoted} AS {to})");
    let (kind, select) = match data_type {
        "BOOLEAN" => (PrimitiveType::Boolean, quoted.clone()),
        "INTEGER" => (PrimitiveType::Int, quoted.clone()),
        "TINYINT" | "SMALLINT" | "UTINYINT" | "USMALLINT" => (PrimitiveType::Int, cast("INTEGER")),
        "BIGINT" => (PrimitiveType::Long, quoted.clone()),
        "UINTEGER" => (PrimitiveType::Long, cast("BIGINT")),
        "UBIGINT" => (
            PrimitiveType::Decimal {
                precision: 20,
                scale: 0,
            },
            cast("DECIMAL(20,0)"),
        ),
        "FLOAT" => (PrimitiveType::Float, quoted.clone()),
        "DOUBLE" => (PrimitiveType::Double, quoted.clone()),
        "DATE" => (PrimitiveType::Date, quoted.clone()),
        "TIMESTAMP" => (PrimitiveType::Timestamp, quoted.clone()),
        "TIMESTAMP_S" | "TIMESTAMP_MS" | "TIMESTAMP_NS" => {
            (PrimitiveType::Timestamp, cast("TIMESTAMP"))
        }
        "TIMESTAMP WITH TIME ZONE" => (PrimitiveType::Timestamptz, quoted.clone()),
        "BLOB" => (PrimitiveType::Binary, quoted.clone()),
        t if t.starts_with("DECIMAL(") => match decimal(t) {
            Some((precision, scale)) => {
                (PrimitiveType::Decimal { precision, scale }, quoted.clone())
            }
            None => (PrimitiveType::String, cast("VARCHAR")),
        },
        // VARCHAR, JSON, UUID, HUGEINT, lists, structs, intervals …: text
        // (nested values as DuckDB writes them, JSON as JSON).
        _ => (PrimitiveType::String, cast("VARCHAR")),
    };
    Column { name, kind, select }
}

fn decimal(t: &str) -> Option<(u32, u32)> {
    let inner = t.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The run a published table stands for: the latest that changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStamp {
    pub run_id: i64,
    /// `finished_at` in microseconds since the epoch.
    pub finished_us: i64,
    /// In a cluster: the fencing token of the source lease the run synced
    /// under. Issued by the cluster database, it orders runs of different
    /// daemons (whose clocks never meet).
    pub lease_token: Option<i64>,
}

impl RunStamp {
    /// Whether a table holding this run is newer than one holding
    /// `published`: the later lease first (another daemon's sync under a
    /// later lease saw the source later), then — runs of one lease, so of
    /// one daemon and one clock — the later finish.
    pub fn is_newer_than(&self, published: &RunStamp) -> bool {
        (self.lease_token.unwrap_or(0), self.finished_us)
            > (published.lease_token.unwrap_or(0), published.finished_us)
    }
}

/// The latest finished run of the stream that changed rows, if any — of
/// any outcome: a run that failed, was cancelled or was killed still
/// committed the batches before its end, and they are in the table.
pub fn latest_change(conn: &Connection, source: &str, stream: &str) -> Result<Option<RunStamp>> {
    let mut stmt = conn.prepare(
        "SELECT run_id, epoch_us(finished_at), lease_token FROM conveyor.runs
          WHERE source = ? AND stream = ? AND status <> 'running'
            AND coalesce(inserted, 0) + coalesce(updated, 0) > 0
          ORDER BY finished_at DESC, run_id DESC LIMIT 1",
    )?;
    let mut rows = stmt.query([source, stream])?;
    Ok(match rows.next()? {
        Some(r) => Some(RunStamp {
            run_id: r.get(0)?,
            finished_us: r.get(1)?,
            lease_token: r.get(2)?,
        }),
        None => None,
    })
}

/// A fingerprint of the table's content: its columns, row count and an
/// order-free sum of its rows' hashes (a sum, so two equal rows do not
/// cancel as they would in an XOR). A
/// re-sync that re-sent rows unchanged leaves it as it was, and publishes
/// nothing.
pub fn content(conn: &Connection, schema: &str, table: &str, columns: &[Column]) -> Result<String> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM \"{}\".\"{}\" AS t",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    );
    let (rows, hash): (i64, String) = conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let shape: Vec<String> = columns
        .iter()
        .map(|c| format!("{}:{}", c.name, c.kind))
        .collect();
    Ok(format!("{rows}:{hash}:{}", shape.join(",")))
}

/// A Parquet file written for the table.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// Writes every row of `schema.table` into Parquet files in `dir` named
/// `{prefix}-{n}.parquet`, each column tagged with its field id in `ids`.
pub fn write_parquet(
    conn: &Connection,
    schema: &str,
    table: &str,
    columns: &[Column],
    ids: &HashMap<String, i32>,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<Written>> {
    let select: Vec<&str> = columns.iter().map(|c| c.select.as_str()).collect();
    let sql = format!(
        "SELECT {} FROM \"{}\".\"{}\"",
        select.join(", "),
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    );
    let mut stmt = conn.prepare(&sql)?;
    let batches = stmt.query_arrow([])?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut files = Vec::new();
    let mut writer: Option<(ArrowWriter<File>, PathBuf, u64)> = None;
    let mut tagged: Option<Arc<ArrowSchema>> = None;
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let schema = tagged
            .get_or_insert_with(|| with_field_ids(&batch.schema(), columns, ids))
            .clone();
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .context("cannot tag the exported columns with their field ids")?;
        if writer.is_none() {
            let path = dir.join(format!("{prefix}-{}.parquet", files.len()));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            writer = Some((
                ArrowWriter::try_new(file, schema, Some(props.clone()))?,
                path,
                0,
            ));
        }
        let (w, _, rows) = writer.as_mut().expect("opened above");
        w.write(&batch)?;
        *rows += batch.num_rows() as u64;
        if *rows as usize >= ROWS_PER_FILE {
            files.push(close(writer.take().expect("open"))?);
        }
    }
    if let Some(w) = writer {
        files.push(close(w)?);
    }
    Ok(files)
}

fn close((w, path, rows): (ArrowWriter<File>, PathBuf, u64)) -> Result<Written> {
    // On disk before the catalog can point at it.
    w.into_inner()?.sync_all()?;
    let bytes = std::fs::metadata(&path)?.len();
    Ok(Written { path, rows, bytes })
}

/// The export's schema with `PARQUET:field_id` on each field (how Iceberg
/// readers match Parquet columns to the table's), every field nullable.
fn with_field_ids(
    exported: &ArrowSchema,
    columns: &[Column],
    ids: &HashMap<String, i32>,
) -> Arc<ArrowSchema> {
    let fields: Vec<Field> = exported
        .fields()
        .iter()
        .zip(columns)
        .map(|(f, c)| {
            let id = ids.get(&c.name).copied().unwrap_or_default();
            Field::new(&c.name, f.data_type().clone(), true).with_metadata(HashMap::from([(
                parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_string(),
                id.to_string(),
            )]))
        })
        .collect();
    Arc::new(ArrowSchema::new(fields))
}

/// The Iceberg type of a column.
pub fn iceberg_type(c: &Column) -> Type {
    Type::Primitive(c.kind.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_types_map_to_iceberg_types_with_casts_where_they_differ() {
        let c = column("amount".into(), "DECIMAL(18,2)");
        assert_eq!(
            c.kind,
            PrimitiveType::Decimal {
                precision: 18,
                scale: 2
            }
        );
        assert_eq!(c.select, "\"amount\"");
        let c = column("n".into(), "SMALLINT");
        assert_eq!(
            (c.kind, c.select.as_str()),
            (PrimitiveType::Int, "CAST(\"n\" AS INTEGER)")
        );
        let c = column("doc".into(), "JSON");
        assert_eq!(
            (c.kind, c.select.as_str()),
            (PrimitiveType::String, "CAST(\"doc\" AS VARCHAR)")
        );
        let c = column("we\"ird".into(), "TIMESTAMP_MS");
        assert_eq!(c.select, "CAST(\"we\"\"ird\" AS TIMESTAMP)");
    }
}
