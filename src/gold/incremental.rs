//! Incremental models: which unique keys changed since the last run, and replacing only their
//! rows.
//!
//! Every gold commit records, per table the model read, the snapshot it read
//! (`medallion.read.<layer>.<table>`). The next run compares each with the table's snapshot
//! now. A row changed if it is in a data file added since (its new image) or was live then and
//! is not now: in a data file removed since, or at a position a delete file added since names
//! (its old image). Each `changed_keys` query runs over those rows and gives the unique keys
//! they touch. The model's SELECT then runs for those keys only, and the table's rows with
//! those keys are replaced (copy-on-write: a data file holding one is rewritten without it), in
//! one commit. A key whose rows all went away (every order of a day deleted) disappears too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use iceberg::spec::DataContentType;

use super::model::{Layer, Model, Ref};
use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Lake, LakeError, LakeTable, live_files, live_files_at, read_file};
use crate::query::QueryError;

/// The snapshot-summary key recording which snapshot of `source` a build read.
pub fn read_key(source: &Ref) -> String {
    format!("{READ_PREFIX}{source}")
}

const READ_PREFIX: &str = "medallion.read.";

/// The table a [`read_key`] names, if `key` is one.
pub fn parse_read_key(key: &str) -> Option<Ref> {
    let (layer, table) = key.strip_prefix(READ_PREFIX)?.split_once('.')?;
    Some(Ref {
        layer: Layer::parse(layer)?,
        table: table.to_string(),
    })
}

/// The snapshot-summary key recording the model file's fingerprint.
pub const MODEL_HASH: &str = "medallion.model.hash";

/// The summary keys of a build: what it read, and the model it ran.
pub fn summary(
    model: &Model,
    config: &Config,
    pinned: &HashMap<TableName, LakeTable>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(MODEL_HASH.to_string(), fingerprint(&model.sql))]);
    for source in &model.sources {
        let snapshot = pinned
            .get(&source_name(config, source))
            .and_then(|t| t.current_snapshot())
            .map_or("none".to_string(), |s| s.snapshot_id().to_string());
        out.insert(read_key(source), snapshot);
    }
    out
}

/// FNV-1a: a fingerprint that stays the same across builds and versions.
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

pub fn source_name(config: &Config, source: &Ref) -> TableName {
    TableName::new(config.namespaces.of(source.layer), source.table.clone())
}

/// How this run builds an incremental model.
#[derive(Debug)]
pub enum Plan {
    /// Everything, for this reason.
    Full(String),
    /// Nothing read changed since the last run.
    UpToDate,
    /// Only these sources changed: source → the snapshot the last run read.
    Changed(Vec<(Ref, i64)>),
}

/// Compares what the last build read with what the session reads now.
pub fn plan(
    model: &Model,
    config: &Config,
    table: Option<&LakeTable>,
    pinned: &HashMap<TableName, LakeTable>,
) -> Plan {
    let Some(last) = table.and_then(|t| t.current_snapshot()) else {
        return Plan::Full("first build".into());
    };
    let props = &last.summary().additional_properties;
    // The file holds the SELECT, the keys and the partitioning.
    if props.get(MODEL_HASH) != Some(&fingerprint(&model.sql)) {
        return Plan::Full("the model file changed since the last build".into());
    }
    let mut changed = Vec::new();
    for source in &model.sources {
        let now = pinned
            .get(&source_name(config, source))
            .and_then(|t| t.current_snapshot().map(|s| (t, s.snapshot_id())));
        let Some((now_table, now_id)) = now else {
            return Plan::Full(format!("{source} has no snapshot"));
        };
        let Some(then) = props
            .get(&read_key(source))
            .and_then(|v| v.parse::<i64>().ok())
        else {
            return Plan::Full(format!("the last build did not record what {source} was"));
        };
        if then == now_id {
            continue;
        }
        if now_table.metadata().snapshot_by_id(then).is_none() {
            return Plan::Full(format!(
                "snapshot {then} of {source}, which the last build read, is gone (expired or the table was recreated)"
            ));
        }
        changed.push((source.clone(), then));
    }
    if changed.is_empty() {
        Plan::UpToDate
    } else {
        Plan::Changed(changed)
    }
}

