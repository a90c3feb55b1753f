//! One Iceberg commit of a whole table: the new Parquet files become the
//! table's only live files in a new `overwrite` snapshot (copy-on-write of
//! every file — the simple, always-correct form; rewriting only the files a
//! merge touched is the next step), with the files it replaces recorded as
//! deleted, and a new metadata file the catalog is then swapped to.

use std::collections::HashMap;

use anyhow::{Context, Result};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFileBuilder, DataFileFormat, FormatVersion, ManifestContentType,
    ManifestFile, ManifestList, ManifestListWriter, ManifestWriterBuilder, NestedField, Operation,
    Schema, Snapshot, SortOrder, Struct, Summary, TableMetadata, TableMetadataBuilder,
    UnboundPartitionSpec,
};
use iceberg::MetadataLocation;

use super::export::{iceberg_type, Column, RunStamp, Written};

/// Summary keys of Conveyor's own: which run the snapshot holds.
pub const RUN_ID: &str = "conveyor.run-id";
pub const RUN_FINISHED_US: &str = "conveyor.run-finished-us";
/// The run's source lease token, in a cluster ([`RunStamp::lease_token`]).
pub const LEASE_TOKEN: &str = "conveyor.lease-token";
/// The table's content fingerprint (`export::content`).
pub const CONTENT: &str = "conveyor.content";

/// The field id of each column: the current schema's for a name it has
/// with the same type, a new one past the highest otherwise (a type change
/// Iceberg cannot widen becomes a new column under the old name).
pub fn field_ids(columns: &[Column], current: Option<&TableMetadata>) -> HashMap<String, i32> {
    let Some(meta) = current else {
        // A new table numbers its fields from 1 in order (as the metadata
        // builder does for a table it creates).
        return columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i as i32 + 1))
            .collect();
    };
    let schema = meta.current_schema();
    let mut next = meta.last_column_id() + 1;
    columns
        .iter()
        .map(|c| {
            let same = schema
                .field_by_name(&c.name)
                .filter(|f| *f.field_type == iceberg_type(c));
            let id = match same {
                Some(f) => f.id,
                None => {
                    next += 1;
                    next - 1
                }
            };
            (c.name.clone(), id)
        })
        .collect()
}

fn schema_of(columns: &[Column], ids: &HashMap<String, i32>) -> Result<Schema> {
    let fields = columns
        .iter()
        .map(|c| NestedField::optional(ids[&c.name], &c.name, iceberg_type(c)).into());
    Ok(Schema::builder().with_fields(fields).build()?)
}

/// What one commit wrote.
pub struct Commit {
    pub location: MetadataLocation,
    pub deleted_files: u64,
}

