//! A table's data files: the live ones of its current snapshot, and writing new ones (rows,
//! position deletes) for a commit to add.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::Int64Type;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, ManifestStatus, NestedField, PartitionKey,
    PartitionSpecRef, PrimitiveType, Schema, SnapshotRef, Struct, Type,
};
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::file::properties::WriterProperties;

use super::{Lake, LakeError, LakeTable};

/// A live file of the current snapshot.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub path: String,
    pub content: DataContentType,
    pub records: u64,
    /// Data sequence number.
    pub sequence_number: i64,
    pub size: u64,
    /// The partition spec it was written with, and its partition.
    pub spec_id: i32,
    pub partition: Struct,
}

/// The live files of the current snapshot whose data sequence number is above `after` (all of
/// them for `i64::MIN`); manifests that cannot hold such files are not read.
pub async fn live_files(table: &LakeTable, after: i64) -> Result<Vec<LiveFile>, LakeError> {
    match table.current_snapshot() {
        Some(snapshot) => live_files_at(table, snapshot, after).await,
        None => Ok(Vec::new()),
    }
}

/// The live files of `snapshot` (one of the table's) whose data sequence number is above
/// `after`.
pub async fn live_files_at(
    table: &LakeTable,
    snapshot: &SnapshotRef,
    after: i64,
) -> Result<Vec<LiveFile>, LakeError> {
    let name = table.name.to_string();
    let list = table
        .table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map_err(LakeError::iceberg(&name, "read the manifest list"))?;
    let mut out = Vec::new();
    for m in list.entries() {
        if m.sequence_number <= after {
            continue;
        }
        let manifest = m
            .load_manifest(table.table.file_io())
            .await
            .map_err(LakeError::iceberg(
                &name,
                format!("read {}", m.manifest_path),
            ))?;
        for e in manifest.entries() {
            let sequence_number = e.sequence_number().unwrap_or(0);
            if e.status() == ManifestStatus::Deleted || sequence_number <= after {
                continue;
            }
            out.push(LiveFile {
                path: e.file_path().to_string(),
                content: e.content_type(),
                records: e.record_count(),
                sequence_number,
                size: e.file_size_in_bytes(),
                spec_id: m.partition_spec_id,
                partition: e.data_file().partition().clone(),
            });
        }
    }
    Ok(out)
}

/// The row positions a position-delete file deletes, per data file path (ascending).
pub async fn read_position_deletes(
    table: &LakeTable,
    path: &str,
) -> Result<Vec<(String, Vec<i64>)>, LakeError> {
    let file_io = table.table.file_io();
    let table = &table.name.to_string();
    let mut out: Vec<(String, Vec<i64>)> = Vec::new();
    for b in read_with(file_io, table, path, None).await? {
        let (Some(p), Some(pos)) = (b.column_by_name("file_path"), b.column_by_name("pos")) else {
            return Err(LakeError::Invalid {
                table: table.to_string(),
                message: format!("{path} is a position-delete file without file_path/pos"),
            });
        };
        let p = arrow::compute::cast(p, &arrow::datatypes::DataType::Utf8).map_err(|e| {
            LakeError::Invalid {
                table: table.to_string(),
                message: format!("{path}: {e}"),
            }
        })?;
        let (Some(p), Some(pos)) = (
            p.as_string_opt::<i32>(),
            pos.as_primitive_opt::<Int64Type>(),
        ) else {
            return Err(LakeError::Invalid {
                table: table.to_string(),
                message: format!("{path}: file_path is not text or pos not a long"),
            });
        };
        // Runs of the same data file (delete files are sorted by path).
        let mut start = 0;
        while start < b.num_rows() {
            let file = p.value(start);
            let mut end = start + 1;
            while end < b.num_rows() && p.value(end) == file {
                end += 1;
            }
            let run = &pos.values()[start..end];
            match out.last_mut() {
                Some((last, positions)) if last == file => positions.extend_from_slice(run),
                _ => out.push((file.to_string(), run.to_vec())),
            }
            start = end;
        }
    }
    Ok(out)
}

/// A file of the table opened for Parquet's async reader (ranged reads, nothing read yet).
pub async fn open_reader(
    table: &LakeTable,
    path: &str,
) -> Result<iceberg::arrow::ArrowFileReader, LakeError> {
    let ice = |what: &str| LakeError::iceberg(&table.name, format!("{what} {path}"));
    let input = table.table.file_io().new_input(path).map_err(ice("open"))?;
    let meta = input.metadata().await.map_err(ice("stat"))?;
    let reader = input.reader().await.map_err(ice("open"))?;
    Ok(iceberg::arrow::ArrowFileReader::new(meta, reader))
}

