//! Slowly changing dimension type 2: `<table>_history` keeps every version of every row of a
//! silver table that opts in (`silver.tables.T.history = true`).
//!
//! A history row is a silver row (the same columns with the same field ids, `_op` and the
//! source position included) plus `valid_from`, `valid_to` and `is_current`. Every change a
//! run applies to silver adds a version, valid from the change's source commit time; the
//! version it follows is closed (`valid_to` = the new version's `valid_from`, `is_current`
//! false) by a position delete and a re-insert. A delete closes the key's current version and
//! leaves a row with `_op = 'd'`, the key, and an empty validity range (`valid_from` =
//! `valid_to`). A truncate closes every current version from before it. A key's validity ranges
//! never overlap: a version's `valid_from` is never earlier than the one before it (the order
//! of versions is the source position's; a source clock that steps back is clamped).
//!
//! The history is committed in the same run as silver, just before it, and records the bronze
//! sequence number it covers: a run redone after a crash finds its versions there and does not
//! add them twice (the redone step reads exactly the same bronze files, see
//! `super::side_watermark`). A table that turns history on later starts it from its current
//! silver rows, each valid from its `_updated_at`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use arrow::error::ArrowError;
use futures::TryStreamExt;
use iceberg::spec::{
    DataContentType, NestedField, PrimitiveType, Schema, Type, UnboundPartitionSpec,
};

use super::SilverError;
use super::changes::Order;
use super::columns::{ColumnError, Columns, META_OP, META_UPDATED_AT};
use super::decode::Cell;
use super::files::{Rows, read_parquet};
use super::state::{KeyMatcher, deleted_positions, position_at, read_file};
use super::write::{OutRow, to_batch};
use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{
    Change, Committed, Lake, LakeError, LakeTable, conform, live_files, write_data,
    write_position_deletes,
};

/// The `medallion.writer` of table maintenance's compaction commits.
const MAINTAIN_WRITER: &str = crate::maintain::compact::WRITER;

/// When the version became the row (the source commit time of its change).
pub const VALID_FROM: &str = "valid_from";
/// When the next version (or the delete, or a truncate) replaced it; null while current.
pub const VALID_TO: &str = "valid_to";
/// The key's current version (the row silver has).
pub const IS_CURRENT: &str = "is_current";
const OWN_COLUMNS: [&str; 3] = [VALID_FROM, VALID_TO, IS_CURRENT];

/// Silver snapshot summary key: the bronze sequence number up to which silver's changes are
/// in the history (carried forward by later commits, so it falls behind while history is off).
pub const COVERED: &str = "medallion.history.covered";

/// Stops a table whose silver changed while its history was off: the history would miss
/// versions and keep stale current rows.
pub fn check_no_gap(
    table: &str,
    silver: Option<&LakeTable>,
    history: &LakeTable,
    silver_watermark: i64,
) -> Result<(), SilverError> {
    if history.current_snapshot().is_none() {
        return Ok(());
    }
    let covered = silver
        .and_then(|s| s.summary_property(COVERED))
        .and_then(|c| c.parse::<i64>().ok());
    match covered {
        Some(c) if c < silver_watermark => Err(SilverError::Unsupported {
            table: table.to_string(),
            message: format!(
                "silver changed while its history was off (bronze sequence numbers {c} to {silver_watermark}), so {table}_history misses versions; drop {table}_history to start it again from the current rows, or set history = false"
            ),
        }),
        _ => Ok(()),
    }
}

