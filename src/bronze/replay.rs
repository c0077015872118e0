//! `dlq replay`: re-ingests dead letters after a fix (a route marked `keyless`, a larger
//! `max_record_bytes`, a decoder that learned a new shape), exactly once.
//!
//! Each dead letter keeps its Kafka coordinates, and a replayed row lands in its table with
//! those same coordinates. That makes the target table its own record of what was replayed:
//! a replay leaves out every dead letter whose coordinates the table already holds, so running
//! it twice, or again after a crash, lands nothing twice. Rows still failing stay in the DLQ.
//!
//! Two rules keep ingest and replay from landing the same record:
//! - Only dead letters *below* the table's committed offset for their partition are replayed.
//!   Ingest takes a partition's records from that offset on, and it never moves back, so ingest
//!   can never land those coordinates again. A dead letter at or above it waits (reported)
//!   until ingest has committed past it; moving the offset forward ourselves could skip records
//!   an ingest has read but not committed yet.
//! - The commit re-checks the table: if another replay committed since the plan was made, the
//!   plan is made again (ingest commits cannot hold dead letters' coordinates, by the first
//!   rule, so they do not invalidate it).
//!
//! A replay commit carries the table's recorded offsets over unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use iceberg::spec::DataFile;

use super::batch::{Coverage, Part, decode_record};
use super::dlq::dead_letters;
use super::ingest::load_watermarks;
use super::route::Router;
use super::rows::{DataRows, SizeHint};
use super::writer::Committer;
use super::{BronzeError, schema};
use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Change, Lake, LakeError, LakeTable};
use crate::metrics::Metrics;
use crate::query::{self, QueryError};
use crate::source::SourceRecord;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Only dead letters whose target table is this one.
    pub table: Option<String>,
    /// Plan and report, commit nothing.
    pub dry_run: bool,
}

/// What a replay did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters looked at.
    pub considered: u64,
    /// Rows landed per table.
    pub replayed: BTreeMap<String, u64>,
    /// Already in their table (replayed before).
    pub already_replayed: u64,
    /// Still failing, per error kind: they stay in the DLQ.
    pub still_failing: BTreeMap<String, u64>,
    /// Decodable now, but at or above the table's committed offset: replay again after the
    /// next ingest has committed past them.
    pub waiting: u64,
    /// Lines that were not Kafka records at all (a broken dump line): fix the file and ingest
    /// it again instead.
    pub not_records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Bronze(#[from] BronzeError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("dlq replay: {0}")]
    Query(#[from] QueryError),
    #[error("dlq replay into {table}: other replays kept committing; run it again")]
    Contended { table: String },
}

impl ReplayError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ReplayError::Bronze(e) => e.is_retryable(),
            ReplayError::Lake(e) => e.is_retryable(),
            ReplayError::Query(_) => false,
            ReplayError::Contended { .. } => true,
        }
    }
}

/// Snapshot summary `medallion.writer` of replay commits.
const WRITER: &str = "dlq-replay";
/// Snapshot summary key naming one replay commit.
const REPLAY_ID: &str = "medallion.replay_id";

/// Re-ingests the dead letters that decode now; see the module documentation.
pub async fn replay_dlq(
    lake: &Lake,
    config: &Config,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let mut report = ReplayReport::default();
    let ns = &config.namespaces.bronze;
    let dlq = TableName::new(ns.clone(), config.bronze.dlq_table.clone());
    if lake.load(&dlq).await?.is_none() {
        return Ok(report);
    }
    let letters = read_dead_letters(lake, config).await?;

    // Decode each again with today's routes and limits; group what decodes by table.
    let mut router = Router::new(&config.bronze.routes);
    let mut by_table: BTreeMap<Arc<str>, Vec<SourceRecord>> = BTreeMap::new();
    for letter in letters {
        let Some(record) = letter else {
            if options.table.is_none() {
                report.considered += 1;
                report.not_records += 1;
            }
            continue;
        };
        let route = router.route(&record.topic).clone();
        if options.table.as_deref().is_some_and(|t| t != &*route.table) {
            continue;
        }
        report.considered += 1;
        match decode_record(
            &record,
            route.keyless,
            config.bronze.max_record_bytes.0 as usize,
        ) {
            Ok(_) => by_table.entry(route.table).or_default().push(record),
            Err(e) => {
                *report
                    .still_failing
                    .entry(e.kind.as_str().into())
                    .or_default() += 1
            }
        }
    }

    let committed = load_watermarks(lake, ns).await?;
    let mut committer = Committer::new(lake.clone(), ns, &config.bronze, Metrics::default());
    for (table, records) in by_table {
        let offsets = committed.get(&table).cloned().unwrap_or_default();
        let (ready, waiting): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| {
            offsets
                .get(&r.partition_id())
                .is_some_and(|next| r.offset < next)
        });
        report.waiting += waiting.len() as u64;
        if ready.is_empty() {
            continue;
        }
        let name = TableName::new(ns.clone(), table.to_string());
        let (landed, already) =
            replay_into(lake, config, &mut committer, &name, &ready, options.dry_run).await?;
        report.already_replayed += already;
        if landed > 0 {
            report.replayed.insert(table.to_string(), landed);
        }
    }
    Ok(report)
}