/// Reads a Parquet data or delete file of the table, whole or only the rows at `positions`
/// (sorted, distinct), as it was written.
pub async fn read_file(
    lake: &Lake,
    table: &str,
    path: &str,
    positions: Option<&[i64]>,
) -> Result<Vec<RecordBatch>, LakeError> {
    read_with(lake.file_io(), table, path, positions).await
}

async fn read_with(
    file_io: &iceberg::io::FileIO,
    table: &str,
    path: &str,
    positions: Option<&[i64]>,
) -> Result<Vec<RecordBatch>, LakeError> {
    use parquet::arrow::arrow_reader::{
        ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
    };
    let bytes = file_io
        .new_input(path)
        .map_err(LakeError::iceberg(table, format!("open {path}")))?
        .read()
        .await
        .map_err(LakeError::iceberg(table, format!("read {path}")))?;
    let invalid = |e: parquet::errors::ParquetError| LakeError::Invalid {
        table: table.to_string(),
        message: format!("{path}: {e}"),
    };
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(invalid)?;
    if let Some(positions) = positions {
        let rows = builder.metadata().file_metadata().num_rows();
        let mut selectors = Vec::new();
        let mut at = 0i64;
        for &p in positions.iter().filter(|p| (0..rows).contains(*p)) {
            if p < at {
                continue;
            }
            if p > at {
                selectors.push(RowSelector::skip((p - at) as usize));
            }
            selectors.push(RowSelector::select(1));
            at = p + 1;
        }
        builder = builder.with_row_selection(RowSelection::from(selectors));
    }
    builder
        .build()
        .map_err(invalid)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LakeError::Invalid {
            table: table.to_string(),
            message: format!("{path}: {e}"),
        })
}

/// `batch` in the columns of `schema`, by name: a column the batch lacks (a file written
/// before it was added) is null, a narrower type is widened.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(arrow::array::new_null_array(f.data_type(), n)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
    )
}

/// The Iceberg schema of a position-delete file.
pub fn position_delete_schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(
                2147483546,
                "file_path",
                Type::Primitive(PrimitiveType::String),
            )),
            Arc::new(NestedField::required(
                2147483545,
                "pos",
                Type::Primitive(PrimitiveType::Long),
            )),
        ])
        .build()
        .expect("static schema")
}

/// Writes rows as data files of `table`, under its default partition spec.
pub async fn write_data(
    lake: &Lake,
    table: &LakeTable,
    schema: Arc<Schema>,
    batches: Vec<RecordBatch>,
    props: WriterProperties,
    target_size: usize,
) -> Result<Vec<DataFile>, LakeError> {
    let spec = table.metadata().default_partition_spec().clone();
    write_partitioned(lake, table, schema, &spec, batches, props, target_size).await
}

/// Writes rows as data files of `table` under `spec` (one the table has, or the one a commit
/// will add: [`super::commit::planned_spec`]), rolling files at `target_size` within each
/// partition.
pub async fn write_partitioned(
    lake: &Lake,
    table: &LakeTable,
    schema: Arc<Schema>,
    spec: &PartitionSpecRef,
    batches: Vec<RecordBatch>,
    props: WriterProperties,
    target_size: usize,
) -> Result<Vec<DataFile>, LakeError> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    if spec.is_unpartitioned() {
        // A key even so: it gives the files the spec's id.
        let key = PartitionKey::new(spec.as_ref().clone(), schema.clone(), Struct::empty());
        return write_keyed(lake, table, schema, key, batches, props, target_size).await;
    }
    let name = table.name.to_string();
    let ice = |what: &str| LakeError::iceberg(&name, what.to_string());
    let splitter =
        RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec.clone())
            .map_err(ice("partition the rows"))?;
    let rolling = rolling_writer(lake, table, schema, props, target_size, "")?;
    let mut writer = FanoutWriter::new(DataFileWriterBuilder::new(rolling));
    for b in batches {
        if b.num_rows() == 0 {
            continue;
        }
        for (key, part) in splitter.split(&b).map_err(ice("partition the rows"))? {
            writer
                .write(key, part)
                .await
                .map_err(ice("write a data file"))?;
        }
    }
    writer.close().await.map_err(ice("close a data file"))
}

