//! What silver already holds for the keys a run touches.
//!
//! Silver is merge-on-read: a changed row is replaced by a new row plus a position delete of
//! the old one, and a deleted key leaves a tombstone row (`_op = 'd'`, deleted at once by a
//! position delete) that remembers the delete's source position. So the newest physical row of
//! a key, live or not, says how far the key's history has been applied: an event at or before
//! it is stale (a replay, or out of order) and is ignored, and a deleted key cannot come back
//! through an older event.
//!
//! The scan reads only the key and position columns of the live data files (plus the position
//! deletes), except in a rewrite (a truncate, or a new column whose default every existing row
//! must get), which reads and carries every live row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow::row::{RowConverter, SortField};
use futures::TryStreamExt;
use iceberg::spec::DataContentType;

use super::SilverError;
use super::changes::{Order, SourcePosition};
use super::columns::{
    Columns, META_BINLOG_FILE, META_BINLOG_POS, META_BINLOG_ROW, META_FAILED, META_ISSUES,
    META_LSN, META_OFFSET, META_OP, META_PARTITION, META_UPDATED_AT, POSITION_COLUMNS,
};
use super::decode::Cell;
use super::files::{Rows, in_parallel, read_parquet};
use super::merge::DqIssue;
use super::write::{OutRow, cell_at, cells_to_array};
use crate::lake::LakeTable;
use crate::lake::{LiveFile, live_files, read_position_deletes};

/// Where a key's current row is, and how far its history has been applied.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    /// The newest physical row of the key (live or a tombstone).
    pub newest: Option<Order>,
    /// The live row, if any.
    pub live: Option<(Arc<str>, i64)>,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Per outcome index.
    pub existing: Vec<Existing>,
    /// Rewrite: every live row to carry over (tombstones included), with its key's outcome
    /// index if a key of this run.
    pub carried: Vec<(OutRow, Option<usize>)>,
    /// The live data and delete files read (a rewrite replaces them all).
    pub files: Vec<String>,
    /// Rows read (physical, all files).
    pub rows_scanned: u64,
    pub live_rows: u64,
}

