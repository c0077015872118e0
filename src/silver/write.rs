//! Silver rows to Arrow and Parquet: data files for new rows, and position-delete files for the
//! rows they replace.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int32Array, Int64Array, LargeBinaryBuilder, ListArray, RecordBatch,
    StringArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    SchemaRef, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;

use super::changes::SourcePosition;
use super::columns::{
    Columns, META_BINLOG_FILE, META_BINLOG_POS, META_BINLOG_ROW, META_FAILED, META_ISSUES,
    META_LSN, META_OFFSET, META_OK, META_OP, META_PARTITION, META_UPDATED_AT,
};
use super::decode::Cell;
use super::merge::DqIssue;

/// A row as written: the source columns, then medallion's.
#[derive(Debug, Clone)]
pub struct OutRow {
    pub cells: Vec<Cell>,
    pub op: &'static str,
    pub position: SourcePosition,
    pub issues: Vec<DqIssue>,
    /// The `warn` expectations it failed.
    pub failed: Vec<Arc<str>>,
}

impl OutRow {
    /// `_dq_ok`: nothing flagged.
    pub fn ok(&self) -> bool {
        self.issues.is_empty() && self.failed.is_empty()
    }
}

/// The Arrow batch of `rows` in the table's Arrow schema.
pub fn to_batch(
    rows: &[OutRow],
    schema: SchemaRef,
    columns: &Columns,
) -> Result<RecordBatch, ArrowError> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let array: ArrayRef = if let Some(ci) = columns.index(name) {
            let cells: Vec<&Cell> = rows.iter().map(|r| &r.cells[ci]).collect();
            cells_to_array(&cells, field.data_type())?
        } else {
            match name {
                META_OP => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.op))),
                META_LSN => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.position.lsn))),
                META_BINLOG_FILE => Arc::new(StringArray::from_iter(
                    rows.iter().map(|r| r.position.binlog_file.as_deref()),
                )),
                META_BINLOG_POS => Arc::new(Int64Array::from_iter(
                    rows.iter().map(|r| r.position.binlog_pos),
                )),
                META_BINLOG_ROW => Arc::new(Int32Array::from_iter(
                    rows.iter().map(|r| r.position.binlog_row),
                )),
                META_UPDATED_AT => Arc::new(
                    TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.position.ts_us))
                        .with_timezone("+00:00"),
                ),
                META_PARTITION => Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|r| r.position.partition),
                )),
                META_OFFSET => Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.position.offset),
                )),
                META_ISSUES => issues_array(rows, field.data_type())?,
                META_FAILED => failed_array(rows, field.data_type())?,
                META_OK => Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.ok())))),
                other => {
                    return Err(ArrowError::SchemaError(format!(
                        "silver does not know how to fill column {other}"
                    )));
                }
            }
        };
        let array = if array.data_type() != field.data_type() {
            arrow::compute::cast(&array, field.data_type())?
        } else {
            array
        };
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays)
}

/// `_dq_failed`: null where the row failed no expectation.
fn failed_array(rows: &[OutRow], dt: &DataType) -> Result<ArrayRef, ArrowError> {
    let lists: Vec<&[Arc<str>]> = rows.iter().map(|r| r.failed.as_slice()).collect();
    string_lists(&lists, dt, META_FAILED)
}

/// A `list<string>` column (type `dt`, named `column` in errors); an empty list is null.
pub fn string_lists<S: AsRef<str>>(
    lists: &[&[S]],
    dt: &DataType,
    column: &str,
) -> Result<ArrayRef, ArrowError> {
    let DataType::List(item) = dt else {
        return Err(ArrowError::SchemaError(format!("{column} is {dt:?}")));
    };
    let mut offsets = vec![0i32];
    let mut names: Vec<&str> = Vec::new();
    for l in lists {
        names.extend(l.iter().map(|n| n.as_ref()));
        offsets.push(names.len() as i32);
    }
    Ok(Arc::new(ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(StringArray::from(names)),
        Some(NullBuffer::from_iter(lists.iter().map(|l| !l.is_empty()))),
    )?))
}

fn issues_array(rows: &[OutRow], dt: &DataType) -> Result<ArrayRef, ArrowError> {
    let DataType::List(item) = dt else {
        return Err(ArrowError::SchemaError(format!("{META_ISSUES} is {dt:?}")));
    };
    let DataType::Struct(fields) = item.data_type() else {
        return Err(ArrowError::SchemaError(format!(
            "{META_ISSUES} items are {item:?}"
        )));
    };
    let mut offsets = vec![0i32];
    let (mut col, mut reason, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let mut valid = Vec::with_capacity(rows.len());
    for r in rows {
        for i in &r.issues {
            col.push(i.column.clone());
            reason.push(i.reason.clone());
            raw.push(i.raw.clone());
        }
        offsets.push(col.len() as i32);
        valid.push(!r.issues.is_empty());
    }
    let values = StructArray::try_new(
        fields.clone(),
        vec![
            Arc::new(StringArray::from(col)),
            Arc::new(StringArray::from(reason)),
            Arc::new(StringArray::from(raw)),
        ],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        Some(NullBuffer::from(valid)),
    )?))
}

