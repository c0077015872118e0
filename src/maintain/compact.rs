//! Compaction: the small data files of a partition, and the files that position deletes have
//! thinned out, are rewritten into files of the target size with the deleted rows dropped; the
//! partition's position-delete files become at most one. Each partition is one `replace`
//! snapshot whose new files keep the data sequence number of the newest file they replace, so a
//! reader that follows sequence numbers (silver reading bronze) sees nothing new.
//!
//! A compaction is planned against one snapshot and may finish after other writers committed.
//! Appends are no concern. Position deletes that landed meanwhile on rows being rewritten are
//! carried over to the rows' new places (their positions in the new files are known), so the
//! pipeline never has to stop for maintenance and nothing it commits is lost; a partition some
//! file of which another writer removed meanwhile is skipped (and its new files deleted).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{SchemaRef as ArrowSchemaRef, TimestampMicrosecondType};
use futures::TryStreamExt;
use iceberg::arrow::ArrowFileReader;
use iceberg::spec::{DataContentType, DataFile, PartitionKey, Struct};
use iceberg::writer::IcebergWriter;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::file::properties::WriterProperties;

use crate::catalog::TableName;
use crate::lake::data::{open_data_writer, open_reader, write_partition_deletes};
use crate::lake::{
    Change, Lake, LakeError, LakeTable, LiveFile, conform, live_files, read_position_deletes,
};

/// The `medallion.writer` of compaction commits.
pub const WRITER: &str = "maintain (compaction)";

/// A file with at least this share of its rows deleted is rewritten even when large.
pub const DELETED_SHARE: f64 = 0.2;

/// What to compact, and how to write.
#[derive(Debug, Clone)]
pub struct Policy {
    pub target_size: u64,
    /// Data files below this size are small.
    pub small_size: u64,
    /// A partition's small files are rewritten once there are this many.
    pub min_input_files: usize,
    /// Only data files with a data sequence number at most this (bronze: what every silver
    /// reader has applied, so no reader's next increment is reshuffled).
    pub max_sequence: Option<i64>,
    /// Silver current-state tables: deleted rows that are tombstones (`_op = 'd'`) are kept,
    /// deleted again, so a replayed older event still finds the delete, if they are recent:
    /// committed (by the snapshot of their file) or changed at the source (`_updated_at`) at
    /// or after this time (microseconds since the epoch).
    pub keep_tombstones_since: Option<i64>,
    pub props: WriterProperties,
}

/// What a compaction did to a table.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub partitions: usize,
    pub data_files_rewritten: usize,
    pub data_files_written: usize,
    pub delete_files_removed: usize,
    pub delete_files_written: usize,
    /// Deleted rows dropped from the rewritten files.
    pub rows_dropped: u64,
    /// Position deletes committed by others meanwhile, moved onto the new files.
    pub deletes_rebased: u64,
    /// Commits by others between the plan and the compaction's own commits.
    pub commits_meanwhile: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Partitions left alone, with the reason.
    pub skipped: Vec<String>,
}

/// A partition of a partition spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Partition {
    spec_id: i32,
    values: Struct,
}

/// The work planned for one partition.
struct Job {
    partition: Partition,
    /// Data files to rewrite, in data sequence order.
    inputs: Vec<LiveFile>,
    /// The partition's position-delete files, all replaced by at most one.
    delete_files: Vec<LiveFile>,
}

/// Where the rows of a rewritten file went: the first new position of its first kept row and
/// the positions that were dropped (ascending).
struct Moved {
    start: u64,
    dropped: Vec<i64>,
}

/// Compacts the table `name` under `policy`, one partition after the other (each written,
/// then committed).
pub async fn compact(lake: &Lake, name: &TableName, policy: &Policy) -> Result<Report, LakeError> {
    let mut report = Report::default();
    let Some(plan) = plan(lake, name, policy).await? else {
        return Ok(report);
    };
    report.skipped.extend(plan.skipped.iter().cloned());
    for (i, job) in plan.jobs.iter().enumerate() {
        if let Some(written) = write(lake, &plan, job, policy, &mut report).await? {
            let last = i + 1 == plan.jobs.len();
            commit(lake, &plan, written, policy, last, &mut report).await?;
        }
    }
    Ok(report)
}