/// Lands the records not yet in `name`; returns (landed, already there).
async fn replay_into(
    lake: &Lake,
    config: &Config,
    committer: &mut Committer,
    name: &TableName,
    records: &[SourceRecord],
    dry_run: bool,
) -> Result<(u64, u64), ReplayError> {
    const PLANS: usize = 5;
    for _ in 0..PLANS {
        let Some(planned) = lake.load(name).await? else {
            // Below a committed offset means the table exists; it was dropped meanwhile.
            return Ok((0, 0));
        };
        let planned_at = planned.current_snapshot().map(|s| s.snapshot_id());
        let present = coordinates_in(lake, config, name, records).await?;
        let todo: Vec<&SourceRecord> = records
            .iter()
            .filter(|r| !present.contains(&(r.topic.to_string(), r.partition, r.offset)))
            .collect();
        let already = (records.len() - todo.len()) as u64;
        if todo.is_empty() || dry_run {
            return Ok((todo.len() as u64, already));
        }
        let now = chrono::Utc::now().timestamp_micros();
        let part = Part {
            table: Arc::from(name.table.as_str()),
            is_dlq: false,
            batch: rows_of(&todo, &name.table, config, now)?,
            coverage: Coverage::default(),
        };
        let files = committer.write_part(&part, now).await?;
        // Our own commit may have landed even if its attempt reported a failure (a remote
        // catalog's answer lost): the id tells it from another replay's.
        let id = uuid::Uuid::now_v7().to_string();
        let summary = BTreeMap::from([
            ("medallion.writer".to_string(), WRITER.to_string()),
            (REPLAY_ID.to_string(), id.clone()),
        ]);
        let mut ours = false;
        let committed = lake
            .commit_with_retry(name, |current| {
                match replayed_since(current, planned_at, &id) {
                    Since::Nothing => Ok(Some(Change::append(files.clone(), summary.clone()))),
                    Since::Ours => {
                        ours = true;
                        Ok(None)
                    }
                    Since::Another => Ok(None),
                }
            })
            .await?;
        if committed.is_some() || ours {
            tracing::info!(table = %name, rows = todo.len(), "replayed dead letters");
            return Ok((todo.len() as u64, already));
        }
        discard(lake, &files).await;
        tracing::info!(table = %name, "another replay committed meanwhile; planning again");
    }
    Err(ReplayError::Contended {
        table: name.to_string(),
    })
}

/// What replays committed to the table after the planned snapshot.
enum Since {
    Nothing,
    /// This replay's commit is there already.
    Ours,
    /// Another replay committed: plan again.
    Another,
}

/// Looks through the snapshots after `since` for replay commits (this one's has `id`).
fn replayed_since(table: &LakeTable, since: Option<i64>, id: &str) -> Since {
    let md = table.metadata();
    let mut at = md.current_snapshot();
    let mut another = false;
    while let Some(s) = at {
        if Some(s.snapshot_id()) == since {
            break;
        }
        let props = &s.summary().additional_properties;
        if props.get(REPLAY_ID).is_some_and(|v| v == id) {
            return Since::Ours;
        }
        another |= props.get("medallion.writer").is_some_and(|w| w == WRITER);
        at = s.parent_snapshot_id().and_then(|id| md.snapshot_by_id(id));
    }
    // `since` gone from the history (expired): assume the worst and plan again.
    if another || (at.is_none() && since.is_some()) {
        Since::Another
    } else {
        Since::Nothing
    }
}