fn bad(c: &Cell, dt: &DataType) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("cell {c:?} does not fit {dt:?}"))
}

/// Cells of one column to an Arrow array of type `dt`.
pub fn cells_to_array(cells: &[&Cell], dt: &DataType) -> Result<ArrayRef, ArrowError> {
    macro_rules! prim {
        ($arr:ty, $variant:ident) => {{
            let mut v = Vec::with_capacity(cells.len());
            for c in cells {
                v.push(match c {
                    Cell::Null => None,
                    Cell::$variant(x) => Some(*x),
                    other => return Err(bad(other, dt)),
                });
            }
            Arc::new(<$arr>::from(v)) as ArrayRef
        }};
    }
    Ok(match dt {
        DataType::Boolean => prim!(BooleanArray, Boolean),
        DataType::Int32 => prim!(Int32Array, Int),
        DataType::Date32 => prim!(Date32Array, Int),
        DataType::Int64 => prim!(Int64Array, Long),
        DataType::Float32 => prim!(Float32Array, Float),
        DataType::Float64 => prim!(Float64Array, Double),
        DataType::Time64(TimeUnit::Microsecond) => prim!(Time64MicrosecondArray, Long),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let a = prim!(TimestampMicrosecondArray, Long);
            let a = a.as_primitive::<TimestampMicrosecondType>().clone();
            Arc::new(a.with_timezone_opt(tz.clone()))
        }
        DataType::Decimal128(p, s) => {
            let a = prim!(Decimal128Array, Decimal);
            let a = a.as_primitive::<Decimal128Type>().clone();
            Arc::new(a.with_precision_and_scale(*p, *s)?)
        }
        DataType::Utf8 => {
            let mut v: Vec<Option<&str>> = Vec::with_capacity(cells.len());
            for c in cells {
                v.push(match c {
                    Cell::Null => None,
                    Cell::String(s) => Some(s.as_str()),
                    other => return Err(bad(other, dt)),
                });
            }
            Arc::new(StringArray::from(v))
        }
        DataType::Binary | DataType::LargeBinary => {
            let large = matches!(dt, DataType::LargeBinary);
            let mut b = BinaryBuilder::new();
            let mut lb = LargeBinaryBuilder::new();
            for c in cells {
                match c {
                    Cell::Null if large => lb.append_null(),
                    Cell::Null => b.append_null(),
                    Cell::Binary(x) if large => lb.append_value(x),
                    Cell::Binary(x) => b.append_value(x),
                    other => return Err(bad(other, dt)),
                }
            }
            if large {
                Arc::new(lb.finish())
            } else {
                Arc::new(b.finish())
            }
        }
        DataType::List(item) => {
            let mut offsets = vec![0i32];
            let mut children: Vec<&Cell> = Vec::new();
            let mut valid = Vec::with_capacity(cells.len());
            for c in cells {
                match c {
                    Cell::Null => valid.push(false),
                    Cell::List(xs) => {
                        children.extend(xs.iter());
                        valid.push(true);
                    }
                    other => return Err(bad(other, dt)),
                }
                offsets.push(children.len() as i32);
            }
            let values = cells_to_array(&children, item.data_type())?;
            Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::new(offsets.into()),
                values,
                Some(NullBuffer::from(valid)),
            )?)
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "silver cannot write {other:?}"
            )));
        }
    })
}

/// The cell at row `i` of `array`.
pub fn cell_at(array: &dyn Array, i: usize) -> Result<Cell, ArrowError> {
    if array.is_null(i) {
        return Ok(Cell::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Cell::Boolean(array.as_boolean().value(i)),
        DataType::Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(i)),
        DataType::Date32 => Cell::Int(array.as_primitive::<Date32Type>().value(i)),
        DataType::Int64 => Cell::Long(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => Cell::Float(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => Cell::Double(array.as_primitive::<Float64Type>().value(i)),
        DataType::Time64(TimeUnit::Microsecond) => {
            Cell::Long(array.as_primitive::<Time64MicrosecondType>().value(i))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Cell::Long(array.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::Decimal128(_, _) => {
            Cell::Decimal(array.as_primitive::<Decimal128Type>().value(i))
        }
        DataType::Utf8 => Cell::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Cell::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Cell::String(array.as_string_view().value(i).to_string()),
        DataType::Binary => Cell::Binary(array.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Cell::Binary(array.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Cell::Binary(array.as_binary_view().value(i).to_vec()),
        DataType::List(_) => {
            let l = array.as_list::<i32>();
            let v = l.value(i);
            Cell::List(
                (0..v.len())
                    .map(|j| cell_at(&v, j))
                    .collect::<Result<_, _>>()?,
            )
        }
        DataType::LargeList(_) => {
            let l = array.as_list::<i64>();
            let v = l.value(i);
            Cell::List(
                (0..v.len())
                    .map(|j| cell_at(&v, j))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => {
            return Err(ArrowError::NotYetImplemented(format!(
                "silver cannot read {other:?}"
            )));
        }
    })
}