/// A compaction with every partition's files written and nothing committed yet (to interleave
/// other writers' commits in tests; [`compact`] commits each partition as soon as it is written).
pub struct Prepared {
    plan: Plan,
    written: Vec<Written>,
    report: Report,
}

/// Plans the compaction of `name` and writes every partition's new files.
pub async fn prepare(
    lake: &Lake,
    name: &TableName,
    policy: &Policy,
) -> Result<Prepared, LakeError> {
    let mut report = Report::default();
    let plan = match plan(lake, name, policy).await? {
        Some(p) => p,
        None => Plan {
            table: lake.load_existing(name).await?,
            planned: 0,
            jobs: Vec::new(),
            deleted: HashMap::new(),
            runs: HashMap::new(),
            live: HashSet::new(),
            skipped: Vec::new(),
        },
    };
    report.skipped.extend(plan.skipped.iter().cloned());
    let mut written = Vec::new();
    for job in &plan.jobs {
        written.extend(write(lake, &plan, job, policy, &mut report).await?);
    }
    Ok(Prepared {
        plan,
        written,
        report,
    })
}

impl Prepared {
    /// Commits every partition written, fitting each to what others committed meanwhile.
    pub async fn commit(self, lake: &Lake, policy: &Policy) -> Result<Report, LakeError> {
        let mut report = self.report;
        let n = self.written.len();
        for (i, w) in self.written.into_iter().enumerate() {
            commit(lake, &self.plan, w, policy, i + 1 == n, &mut report).await?;
        }
        Ok(report)
    }
}

/// What a compaction will rewrite, planned against one snapshot.
struct Plan {
    table: LakeTable,
    planned: i64,
    jobs: Vec<Job>,
    /// Deleted positions per data file (ascending).
    deleted: HashMap<String, Vec<i64>>,
    /// What each delete file deletes.
    runs: HashMap<String, Vec<(String, Vec<i64>)>>,
    /// The live data files.
    live: HashSet<String>,
    /// Partitions left alone, with the reason.
    skipped: Vec<String>,
}

async fn plan(lake: &Lake, name: &TableName, policy: &Policy) -> Result<Option<Plan>, LakeError> {
    let table = lake.load_existing(name).await?;
    let Some(snapshot) = table.current_snapshot() else {
        return Ok(None);
    };
    let planned = snapshot.snapshot_id();
    let files = live_files(&table, i64::MIN).await?;
    if let Some(f) = files
        .iter()
        .find(|f| f.content == DataContentType::EqualityDeletes)
    {
        return Err(LakeError::Invalid {
            table: name.to_string(),
            message: format!(
                "{} is an equality-delete file (written by another tool); compaction folds position deletes only, so this table is left alone",
                f.path
            ),
        });
    }
    // Every deleted position, per data file; what each delete file deletes.
    let mut deleted: HashMap<String, Vec<i64>> = HashMap::new();
    let mut runs: HashMap<String, Vec<(String, Vec<i64>)>> = HashMap::new();
    let mut delete_files: HashMap<Partition, Vec<LiveFile>> = HashMap::new();
    let mut data: HashMap<Partition, Vec<LiveFile>> = HashMap::new();
    for f in files {
        let partition = Partition {
            spec_id: f.spec_id,
            values: f.partition.clone(),
        };
        if f.content == DataContentType::PositionDeletes {
            let its = read_position_deletes(&table, &f.path).await?;
            for (path, positions) in &its {
                deleted.entry(path.clone()).or_default().extend(positions);
            }
            runs.insert(f.path.clone(), its);
            delete_files.entry(partition).or_default().push(f);
        } else {
            data.entry(partition).or_default().push(f);
        }
    }
    for positions in deleted.values_mut() {
        positions.sort_unstable();
        positions.dedup();
    }
    let live: HashSet<String> = data.values().flatten().map(|f| f.path.clone()).collect();

    let mut partitions: Vec<&Partition> = data.keys().chain(delete_files.keys()).collect();
    partitions.sort_by_key(|p| format!("{p:?}"));
    partitions.dedup();
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    let default_spec = table.metadata().default_partition_spec_id();
    for p in partitions {
        let files = data.get(p).map(Vec::as_slice).unwrap_or_default();
        let deletes = delete_files.get(p).cloned().unwrap_or_default();
        let thinned = |f: &LiveFile| {
            let n = deleted.get(&f.path).map_or(0, Vec::len) as f64;
            n > 0.0 && n >= DELETED_SHARE * f.records as f64
        };
        let mut inputs: Vec<LiveFile> = files
            .iter()
            .filter(|f| policy.max_sequence.is_none_or(|m| f.sequence_number <= m))
            .filter(|f| f.size < policy.small_size || thinned(f))
            .cloned()
            .collect();
        let small = inputs.iter().filter(|f| f.size < policy.small_size).count();
        if small < policy.min_input_files && !inputs.iter().any(thinned) {
            inputs.clear();
        }
        // Delete files are merged when there are several, or some name files no longer live.
        let dangling = names_dead_files(&deletes, &runs, &live);
        if inputs.is_empty() && deletes.len() < 2 && !dangling {
            continue;
        }
        if p.spec_id != default_spec {
            // A commit adds files under the default spec only.
            skipped.push(format!(
                "spec {} partition {:?}: written with an older partition spec (the table's is {default_spec}); rebuild or rewrite the table to compact it",
                p.spec_id, p.values
            ));
            continue;
        }
        inputs.sort_by(|a, b| (a.sequence_number, &a.path).cmp(&(b.sequence_number, &b.path)));
        jobs.push(Job {
            partition: p.clone(),
            inputs,
            delete_files: deletes,
        });
    }

    Ok(Some(Plan {
        table,
        planned,
        jobs,
        deleted,
        runs,
        live,
        skipped,
    }))
}

