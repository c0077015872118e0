//! One commit: manifests → manifest list → snapshot → metadata file → catalog pointer swap.
//!
//! Built only on the `iceberg` crate's public writers (see `shared/notes/iceberg-commits.md`).
//! A [`Change`] says what to add (data files, position-delete files), what to remove (live
//! files, by path) and optionally a new current schema and table properties. Manifests of the
//! parent snapshot that hold none of the removed files are carried over unchanged; the others
//! are rewritten with the removed entries marked DELETED and the rest EXISTING. So one snapshot
//! can be a fast append, a merge-on-read row delta (new rows plus position deletes of the old
//! ones) or a copy-on-write overwrite (files replaced). The snapshot summary gets the crate's
//! `added-*`/`removed-*` metrics, our own `total-*` running totals (the crate computes those in
//! a private function) and the `medallion.` properties.

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::MetadataLocation;
use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestEntryRef, ManifestFile,
    ManifestListWriter, ManifestStatus, ManifestWriter, ManifestWriterBuilder, Operation,
    PartitionSpecRef, Schema, SchemaRef, Snapshot, SnapshotSummaryCollector, Summary,
    TableMetadataBuilder, UnboundPartitionSpec,
};
use std::str::FromStr;

use super::{Lake, LakeError, LakeTable, Result, SUMMARY_PREFIX};
use crate::catalog::TableName;

/// What one snapshot changes in a table.
#[derive(Debug, Clone)]
pub struct Change {
    pub operation: Operation,
    pub added_data_files: Vec<DataFile>,
    /// Position-delete files (format v2) to add.
    pub added_delete_files: Vec<DataFile>,
    /// Paths of live data or delete files to remove. Every one must still be live in the table
    /// as loaded, or the commit fails as stale (and the caller re-plans).
    pub removed_files: HashSet<String>,
    /// A new current schema (columns added or widened), with ids the table has not used.
    pub schema: Option<Schema>,
    /// A new default partition spec (its source ids name columns of the new schema, or of the
    /// current one). Files added by the change must be written with [`planned_spec`]'s result.
    pub partition_spec: Option<UnboundPartitionSpec>,
    /// Table properties to set.
    pub properties: HashMap<String, String>,
    /// Snapshot summary properties to set (our `medallion.` keys); other `medallion.` keys are
    /// carried over from the parent snapshot.
    pub summary: BTreeMap<String, String>,
    /// The data sequence number of the added data files, when not the new snapshot's: a
    /// compaction gives its files the newest of the files they replace, so readers that track
    /// sequence numbers (silver reading bronze) see nothing new, and delete files added since
    /// still apply (as Java's `RewriteFiles.dataSequenceNumber`).
    pub data_sequence_number: Option<i64>,
    /// Rewrite every manifest of the parent into one per content and partition spec (live
    /// entries as EXISTING), instead of carrying them over one by one.
    pub merge_manifests: bool,
}

impl Change {
    /// A fast append of new data files.
    pub fn append(added_data_files: Vec<DataFile>, summary: BTreeMap<String, String>) -> Self {
        Change {
            operation: Operation::Append,
            added_data_files,
            added_delete_files: Vec::new(),
            removed_files: HashSet::new(),
            schema: None,
            partition_spec: None,
            properties: HashMap::new(),
            summary,
            data_sequence_number: None,
            merge_manifests: false,
        }
    }

    /// Any mix of added data files, added delete files and removed files. The operation is
    /// derived as Java derives it: `append` if only data is added, `delete` if only deletes,
    /// `overwrite` otherwise.
    pub fn rewrite(
        added_data_files: Vec<DataFile>,
        added_delete_files: Vec<DataFile>,
        removed_files: HashSet<String>,
        summary: BTreeMap<String, String>,
    ) -> Self {
        let operation = match (
            added_data_files.is_empty(),
            added_delete_files.is_empty(),
            removed_files.is_empty(),
        ) {
            (_, true, true) => Operation::Append,
            (true, false, true) => Operation::Delete,
            _ => Operation::Overwrite,
        };
        Change {
            operation,
            added_data_files,
            added_delete_files,
            removed_files,
            schema: None,
            partition_spec: None,
            properties: HashMap::new(),
            summary,
            data_sequence_number: None,
            merge_manifests: false,
        }
    }