/// Empties a history whose rows never reached silver (a first run that crashed between the
/// two commits), so that the next step writes it afresh.
pub async fn discard(lake: &Lake, history: &LakeTable) -> Result<(), SilverError> {
    let summary = BTreeMap::from([
        (
            super::BRONZE_WATERMARK.to_string(),
            serde_json::json!({ "sequence_number": 0 }).to_string(),
        ),
        (
            "medallion.writer".to_string(),
            "silver (a history that never reached silver, discarded)".to_string(),
        ),
    ]);
    let mut history = history.clone();
    loop {
        let removed: HashSet<String> = live_files(&history, i64::MIN)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect();
        let planned = history.current_snapshot().map(|s| s.snapshot_id());
        let change = Change::rewrite(Vec::new(), Vec::new(), removed, summary.clone());
        match lake
            .commit_if_unchanged(&history.name, planned, &change, |_| false)
            .await?
        {
            Committed::Done(_) => return Ok(()),
            Committed::Raced => {
                // Another silver run got there first and dealt with it; table maintenance
                // (which only rewrites the same rows) did not: discard again.
                let now = lake.load_existing(&history.name).await?;
                if now.summary_property("medallion.writer") != Some(MAINTAIN_WRITER) {
                    return Ok(());
                }
                history = now;
            }
        }
    }
}

/// `<silver>.<table>_history`.
pub fn table_name(config: &Config, table: &str) -> TableName {
    TableName::new(config.namespaces.silver.clone(), format!("{table}_history"))
}

/// Keeps the ids an existing history table gives its own columns reserved in the silver
/// table's id space. Only a committed schema is ours: a table just created (by a run that
/// crashed before its first commit) has ids the catalog assigned.
pub fn reserve_ids(columns: &mut Columns, history: &LakeTable) {
    if history.current_snapshot().is_none() {
        return;
    }
    for f in history.metadata().current_schema().as_struct().fields() {
        if OWN_COLUMNS.contains(&f.name.as_str()) {
            columns.reserve_history_id(&f.name, f.id);
        }
    }
}

/// The history schema: silver's columns, then `valid_from`, `valid_to`, `is_current`. Call it
/// after [`Columns::schema`].
pub fn schema(silver: &Schema, columns: &mut Columns) -> Result<Schema, ColumnError> {
    let mut fields: Vec<Arc<NestedField>> = silver.as_struct().fields().to_vec();
    let ts = Type::Primitive(PrimitiveType::Timestamptz);
    fields
        .push(NestedField::required(columns.history_id(VALID_FROM), VALID_FROM, ts.clone()).into());
    fields.push(NestedField::optional(columns.history_id(VALID_TO), VALID_TO, ts).into());
    fields.push(
        NestedField::required(
            columns.history_id(IS_CURRENT),
            IS_CURRENT,
            Type::Primitive(PrimitiveType::Boolean),
        )
        .into(),
    );
    Schema::builder()
        .with_fields(fields)
        .build()
        .map_err(|e| ColumnError::Schema(format!("cannot build the history schema: {e}")))
}

/// A step's new versions.
#[derive(Debug, Default)]
pub struct Step {
    /// The typed key of each key that has versions.
    pub keys: Vec<Vec<Cell>>,
    /// (index in `keys`, the version as a silver row), grouped by key, in source order.
    pub versions: Vec<(usize, OutRow)>,
    /// A truncate the step applies: it closes the current versions from before it.
    pub truncate: Option<Order>,
    /// The bronze sequence number the step reads up to.
    pub bronze_seq: i64,
    /// How far silver had got before the step (where a history started now begins).
    pub silver_watermark: i64,
}

/// Where the history is written, and what it is written from.
pub struct Target<'a> {
    pub config: &'a Config,
    pub table: &'a str,
    /// Silver as the step found it (a history started now copies its rows).
    pub silver: &'a LakeTable,
    pub columns: &'a Columns,
    /// Silver's Arrow schema after the step.
    pub silver_arrow: &'a SchemaRef,
    pub schema: Schema,
}

/// A current version that the step closes: its row in its batch, its key (if one of the
/// step's), and the time a truncate closes it at (else its key's first new version's start).
type Closing = (u32, Option<usize>, Option<i64>);

/// A batch of current versions read back, with where each row is.
struct Current {
    batch: RecordBatch,
    at: Vec<(Arc<str>, i64)>,
}