/// A partition's new files, written and not committed.
struct Written {
    label: String,
    inputs: usize,
    delete_files: usize,
    outputs: Vec<DataFile>,
    added_deletes: Vec<DataFile>,
    /// Where each rewritten file's rows went.
    moved: HashMap<String, Moved>,
    placed: Placement,
    removed: HashSet<String>,
    /// The data sequence number the new files keep.
    newest: i64,
    partition: Partition,
}

/// Writes one partition's new data files and its one delete file; `None` when that would
/// change nothing (one file, no row dropped, no delete file to merge away).
async fn write(
    lake: &Lake,
    plan: &Plan,
    job: &Job,
    policy: &Policy,
    report: &mut Report,
) -> Result<Option<Written>, LakeError> {
    let table = &plan.table;
    let name = &table.name;
    let label = name.to_string();
    let md = table.metadata();
    let schema = md.current_schema().clone();
    let arrow_schema: ArrowSchemaRef = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(LakeError::iceberg(name, "convert the schema"))?,
    );
    let spec = md
        .partition_spec_by_id(job.partition.spec_id)
        .cloned()
        .ok_or_else(|| LakeError::Invalid {
            table: label.clone(),
            message: format!(
                "its manifests name partition spec {}, which its metadata does not have: the metadata is inconsistent; compaction leaves the table alone",
                job.partition.spec_id
            ),
        })?;
    let input_paths: HashSet<&str> = job.inputs.iter().map(|f| f.path.as_str()).collect();

    // The rows of the inputs, in order, less the deleted ones (tombstones kept when asked).
    let mut moved: HashMap<String, Moved> = HashMap::new();
    let mut redeleted: Vec<u64> = Vec::new();
    let mut outputs: Vec<DataFile> = Vec::new();
    let mut dropped_here = 0;
    if !job.inputs.is_empty() {
        let key = PartitionKey::new(
            spec.as_ref().clone(),
            schema.clone(),
            job.partition.values.clone(),
        );
        let mut writer = open_data_writer(
            lake,
            table,
            schema.clone(),
            key,
            policy.props.clone(),
            policy.target_size as usize,
        )
        .await?;
        let mut written: u64 = 0;
        for f in &job.inputs {
            let dead = plan
                .deleted
                .get(&f.path)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let start = written;
            let mut dropped = Vec::new();
            let mut pos: i64 = 0;
            // The file's commit time: a tombstone committed recently is kept whatever its
            // source time (a backfill of old rows).
            let committed_recently = md
                .snapshots()
                .find(|s| s.sequence_number() == f.sequence_number)
                .is_some_and(|s| {
                    policy
                        .keep_tombstones_since
                        .is_some_and(|since| s.timestamp_ms() * 1000 >= since)
                });
            let mut stream = parquet_stream(table, &f.path).await?;
            while let Some(batch) = stream.try_next().await.map_err(|e| LakeError::Invalid {
                table: label.clone(),
                message: format!("{}: {e}", f.path),
            })? {
                let since = match policy.keep_tombstones_since {
                    Some(_) if committed_recently => Some(i64::MIN),
                    since => since,
                };
                let tombstone = tombstones(&batch, since);
                let mut keep = Vec::with_capacity(batch.num_rows());
                for i in 0..batch.num_rows() {
                    let p = pos + i as i64;
                    let is_dead = dead.binary_search(&p).is_ok();
                    let kept = !is_dead || tombstone.as_ref().is_some_and(|t| t.value(i));
                    if kept {
                        if is_dead {
                            redeleted.push(written);
                        }
                        written += 1;
                    } else {
                        dropped.push(p);
                    }
                    keep.push(kept);
                }
                pos += batch.num_rows() as i64;
                let batch = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
                    .and_then(|b| conform(&b, &arrow_schema))
                    .map_err(|e| LakeError::Invalid {
                        table: label.clone(),
                        message: format!("{}: {e}", f.path),
                    })?;
                if batch.num_rows() > 0 {
                    writer
                        .write(batch)
                        .await
                        .map_err(LakeError::iceberg(name, "write a data file"))?;
                }
            }
            dropped_here += dropped.len() as u64;
            report.bytes_read += f.size;
            moved.insert(f.path.clone(), Moved { start, dropped });
        }
        outputs = writer
            .close()
            .await
            .map_err(LakeError::iceberg(name, "close a data file"))?;
        let total: u64 = outputs.iter().map(|f| f.record_count()).sum();
        if total != written {
            return Err(LakeError::Invalid {
                table: label,
                message: format!(
                    "compacting spec {} partition {:?}: wrote {written} rows but the new files hold {total}; nothing was committed",
                    job.partition.spec_id, job.partition.values
                ),
            });
        }
    }
    let dangling = names_dead_files(&job.delete_files, &plan.runs, &plan.live);
    if job.inputs.len() <= 1 && dropped_here == 0 && job.delete_files.len() <= 1 && !dangling {
        // Rewriting would give the same rows in the same number of files.
        discard(lake, outputs.iter()).await;
        return Ok(None);
    }
    report.rows_dropped += dropped_here;
    let placed = Placement::new(&outputs);

    // The partition's one delete file: the deletes of files not rewritten, and the kept
    // tombstones at their new places.
    // Deletes of files no longer live (dangling) are dropped.
    let mut deletes: Vec<(String, i64)> = Vec::new();
    for f in &job.delete_files {
        for (path, positions) in plan
            .runs
            .get(&f.path)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if !input_paths.contains(path.as_str()) && plan.live.contains(path) {
                deletes.extend(positions.iter().map(|&p| (path.clone(), p)));
            }
        }
    }
    deletes.extend(redeleted.iter().map(|&at| placed.at(at)));
    let added_deletes = write_partition_deletes(
        lake,
        table,
        deletes,
        policy.props.clone(),
        job.partition.spec_id,
        job.partition.values.clone(),
    )
    .await?;

    let mut removed: HashSet<String> = job.inputs.iter().map(|f| f.path.clone()).collect();
    removed.extend(job.delete_files.iter().map(|f| f.path.clone()));
    let newest = job
        .inputs
        .iter()
        .map(|f| f.sequence_number)
        .max()
        .unwrap_or(0);
    Ok(Some(Written {
        label: format!(
            "spec {} partition {:?}",
            job.partition.spec_id, job.partition.values
        ),
        inputs: job.inputs.len(),
        delete_files: job.delete_files.len(),
        outputs,
        added_deletes,
        moved,
        placed,
        removed,
        newest,
        partition: job.partition.clone(),
    }))
}