    pub fn with_schema(mut self, schema: Option<Schema>) -> Self {
        self.schema = schema;
        self
    }

    pub fn with_partition_spec(mut self, spec: Option<UnboundPartitionSpec>) -> Self {
        self.partition_spec = spec;
        self
    }

    pub fn with_properties(mut self, properties: HashMap<String, String>) -> Self {
        self.properties = properties;
        self
    }

    /// A rewrite of existing rows (compaction): the operation is `replace`, the added data
    /// files keep `data_sequence_number`, and the manifests are merged.
    pub fn replace(mut self, data_sequence_number: i64) -> Self {
        self.operation = Operation::Replace;
        self.data_sequence_number = Some(data_sequence_number);
        self.merge_manifests = true;
        self
    }
}

const TOTALS: [(&str, &str, &str); 4] = [
    ("total-data-files", "added-data-files", "deleted-data-files"),
    ("total-records", "added-records", "deleted-records"),
    ("total-files-size", "added-files-size", "removed-files-size"),
    (
        "total-delete-files",
        "added-delete-files",
        "removed-delete-files",
    ),
];
const MORE_TOTALS: [(&str, &str, &str); 2] = [
    (
        "total-position-deletes",
        "added-position-deletes",
        "removed-position-deletes",
    ),
    (
        "total-equality-deletes",
        "added-equality-deletes",
        "removed-equality-deletes",
    ),
];

/// When set in the environment, a commit aborts the process right before moving the catalog
/// pointer: a crash that leaves every file of the commit behind (for crash-recovery tests).
pub const CRASH_BEFORE_SWAP: &str = "MEDALLION_CRASH_BEFORE_SWAP";