/// Writes a step's versions to the history, closing the versions they follow, in one commit
/// (unless the history already covers the step). Returns the rows added.
pub async fn record(lake: &Lake, target: Target<'_>, step: Step) -> Result<u64, SilverError> {
    let config = target.config;
    let name = table_name(config, target.table);
    let label = name.to_string();
    let props = crate::bronze::schema::table_properties(&config.silver.compression)
        .into_iter()
        .chain([
            ("medallion.layer".to_string(), "silver-history".to_string()),
            ("write.delete.mode".into(), "merge-on-read".into()),
        ])
        .collect();
    let mut h = lake
        .load_or_create(
            &name,
            target.schema.clone(),
            UnboundPartitionSpec::builder().build(),
            props,
        )
        .await?;
    if super::watermark(&h) >= step.bronze_seq {
        return Ok(0);
    }
    let schema = Arc::new(target.schema.clone());
    let arrow = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(LakeError::iceberg(&label, "convert the schema"))?,
    );
    let now = chrono::Utc::now().timestamp_micros();
    if h.current_snapshot().is_none() && target.silver.current_snapshot().is_some() {
        start_from_silver(lake, &target, &h, &arrow, step.silver_watermark, now).await?;
        h = lake
            .load(&name)
            .await?
            .ok_or_else(|| SilverError::NoBronze(label.clone()))?;
    }
    if step.versions.is_empty() && step.truncate.is_none() {
        return Ok(0);
    }
    let planned = h.current_snapshot().map(|s| s.snapshot_id());
    let matcher = KeyMatcher::new(target.columns, target.silver_arrow, &step.keys)?;
    let key = &target.columns.key;
    let current = if h.current_snapshot().is_some() {
        current_rows(&h, key, &matcher, step.truncate.is_some(), &arrow).await?
    } else {
        Vec::new()
    };

    // Which current versions close, and how early each key's new versions may start.
    let mut has_versions = vec![false; step.keys.len()];
    for (k, _) in &step.versions {
        has_versions[*k] = true;
    }
    let truncated_at = step
        .truncate
        .map(|t| if t.ts_us != 0 { t.ts_us } else { now });
    let mut floor: Vec<Option<i64>> = vec![None; step.keys.len()];
    let mut closing: Vec<Vec<Closing>> = Vec::new();
    for c in &current {
        let owners: HashMap<u32, usize> = matcher
            .find(&label, "", &c.batch, key)?
            .into_iter()
            .collect();
        let from = c
            .batch
            .column_by_name(VALID_FROM)
            .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| SilverError::File {
                table: label.clone(),
                file: String::new(),
                message: format!("{VALID_FROM} is missing or not a timestamp"),
            })?;
        let mut rows = Vec::new();
        for i in 0..c.batch.num_rows() {
            let owner = owners.get(&(i as u32)).copied();
            let valid_from = from.value(i);
            let truncated = step
                .truncate
                .is_some_and(|t| position_at(&c.batch, i).order() <= t);
            if let (true, Some(t)) = (truncated, truncated_at) {
                let at = t.max(valid_from);
                if let Some(o) = owner {
                    floor[o] = floor[o].max(Some(at));
                }
                rows.push((i as u32, owner, Some(at)));
            } else if let Some(o) = owner.filter(|o| has_versions[*o]) {
                floor[o] = floor[o].max(Some(valid_from));
                rows.push((i as u32, Some(o), None));
            }
        }
        closing.push(rows);
    }

    // The new versions' validity.
    let n = step.versions.len();
    let (mut from, mut to, mut is_current) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut first_from: Vec<Option<i64>> = vec![None; step.keys.len()];
    let mut i = 0;
    while i < n {
        let k = step.versions[i].0;
        let end = i + step.versions[i..].partition_point(|(o, _)| *o == k);
        let mut f = floor[k];
        for (_, v) in &step.versions[i..end] {
            let t = v.position.ts_us.unwrap_or(now);
            let t = f.map_or(t, |f| t.max(f));
            f = Some(t);
            from.push(t);
        }
        first_from[k] = Some(from[i]);
        for j in i..end {
            let deleted = step.versions[j].1.op == "d";
            let last = j + 1 == end;
            to.push(if deleted {
                Some(from[j])
            } else if !last {
                Some(from[j + 1])
            } else {
                None
            });
            is_current.push(last && !deleted);
        }
        i = end;
    }
    let rows: Vec<OutRow> = step.versions.into_iter().map(|(_, r)| r).collect();
    let silver_rows =
        to_batch(&rows, target.silver_arrow.clone(), target.columns).map_err(arrow_err(&label))?;
    let mut batches =
        vec![with_validity(&silver_rows, &arrow, from, to, is_current).map_err(arrow_err(&label))?];

    // The closed versions, re-inserted with their end.
    let mut deletes: Vec<(String, i64)> = Vec::new();
    for (c, rows) in current.iter().zip(closing) {
        if rows.is_empty() {
            continue;
        }
        let take = UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
        let closed =
            arrow::compute::take_record_batch(&c.batch, &take).map_err(arrow_err(&label))?;
        let from = closed
            .column_by_name(VALID_FROM)
            .expect("checked above")
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec();
        let ends: Vec<Option<i64>> = rows
            .iter()
            .map(|(_, owner, at)| at.or_else(|| owner.and_then(|o| first_from[o])))
            .collect();
        let batch = with_validity(&closed, &arrow, from, ends, vec![false; rows.len()])
            .map_err(arrow_err(&label))?;
        batches.push(batch);
        for (r, _, _) in &rows {
            let (path, pos) = &c.at[*r as usize];
            deletes.push((path.to_string(), *pos));
        }
    }
    let added = batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let writer = super::writer_props(config, &[]);
    let data = write_data(
        lake,
        &h,
        schema.clone(),
        batches,
        writer.clone(),
        config.silver.target_file_size.0 as usize,
    )
    .await?;
    let delete_files = write_position_deletes(lake, &h, deletes, writer).await?;
    let summary = BTreeMap::from([
        (
            super::BRONZE_WATERMARK.to_string(),
            serde_json::json!({ "sequence_number": step.bronze_seq }).to_string(),
        ),
        ("medallion.writer".to_string(), "silver".to_string()),
    ]);
    let change = Change::rewrite(data, delete_files, HashSet::new(), summary)
        .with_schema(super::schema_changed(&h, &schema).then(|| schema.as_ref().clone()));
    let covered = |now: &LakeTable| super::watermark(now) >= step.bronze_seq;
    if let Committed::Raced = lake
        .commit_if_unchanged(&name, planned, &change, covered)
        .await?
    {
        return Err(SilverError::Raced {
            table: label,
            attempts: 1,
        });
    }
    Ok(added)
}