/// Commits a written partition, fitting it to what others committed since the plan: their
/// deletes of rewritten rows move to the new files; if a file it replaces is gone, the
/// partition is skipped (reported) and its new files deleted.
async fn commit(
    lake: &Lake,
    plan: &Plan,
    w: Written,
    policy: &Policy,
    last: bool,
    report: &mut Report,
) -> Result<(), LakeError> {
    let name = &plan.table.name;
    let planned = plan.planned;
    let Written {
        label,
        outputs,
        added_deletes,
        moved,
        placed,
        removed,
        newest,
        partition,
        ..
    } = &w;
    let summary = BTreeMap::from([("medallion.writer".to_string(), WRITER.to_string())]);
    let planned_seq = plan
        .table
        .metadata()
        .snapshot_by_id(planned)
        .map(|s| s.sequence_number())
        .unwrap_or(0);
    let ours: HashSet<String> = outputs
        .iter()
        .chain(added_deletes)
        .map(|f| f.file_path().to_string())
        .collect();
    let mut backoff = lake.retry.backoff();
    let mut rebase_files: Vec<DataFile> = Vec::new();
    loop {
        let now = lake.load_existing(name).await?;
        let mut extra_deletes = Vec::new();
        let mut rebased = 0;
        if now.current_snapshot().map(|s| s.snapshot_id()) != Some(planned) {
            let files = live_files(&now, i64::MIN).await?;
            let paths: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            if ours.iter().any(|p| paths.contains(p.as_str())) {
                // An earlier attempt did commit (its answer was lost): done.
                report.partitions += 1;
                report.data_files_rewritten += w.inputs;
                report.data_files_written += outputs.len();
                report.delete_files_removed += w.delete_files;
                return Ok(());
            }
            if let Some(gone) = removed.iter().find(|p| !paths.contains(p.as_str())) {
                discard(
                    lake,
                    outputs.iter().chain(added_deletes).chain(&rebase_files),
                )
                .await;
                let reason = format!("{gone} was removed by another writer while compacting");
                tracing::warn!(table = %name, partition = %label, reason, "partition not compacted");
                report.skipped.push(format!("{label}: {reason}"));
                return Ok(());
            }
            // Deletes others added since the plan that hit rewritten rows.
            let mut moved_deletes = Vec::new();
            for f in files.iter().filter(|f| {
                f.content == DataContentType::PositionDeletes
                    && f.sequence_number > planned_seq
                    && !ours.contains(&f.path)
            }) {
                for (path, positions) in read_position_deletes(&now, &f.path).await? {
                    if let Some(m) = moved.get(&path) {
                        for p in positions {
                            if let Some(at) = m.place(p) {
                                moved_deletes.push(placed.at(at));
                            }
                        }
                    }
                }
            }
            rebased = moved_deletes.len() as u64;
            discard(lake, rebase_files.iter()).await;
            rebase_files = write_partition_deletes(
                lake,
                &now,
                moved_deletes,
                policy.props.clone(),
                partition.spec_id,
                partition.values.clone(),
            )
            .await?;
            extra_deletes = rebase_files.clone();
        }
        let mut change = Change::rewrite(
            outputs.clone(),
            added_deletes
                .iter()
                .chain(&extra_deletes)
                .cloned()
                .collect(),
            removed.clone(),
            summary.clone(),
        )
        .replace(*newest);
        if outputs.is_empty() {
            // Only delete files merged: no data is rewritten.
            change.data_sequence_number = None;
        }
        // The manifests are merged once, with the last partition.
        change.merge_manifests = last;
        match lake.commit(&now, change).await {
            Ok(done) => {
                // Less this compaction's own earlier partitions.
                report.commits_meanwhile += done.current_snapshot().map_or(0, |s| {
                    ((s.sequence_number() - planned_seq - 1).max(0) as u64)
                        .saturating_sub(report.partitions as u64)
                });
                report.partitions += 1;
                report.data_files_rewritten += w.inputs;
                report.data_files_written += outputs.len();
                report.delete_files_removed += w.delete_files;
                report.delete_files_written += added_deletes.len() + extra_deletes.len();
                report.deletes_rebased += rebased;
                report.bytes_written += outputs
                    .iter()
                    .chain(added_deletes)
                    .chain(&extra_deletes)
                    .map(|f| f.file_size_in_bytes())
                    .sum::<u64>();
                return Ok(());
            }
            Err(e) => {
                // The files stay: a failed attempt may still have committed (a lost answer);
                // orphan cleanup removes them if not.
                lake.retry_after(name, &mut backoff, e).await?;
            }
        }
    }
}