/// Builds the new metadata (writing manifests and the manifest list on the
/// way) and writes its file; the caller swaps the catalog to it.
#[allow(clippy::too_many_arguments)]
pub async fn commit(
    io: &FileIO,
    table_location: &str,
    current: Option<(&TableMetadata, &str)>,
    columns: &[Column],
    ids: &HashMap<String, i32>,
    files: &[Written],
    stamp: RunStamp,
    content: &str,
    properties: HashMap<String, String>,
) -> Result<Commit> {
    let schema = schema_of(columns, ids)?;
    let base = match current {
        None => {
            TableMetadataBuilder::new(
                schema,
                UnboundPartitionSpec::builder().build(),
                SortOrder::unsorted_order(),
                table_location.to_string(),
                FormatVersion::V2,
                properties,
            )?
            .build()?
            .metadata
        }
        Some((meta, location)) => {
            TableMetadataBuilder::new_from_metadata(meta.clone(), Some(location.to_string()))
                .add_current_schema(schema)?
                .build()?
                .metadata
        }
    };
    // The builder numbers a new table's fields itself; the Parquet files
    // were written with ours, so they must agree.
    for (name, id) in ids {
        let field = base.current_schema().field_by_name(name);
        anyhow::ensure!(
            field.is_some_and(|f| f.id == *id),
            "the Iceberg schema numbered column {name} differently from its Parquet files"
        );
    }
    let snapshot_id = loop {
        let id = (rand::random::<u64>() >> 1) as i64;
        if id != 0 && base.snapshot_by_id(id).is_none() {
            break id;
        }
    };
    let sequence = base.next_sequence_number();
    let commit_id = uuid::Uuid::new_v4();
    let manifest_path = |n: usize| format!("{table_location}/metadata/{commit_id}-m{n}.avro");

    let mut manifests: Vec<ManifestFile> = Vec::new();
    let mut added = ManifestWriterBuilder::new(
        io.new_output(manifest_path(0))?,
        Some(snapshot_id),
        base.current_schema().clone(),
        base.default_partition_spec().as_ref().clone(),
    )
    .build_v2_data();
    for f in files {
        let data_file = DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(f.path.display().to_string())
            .file_format(DataFileFormat::Parquet)
            .partition(Struct::empty())
            .record_count(f.rows)
            .file_size_in_bytes(f.bytes)
            .build()
            .context("cannot describe a written data file")?;
        added.add_file(data_file, sequence)?;
    }
    if !files.is_empty() {
        manifests.push(added.write_manifest_file().await?);
    }
    let (deleted_files, deleted_records) = match base.current_snapshot() {
        None => (0, 0),
        Some(previous) => {
            let bytes = io.new_input(previous.manifest_list())?.read().await?;
            let list = ManifestList::parse_with_version(&bytes, base.format_version())?;
            let mut gone = ManifestWriterBuilder::new(
                io.new_output(manifest_path(1))?,
                Some(snapshot_id),
                base.current_schema().clone(),
                base.default_partition_spec().as_ref().clone(),
            )
            .build_v2_data();
            let (mut n, mut records) = (0u64, 0u64);
            for manifest in list.entries() {
                if manifest.content != ManifestContentType::Data {
                    continue;
                }
                for entry in manifest.load_manifest(io).await?.entries() {
                    if entry.is_alive() {
                        n += 1;
                        records += entry.data_file().record_count();
                        gone.add_delete_file(
                            entry.data_file().clone(),
                            entry.sequence_number().unwrap_or(0),
                            entry.file_sequence_number,
                        )?;
                    }
                }
            }
            if n > 0 {
                manifests.push(gone.write_manifest_file().await?);
            }
            (n, records)
        }
    };

    let list_path = format!("{table_location}/metadata/snap-{snapshot_id}-0-{commit_id}.avro");
    let mut list = ManifestListWriter::v2(
        io.new_output(&list_path)?.writer().await?,
        snapshot_id,
        base.current_snapshot_id(),
        sequence,
    );
    list.add_manifests(manifests.into_iter())?;
    list.close().await?;

    let added_records: u64 = files.iter().map(|f| f.rows).sum();
    let mut properties = HashMap::from([
        ("added-data-files".into(), files.len().to_string()),
        ("added-records".into(), added_records.to_string()),
        ("deleted-data-files".into(), deleted_files.to_string()),
        ("deleted-records".into(), deleted_records.to_string()),
        ("total-data-files".into(), files.len().to_string()),
        ("total-records".into(), added_records.to_string()),
        (RUN_ID.into(), stamp.run_id.to_string()),
        (RUN_FINISHED_US.into(), stamp.finished_us.to_string()),
        (CONTENT.into(), content.to_string()),
    ]);
    if let Some(token) = stamp.lease_token {
        properties.insert(LEASE_TOKEN.into(), token.to_string());
    }
    let summary = Summary {
        operation: Operation::Overwrite,
        additional_properties: properties,
    };
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(base.current_snapshot_id())
        .with_sequence_number(sequence)
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(base.current_schema_id())
        .build();
    let metadata = TableMetadataBuilder::new_from_metadata(base, None)
        .set_branch_snapshot(snapshot, "main")?
        .build()?
        .metadata;
    let location = match current {
        None => MetadataLocation::new_with_metadata(table_location, &metadata),
        Some((_, loc)) => loc.parse::<MetadataLocation>()?.with_next_version(),
    };
    metadata.write_to(io, &location).await?;
    Ok(Commit {
        location,
        deleted_files,
    })
}

/// The run the table's current snapshot holds and its content
/// fingerprint, if Conveyor published it.
pub fn published_run(meta: &TableMetadata) -> Option<(RunStamp, String)> {
    let props = &meta.current_snapshot()?.summary().additional_properties;
    Some((
        RunStamp {
            run_id: props.get(RUN_ID)?.parse().ok()?,
            finished_us: props.get(RUN_FINISHED_US)?.parse().ok()?,
            lease_token: props.get(LEASE_TOKEN).and_then(|t| t.parse().ok()),
        },
        props.get(CONTENT).cloned().unwrap_or_default(),
    ))
}