/// Commits `change` on top of `table` as loaded. Fails with a catalog conflict if another writer
/// committed since `table` was loaded; the files written for this attempt are then unreferenced
/// (orphan cleanup removes them).
pub(crate) async fn commit(lake: &Lake, table: &LakeTable, change: Change) -> Result<LakeTable> {
    let name = &table.name;
    let md = table.metadata();
    if md.format_version() != FormatVersion::V2 {
        return Err(LakeError::Invalid {
            table: name.to_string(),
            message: format!(
                "format {:?} is not supported; medallion writes format v2",
                md.format_version()
            ),
        });
    }
    let file_io = lake.file_io();
    let location = md.location().trim_end_matches('/').to_string();
    let commit_id = uuid::Uuid::new_v4();
    let snapshot_id = new_snapshot_id(md);
    let parent = md.current_snapshot();
    let sequence_number = md.next_sequence_number();
    let schema = match &change.schema {
        Some(s) => std::sync::Arc::new(with_schema_id(md, s.clone())?),
        None => md.current_schema().clone(),
    };
    let spec = match &change.partition_spec {
        Some(unbound) => planned_spec(table, change.schema.as_ref(), unbound)?,
        None => md.default_partition_spec().clone(),
    };
    // Manifests carried over keep the spec and schema their files were written with.
    let old_schema = md.current_schema().clone();
    let spec_of = |m: &ManifestFile| -> Result<PartitionSpecRef> {
        md.partition_spec_by_id(m.partition_spec_id)
            .cloned()
            .ok_or_else(|| LakeError::Invalid {
                table: name.to_string(),
                message: format!(
                    "{} names partition spec {}, which the metadata does not have",
                    m.manifest_path, m.partition_spec_id
                ),
            })
    };

    let mut manifests: Vec<ManifestFile> = Vec::new();
    if let Some(parent) = parent {
        let list = table
            .table
            .manifest_list_reader(parent)
            .load()
            .await
            .map_err(LakeError::iceberg(name, "read the parent manifest list"))?;
        manifests.extend(list.consume_entries());
    }

    // A manifest of this snapshot at `path`, for data or delete files.
    let new_manifest = |path: &str,
                        content: ManifestContentType,
                        schema: &SchemaRef,
                        spec: &PartitionSpecRef|
     -> Result<ManifestWriter> {
        let output = file_io
            .new_output(path)
            .map_err(LakeError::iceberg(name, format!("create {path}")))?;
        let builder = ManifestWriterBuilder::new(
            output,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        );
        Ok(match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        })
    };

    let mut collector = SnapshotSummaryCollector::default();
    if change.removed_files.is_empty() && !change.merge_manifests {
        // A manifest whose files were all removed before the parent is of no use to anyone.
        manifests.retain(|m| m.has_added_files() || m.has_existing_files());
    } else {
        let mut found = HashSet::new();
        let mut kept = Vec::with_capacity(manifests.len());
        // With `merge_manifests`: the entries of every manifest, per content and spec.
        let mut merged: BTreeMap<(bool, i32), Vec<(ManifestEntryRef, bool)>> = BTreeMap::new();
        for (i, manifest) in manifests.into_iter().enumerate() {
            if !manifest.has_added_files() && !manifest.has_existing_files() {
                continue;
            }
            let loaded = manifest
                .load_manifest(file_io)
                .await
                .map_err(LakeError::iceberg(
                    name,
                    format!("read {}", manifest.manifest_path),
                ))?;
            let hit = loaded
                .entries()
                .iter()
                .any(|e| e.is_alive() && change.removed_files.contains(e.file_path()));
            if !hit && !change.merge_manifests {
                kept.push(manifest);
                continue;
            }
            let its_spec = spec_of(&manifest)?;
            let entries: Vec<(ManifestEntryRef, bool)> = loaded
                .entries()
                .iter()
                .filter(|e| e.status() != ManifestStatus::Deleted)
                .map(|e| {
                    let removed = change.removed_files.contains(e.file_path());
                    if removed {
                        found.insert(e.file_path().to_string());
                        collector.remove_file(e.data_file(), old_schema.clone(), its_spec.clone());
                    }
                    (e.clone(), removed)
                })
                .collect();
            if change.merge_manifests {
                merged
                    .entry((
                        manifest.content == ManifestContentType::Deletes,
                        manifest.partition_spec_id,
                    ))
                    .or_default()
                    .extend(entries);
                continue;
            }
            let path = format!("{location}/metadata/{commit_id}-r{i}.avro");
            let writer = new_manifest(&path, manifest.content, &old_schema, &its_spec)?;
            kept.push(write_entries(name, &path, writer, &entries, snapshot_id).await?);
        }
        for (n, ((deletes, spec_id), entries)) in merged.into_iter().enumerate() {
            let path = format!("{location}/metadata/{commit_id}-g{n}.avro");
            let its_spec =
                md.partition_spec_by_id(spec_id)
                    .cloned()
                    .ok_or_else(|| LakeError::Invalid {
                        table: name.to_string(),
                        message: format!("no partition spec {spec_id} in the metadata"),
                    })?;
            let content = if deletes {
                ManifestContentType::Deletes
            } else {
                ManifestContentType::Data
            };
            let writer = new_manifest(&path, content, &old_schema, &its_spec)?;
            kept.push(write_entries(name, &path, writer, &entries, snapshot_id).await?);
        }
        if let Some(missing) = change.removed_files.iter().find(|p| !found.contains(*p)) {
            return Err(LakeError::Stale {
                table: name.to_string(),
                message: format!("{missing} is no longer live; another writer changed the table"),
            });
        }
        manifests = kept;
    }

    for (files, deletes) in [
        (&change.added_delete_files, true),
        (&change.added_data_files, false),
    ] {
        if files.is_empty() {
            continue;
        }
        let path = format!(
            "{location}/metadata/{commit_id}-{}.avro",
            if deletes { "d0" } else { "m0" }
        );
        let mut writer = new_manifest(
            &path,
            if deletes {
                ManifestContentType::Deletes
            } else {
                ManifestContentType::Data
            },
            &schema,
            &spec,
        )?;
        for f in files {
            let is_delete = f.content_type() != DataContentType::Data;
            if is_delete != deletes {
                return Err(LakeError::Invalid {
                    table: name.to_string(),
                    message: format!(
                        "{} has content {:?} but was given as a {} file",
                        f.file_path(),
                        f.content_type(),
                        if deletes { "delete" } else { "data" }
                    ),
                });
            }
            collector.add_file(f, schema.clone(), spec.clone());
            let data_sequence_number = match change.data_sequence_number {
                Some(n) if !deletes => n,
                _ => sequence_number,
            };
            writer
                .add_file(f.clone(), data_sequence_number)
                .map_err(LakeError::iceberg(name, "add a file to the manifest"))?;
        }
        let manifest = writer
            .write_manifest_file()
            .await
            .map_err(LakeError::iceberg(name, format!("write {path}")))?;
        // New manifests first, as Java does: readers plan recent data first.
        manifests.insert(0, manifest);
    }

    let list_path = format!("{location}/metadata/snap-{snapshot_id}-0-{commit_id}.avro");
    let list_out = file_io
        .new_output(&list_path)
        .map_err(LakeError::iceberg(name, format!("create {list_path}")))?
        .writer()
        .await
        .map_err(LakeError::iceberg(name, format!("create {list_path}")))?;
    let mut list = ManifestListWriter::v2(
        list_out,
        snapshot_id,
        parent.map(|p| p.snapshot_id()),
        sequence_number,
    );
    list.add_manifests(manifests.into_iter())
        .map_err(LakeError::iceberg(name, "write the manifest list"))?;
    list.close()
        .await
        .map_err(LakeError::iceberg(name, format!("write {list_path}")))?;

    let summary = build_summary(
        change.operation,
        collector.build(),
        parent.map(|p| p.summary()),
        change.summary,
    );
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.map(|p| p.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(
            chrono::Utc::now()
                .timestamp_millis()
                .max(md.last_updated_ms() + 1),
        )
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(schema.schema_id())
        .build();

    let mut builder = md
        .clone()
        .into_builder(Some(table.pointer.metadata_location.clone()));
    if change.schema.is_some() {
        builder = builder
            .add_current_schema(schema.as_ref().clone())
            .map_err(LakeError::iceberg(name, "add the new schema"))?;
    }
    if let Some(unbound) = change.partition_spec {
        builder = builder
            .add_default_partition_spec(unbound)
            .map_err(LakeError::iceberg(name, "add the new partition spec"))?;
    }
    if !change.properties.is_empty() {
        builder = builder
            .set_properties(change.properties)
            .map_err(LakeError::iceberg(name, "set table properties"))?;
    }
    let builder = builder
        .set_branch_snapshot(snapshot, "main")
        .map_err(LakeError::iceberg(name, "add the new snapshot"))?;
    publish(lake, table, builder).await
}