/// Whether any of the delete files deletes rows of a data file that is no longer live.
fn names_dead_files(
    delete_files: &[LiveFile],
    runs: &HashMap<String, Vec<(String, Vec<i64>)>>,
    live: &HashSet<String>,
) -> bool {
    delete_files.iter().any(|d| {
        runs.get(&d.path)
            .is_some_and(|r| r.iter().any(|(path, _)| !live.contains(path)))
    })
}

impl Moved {
    /// The new position (counting over all the rewrite's rows) of the row at `pos`, unless
    /// it was dropped.
    fn place(&self, pos: i64) -> Option<u64> {
        match self.dropped.binary_search(&pos) {
            Ok(_) => None,
            Err(before) => Some(self.start + pos as u64 - before as u64),
        }
    }
}

/// The new files in the order their rows were written: a row's overall position → its file
/// and position in it.
struct Placement {
    /// (first overall position, path), ascending.
    starts: Vec<(u64, String)>,
}

impl Placement {
    fn new(outputs: &[DataFile]) -> Self {
        let mut at = 0;
        let starts = outputs
            .iter()
            .map(|f| {
                let s = (at, f.file_path().to_string());
                at += f.record_count();
                s
            })
            .collect();
        Placement { starts }
    }

    fn at(&self, overall: u64) -> (String, i64) {
        let i = self.starts.partition_point(|(s, _)| *s <= overall) - 1;
        let (start, path) = &self.starts[i];
        (path.clone(), (overall - start) as i64)
    }
}

