//! Loading one stream's batches: schema evolution, rejects, and the merge by
//! primary key, committed together with the cursor and the run counters.

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use duckdb::{params, Connection};

use super::ident;
use super::transaction::{begin, finish};
use super::types::{sql_type, widen};

/// Loads the batches of one stream read (one run) into its table.
pub struct StreamLoader {
    conn: Connection,
    source: String,
    stream: String,
    primary_key: Vec<String>,
    run_id: i64,
    /// The table's columns and DuckDB types, as last read; `None` until the
    /// table exists.
    columns: Option<Vec<(String, String)>>,
}

/// What one commit stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Rows stored (read, less rejects and in-batch repeats of a key).
    pub rows: u64,
    /// Rows the merge wrote: `rows` less repeats of one key in the batch.
    pub written: u64,
    /// Of those, rows that replaced one already there (the rest are new).
    pub updated: u64,
    pub rejected: u64,
}

const STAGE: &str = "conveyor_stage";
/// The keys of a batch group, staged to see whether any is already stored.
const KEYS: &str = "conveyor_keys";

impl StreamLoader {
    pub fn new(
        conn: Connection,
        source: &str,
        stream: &str,
        primary_key: Vec<String>,
        run_id: i64,
    ) -> Result<Self> {
        let mut l = StreamLoader {
            conn,
            source: source.into(),
            stream: stream.into(),
            primary_key,
            run_id,
            columns: None,
        };
        l.conn
            .execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(source)))?;
        l.refresh_columns()?;
        Ok(l)
    }

    fn table(&self) -> String {
        format!("{}.{}", ident(&self.source), ident(&self.stream))
    }

    fn refresh_columns(&mut self) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT column_name, data_type FROM duckdb_columns()
             WHERE schema_name = ? AND table_name = ? AND database_name = current_database()
             ORDER BY column_index",
        )?;
        let cols: Vec<(String, String)> = st
            .query_map(params![self.source, self.stream], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        self.columns = if cols.is_empty() { None } else { Some(cols) };
        Ok(())
    }

    /// Stores `batches` and `state` atomically: all of it or none of it.
    /// Each batch is dropped once it is in DuckDB, so a commit does not hold
    /// its rows twice for longer than it must.
    pub fn commit(
        &mut self,
        batches: Vec<RecordBatch>,
        state: &serde_json::Value,
    ) -> Result<CommitStats> {
        begin(&self.conn)?;
        let outcome = self.commit_in_transaction(batches, state);
        let outcome = finish(&self.conn, outcome).context("commit failed");
        if outcome.is_err() {
            // The cached schema may describe DDL that was rolled back.
            let _ = self.refresh_columns();
        }
        outcome
    }

    fn commit_in_transaction(
        &mut self,
        batches: Vec<RecordBatch>,
        state: &serde_json::Value,
    ) -> Result<CommitStats> {
        let mut stats = CommitStats::default();
        // Consecutive batches with one schema are staged and merged together:
        // one merge of 50,000 rows costs about what one of 1,000 does.
        let batch_count = batches.len();
        let mut groups: Vec<Vec<RecordBatch>> = Vec::new();
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            match groups.last_mut() {
                Some(group) if group[0].schema() == batch.schema() => group.push(batch),
                _ => groups.push(vec![batch]),
            }
        }
        for group in groups {
            let s = self.load_group(group)?;
            stats.rows += s.rows;
            stats.written += s.written;
            stats.updated += s.updated;
            stats.rejected += s.rejected;
        }
        self.conn.execute(
            "INSERT INTO conveyor.stream_state (source, stream, state, last_run_id, updated_at)
             VALUES (?, ?, ?, ?, make_timestamp(epoch_us(now())))
             ON CONFLICT (source, stream) DO UPDATE SET
                state = excluded.state, last_run_id = excluded.last_run_id, updated_at = excluded.updated_at",
            params![self.source, self.stream, state.to_string(), self.run_id],
        )?;
        self.conn.execute(
            "UPDATE conveyor.runs SET rows = rows + ?, inserted = coalesce(inserted, 0) + ?,
                    updated = coalesce(updated, 0) + ?, rejected = rejected + ?, batches = batches + ?
             WHERE run_id = ?",
            params![
                stats.rows as i64,
                (stats.written - stats.updated) as i64,
                stats.updated as i64,
                stats.rejected as i64,
                batch_count as i64,
                self.run_id
            ],
        )?;
        Ok(stats)
    }

    /// Loads batches that share one schema.
    fn load_group(&mut self, mut group: Vec<RecordBatch>) -> Result<CommitStats> {
        let schema = group[0].schema();
        let total_rows: usize = group.iter().map(|b| b.num_rows()).sum();
        self.evolve(&group[0])?;
        if let Some(stats) = self.append_if_all_new(&mut group, total_rows)? {
            return Ok(stats);
        }
        self.stage(&group.iter().collect::<Vec<_>>())?;
        drop(group);
        let table = self.table();
        let pk_cols: Vec<String> = self.primary_key.iter().map(|k| ident(k)).collect();
        let staged: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let missing_pk: Vec<&String> = self
            .primary_key
            .iter()
            .filter(|k| !staged.contains(k))
            .collect();

        // Records without a primary key cannot be merged; keep them aside.
        let null_pk = if missing_pk.is_empty() {
            pk_cols
                .iter()
                .map(|c| format!("{c} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        } else {
            "TRUE".to_string()
        };
        let reason = format!(
            "record has no value for primary key {}",
            self.primary_key.join(", ")
        );
        let rejected = self.conn.execute(
            &format!(
                "INSERT INTO conveyor.rejects (rejected_at, run_id, source, stream, record_key, reason, record)
                 SELECT make_timestamp(epoch_us(now())), ?, ?, ?, NULL, ?, to_json(s) FROM {STAGE} s WHERE {null_pk}"
            ),
            params![self.run_id, self.source, self.stream, reason],
        )? as u64;
        if !missing_pk.is_empty() {
            return Ok(CommitStats {
                rejected,
                ..CommitStats::default()
            });
        }

        // Insert columns by name, cast to the table's (possibly wider) type.
        let columns = self.columns.clone().unwrap_or_default();
        let select: Vec<String> = columns
            .iter()
            .filter(|(c, _)| staged.contains(c))
            .map(|(c, t)| format!("CAST({} AS {t}) AS {}", ident(c), ident(c)))
            .collect();
        let names: Vec<String> = columns
            .iter()
            .filter(|(c, _)| staged.contains(c))
            .map(|(c, _)| ident(c))
            .collect();
        let keys = pk_cols.join(", ");
        let join = pk_cols
            .iter()
            .map(|c| format!("t.{c} = s.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        // Within one commit the last occurrence of a key wins, as it would
        // had the records arrived one by one. Duplicates are rare (a page
        // re-read after a restart): look for them first, and sort only then.
        let duplicates: i64 = self.conn.query_row(
            &format!(
                "SELECT count(*) - count(DISTINCT ({keys})) FROM {STAGE} WHERE NOT ({null_pk})"
            ),
            [],
            |r| r.get(0),
        )?;
        let source = if duplicates == 0 {
            format!("(SELECT * FROM {STAGE} WHERE NOT ({null_pk}))")
        } else {
            self.conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE conveyor_merge AS
                 SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY conveyor_ord DESC) AS conveyor_rn
                                FROM (SELECT *, row_number() OVER () AS conveyor_ord FROM {STAGE} WHERE NOT ({null_pk})))
                 WHERE conveyor_rn = 1"
            ))?;
            "conveyor_merge".to_string()
        };
        // The rows a merge deletes are the ones it replaces: updates; the
        // rest of what it inserts is new.
        let updated = self.conn.execute(
            &format!("DELETE FROM {table} t USING {source} s WHERE {join}"),
            [],
        )?;
        let written = self.conn.execute(
            &format!(
                "INSERT INTO {table} ({}) SELECT {} FROM {source}",
                names.join(", "),
                select.join(", ")
            ),
            [],
        )?;
        self.conn
            .execute_batch("DROP TABLE IF EXISTS conveyor_merge")?;
        let rows = total_rows as u64 - rejected;
        Ok(CommitStats {
            rows,
            written: written as u64,
            updated: updated as u64,
            rejected,
        })
    }

    /// The fast path of a merge: when every row of the group has its whole
    /// key, no key repeats within the group and none is in the table yet (a
    /// first load, or records past the newest stored), there is nothing to
    /// replace — the batches are appended straight into the table, with no
    /// staging copy and no DELETE. Only the key columns are staged, to find
    /// that out. `None`: a key is missing, repeated or already stored; the
    /// caller merges.
    fn append_if_all_new(
        &self,
        group: &mut Vec<RecordBatch>,
        total_rows: usize,
    ) -> Result<Option<CommitStats>> {
        let Some(columns) = &self.columns else {
            return Ok(None);
        };
        let schema = group[0].schema();
        let Some(key_index) = self
            .primary_key
            .iter()
            .map(|k| schema.index_of(k).ok())
            .collect::<Option<Vec<usize>>>()
        else {
            return Ok(None);
        };
        let whole_keys = group.iter().all(|b| {
            key_index.iter().all(|&i| {
                b.column(i).null_count() == 0
                    && b.column(i).data_type() != &arrow_schema::DataType::Null
            })
        });
        if key_index.is_empty() || !whole_keys {
            return Ok(None);
        }
        let keys: Vec<RecordBatch> = group
            .iter()
            .map(|b| b.project(&key_index))
            .collect::<Result<_, _>>()?;
        let key_refs: Vec<&RecordBatch> = keys.iter().collect();
        self.stage_as(KEYS, &key_refs)?;
        let pk_cols: Vec<String> = self.primary_key.iter().map(|k| ident(k)).collect();
        let join = pk_cols
            .iter()
            .map(|c| format!("t.{c} = k.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let (repeated, stored): (i64, i64) = self.conn.query_row(
            &format!(
                "SELECT (SELECT count(*) - count(DISTINCT ({keys})) FROM {KEYS}),
                        (SELECT count(*) FROM {table} t SEMI JOIN {KEYS} k ON {join})",
                keys = pk_cols.join(", "),
                table = self.table(),
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        self.conn.execute_batch(&format!("DROP TABLE {KEYS}"))?;
        if repeated != 0 || stored != 0 {
            return Ok(None);
        }
        // The table's columns the batch brings, in the table's spelling
        // (as the merge's INSERT names them); the appender casts each to
        // the table's type, as the merge's CAST does, and leaves the others
        // NULL.
        let names: Vec<&str> = columns
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| schema.index_of(c).is_ok())
            .collect();
        let index: Vec<usize> = names
            .iter()
            .map(|c| schema.index_of(c).expect("filtered above"))
            .collect();
        let mut app = self
            .conn
            .appender_with_columns_to_db(&self.stream, &self.source, &names)?;
        // Each batch goes as soon as it is in DuckDB.
        for batch in std::mem::take(group) {
            app.append_record_batch(null_columns_as_utf8(&batch.project(&index)?)?)
                .context("bulk append into the table failed")?;
        }
        app.flush()?;
        Ok(Some(CommitStats {
            rows: total_rows as u64,
            written: total_rows as u64,
            updated: 0,
            rejected: 0,
        }))
    }

    /// Copies the batches into a temporary staging table through DuckDB's
    /// Arrow appender (bulk, not row by row).
    fn stage(&self, group: &[&RecordBatch]) -> Result<()> {
        self.stage_as(STAGE, group)
    }

    /// Copies the batches into the temporary table `name`, made anew.
    fn stage_as(&self, name: &str, group: &[&RecordBatch]) -> Result<()> {
        let cols: Vec<String> = group[0]
            .schema()
            .fields()
            .iter()
            .map(|f| {
                // The appender needs the exact Arrow types; an all-null column
                // is staged as VARCHAR and never creates a table column.
                let t = sql_type(f).unwrap_or_else(|| "VARCHAR".into());
                let t = if t == "JSON" {
                    "VARCHAR".to_string()
                } else {
                    t
                };
                format!("{} {t}", ident(f.name()))
            })
            .collect();
        self.conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE {name} ({})",
            cols.join(", ")
        ))?;
        let mut app = self.conn.appender(name)?;
        for batch in group {
            app.append_record_batch(null_columns_as_utf8(batch)?)
                .context("bulk append into staging failed")?;
        }
        app.flush()?;
        Ok(())
    }

    /// Creates the table, adds new columns and widens changed ones,
    /// recording each change in `conveyor.schema_changes`.
    fn evolve(&mut self, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let incoming: Vec<(String, String)> = schema
            .fields()
            .iter()
            .filter_map(|f| sql_type(f).map(|t| (f.name().clone(), t)))
            .collect();
        let table = self.table();
        let mut changes: Vec<(String, &str, Option<String>, String)> = Vec::new();
        match &self.columns {
            None => {
                if incoming.is_empty() {
                    return Ok(());
                }
                let defs: Vec<String> = incoming
                    .iter()
                    .map(|(c, t)| format!("{} {t}", ident(c)))
                    .collect();
                self.conn
                    .execute_batch(&format!("CREATE TABLE {table} ({})", defs.join(", ")))?;
                for (c, t) in &incoming {
                    changes.push((c.clone(), "create_table", None, t.clone()));
                }
            }
            Some(existing) => {
                for (c, t) in &incoming {
                    match existing.iter().find(|(e, _)| e.eq_ignore_ascii_case(c)) {
                        None => {
                            self.conn.execute_batch(&format!(
                                "ALTER TABLE {table} ADD COLUMN {} {t}",
                                ident(c)
                            ))?;
                            changes.push((c.clone(), "add_column", None, t.clone()));
                        }
                        Some((_, old)) => {
                            if let Some(new) = widen(old, t) {
                                self.conn.execute_batch(&format!(
                                    "ALTER TABLE {table} ALTER COLUMN {} SET DATA TYPE {new}",
                                    ident(c)
                                ))?;
                                changes.push((c.clone(), "widen", Some(old.clone()), new));
                            }
                        }
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        for (column, change, old, new) in &changes {
            self.conn.execute(
                "INSERT INTO conveyor.schema_changes (changed_at, run_id, source, stream, column_name, change, old_type, new_type)
                 VALUES (make_timestamp(epoch_us(now())), ?, ?, ?, ?, ?, ?, ?)",
                params![self.run_id, self.source, self.stream, column, change, old, new],
            )?;
            if *change == "create_table" {
                tracing::debug!(source = %self.source, stream = %self.stream, column = %column, new_type = %new, "new table column");
            } else {
                tracing::info!(source = %self.source, stream = %self.stream, column = %column, change = %change,
                    old_type = old.as_deref().unwrap_or(""), new_type = %new, "schema change");
            }
        }
        self.refresh_columns()?;
        Ok(())
    }
}

/// The appender cannot take Arrow's Null type; send such columns as
/// all-null strings.
fn null_columns_as_utf8(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null)
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type() == &DataType::Null {
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(arrow_array::new_null_array(
                &DataType::Utf8,
                batch.num_rows(),
            ));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(keys: &[(i64, &str)], values: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("v", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(
                    keys.iter().map(|k| k.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    keys.iter().map(|k| k.1).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    fn rows(wh: &crate::warehouse::Warehouse) -> Vec<(i64, String, String)> {
        let conn = wh.connection().unwrap();
        let mut st = conn
            .prepare("SELECT id, region, v FROM s.t ORDER BY id, region")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn merge_keeps_the_last_occurrence_of_a_key_within_and_across_commits() {
        let dir = tempfile::tempdir().unwrap();
        let wh = crate::warehouse::Warehouse::open(&dir.path().join("w.duckdb")).unwrap();
        let run = wh.begin_run("s", "t", None).unwrap();
        let key = vec!["id".to_string(), "region".to_string()];
        let mut loader = StreamLoader::new(wh.connection().unwrap(), "s", "t", key, run).unwrap();
        let state = serde_json::json!({});
        // All keys new: the append path.
        loader
            .commit(
                vec![batch(&[(1, "a"), (1, "b"), (2, "a")], &["x", "y", "z"])],
                &state,
            )
            .unwrap();
        // Duplicates within one commit, across two batches and within one;
        // (1, "b") also replaces the row stored before.
        let first = batch(&[(1, "b"), (3, "a")], &["old", "old"]);
        let second = batch(&[(3, "a"), (1, "b"), (3, "a")], &["mid", "new", "new"]);
        let stats = loader.commit(vec![first, second], &state).unwrap();
        assert_eq!(stats.rows, 5);
        // Two keys written: (1, "b") replaced, (3, "a") new.
        assert_eq!((stats.written, stats.updated), (2, 1));
        let counted: (i64, i64, i64) = wh
            .connection()
            .unwrap()
            .query_row(
                "SELECT rows, inserted, updated FROM conveyor.runs WHERE run_id = ?",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(counted, (8, 4, 1), "3 new, then 1 new and 1 replaced");
        assert_eq!(
            rows(&wh),
            vec![
                (1, "a".into(), "x".into()),
                (1, "b".into(), "new".into()),
                (2, "a".into(), "z".into()),
                (3, "a".into(), "new".into()),
            ]
        );
    }
}

#[cfg(test)]
mod append_tests {
    //! The append path (all keys new) against the merge it stands in for.
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, NullArray, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    /// `id`, `a`, `b`, `c` of one stored row.
    type Row = (i64, Option<f64>, Option<String>, Option<String>);

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn ids(v: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    /// A fresh warehouse and a loader for `s.t` keyed by `id`.
    fn open_loader() -> (tempfile::TempDir, crate::warehouse::Warehouse, StreamLoader) {
        let dir = tempfile::tempdir().unwrap();
        let wh = crate::warehouse::Warehouse::open(&dir.path().join("w.duckdb")).unwrap();
        let run = wh.begin_run("s", "t", None).unwrap();
        let loader =
            StreamLoader::new(wh.connection().unwrap(), "s", "t", vec!["id".into()], run).unwrap();
        (dir, wh, loader)
    }

    fn table(wh: &crate::warehouse::Warehouse) -> Vec<Row> {
        let conn = wh.connection().unwrap();
        let mut st = conn
            .prepare("SELECT id, a, b, c FROM s.t ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn new_keys_land_by_name_with_missing_columns_null_and_widened_types_cast() {
        let (_dir, wh, mut loader) = open_loader();
        let state = serde_json::json!({});
        let first = batch(vec![
            ("id", ids(&[1, 2])),
            ("a", ids(&[10, 20])),
            ("b", Arc::new(StringArray::from(vec!["x", "y"]))),
        ]);
        let stats = loader.commit(vec![first], &state).unwrap();
        assert_eq!((stats.rows, stats.written, stats.updated), (2, 2, 0));
        // Other column order, `a` missing, `b` all null, a new column `c`.
        let second = batch(vec![
            ("c", Arc::new(StringArray::from(vec!["p", "q"]))),
            ("b", Arc::new(NullArray::new(2))),
            ("id", ids(&[4, 3])),
        ]);
        // `a` now a float: the column widens to DOUBLE, ints stored before kept.
        let third = batch(vec![
            ("id", ids(&[5])),
            ("a", Arc::new(Float64Array::from(vec![2.5]))),
        ]);
        let stats = loader.commit(vec![second, third], &state).unwrap();
        assert_eq!((stats.rows, stats.written, stats.updated), (3, 3, 0));
        assert_eq!(
            table(&wh),
            vec![
                (1, Some(10.0), Some("x".into()), None),
                (2, Some(20.0), Some("y".into()), None),
                (3, None, None, Some("q".into())),
                (4, None, None, Some("p".into())),
                (5, Some(2.5), None, None),
            ]
        );
        let a_type: String = wh
            .connection()
            .unwrap()
            .query_row(
                "SELECT data_type FROM duckdb_columns() WHERE table_name = 't' AND column_name = 'a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(a_type, "DOUBLE");
    }

    #[test]
    fn sliced_batches_append_their_own_rows() {
        // The sink cuts a page in two at a row-group line: each commit gets
        // a slice (an offset into shared buffers), nulls and strings included.
        let (_dir, wh, mut loader) = open_loader();
        let state = serde_json::json!({});
        let page = batch(vec![
            ("id", ids(&[1, 2, 3, 4, 5])),
            (
                "a",
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(3.5),
                    None,
                    Some(5.5),
                ])),
            ),
            (
                "b",
                Arc::new(StringArray::from(vec![
                    Some("one"),
                    Some("two"),
                    None,
                    Some("four"),
                    None,
                ])),
            ),
            ("c", Arc::new(StringArray::from(vec![None::<&str>; 5]))),
        ]);
        loader.commit(vec![page.slice(0, 2)], &state).unwrap();
        loader.commit(vec![page.slice(2, 3)], &state).unwrap();
        assert_eq!(
            table(&wh),
            vec![
                (1, Some(1.5), Some("one".into()), None),
                (2, None, Some("two".into()), None),
                (3, Some(3.5), None, None),
                (4, None, Some("four".into()), None),
                (5, Some(5.5), None, None),
            ]
        );
    }

    #[test]
    fn a_group_with_one_stored_or_repeated_key_is_merged_not_appended() {
        let (_dir, wh, mut loader) = open_loader();
        let state = serde_json::json!({});
        let row = |id: &[i64], b: &[&str]| {
            batch(vec![
                ("id", ids(id)),
                ("a", ids(&vec![0; id.len()])),
                ("b", Arc::new(StringArray::from(b.to_vec()))),
                (
                    "c",
                    Arc::new(StringArray::from(vec![None::<&str>; id.len()])),
                ),
            ])
        };
        loader
            .commit(vec![row(&[1, 2], &["old", "old"])], &state)
            .unwrap();
        // Key 2 is stored: the group merges (2 replaced, 3 new).
        let stats = loader
            .commit(vec![row(&[3, 2], &["new", "new"])], &state)
            .unwrap();
        assert_eq!((stats.written, stats.updated), (2, 1));
        // Key 4 repeats within the group: the last one wins.
        let stats = loader
            .commit(
                vec![row(&[4], &["first"]), row(&[4, 5], &["last", "new"])],
                &state,
            )
            .unwrap();
        assert_eq!((stats.rows, stats.written, stats.updated), (3, 2, 0));
        let b: Vec<(i64, Option<String>)> = table(&wh).into_iter().map(|r| (r.0, r.2)).collect();
        assert_eq!(
            b,
            vec![
                (1, Some("old".into())),
                (2, Some("new".into())),
                (3, Some("new".into())),
                (4, Some("last".into())),
                (5, Some("new".into())),
            ]
        );
    }
}