/// Commits a change of the table's metadata alone (no new snapshot), e.g. expired snapshots.
/// Fails with a catalog conflict if another writer committed since `table` was loaded.
pub(crate) async fn commit_metadata(
    lake: &Lake,
    table: &LakeTable,
    change: impl FnOnce(TableMetadataBuilder) -> iceberg::Result<TableMetadataBuilder>,
) -> Result<LakeTable> {
    let builder = table
        .metadata()
        .clone()
        .into_builder(Some(table.pointer.metadata_location.clone()));
    let builder =
        change(builder).map_err(LakeError::iceberg(&table.name, "change the metadata"))?;
    publish(lake, table, builder).await
}

/// Writes the next metadata file and moves the catalog pointer to it.
async fn publish(
    lake: &Lake,
    table: &LakeTable,
    builder: TableMetadataBuilder,
) -> Result<LakeTable> {
    let name = &table.name;
    let new_md = builder
        .build()
        .map_err(LakeError::iceberg(name, "build the new metadata"))?
        .metadata;
    let new_loc = MetadataLocation::from_str(&table.pointer.metadata_location)
        .map_err(LakeError::iceberg(name, "parse the metadata location"))?
        .with_next_version()
        .with_new_metadata(&new_md);
    let new_location = new_loc.to_string();
    new_md
        .write_to(lake.file_io(), &new_loc)
        .await
        .map_err(LakeError::iceberg(name, format!("write {new_location}")))?;
    if std::env::var_os(CRASH_BEFORE_SWAP).is_some() {
        // Tests of crash recovery: die as a killed process would, every file of the commit
        // written and the table not moved.
        tracing::error!(table = %name, "{CRASH_BEFORE_SWAP} is set: aborting before the catalog swap");
        std::process::abort();
    }
    lake.catalog()
        .swap(name, &table.pointer, &new_location, &new_md)
        .await?;

    lake.table_at(
        name,
        crate::catalog::Pointer {
            metadata_location: new_location,
            version: None,
        },
        new_md,
    )
}