/// Which rows of a silver batch are tombstones recent enough to keep (`None`: keep none).
fn tombstones(batch: &RecordBatch, since: Option<i64>) -> Option<BooleanArray> {
    let since = since?;
    let op = batch.column_by_name("_op")?.as_string_opt::<i32>()?;
    let at = batch
        .column_by_name("_updated_at")?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    Some(
        (0..batch.num_rows())
            .map(|i| {
                Some(
                    op.is_valid(i) && op.value(i) == "d" && (at.is_null(i) || at.value(i) >= since),
                )
            })
            .collect(),
    )
}

/// A data file of the table as a stream of Arrow batches.
async fn parquet_stream(
    table: &LakeTable,
    path: &str,
) -> Result<parquet::arrow::async_reader::ParquetRecordBatchStream<ArrowFileReader>, LakeError> {
    let invalid = |e: parquet::errors::ParquetError| LakeError::Invalid {
        table: table.name.to_string(),
        message: format!("{path}: {e}"),
    };
    ParquetRecordBatchStreamBuilder::new(open_reader(table, path).await?)
        .await
        .map_err(invalid)?
        .with_batch_size(65536)
        .build()
        .map_err(invalid)
}

/// Deletes files written for a commit that did not happen (orphan cleanup would, later).
async fn discard(lake: &Lake, files: impl Iterator<Item = &DataFile>) {
    for f in files {
        if let Err(e) = lake.file_io().delete(f.file_path()).await {
            tracing::warn!(file = f.file_path(), error = %e, "could not delete an unused file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_order_across_dropped_positions() {
        let m = Moved {
            start: 10,
            dropped: vec![1, 2, 5],
        };
        assert_eq!(m.place(0), Some(10));
        assert_eq!(m.place(1), None);
        assert_eq!(m.place(3), Some(11));
        assert_eq!(m.place(4), Some(12));
        assert_eq!(m.place(5), None);
        assert_eq!(m.place(6), Some(13));
    }
}
