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
    Columns, META_BINLOG_FILE, META_BINLOG_POS, META_BINLOG_ROW, META_ISSUES, META_LSN,
    META_OFFSET, META_OP, META_PARTITION, META_UPDATED_AT,
};
use super::decode::Cell;
use super::files::{LiveFile, Rows, live_files, read_parquet};
use super::merge::DqIssue;
use super::write::{OutRow, cell_at, cells_to_array};
use crate::lake::LakeTable;

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
async fn read_file(
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
async fn deleted_positions(
    table: &LakeTable,
    files: &[LiveFile],
) -> Result<HashMap<String, HashSet<i64>>, SilverError> {
    let mut out: HashMap<String, HashSet<i64>> = HashMap::new();
    for f in files {
        match f.content {
            DataContentType::Data => {}
            DataContentType::PositionDeletes => {
                for b in read_file(table, &f.path, None).await? {
                    let (Some(p), Some(pos)) =
                        (b.column_by_name("file_path"), b.column_by_name("pos"))
                    else {
                        return Err(SilverError::File {
                            table: table.name.to_string(),
                            file: f.path.clone(),
                            message: "a position-delete file without file_path/pos".into(),
                        });
                    };
                    let p = arrow::compute::cast(p, &DataType::Utf8)
                        .map_err(|e| SilverError::arrow(&table.name.to_string(), e))?;
                    let p = p.as_string::<i32>();
                    let pos = pos.as_primitive::<Int64Type>();
                    for i in 0..b.num_rows() {
                        out.entry(p.value(i).to_string())
                            .or_default()
                            .insert(pos.value(i));
                    }
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

/// The key converter for a table's key columns.
pub fn key_converter(
    columns: &Columns,
    arrow_schema: &arrow::datatypes::Schema,
) -> Result<RowConverter, SilverError> {
    let fields = columns
        .key
        .iter()
        .map(|k| {
            arrow_schema
                .field_with_name(k)
                .map(|f| SortField::new(f.data_type().clone()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SilverError::arrow("key columns", e))?;
    RowConverter::new(fields).map_err(|e| SilverError::arrow("key columns", e))
}

/// Source position of row `i` from medallion's columns.
fn position_at(b: &RecordBatch, i: usize) -> SourcePosition {
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

fn issues_at(b: &RecordBatch, i: usize) -> Vec<DqIssue> {
    let Some(l) = b
        .column_by_name(META_ISSUES)
        .and_then(|c| c.as_list_opt::<i32>())
    else {
        return Vec::new();
    };
    if l.is_null(i) {
        return Vec::new();
    }
    let v = l.value(i);
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

/// The keys a scan looks for.
pub struct Lookup<'a> {
    pub converter: &'a RowConverter,
    /// Outcome index by key row.
    pub keys: &'a HashMap<Box<[u8]>, usize>,
    pub outcomes: usize,
}

/// Scans the table for the keys of `lookup`. With `rewrite`, every live row is also returned
/// as an [`OutRow`] in the new column layout; `defaults` fills the columns older files lack.
pub async fn scan(
    table: &LakeTable,
    columns: &Columns,
    arrow_schema: &arrow::datatypes::Schema,
    lookup: Lookup<'_>,
    rewrite: bool,
    defaults: &[Cell],
) -> Result<Scan, SilverError> {
    let Lookup {
        converter,
        keys,
        outcomes,
    } = lookup;
    let files = live_files(table, i64::MIN).await?;
    let deleted = deleted_positions(table, &files).await?;
    let mut scan = Scan {
        existing: vec![Existing::default(); outcomes],
        ..Default::default()
    };
    let mut wanted: Vec<&str> = columns.key.iter().map(String::as_str).collect();
    wanted.extend([
        META_OP,
        META_LSN,
        META_BINLOG_FILE,
        META_BINLOG_POS,
        META_BINLOG_ROW,
        META_UPDATED_AT,
        META_PARTITION,
        META_OFFSET,
    ]);
    let table_name = table.name.to_string();
    // The current type of each column (older files may hold a narrower one).
    let types: Vec<&DataType> = columns
        .columns
        .iter()
        .map(|c| arrow_schema.field_with_name(&c.name).map(|f| f.data_type()))
        .collect::<Result<_, _>>()
        .map_err(|e| SilverError::arrow(&table_name, e))?;
    for f in files.iter().filter(|f| f.content == DataContentType::Data) {
        let batches = read_file(table, &f.path, (!rewrite).then_some(&wanted[..])).await?;
        let dead = deleted.get(&f.path);
        let path: Arc<str> = Arc::from(f.path.as_str());
        let mut pos: i64 = 0;
        for b in batches {
            let key_cols: Vec<ArrayRef> = columns
                .key
                .iter()
                .map(|k| {
                    let c = b.column_by_name(k).ok_or_else(|| SilverError::File {
                        table: table_name.clone(),
                        file: f.path.clone(),
                        message: format!("key column {k} is missing"),
                    })?;
                    let want = arrow_schema
                        .field_with_name(k)
                        .map_err(|e| SilverError::arrow(&table_name, e))?
                        .data_type();
                    if c.data_type() == want {
                        Ok(c.clone())
                    } else {
                        arrow::compute::cast(c, want)
                            .map_err(|e| SilverError::arrow(&table_name, e))
                    }
                })
                .collect::<Result<_, SilverError>>()?;
            let rows = converter
                .convert_columns(&key_cols)
                .map_err(|e| SilverError::arrow(&table_name, e))?;
            let ops = ops(&b);
            // A rewrite carries every column: found once per batch, absent in older files.
            let arrays: Vec<Option<&ArrayRef>> = if rewrite {
                columns
                    .columns
                    .iter()
                    .map(|c| b.column_by_name(&c.name))
                    .collect()
            } else {
                Vec::new()
            };
            for i in 0..b.num_rows() {
                let p = pos + i as i64;
                scan.rows_scanned += 1;
                let is_live = !dead.is_some_and(|d| d.contains(&p));
                let op = op_at(ops, i);
                let hit = keys.get(rows.row(i).as_ref()).copied();
                if let Some(oi) = hit {
                    let order = position_at(&b, i).order();
                    let e = &mut scan.existing[oi];
                    if e.newest.is_none_or(|n| n < order) {
                        e.newest = Some(order);
                    }
                    if is_live && op != "d" {
                        e.live = Some((path.clone(), p));
                    }
                }
                // Tombstone rows are never live; carry them in a rewrite.
                let carry = rewrite && (is_live || op == "d");
                if is_live && op != "d" {
                    scan.live_rows += 1;
                }
                if carry {
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
                        },
                        hit,
                    ));
                }
            }
            pos += b.num_rows() as i64;
        }
    }
    scan.files = files.into_iter().map(|f| f.path).collect();
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

/// Key rows for typed key cells.
pub fn key_rows(
    converter: &RowConverter,
    arrow_schema: &arrow::datatypes::Schema,
    key_names: &[String],
    keys: &[Vec<Cell>],
) -> Result<Vec<Box<[u8]>>, SilverError> {
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (j, k) in key_names.iter().enumerate() {
        let dt = arrow_schema
            .field_with_name(k)
            .map_err(|e| SilverError::arrow("key columns", e))?
            .data_type();
        let cells: Vec<&Cell> = keys.iter().map(|k| &k[j]).collect();
        cols.push(cells_to_array(&cells, dt).map_err(|e| SilverError::arrow("key columns", e))?);
    }
    let rows = converter
        .convert_columns(&cols)
        .map_err(|e| SilverError::arrow("key columns", e))?;
    Ok(rows.iter().map(|r| Box::from(r.as_ref())).collect())
}