/// Writes rows that all belong to the partition `key` as data files of `table`, rolling files
/// at `target_size`.
pub async fn write_keyed(
    lake: &Lake,
    table: &LakeTable,
    schema: Arc<Schema>,
    key: PartitionKey,
    batches: Vec<RecordBatch>,
    props: WriterProperties,
    target_size: usize,
) -> Result<Vec<DataFile>, LakeError> {
    let name = table.name.to_string();
    let ice = |what: &str| LakeError::iceberg(&name, what.to_string());
    let mut writer = open_data_writer(lake, table, schema, key, props, target_size).await?;
    for b in batches {
        if b.num_rows() > 0 {
            writer.write(b).await.map_err(ice("write a data file"))?;
        }
    }
    writer.close().await.map_err(ice("close a data file"))
}

/// Data files of one partition being written, rolled at a target size, in the order the rows
/// come (each file's rows follow the previous file's).
pub type DataWriter =
    DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Opens a [`DataWriter`] for rows of the partition `key` (`write`, then `close` for the files).
pub async fn open_data_writer(
    lake: &Lake,
    table: &LakeTable,
    schema: Arc<Schema>,
    key: PartitionKey,
    props: WriterProperties,
    target_size: usize,
) -> Result<DataWriter, LakeError> {
    let rolling = rolling_writer(lake, table, schema, props, target_size, "")?;
    DataFileWriterBuilder::new(rolling)
        .build(Some(key))
        .await
        .map_err(LakeError::iceberg(&table.name, "open a data file"))
}

/// Parquet files under the table's data folder, named `<uuid v7><suffix>-<n>.parquet`, rolled
/// at `target_size`.
fn rolling_writer(
    lake: &Lake,
    table: &LakeTable,
    schema: Arc<Schema>,
    props: WriterProperties,
    target_size: usize,
    suffix: &str,
) -> Result<
    RollingFileWriterBuilder<
        ParquetWriterBuilder,
        DefaultLocationGenerator,
        DefaultFileNameGenerator,
    >,
    LakeError,
> {
    Ok(RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, schema),
        target_size,
        lake.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata()).map_err(LakeError::iceberg(
            &table.name.to_string(),
            "locate data files",
        ))?,
        DefaultFileNameGenerator::new(
            format!("{}{suffix}", uuid::Uuid::now_v7()),
            None,
            DataFileFormat::Parquet,
        ),
    ))
}

/// Writes one position-delete file for `deletes` (data file path, row position), sorted as the
/// spec requires, for data files of an unpartitioned table.
pub async fn write_position_deletes(
    lake: &Lake,
    table: &LakeTable,
    deletes: Vec<(String, i64)>,
    props: WriterProperties,
) -> Result<Vec<DataFile>, LakeError> {
    let spec_id = table.metadata().default_partition_spec_id();
    write_partition_deletes(lake, table, deletes, props, spec_id, Struct::empty()).await
}

/// [`write_position_deletes`] for data files of the partition `partition` of spec `spec_id`.
pub async fn write_partition_deletes(
    lake: &Lake,
    table: &LakeTable,
    mut deletes: Vec<(String, i64)>,
    props: WriterProperties,
    spec_id: i32,
    partition: Struct,
) -> Result<Vec<DataFile>, LakeError> {
    if deletes.is_empty() {
        return Ok(Vec::new());
    }
    deletes.sort();
    deletes.dedup();
    let name = table.name.to_string();
    let ice = |what: &str| LakeError::iceberg(&name, what.to_string());
    let schema = Arc::new(position_delete_schema());
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema).map_err(ice("convert the schema"))?,
    );
    let referenced = {
        let first = &deletes[0].0;
        deletes.iter().all(|d| &d.0 == first).then(|| first.clone())
    };
    let batch = RecordBatch::try_new(
        arrow_schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                deletes.iter().map(|d| d.0.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(deletes.iter().map(|d| d.1))),
        ],
    )
    .map_err(|e| LakeError::Invalid {
        table: name.clone(),
        message: format!("position deletes: {e}"),
    })?;
    let rolling = rolling_writer(lake, table, schema, props, usize::MAX, "-deletes")?;
    let mut w = rolling.build();
    w.write(&None, &batch)
        .await
        .map_err(ice("write a delete file"))?;
    let mut out = Vec::new();
    for mut b in w.close().await.map_err(ice("close a delete file"))? {
        b.content(DataContentType::PositionDeletes)
            .partition(partition.clone())
            .partition_spec_id(spec_id);
        if let Some(r) = &referenced {
            b.referenced_data_file(Some(r.clone()));
        }
        out.push(b.build().map_err(|e| LakeError::Invalid {
            table: name.clone(),
            message: format!("delete file: {e}"),
        })?);
    }
    Ok(out)
}