fn arrow_err(table: &str) -> impl Fn(ArrowError) -> SilverError + '_ {
    move |e| SilverError::arrow(table, e)
}

/// `batch` (silver's columns, or a history batch) with the history's own columns set.
fn with_validity(
    batch: &RecordBatch,
    schema: &SchemaRef,
    from: Vec<i64>,
    to: Vec<Option<i64>>,
    is_current: Vec<bool>,
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .filter(|f| !OWN_COLUMNS.contains(&f.name().as_str()))
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                ArrowError::SchemaError(format!("the history row has no column {}", f.name()))
            })
        })
        .collect::<Result<_, _>>()?;
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(from).with_timezone("+00:00"),
    ));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(to).with_timezone("+00:00"),
    ));
    columns.push(Arc::new(BooleanArray::from(is_current)));
    RecordBatch::try_new(schema.clone(), columns)
}

/// The current versions of the step's keys (every current version with `every`, for a
/// truncate), as rows of the history's schema.
async fn current_rows(
    h: &LakeTable,
    key: &[String],
    matcher: &KeyMatcher,
    every: bool,
    schema: &SchemaRef,
) -> Result<Vec<Current>, SilverError> {
    let label = h.name.to_string();
    let files = live_files(h, i64::MIN).await?;
    let deleted = deleted_positions(h, &files).await?;
    let mut wanted: Vec<&str> = key.iter().map(String::as_str).collect();
    wanted.push(IS_CURRENT);
    let mut out = Vec::new();
    for f in files.iter().filter(|f| f.content == DataContentType::Data) {
        let dead = deleted.get(&f.path);
        let mut rows: Vec<u32> = Vec::new();
        let mut at = 0u32;
        for b in read_file(h, &f.path, Some(&wanted)).await? {
            let current = b
                .column_by_name(IS_CURRENT)
                .and_then(|c| c.as_boolean_opt())
                .ok_or_else(|| SilverError::File {
                    table: label.clone(),
                    file: f.path.clone(),
                    message: format!("{IS_CURRENT} is missing: not a history table?"),
                })?;
            let is = |i: u32| {
                current.is_valid(i as usize)
                    && current.value(i as usize)
                    && !dead.is_some_and(|d| d.contains(&((at + i) as i64)))
            };
            if every {
                rows.extend((0..b.num_rows() as u32).filter(|&i| is(i)).map(|i| at + i));
            } else {
                for (i, _) in matcher.find(&label, &f.path, &b, key)? {
                    if is(i) {
                        rows.push(at + i);
                    }
                }
            }
            at += b.num_rows() as u32;
        }
        if rows.is_empty() {
            continue;
        }
        let path: Arc<str> = Arc::from(f.path.as_str());
        let mut positions = rows.iter();
        let mut stream = read_parquet(h, &f.path, None, Rows::Only(&rows), 65536).await?;
        while let Some(b) = stream
            .try_next()
            .await
            .map_err(|e| SilverError::parquet(&label, &f.path, e))?
        {
            let at = positions
                .by_ref()
                .take(b.num_rows())
                .map(|&r| (path.clone(), r as i64))
                .collect();
            let batch = conform(&b, schema).map_err(arrow_err(&label))?;
            out.push(Current { batch, at });
        }
    }
    Ok(out)
}