/// Every batch of a Parquet file (silver files: at most `target_file_size` each).
pub(crate) async fn read_file(
    table: &LakeTable,
    path: &str,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, SilverError> {
    read_parquet(table, path, columns, Rows::All, 65536)
        .await?
        .try_collect()
        .await
        .map_err(|e| SilverError::parquet(&table.name.to_string(), path, e))
}

/// The positions deleted by the live position-delete files, per data file.
pub(crate) async fn deleted_positions(
    table: &LakeTable,
    files: &[LiveFile],
) -> Result<HashMap<String, HashSet<i64>>, SilverError> {
    let mut out: HashMap<String, HashSet<i64>> = HashMap::new();
    for f in files {
        match f.content {
            DataContentType::Data => {}
            DataContentType::PositionDeletes => {
                for (file, positions) in read_position_deletes(table, &f.path).await? {
                    out.entry(file).or_default().extend(positions);
                }
            }
            DataContentType::EqualityDeletes => {
                return Err(SilverError::Unsupported {
                    table: table.name.to_string(),
                    message: format!(
                        "{} is an equality-delete file; silver writes position deletes only and cannot merge into a table another tool gave equality deletes",
                        f.path
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// Source position of row `i` from medallion's columns.
pub(crate) fn position_at(b: &RecordBatch, i: usize) -> SourcePosition {
    let i64_at = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
    };
    let i32_at = |n: &str| {
        b.column_by_name(n)
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
    };
    SourcePosition {
        lsn: i64_at(META_LSN),
        binlog_file: b
            .column_by_name(META_BINLOG_FILE)
            .and_then(|c| c.as_string_opt::<i32>())
            .and_then(|a| (!a.is_null(i)).then(|| Arc::from(a.value(i)))),
        binlog_pos: i64_at(META_BINLOG_POS),
        binlog_row: i32_at(META_BINLOG_ROW),
        ts_us: b
            .column_by_name(META_UPDATED_AT)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .and_then(|a| (!a.is_null(i)).then(|| a.value(i))),
        partition: i32_at(META_PARTITION).unwrap_or(0),
        offset: i64_at(META_OFFSET).unwrap_or(0),
    }
}

/// A batch's `_op` column, looked up once per batch.
fn ops(b: &RecordBatch) -> Option<&arrow::array::StringArray> {
    b.column_by_name(META_OP)
        .and_then(|c| c.as_string_opt::<i32>())
}

fn op_at(ops: Option<&arrow::array::StringArray>, i: usize) -> &'static str {
    match ops.map(|a| a.value(i)) {
        Some("d") => "d",
        Some("c") => "c",
        Some("r") => "r",
        _ => "u",
    }
}

/// The list in column `name` at row `i`; `None` where it is null or the file predates it.
fn list_at(b: &RecordBatch, name: &str, i: usize) -> Option<ArrayRef> {
    let l = b.column_by_name(name)?.as_list_opt::<i32>()?;
    (!l.is_null(i)).then(|| l.value(i))
}

/// `_dq_failed` of row `i`.
fn failed_at(b: &RecordBatch, i: usize) -> Vec<Arc<str>> {
    let Some(v) = list_at(b, META_FAILED, i) else {
        return Vec::new();
    };
    let names = v.as_string::<i32>();
    (0..names.len())
        .filter(|&j| names.is_valid(j))
        .map(|j| Arc::from(names.value(j)))
        .collect()
}

fn issues_at(b: &RecordBatch, i: usize) -> Vec<DqIssue> {
    let Some(v) = list_at(b, META_ISSUES, i) else {
        return Vec::new();
    };
    let s = v.as_struct();
    let text = |n: &str, j: usize| {
        s.column_by_name(n)
            .and_then(|c| c.as_string_opt::<i32>())
            .and_then(|a| (!a.is_null(j)).then(|| a.value(j).to_string()))
    };
    (0..s.len())
        .map(|j| DqIssue {
            column: text("column", j).unwrap_or_default(),
            reason: text("reason", j).unwrap_or_default(),
            raw: text("raw", j),
        })
        .collect()
}

/// Promotes a cell read from an older file to the column's current type.
fn widen(cell: Cell, dt: &DataType) -> Cell {
    match (cell, dt) {
        (Cell::Int(i), DataType::Int64) => Cell::Long(i as i64),
        (Cell::Float(f), DataType::Float64) => Cell::Double(f as f64),
        (c, _) => c,
    }
}

/// Finds the run's keys among a table's rows.
pub struct KeyMatcher {
    kind: Matcher,
    /// The key columns' current types.
    types: Vec<DataType>,
    pub keys: usize,
}

enum Matcher {
    /// One integer key column.
    Int(IntKeys),
    /// Any key: outcome index by the key's row encoding.
    Rows(RowConverter, HashMap<Box<[u8]>, usize>),
}

/// The run's values of a single integer key column. The lookup tests every row of the table,
/// and almost none is a key of the run: a range check and a bit filter that fits in cache
/// turn most rows away before the hash map is asked.
struct IntKeys {
    map: HashMap<i64, usize, foldhash::fast::RandomState>,
    min: i64,
    max: i64,
    /// One bit per hash slot of a run key (about 16 slots per key: ~6% false positives).
    filter: Vec<u64>,
    shift: u32,
}

impl IntKeys {
    fn new(values: impl Iterator<Item = i64>) -> IntKeys {
        let map: HashMap<i64, usize, _> = values.enumerate().map(|(i, v)| (v, i)).collect();
        let bits = (map.len() * 16).next_power_of_two().max(4096);
        let mut keys = IntKeys {
            min: map.keys().copied().min().unwrap_or(0),
            max: map.keys().copied().max().unwrap_or(-1),
            filter: vec![0; bits / 64],
            shift: 64 - bits.trailing_zeros(),
            map,
        };
        for v in keys.map.keys().copied().collect::<Vec<_>>() {
            let s = keys.slot(v);
            keys.filter[s >> 6] |= 1 << (s & 63);
        }
        keys
    }

    #[inline]
    fn slot(&self, v: i64) -> usize {
        ((v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, v: i64) -> Option<usize> {
        if v < self.min || v > self.max {
            return None;
        }
        let s = self.slot(v);
        if self.filter[s >> 6] & (1 << (s & 63)) == 0 {
            return None;
        }
        self.map.get(&v).copied()
    }

    /// Rows of `values` that are keys of the run: (row, outcome index).
    fn hits<T: Copy>(&self, values: &[T], wide: impl Fn(T) -> i64, out: &mut Vec<(u32, usize)>) {
        for (i, &v) in values.iter().enumerate() {
            if let Some(o) = self.get(wide(v)) {
                out.push((i as u32, o));
            }
        }
    }
}

impl KeyMatcher {
    /// For the typed key cells of the run's outcomes (one `Vec<Cell>` per outcome).
    pub fn new(
        columns: &Columns,
        arrow_schema: &arrow::datatypes::Schema,
        keys: &[Vec<Cell>],
    ) -> Result<KeyMatcher, SilverError> {
        let err = |e| SilverError::arrow("key columns", e);
        let types: Vec<DataType> = columns
            .key
            .iter()
            .map(|k| {
                arrow_schema
                    .field_with_name(k)
                    .map(|f| f.data_type().clone())
            })
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let arrays: Vec<ArrayRef> = types
            .iter()
            .enumerate()
            .map(|(j, dt)| {
                let cells: Vec<&Cell> = keys.iter().map(|k| &k[j]).collect();
                cells_to_array(&cells, dt)
            })
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let kind = match int_column(&arrays) {
            Some(c) if c.null_count() == 0 => {
                let mut values = Vec::with_capacity(c.len());
                for_int_values(c, |v| values.push(v));
                Matcher::Int(IntKeys::new(values.into_iter()))
            }
            _ => {
                let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
                let converter = RowConverter::new(fields).map_err(err)?;
                let rows = converter.convert_columns(&arrays).map_err(err)?;
                let map = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (Box::from(r.as_ref()), i));
                Matcher::Rows(converter, map.collect())
            }
        };
        Ok(KeyMatcher {
            kind,
            types,
            keys: keys.len(),
        })
    }

    /// The rows of `b` whose key is one of the run's: (row, outcome index), in row order.
    pub(crate) fn find(
        &self,
        table: &str,
        file: &str,
        b: &RecordBatch,
        names: &[String],
    ) -> Result<Vec<(u32, usize)>, SilverError> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(names.len());
        for (k, want) in names.iter().zip(&self.types) {
            let c = b.column_by_name(k).ok_or_else(|| SilverError::File {
                table: table.to_string(),
                file: file.to_string(),
                message: format!("key column {k} is missing"),
            })?;
            // Older files may hold a narrower type.
            cols.push(if c.data_type() == want {
                c.clone()
            } else {
                arrow::compute::cast(c, want).map_err(|e| SilverError::arrow(table, e))?
            });
        }
        let mut out = Vec::new();
        match &self.kind {
            Matcher::Int(keys) => match int_column(&cols) {
                // Silver never writes a null key.
                Some(c) if c.null_count() == 0 => match c.data_type() {
                    DataType::Int64 => {
                        keys.hits(c.as_primitive::<Int64Type>().values(), |v| v, &mut out)
                    }
                    _ => keys.hits(
                        c.as_primitive::<Int32Type>().values(),
                        |v| v as i64,
                        &mut out,
                    ),
                },
                _ => {}
            },
            Matcher::Rows(converter, map) => {
                let rows = converter
                    .convert_columns(&cols)
                    .map_err(|e| SilverError::arrow(table, e))?;
                for (i, r) in rows.iter().enumerate() {
                    if let Some(&o) = map.get(r.as_ref()) {
                        out.push((i as u32, o));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The column of a single integer key.
fn int_column(cols: &[ArrayRef]) -> Option<&ArrayRef> {
    match cols {
        [c] if matches!(c.data_type(), DataType::Int64 | DataType::Int32) => Some(c),
        _ => None,
    }
}

/// Each value of an integer column, as i64.
fn for_int_values(c: &ArrayRef, mut f: impl FnMut(i64)) {
    match c.data_type() {
        DataType::Int64 => c
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .for_each(|v| f(*v)),
        _ => c
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .for_each(|v| f(*v as i64)),
    }
}

/// The rows of a data file whose key is one of the run's: (position, outcome index), and the
/// file's row count.
async fn match_keys(
    table: Arc<LakeTable>,
    path: String,
    matcher: Arc<KeyMatcher>,
    names: Vec<String>,
) -> Result<(String, u32, Vec<(u32, usize)>), SilverError> {
    let table_name = table.name.to_string();
    let key_names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    let mut rows = 0u32;
    for b in read_file(&table, &path, Some(&key_names)).await? {
        let hits = matcher.find(&table_name, &path, &b, &names)?;
        found.extend(hits.into_iter().map(|(i, oi)| (rows + i, oi)));
        rows += b.num_rows() as u32;
    }
    Ok((path, rows, found))
}

/// Records a physical row of a run's key: the newest one says how far the key's history is
/// applied, the live one is what the run replaces.
fn note(e: &mut Existing, order: Order, live: bool, path: &Arc<str>, pos: i64) {
    if e.newest.is_none_or(|n| n < order) {
        e.newest = Some(order);
    }
    if live {
        e.live = Some((path.clone(), pos));
    }
}

/// Scans the table for the keys of `matcher`: the key columns of every live data file, then
/// the position columns of only the rows whose key is one of the run's and whose outcome
/// index is marked in `check` (an event newer than everything applied cannot be stale, and
/// tombstone rows are always position-deleted, so its live row is known without them). With
/// `rewrite`, every
/// live row is also returned as an [`OutRow`] in the new column layout; `defaults` fills the
/// columns older files lack.
pub async fn scan(
    table: &LakeTable,
    columns: &Columns,
    arrow_schema: &arrow::datatypes::Schema,
    matcher: Arc<KeyMatcher>,
    check: &[bool],
    rewrite: bool,
    defaults: &[Cell],
) -> Result<Scan, SilverError> {
    let started = std::time::Instant::now();
    let files = live_files(table, i64::MIN).await?;
    let t_files = started.elapsed();
    let deleted = deleted_positions(table, &files).await?;
    let t_deleted = started.elapsed() - t_files;
    let mut scan = Scan {
        existing: vec![Existing::default(); matcher.keys],
        ..Default::default()
    };
    let table_name = table.name.to_string();
    // The current type of each column (older files may hold a narrower one).
    let types: Vec<&DataType> = columns
        .columns
        .iter()
        .map(|c| arrow_schema.field_with_name(&c.name).map(|f| f.data_type()))
        .collect::<Result<_, _>>()
        .map_err(|e| SilverError::arrow(&table_name, e))?;
    // The key columns of every file, files in parallel.
    let mut matched: HashMap<String, (u32, Vec<(u32, usize)>)> = HashMap::new();
    if !rewrite {
        let shared = Arc::new(table.clone());
        let tasks = files
            .iter()
            .filter(|f| f.content == DataContentType::Data)
            .map(|f| {
                match_keys(
                    shared.clone(),
                    f.path.clone(),
                    matcher.clone(),
                    columns.key.clone(),
                )
            });
        in_parallel(&table_name, tasks, |(path, rows, found)| {
            matched.insert(path, (rows, found));
        })
        .await?;
    }
    let t_keys = started.elapsed() - t_files - t_deleted;
    for f in files.iter().filter(|f| f.content == DataContentType::Data) {
        let dead = deleted.get(&f.path);
        let is_live = |p: i64| !dead.is_some_and(|d| d.contains(&p));
        let path: Arc<str> = Arc::from(f.path.as_str());
        if !rewrite {
            let (rows, found) = matched.remove(&f.path).unwrap_or_default();
            let mut hits: Vec<u32> = Vec::new();
            let mut owners: Vec<usize> = Vec::new();
            for (p, oi) in found {
                if check[oi] {
                    hits.push(p);
                    owners.push(oi);
                } else if is_live(p as i64) {
                    scan.existing[oi].live = Some((path.clone(), p as i64));
                }
            }
            // Every tombstone row is position-deleted, so the live rows are the rest.
            scan.rows_scanned += rows as u64;
            scan.live_rows += (rows as u64).saturating_sub(dead.map_or(0, |d| d.len() as u64));
            if hits.is_empty() {
                continue;
            }
            let mut at = hits.iter().zip(owners);
            let mut stream = read_parquet(
                table,
                &f.path,
                Some(&POSITION_COLUMNS),
                Rows::Only(&hits),
                65536,
            )
            .await?;
            while let Some(b) = stream
                .try_next()
                .await
                .map_err(|e| SilverError::parquet(&table_name, &f.path, e))?
            {
                let ops = ops(&b);
                for i in 0..b.num_rows() {
                    let (&p, oi) = at.next().expect("one row per selected position");
                    let live = is_live(p as i64) && op_at(ops, i) != "d";
                    let order = position_at(&b, i).order();
                    note(&mut scan.existing[oi], order, live, &path, p as i64);
                }
            }
            continue;
        }
        // A rewrite carries every row.
        let mut pos: i64 = 0;
        for b in read_file(table, &f.path, None).await? {
            let mut found = matcher
                .find(&table_name, &f.path, &b, &columns.key)?
                .into_iter()
                .peekable();
            let ops = ops(&b);
            // Found once per batch; absent in older files.
            let arrays: Vec<Option<&ArrayRef>> = columns
                .columns
                .iter()
                .map(|c| b.column_by_name(&c.name))
                .collect();
            for i in 0..b.num_rows() {
                let hit = found.next_if(|(r, _)| *r as usize == i).map(|(_, oi)| oi);
                let p = pos + i as i64;
                scan.rows_scanned += 1;
                let op = op_at(ops, i);
                let live = is_live(p) && op != "d";
                if let Some(oi) = hit {
                    note(
                        &mut scan.existing[oi],
                        position_at(&b, i).order(),
                        live,
                        &path,
                        p,
                    );
                }
                if live {
                    scan.live_rows += 1;
                }
                // Tombstone rows are never live; they are carried too.
                if !live && op != "d" {
                    continue;
                }
                let mut cells = Vec::with_capacity(columns.columns.len());
                for (ci, array) in arrays.iter().enumerate() {
                    let cell = match array {
                        Some(a) => widen(
                            cell_at(a.as_ref(), i)
                                .map_err(|e| SilverError::arrow(&table_name, e))?,
                            types[ci],
                        ),
                        None if op != "d" => defaults[ci].clone(),
                        None => Cell::Null,
                    };
                    cells.push(cell);
                }
                scan.carried.push((
                    OutRow {
                        cells,
                        op,
                        position: position_at(&b, i),
                        issues: issues_at(&b, i),
                        failed: failed_at(&b, i),
                    },
                    hit,
                ));
            }
            pos += b.num_rows() as i64;
        }
    }
    scan.files = files.into_iter().map(|f| f.path).collect();
    tracing::debug!(
        table = %table_name,
        files = ?t_files,
        deletes = ?t_deleted,
        keys = ?t_keys,
        positions = ?(started.elapsed() - t_files - t_deleted - t_keys),
        "scanned silver"
    );
    Ok(scan)
}

/// Reads the full live rows at `wanted` (file → positions) to fill TOAST placeholders.
pub async fn read_rows(
    table: &LakeTable,
    columns: &Columns,
    wanted: &HashMap<Arc<str>, Vec<i64>>,
) -> Result<HashMap<(Arc<str>, i64), (Vec<Cell>, Vec<DqIssue>)>, SilverError> {
    let table_name = table.name.to_string();
    let mut out = HashMap::new();
    for (path, positions) in wanted {
        let want: HashSet<i64> = positions.iter().copied().collect();
        let mut pos = 0i64;
        for b in read_file(table, path, None).await? {
            for i in 0..b.num_rows() {
                let p = pos + i as i64;
                if !want.contains(&p) {
                    continue;
                }
                let mut cells = Vec::new();
                for c in &columns.columns {
                    cells.push(match b.column_by_name(&c.name) {
                        Some(a) => cell_at(a.as_ref(), i)
                            .map_err(|e| SilverError::arrow(&table_name, e))?,
                        None => Cell::Null,
                    });
                }
                out.insert((path.clone(), p), (cells, issues_at(&b, i)));
            }
            pos += b.num_rows() as i64;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_keys_find_exactly_the_run_keys() {
        let run = [i64::MIN, -7, 0, 3, 1 << 40, i64::MAX];
        let keys = IntKeys::new(run.iter().copied());
        for (i, v) in run.iter().enumerate() {
            assert_eq!(keys.get(*v), Some(i), "{v}");
        }
        // Everything else, dense around the keys and spread far out.
        let others = (-100_000i64..100_000)
            .chain((0..100_000).map(|i| i * 7_919_113_111))
            .filter(|v| !run.contains(v));
        for v in others {
            assert_eq!(keys.get(v), None, "{v}");
        }
        let mut out = Vec::new();
        keys.hits(&[5i32, 3, -7, 3], |v| v as i64, &mut out);
        assert_eq!(out, vec![(1, 3), (2, 1), (3, 3)]);
        assert_eq!(IntKeys::new(std::iter::empty()).get(0), None);
    }
}