/// The rows of `table` that changed since snapshot `since`: new images (in data files added
/// since) and old images (live then, not now), in the table's current columns (the schema).
pub async fn changed_rows(
    lake: &Lake,
    table: &LakeTable,
    since: i64,
) -> Result<(SchemaRef, Vec<RecordBatch>), LakeError> {
    let label = table.name.to_string();
    let md = table.metadata();
    let then = md
        .snapshot_by_id(since)
        .ok_or_else(|| LakeError::Invalid {
            table: label.clone(),
            message: format!("snapshot {since} is gone"),
        })?
        .clone();
    let schema: SchemaRef = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(md.current_schema())
            .map_err(LakeError::iceberg(&label, "convert the schema"))?,
    );
    let then_seq = then.sequence_number();
    let now = live_files(table, i64::MIN).await?;
    let now_paths: HashSet<&str> = now.iter().map(|f| f.path.as_str()).collect();
    let before = live_files_at(table, &then, i64::MIN).await?;
    let before_data: HashSet<&str> = before
        .iter()
        .filter(|f| f.content == DataContentType::Data)
        .map(|f| f.path.as_str())
        .collect();

    // Positions of old rows that delete files added since name.
    let mut deleted: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for f in now
        .iter()
        .filter(|f| f.content == DataContentType::PositionDeletes && f.sequence_number > then_seq)
    {
        for b in read_file(lake, &label, &f.path, None).await? {
            let (Some(paths), Some(positions)) =
                (b.column_by_name("file_path"), b.column_by_name("pos"))
            else {
                return Err(LakeError::Invalid {
                    table: label.clone(),
                    message: format!("{} is not a position-delete file", f.path),
                });
            };
            let paths = arrow::compute::cast(paths, &arrow::datatypes::DataType::Utf8)
                .map_err(|e| invalid(&label, e))?;
            let paths = arrow::array::AsArray::as_string::<i32>(&paths);
            let positions = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(
                positions.as_ref(),
            );
            for i in 0..b.num_rows() {
                if before_data.contains(paths.value(i)) {
                    deleted
                        .entry(paths.value(i).to_string())
                        .or_default()
                        .push(positions.value(i));
                }
            }
        }
    }
    if now
        .iter()
        .any(|f| f.content == DataContentType::EqualityDeletes && f.sequence_number > then_seq)
    {
        return Err(LakeError::Invalid {
            table: label,
            message: "has equality deletes, which an incremental model cannot follow; use `materialized: table`".into(),
        });
    }

    let mut out = Vec::new();
    let mut push = |batches: Vec<RecordBatch>| -> Result<(), LakeError> {
        for b in batches {
            out.push(crate::lake::conform(&b, &schema).map_err(|e| invalid(&label, e))?);
        }
        Ok(())
    };
    // New images.
    for f in now
        .iter()
        .filter(|f| f.content == DataContentType::Data && f.sequence_number > then_seq)
    {
        push(read_file(lake, &label, &f.path, None).await?)?;
    }
    // Old images.
    for path in &before_data {
        if !now_paths.contains(path) {
            push(read_file(lake, &label, path, None).await?)?;
        } else if let Some(positions) = deleted.get_mut(*path) {
            positions.sort_unstable();
            positions.dedup();
            push(read_file(lake, &label, path, Some(positions)).await?)?;
        }
    }
    Ok((schema, out))
}