/// Starts the history of a table that already has rows: each live silver row becomes the
/// key's current version, valid from its `_updated_at`.
async fn start_from_silver(
    lake: &Lake,
    target: &Target<'_>,
    h: &LakeTable,
    arrow: &SchemaRef,
    silver_watermark: i64,
    now: i64,
) -> Result<(), SilverError> {
    let silver = target.silver;
    let label = silver.name.to_string();
    let files = live_files(silver, i64::MIN).await?;
    let deleted = deleted_positions(silver, &files).await?;
    let mut batches = Vec::new();
    for f in files.iter().filter(|f| f.content == DataContentType::Data) {
        let dead = deleted.get(&f.path);
        let mut at = 0i64;
        for b in read_file(silver, &f.path, None).await? {
            let ops = b
                .column_by_name(META_OP)
                .and_then(|c| c.as_string_opt::<i32>());
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| {
                    let live = !dead.is_some_and(|d| d.contains(&(at + i as i64)));
                    Some(live && ops.is_none_or(|o| o.value(i) != "d"))
                })
                .collect();
            at += b.num_rows() as i64;
            let b = arrow::compute::filter_record_batch(&b, &keep).map_err(arrow_err(&label))?;
            let b = conform(&b, target.silver_arrow).map_err(arrow_err(&label))?;
            let from: Vec<i64> = match b
                .column_by_name(META_UPDATED_AT)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            {
                Some(u) => u.iter().map(|t| t.unwrap_or(now)).collect(),
                None => vec![now; b.num_rows()],
            };
            let n = b.num_rows();
            batches.push(
                with_validity(&b, arrow, from, vec![None; n], vec![true; n])
                    .map_err(arrow_err(&label))?,
            );
        }
    }
    let schema = Arc::new(target.schema.clone());
    let data = write_data(
        lake,
        h,
        schema.clone(),
        batches,
        super::writer_props(target.config, &[]),
        target.config.silver.target_file_size.0 as usize,
    )
    .await?;
    let summary = BTreeMap::from([
        (
            super::BRONZE_WATERMARK.to_string(),
            serde_json::json!({ "sequence_number": silver_watermark }).to_string(),
        ),
        (
            "medallion.writer".to_string(),
            "silver (history started from the silver rows)".to_string(),
        ),
    ]);
    let change = Change::append(data, summary).with_schema(Some(schema.as_ref().clone()));
    lake.commit_with_retry(&h.name, |now| {
        if now.current_snapshot().is_some() {
            return Ok(None);
        }
        Ok(Some(change.clone()))
    })
    .await?;
    Ok(())
}