/// Files written for a plan that was not committed: nothing references them.
async fn discard(lake: &Lake, files: &[DataFile]) {
    for f in files {
        if let Err(e) = lake.file_io().delete(f.file_path()).await {
            tracing::warn!(file = f.file_path(), error = %e, "could not delete an unused data file");
        }
    }
}

/// The records as bronze rows of `table`.
fn rows_of(
    records: &[&SourceRecord],
    table: &str,
    config: &Config,
    ingested_at_us: i64,
) -> Result<RecordBatch, BronzeError> {
    let arrow =
        iceberg::arrow::schema_to_arrow_schema(&schema::data_schema()).expect("static schema");
    let mut rows = DataRows::new(Arc::new(arrow), SizeHint::default());
    let mut router = Router::new(&config.bronze.routes);
    for r in records {
        let keyless = router.route(&r.topic).keyless;
        let d = decode_record(r, keyless, config.bronze.max_record_bytes.0 as usize)
            .expect("decoded when planned, with the same configuration");
        rows.append(r, &d);
    }
    rows.finish(ingested_at_us)
        .map_err(BronzeError::arrow(table))
}

/// The (topic, partition, offset) of `records` that `table` holds already.
async fn coordinates_in(
    lake: &Lake,
    config: &Config,
    table: &TableName,
    records: &[SourceRecord],
) -> Result<HashSet<(String, i32, i64)>, ReplayError> {
    let mut ranges: HashMap<(&str, i32), (i64, i64)> = HashMap::new();
    for r in records {
        let e = ranges
            .entry((&*r.topic, r.partition))
            .or_insert((r.offset, r.offset));
        e.0 = e.0.min(r.offset);
        e.1 = e.1.max(r.offset);
    }
    let filter = ranges
        .iter()
        .map(|((t, p), (lo, hi))| {
            format!(
                "(kafka_topic = '{}' AND kafka_partition = {p} AND kafka_offset BETWEEN {lo} AND {hi})",
                t.replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let ctx = query::session(lake, config).await?;
    let sql = format!(
        "SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.\"{}\" WHERE {filter}",
        table.table
    );
    let mut out = HashSet::new();
    for b in query::run(&ctx, &sql).await? {
        let topic = cast(b.column(0), &DataType::Utf8).map_err(BronzeError::arrow(&table.table))?;
        let topic = topic.as_string::<i32>();
        let partition = b.column(1).as_primitive::<arrow::datatypes::Int32Type>();
        let offset = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert((
                topic.value(i).to_string(),
                partition.value(i),
                offset.value(i),
            ));
        }
    }
    Ok(out)
}

/// Every dead letter as the Kafka record it was; `None` for lines that were not records.
async fn read_dead_letters(
    lake: &Lake,
    config: &Config,
) -> Result<Vec<Option<SourceRecord>>, ReplayError> {
    let ctx = query::session(lake, config).await?;
    let table = config.bronze.dlq_table.as_str();
    let sql = format!(
        "SELECT * FROM bronze.\"{table}\" ORDER BY kafka_topic, kafka_partition, kafka_offset"
    );
    let mut out = Vec::new();
    for b in query::run(&ctx, &sql).await? {
        let letters = dead_letters(&b).map_err(BronzeError::arrow(table))?;
        out.extend(letters.into_iter().map(|d| d.record));
    }
    Ok(out)
}

impl ReplayReport {
    /// One line per outcome, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("{} dead letters considered", self.considered)];
        for (t, n) in &self.replayed {
            out.push(format!("  {n} replayed into {t}"));
        }
        if self.already_replayed > 0 {
            out.push(format!(
                "  {} already replayed before (left alone)",
                self.already_replayed
            ));
        }
        for (kind, n) in &self.still_failing {
            out.push(format!(
                "  {n} still fail ({kind}): they stay in the DLQ; `medallion dlq list` shows why"
            ));
        }
        if self.waiting > 0 {
            out.push(format!(
                "  {} decode now but lie beyond what ingest has committed for their partition: \
                 replay again after the next ingest",
                self.waiting
            ));
        }
        if self.not_records > 0 {
            out.push(format!(
                "  {} are broken dump lines, not Kafka records: fix the file and ingest it again",
                self.not_records
            ));
        }
        out
    }
}