fn invalid(table: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Invalid {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// The unique keys `sql` (a `changed_keys` query) gives over `rows`, registered as the source
/// table under its layer's alias and namespace.
pub async fn keys_of(
    config: &Config,
    source: &Ref,
    rows: Vec<RecordBatch>,
    schema: SchemaRef,
    sql: &str,
) -> Result<Vec<RecordBatch>, QueryError> {
    let ctx = SessionContext::new();
    let catalog = ctx
        .catalog("datafusion")
        .expect("the default catalog exists");
    let name = source_name(config, source);
    let table =
        Arc::new(
            MemTable::try_new(schema, vec![rows]).map_err(|e| QueryError::Register {
                table: name.to_string(),
                source: e,
            })?,
        );
    for alias in [source.layer.as_str(), name.namespace.as_str()] {
        let provider = Arc::new(MemorySchemaProvider::new());
        datafusion::catalog::SchemaProvider::register_table(
            provider.as_ref(),
            source.table.clone(),
            table.clone(),
        )
        .map_err(|e| QueryError::Register {
            table: name.to_string(),
            source: e,
        })?;
        catalog
            .register_schema(alias, provider)
            .map_err(|e| QueryError::Register {
                table: name.to_string(),
                source: e,
            })?;
    }
    crate::query::run(&ctx, sql).await
}

/// A set of unique-key values, compared in the gold table's column types (as Arrow's row
/// format, so a lookup needs no allocation).
pub struct KeySet {
    converter: RowConverter,
    rows: HashSet<Box<[u8]>>,
    /// The key columns' types.
    pub types: Vec<arrow::datatypes::DataType>,
}

impl KeySet {
    pub fn new(types: Vec<arrow::datatypes::DataType>) -> Result<Self, arrow::error::ArrowError> {
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(KeySet {
            converter,
            rows: HashSet::new(),
            types,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds the keys in `columns` (one array per key column, any castable type); null keys
    /// are left out (a unique key is never null).
    pub fn extend(&mut self, columns: &[ArrayRef]) -> Result<(), arrow::error::ArrowError> {
        let cast = self.cast(columns)?;
        let rows = self.converter.convert_columns(&cast)?;
        for (i, row) in rows.iter().enumerate() {
            if cast.iter().all(|c| c.is_valid(i)) {
                self.rows.insert(row.as_ref().into());
            }
        }
        Ok(())
    }

    /// Whether each row's key is in the set.
    pub fn contains(&self, columns: &[ArrayRef]) -> Result<BooleanArray, arrow::error::ArrowError> {
        let cast = self.cast(columns)?;
        let rows = self.converter.convert_columns(&cast)?;
        Ok(rows
            .iter()
            .map(|r| Some(self.rows.contains(r.as_ref())))
            .collect())
    }

    fn cast(&self, columns: &[ArrayRef]) -> Result<Vec<ArrayRef>, arrow::error::ArrowError> {
        columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| arrow::compute::cast(c, t))
            .collect()
    }

    /// The keys as arrays (one per key column).
    pub fn columns(&self) -> Result<Vec<ArrayRef>, arrow::error::ArrowError> {
        let parser = self.converter.parser();
        self.converter
            .convert_rows(self.rows.iter().map(|r| parser.parse(r)))
    }
}

/// The key columns of `batch`, by name.
pub fn key_columns(batch: &RecordBatch, key: &[String]) -> Result<Vec<ArrayRef>, String> {
    key.iter()
        .map(|k| {
            batch
                .column_by_name(k)
                .cloned()
                .ok_or_else(|| format!("the unique key column `{k}` is not in the result"))
        })
        .collect()
}

/// The table's data files holding rows with one of `keys`, and what is left of them: the files
/// to remove and the rows to write again.
pub async fn rows_to_keep(
    lake: &Lake,
    table: &LakeTable,
    key: &[String],
    keys: &KeySet,
    schema: &SchemaRef,
) -> Result<(HashSet<String>, Vec<RecordBatch>), LakeError> {
    let label = table.name.to_string();
    let mut removed = HashSet::new();
    let mut kept = Vec::new();
    for f in live_files(table, i64::MIN).await? {
        if f.content != DataContentType::Data {
            return Err(invalid(
                &label,
                format!("{} is a delete file; gold tables are copy-on-write", f.path),
            ));
        }
        let batches = read_file(lake, &label, &f.path, None).await?;
        let mut hit = false;
        let mut rest = Vec::new();
        for b in batches {
            let cols = key_columns(&b, key).map_err(|e| invalid(&label, e))?;
            let matched = keys.contains(&cols).map_err(|e| invalid(&label, e))?;
            if matched.true_count() > 0 {
                hit = true;
            }
            let keep = arrow::compute::not(&matched).map_err(|e| invalid(&label, e))?;
            let b =
                arrow::compute::filter_record_batch(&b, &keep).map_err(|e| invalid(&label, e))?;
            rest.push(crate::lake::conform(&b, schema).map_err(|e| invalid(&label, e))?);
        }
        if hit {
            removed.insert(f.path);
            kept.extend(rest);
        }
    }
    Ok((removed, kept))
}