/// Writes carried entries into a manifest of the new snapshot: the removed ones (`true`) as
/// DELETED, the others as EXISTING, each keeping its snapshot id and sequence numbers.
async fn write_entries(
    name: &TableName,
    path: &str,
    mut writer: ManifestWriter,
    entries: &[(ManifestEntryRef, bool)],
    snapshot_id: i64,
) -> Result<ManifestFile> {
    let ice = |what: &str| LakeError::iceberg(name, format!("{what} in {path}"));
    for (e, removed) in entries {
        let seq = e.sequence_number().unwrap_or(0);
        let file_seq = e.file_sequence_number.or(Some(seq));
        if *removed {
            writer
                .add_delete_file(e.data_file().clone(), seq, file_seq)
                .map_err(ice("mark a removed file"))?;
        } else {
            writer
                .add_existing_file(
                    e.data_file().clone(),
                    e.snapshot_id().unwrap_or(snapshot_id),
                    seq,
                    file_seq,
                )
                .map_err(ice("carry a file"))?;
        }
    }
    writer
        .write_manifest_file()
        .await
        .map_err(LakeError::iceberg(name, format!("write {path}")))
}

/// The partition spec, with its id and field ids, that a commit making `unbound` the default
/// (after `schema`, if given, becomes current) gives the table: the files it adds must be
/// written with it.
pub fn planned_spec(
    table: &LakeTable,
    schema: Option<&Schema>,
    unbound: &UnboundPartitionSpec,
) -> Result<PartitionSpecRef> {
    let name = table.name.to_string();
    let md = table.metadata();
    let mut builder = md.clone().into_builder(None);
    if let Some(s) = schema {
        builder = builder
            .add_current_schema(with_schema_id(md, s.clone())?)
            .map_err(LakeError::iceberg(&name, "add the new schema"))?;
    }
    let planned = builder
        .add_default_partition_spec(unbound.clone())
        .and_then(|b| b.build())
        .map_err(LakeError::iceberg(&name, "plan the partition spec"))?;
    Ok(planned.metadata.default_partition_spec().clone())
}

/// The schema with the id the metadata builder will give it: an equal schema's id, else the
/// next free one.
fn with_schema_id(md: &iceberg::spec::TableMetadata, schema: Schema) -> Result<Schema> {
    let id = match md
        .schemas_iter()
        .find(|s| s.as_struct() == schema.as_struct())
    {
        Some(same) => same.schema_id(),
        None => md.schemas_iter().map(|s| s.schema_id()).max().unwrap_or(-1) + 1,
    };
    schema
        .into_builder()
        .with_schema_id(id)
        .build()
        .map_err(|e| LakeError::Invalid {
            table: String::new(),
            message: format!("the new schema is invalid: {e}"),
        })
}

fn new_snapshot_id(md: &iceberg::spec::TableMetadata) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && md.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// The summary of a new snapshot: the collector's `added-*` metrics, running totals from the
/// parent, the parent's `medallion.` properties, then the change's own properties.
fn build_summary(
    operation: Operation,
    added: HashMap<String, String>,
    parent: Option<&Summary>,
    ours: BTreeMap<String, String>,
) -> Summary {
    let mut props: HashMap<String, String> = HashMap::new();
    if let Some(p) = parent {
        for (k, v) in &p.additional_properties {
            if k.starts_with(SUMMARY_PREFIX) {
                props.insert(k.clone(), v.clone());
            }
        }
    }
    props.extend(ours);
    props.extend(added);
    let get = |s: Option<&Summary>, k: &str| -> u64 {
        s.and_then(|s| s.additional_properties.get(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    for (total, add, remove) in TOTALS.iter().chain(MORE_TOTALS.iter()) {
        let prev = get(parent, total);
        let plus: u64 = props.get(*add).and_then(|v| v.parse().ok()).unwrap_or(0);
        let minus: u64 = props.get(*remove).and_then(|v| v.parse().ok()).unwrap_or(0);
        props.insert(
            total.to_string(),
            (prev + plus).saturating_sub(minus).to_string(),
        );
    }
    Summary {
        operation,
        additional_properties: props,
    }
}
