//! Silver: per source table, the current row per primary key, typed, equal to the source table.
//!
//! A run, per table: read the bronze rows committed since the watermark the last silver commit
//! recorded ([`changes`]), keep per key the events that matter in source order, decode them
//! ([`decode`], [`types`], [`columns`]) and decide each key's new state ([`merge`]), look up
//! what silver holds for those keys ([`state`]), then write the new rows and the position
//! deletes of the rows they replace ([`write`]) and commit them with the new watermark in one
//! snapshot. A run with nothing new commits nothing; a run after a crash redoes the run that
//! did not commit, and stale events (already applied) change nothing, so it gives what a clean
//! run gives. Events that cannot be decoded go to `<table>_quarantine` with the reason.

pub mod changes;
pub mod columns;
pub mod decode;
pub mod files;
pub mod history;
pub mod merge;
pub mod quality;
pub mod state;
pub mod types;
pub mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::DataType;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type, UnboundPartitionSpec};
use parquet::file::properties::WriterProperties;

use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Change, Committed, Lake, LakeError, LakeTable};

use changes::{Changes, Order};
use columns::{ColumnError, Columns, SourceKind};
use decode::Cell;
use merge::{DqIssue, MergeError};
use write::OutRow;

/// Snapshot summary key: the bronze data sequence number (and snapshot) a silver table has
/// applied up to.
pub const BRONZE_WATERMARK: &str = "medallion.bronze";
/// Snapshot summary key: events at or before this order were removed by a truncate.
pub const TRUNCATED_BEFORE: &str = "medallion.truncated_before";
/// Snapshot summary key: the latest source order of any event applied to the table. An event
/// after it cannot be stale, so the lookup need not read the position of its key's row.
pub const APPLIED_UP_TO: &str = "medallion.applied_up_to";

#[derive(Debug, thiserror::Error)]
pub enum SilverError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("{table}: cannot read {file}: {source}")]
    Parquet {
        table: String,
        file: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A bronze or silver file that is not what silver expects.
    #[error("{table}: {file}: {message}")]
    File {
        table: String,
        file: String,
        message: String,
    },
    #[error("{table}: {source}")]
    Arrow {
        table: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("silver table {table}: {source}")]
    Columns {
        table: String,
        #[source]
        source: ColumnError,
    },
    #[error("silver table {table}: {source}")]
    Merge {
        table: String,
        #[source]
        source: MergeError,
    },
    #[error("silver table {table}: {message}")]
    Unsupported { table: String, message: String },
    #[error(
        "silver table {table}: {message}; fix silver.tables.{short}.expectations in the config",
        short = table.rsplit('.').next().unwrap_or(table)
    )]
    Expectations { table: String, message: String },
    #[error(
        "silver table {table}: expectation `{expectation}` (`{expr}`, action fail) failed for {rows} of {checked} rows (keys: {}); nothing was committed",
        sample.join(", ")
    )]
    ExpectationFailed {
        table: String,
        expectation: String,
        expr: String,
        rows: usize,
        checked: usize,
        sample: Vec<String>,
    },
    #[error(
        "silver table {table}: another writer kept committing while this run planned ({attempts} attempts); is a second `silver` running on it?"
    )]
    Raced { table: String, attempts: u32 },
    #[error("no bronze table {0}: run `medallion ingest` first, or check the name")]
    NoBronze(String),
    #[error("silver failed for {tables} tables (each error is printed above)")]
    Failed { tables: usize, retryable: bool },
}

impl SilverError {
    pub(crate) fn parquet(table: &str, file: &str, source: parquet::errors::ParquetError) -> Self {
        SilverError::Parquet {
            table: table.to_string(),
            file: file.to_string(),
            source,
        }
    }

    pub(crate) fn arrow(table: &str, source: arrow::error::ArrowError) -> Self {
        SilverError::Arrow {
            table: table.to_string(),
            source,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            SilverError::Lake(e) => e.is_retryable() || e.is_transient(),
            SilverError::Raced { .. } => true,
            SilverError::Failed { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// What a run did to one table.
#[derive(Debug, Default, Clone)]
pub struct TableReport {
    pub table: String,
    /// Nothing new in bronze.
    pub up_to_date: bool,
    pub bronze_files: usize,
    pub bronze_rows: u64,
    pub events: u64,
    pub keys: u64,
    pub upserts: u64,
    pub deletes: u64,
    /// Events at or before what silver already had (replays, out of order).
    pub stale: u64,
    pub quarantined: u64,
    /// Changes left out by a `drop` expectation.
    pub dropped: u64,
    /// Rows added to the history (new versions and the closed versions they follow).
    pub history: u64,
    /// Rows kept with a failed `warn` expectation.
    pub warned: u64,
    /// Cells stored as null with a data-quality flag.
    pub flagged: u64,
    /// Per expectation (and built-in check): rows checked and failed.
    pub dq: Vec<quality::DqCount>,
    pub truncated: bool,
    pub rewritten: bool,
    pub columns_added: Vec<String>,
    pub rows_scanned: u64,
    pub live_rows: u64,
    pub elapsed: Duration,
    /// Time reading bronze and keeping the latest events per key (the dedupe).
    pub t_read: Duration,
    /// Time decoding the kept events and deciding each key's row.
    pub t_decode: Duration,
    /// Time looking the keys up in silver.
    pub t_lookup: Duration,
    /// Time writing files and committing.
    pub t_write: Duration,
    /// Bronze files remain for another step (the step budget was reached).
    pub more: bool,
    /// Commits this run made (one per step).
    pub steps: u32,
}

impl TableReport {
    /// Adds a later step's counts.
    fn absorb(&mut self, o: TableReport) {
        self.bronze_files += o.bronze_files;
        self.bronze_rows += o.bronze_rows;
        self.events += o.events;
        self.keys += o.keys;
        self.upserts += o.upserts;
        self.deletes += o.deletes;
        self.stale += o.stale;
        self.quarantined += o.quarantined;
        self.dropped += o.dropped;
        self.history += o.history;
        self.warned += o.warned;
        self.flagged += o.flagged;
        for c in o.dq {
            match self.dq.iter_mut().find(|d| d.expectation == c.expectation) {
                Some(d) => {
                    d.checked += c.checked;
                    d.failed += c.failed;
                }
                None => self.dq.push(c),
            }
        }
        self.truncated |= o.truncated;
        self.rewritten |= o.rewritten;
        self.columns_added.extend(o.columns_added);
        self.rows_scanned += o.rows_scanned;
        self.live_rows = o.live_rows;
        self.elapsed += o.elapsed;
        self.t_read += o.t_read;
        self.t_decode += o.t_decode;
        self.t_lookup += o.t_lookup;
        self.t_write += o.t_write;
        self.more = o.more;
        self.steps += o.steps;
    }
}

/// Options of a silver run.
#[derive(Debug, Default, Clone)]
pub struct SilverOptions {
    /// Only this silver table.
    pub table: Option<String>,
}

/// Runs silver for every configured table (or one). Tables fail independently: the reports of
/// those that worked come back with the errors of those that did not.
pub async fn run(
    lake: &Lake,
    config: &Config,
    options: &SilverOptions,
) -> Result<(Vec<TableReport>, Vec<(String, SilverError)>), SilverError> {
    let bronze_ns = &config.namespaces.bronze;
    let mut tables = lake
        .catalog()
        .list_tables(bronze_ns)
        .await
        .map_err(LakeError::from)?;
    tables.retain(|t| t != &config.bronze.dlq_table);
    if let Some(include) = &config.silver.include {
        tables.retain(|t| include.contains(t));
    }
    if let Some(only) = &options.table {
        if !tables.contains(only) {
            return Err(SilverError::NoBronze(format!("{bronze_ns}.{only}")));
        }
        tables.retain(|t| t == only);
    }
    tables.sort();
    let run_id = uuid::Uuid::now_v7().to_string();
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for t in tables {
        // Checked up front where the table exists: a bad expectation stops the table before
        // it reads anything.
        let result = match check_expectations(lake, config, &t).await {
            Ok(()) => run_table(lake, config, &t, &run_id).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(r)) => reports.push(r),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(table = %t, error = %e, "silver run failed");
                errors.push((t, e));
            }
        }
    }
    Ok((reports, errors))
}

/// Compiles a table's expectations against its silver schema, where the table exists, so a
/// bad expression or an unknown column stops the table before it reads anything.
async fn check_expectations(lake: &Lake, config: &Config, t: &str) -> Result<(), SilverError> {
    let Some(cfg) = config.silver.tables.get(t) else {
        return Ok(());
    };
    if cfg.expectations.is_empty() {
        return Ok(());
    }
    let name = TableName::new(config.namespaces.silver.clone(), t);
    let Some(silver) = lake.load(&name).await? else {
        return Ok(());
    };
    if silver.current_snapshot().is_none() {
        return Ok(());
    }
    let table = name.to_string();
    let mut columns = Columns::of_table(&silver).map_err(|source| SilverError::Columns {
        table: table.clone(),
        source,
    })?;
    let schema = columns.schema().map_err(|source| SilverError::Columns {
        table: table.clone(),
        source,
    })?;
    let arrow_schema = iceberg::arrow::schema_to_arrow_schema(&schema)
        .map_err(LakeError::iceberg(&table, "convert the schema"))?;
    quality::Expectations::compile(&cfg.expectations, &arrow_schema).map_err(|message| {
        SilverError::Expectations {
            table,
            message: format!(
                "{message} (for a column an ALTER TABLE is about to add, add the expectation once silver has the column)"
            ),
        }
    })?;
    Ok(())
}

/// Runs one table to the end of bronze, in as many steps (commits) as the step budget needs.
pub async fn run_table(
    lake: &Lake,
    config: &Config,
    table: &str,
    run_id: &str,
) -> Result<Option<TableReport>, SilverError> {
    let mut total: Option<TableReport> = None;
    loop {
        let Some(step) = run_step(lake, config, table, run_id).await? else {
            return Ok(total);
        };
        let more = step.more;
        match &mut total {
            None => total = Some(step),
            Some(t) => t.absorb(step),
        }
        if !more {
            return Ok(total);
        }
    }
}

/// One step, restarted from scratch if another writer commits meanwhile.
async fn run_step(
    lake: &Lake,
    config: &Config,
    table: &str,
    run_id: &str,
) -> Result<Option<TableReport>, SilverError> {
    let mut backoff = lake.retry.backoff();
    loop {
        match run_once(lake, config, table, run_id).await {
            Err(SilverError::Raced { .. }) | Err(SilverError::Lake(LakeError::Stale { .. })) => {
                if backoff.next_delay().is_none() {
                    return Err(SilverError::Raced {
                        table: table.to_string(),
                        attempts: backoff.failures(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Parquet settings of silver files. Integer key columns are delta-encoded without a
/// dictionary: every run's lookup reads them in full, and ids written in order (a snapshot,
/// inserts) then take a few bits each and decode fast.
fn writer_props(config: &Config, int_keys: &[&str]) -> WriterProperties {
    let compression =
        crate::bronze::writer::parse_compression(&config.silver.compression).expect("validated");
    let mut b = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(128 * 1024));
    for k in int_keys {
        let path = parquet::schema::types::ColumnPath::from(*k);
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, parquet::basic::Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// Parquet settings for rewriting the files of a silver table (compaction): those silver
/// itself writes them with.
pub fn file_properties(config: &Config, table: &LakeTable) -> WriterProperties {
    let md = table.metadata();
    let key: Vec<String> = md
        .properties()
        .get(columns::KEY_PROPERTY)
        .and_then(|k| serde_json::from_str(k).ok())
        .unwrap_or_default();
    let schema = md.current_schema();
    let int_keys: Vec<&str> = key
        .iter()
        .filter(|k| {
            schema.field_by_name(k).is_some_and(|f| {
                matches!(
                    *f.field_type,
                    iceberg::spec::Type::Primitive(
                        iceberg::spec::PrimitiveType::Int | iceberg::spec::PrimitiveType::Long
                    )
                )
            })
        })
        .map(String::as_str)
        .collect();
    writer_props(config, &int_keys)
}

/// The cores silver spreads its work over.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How far the tables beside silver got for `table` (quarantine, `_dq_runs`, the history).
/// Past silver's own watermark only when a run crashed after committing them and before
/// silver: the redone step then reads exactly those bronze files, so each of them finds its
/// rows already there (rather than a larger step adding some twice).
async fn side_watermark(
    lake: &Lake,
    config: &Config,
    table: &str,
    keeps_history: bool,
) -> Result<i64, SilverError> {
    let ns = &config.namespaces.silver;
    let mut most = 0;
    let quarantine = TableName::new(ns.clone(), format!("{table}_quarantine"));
    if let Some(q) = lake.load(&quarantine).await? {
        most = most.max(watermark(&q));
    }
    if keeps_history && let Some(h) = lake.load(&history::table_name(config, table)).await? {
        most = most.max(watermark(&h));
    }
    let runs = TableName::new(ns.clone(), quality::RUNS_TABLE);
    if let Some(r) = lake.load(&runs).await? {
        most = most.max(quality::covered(&r, &format!("{ns}.{table}")));
    }
    Ok(most)
}

/// The watermark recorded in a silver table.
fn watermark(t: &LakeTable) -> i64 {
    t.summary_property(BRONZE_WATERMARK)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v["sequence_number"].as_i64())
        .unwrap_or(0)
}

async fn run_once(
    lake: &Lake,
    config: &Config,
    table: &str,
    run_id: &str,
) -> Result<Option<TableReport>, SilverError> {
    let started = Instant::now();
    let bronze_name = TableName::new(config.namespaces.bronze.clone(), table);
    let silver_name = TableName::new(config.namespaces.silver.clone(), table);
    let name = silver_name.to_string();
    let bronze = lake
        .load(&bronze_name)
        .await?
        .ok_or_else(|| SilverError::NoBronze(bronze_name.to_string()))?;
    let silver = lake.load(&silver_name).await?;
    let after = silver.as_ref().map(watermark).unwrap_or(0);
    let mut report = TableReport {
        table: name.clone(),
        ..Default::default()
    };
    let table_cfg = config.silver.tables.get(table);
    let keeps_history = table_cfg.is_some_and(|t| t.history);
    let mut files = changes::new_files(&bronze, after).await?;
    // A step that crashed after a table beside silver committed is redone over the same files.
    let redo = side_watermark(lake, config, table, keeps_history).await?;
    if redo > after {
        let all = files.len();
        files.retain(|f| f.sequence_number <= redo);
        if files.is_empty() && all > 0 {
            // Going on would skip rows the side tables already hold; looping would never end.
            return Err(SilverError::Unsupported {
                table: name,
                message: format!(
                    "a step that crashed wrote a table beside silver (quarantine, history or _dq_runs) \
                     up to bronze sequence number {redo}, but bronze has no file after silver's \
                     watermark {after} up to it any more, so that step cannot be redone (was bronze \
                     rewritten outside medallion?); drop the silver table and the tables beside it \
                     to rebuild silver from bronze"
                ),
            });
        }
        report.more = files.len() < all;
    }
    if files.is_empty() {
        if silver.is_none() {
            return Ok(None);
        }
        report.up_to_date = true;
        report.elapsed = started.elapsed();
        return Ok(Some(report));
    }
    let t0 = Instant::now();
    let mut changes = changes::read(
        &bronze,
        &files,
        config.silver.max_step_bytes.0,
        keeps_history,
    )
    .await?;
    report.t_read = t0.elapsed();
    report.bronze_files = changes.files;
    report.more |= changes.more;
    report.bronze_rows = changes.rows_read;
    report.events = changes.events;
    report.keys = changes.keys.len() as u64;
    if changes.keys.is_empty() && changes.truncate.is_none() && silver.is_none() {
        // Only records silver does not keep (schema changes, heartbeats): no table.
        return Ok(None);
    }

    let decimals = table_cfg
        .and_then(|t| t.decimal_handling)
        .unwrap_or(config.silver.decimal_handling);
    // A table created by a run that then failed has no snapshot: plan it afresh.
    let fresh = silver
        .as_ref()
        .is_none_or(|t| t.current_snapshot().is_none());
    let mut columns = match &silver {
        Some(t) if fresh => {
            let mut c = Columns::new(SourceKind::from_connector(changes.connector.as_deref()));
            c.last_id = t.metadata().last_column_id();
            c
        }
        Some(t) => Columns::of_table(t).map_err(|source| SilverError::Columns {
            table: name.clone(),
            source,
        })?,
        None => Columns::new(SourceKind::from_connector(changes.connector.as_deref())),
    };
    // The history's own column ids stay reserved whether history is on or not.
    if let Some(h) = lake.load(&history::table_name(config, table)).await? {
        if fresh && h.current_snapshot().is_some() {
            // Silver never committed: the history holds only the step that never reached
            // silver, with the ids of that attempt. Start it again with this one.
            history::discard(lake, &h).await?;
        } else {
            history::reserve_ids(&mut columns, &h);
            if keeps_history && !fresh {
                history::check_no_gap(&name, silver.as_ref(), &h, after)?;
            }
        }
    }
    let has_rows = silver
        .as_ref()
        .and_then(|t| t.summary_property("total-records"))
        .is_some_and(|n| n != "0");
    let t0 = Instant::now();
    let mut plan =
        merge::plan(&changes, &mut columns, table_cfg, decimals, has_rows).map_err(|source| {
            SilverError::Merge {
                table: name.clone(),
                source,
            }
        })?;
    // The raw values are decoded now (quarantined events keep their own).
    drop(std::mem::take(&mut changes.keys));
    if columns.key.is_empty() {
        // Nothing keyed yet (only a truncate on a table silver never saw).
        return Ok(None);
    }
    let schema = columns.schema().map_err(|source| SilverError::Columns {
        table: name.clone(),
        source,
    })?;
    let history_schema = keeps_history
        .then(|| history::schema(&schema, &mut columns))
        .transpose()
        .map_err(|source| SilverError::Columns {
            table: name.clone(),
            source,
        })?;
    report.columns_added = plan.evolution.added.clone();

    let silver = match silver {
        Some(t) => t,
        None => {
            lake.load_or_create(
                &silver_name,
                schema.clone(),
                UnboundPartitionSpec::builder().build(),
                table_properties(config, &columns),
            )
            .await?
        }
    };
    report.t_decode = t0.elapsed();
    let t0 = Instant::now();
    let planned_snapshot = silver.current_snapshot().map(|s| s.snapshot_id());
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(LakeError::iceberg(&name, "convert the schema"))?,
    );
    let truncated_before = silver
        .summary_property(TRUNCATED_BEFORE)
        .and_then(Order::from_json);
    let truncate = changes
        .truncate
        .filter(|t| truncated_before.is_none_or(|b| *t > b));
    let rewrite = truncate.is_some() || !plan.evolution.filled.is_empty();
    report.truncated = truncate.is_some();
    report.rewritten = rewrite;

    // What silver holds for the run's keys.
    let key_cells: Vec<Vec<Cell>> = plan.outcomes.iter().map(|o| o.key.clone()).collect();
    let matcher = Arc::new(state::KeyMatcher::new(&columns, &arrow_schema, &key_cells)?);
    drop(key_cells);
    // Only an event at or before what the table has applied can be stale: only its key's
    // rows need their positions read.
    let applied_before = silver
        .summary_property(APPLIED_UP_TO)
        .and_then(Order::from_json);
    let check: Vec<bool> = plan
        .outcomes
        .iter()
        .map(|o| {
            // A key with several versions: an older one may be a replay silver already has.
            keeps_history
                || !o.earlier.is_empty()
                || applied_before.is_none_or(|m| o.event.order <= m)
        })
        .collect();
    // Rows of older files get each column's default (null where it does not fit).
    let defaults: Vec<Cell> = columns
        .defaults()
        .into_iter()
        .map(|d| d.unwrap_or(Cell::Null))
        .collect();
    let scan = if silver.current_snapshot().is_some() {
        state::scan(
            &silver,
            &columns,
            &arrow_schema,
            matcher.clone(),
            &check,
            rewrite,
            &defaults,
        )
        .await?
    } else {
        state::Scan {
            existing: vec![state::Existing::default(); plan.outcomes.len()],
            ..Default::default()
        }
    };
    report.rows_scanned = scan.rows_scanned;

    // Decide, per key, against what silver holds.
    let mut applied = vec![false; plan.outcomes.len()];
    let mut toast_wanted: HashMap<Arc<str>, Vec<i64>> = HashMap::new();
    for (i, o) in plan.outcomes.iter_mut().enumerate() {
        let ex = &scan.existing[i];
        let stale = |order: Order| {
            ex.newest.is_some_and(|n| order <= n) || truncated_before.is_some_and(|t| order <= t)
        };
        // Versions the history already has (a replay in the same step as newer events).
        o.earlier.retain(|v| !stale(v.event.order));
        if stale(o.event.order) {
            report.stale += 1;
            continue;
        }
        applied[i] = true;
        let pending =
            |r: &Option<merge::NewRow>| r.as_ref().is_some_and(|r| r.pending().next().is_some());
        if let Some((file, pos)) = &ex.live
            && (pending(&o.row) || o.earlier.iter().any(|v| pending(&v.row)))
        {
            toast_wanted.entry(file.clone()).or_default().push(*pos);
        }
    }
    let mut previous = if toast_wanted.is_empty() {
        HashMap::new()
    } else {
        state::read_rows(&silver, &columns, &toast_wanted).await?
    };
    report.t_lookup = t0.elapsed();
    tracing::debug!(table = %name, rss_mib = crate::metrics::resident_mib(), "looked up");

    let t0 = Instant::now();
    // The run's new rows: live ones and tombstones (with their outcome), and for the history
    // the versions before them.
    let mut live: Vec<OutRow> = Vec::new();
    let mut live_of: Vec<usize> = Vec::new();
    let mut tombstones: Vec<OutRow> = Vec::new();
    let mut tombstone_of: Vec<usize> = Vec::new();
    let mut earlier: Vec<(usize, OutRow)> = Vec::new();
    let key_idx = columns.key_indices();
    for (i, o) in plan.outcomes.iter_mut().enumerate() {
        if !applied[i] {
            continue;
        }
        // Placeholders resolve in source order, from the row silver has.
        let mut before = scan.existing[i]
            .live
            .as_ref()
            .and_then(|l| previous.remove(l));
        for v in std::mem::take(&mut o.earlier) {
            let row = version_row(v.row, &v.event, before.as_ref(), &o.key, &key_idx, &columns);
            before = (row.op != "d").then(|| (row.cells.clone(), row.issues.clone()));
            if keeps_history {
                earlier.push((i, row));
            }
        }
        let row = version_row(
            o.row.take(),
            &o.event,
            before.as_ref(),
            &o.key,
            &key_idx,
            &columns,
        );
        if row.op == "d" {
            tombstones.push(row);
            tombstone_of.push(i);
        } else {
            live.push(row);
            live_of.push(i);
        }
    }
    let batch = |rows: &[OutRow]| {
        write::to_batch(rows, arrow_schema.clone(), &columns)
            .map_err(|e| SilverError::arrow(&name, e))
    };

    // The expectations, on the new live rows.
    let expectations = quality::Expectations::compile(
        table_cfg.map_or(&[][..], |t| &t.expectations),
        &arrow_schema,
    )
    .map_err(|message| SilverError::Expectations {
        table: name.clone(),
        message,
    })?;
    let mut dq = quality::counts(&expectations, live.len() as u64, report.events, &plan);
    if !expectations.is_empty() && !live.is_empty() {
        let new_rows = batch(&live)?;
        let checked =
            expectations.hold_back(&name, live, &live_of, &new_rows, &mut plan, &mut applied)?;
        for (d, failed) in dq.iter_mut().zip(checked.failed) {
            d.failed = failed;
        }
        report.dropped = checked.dropped;
        live = checked.kept;
    }

    // What the run applies: the rows it replaces are position-deleted.
    let mut newest_applied: Option<Order> = None;
    let mut position_deletes: Vec<(String, i64)> = Vec::new();
    for (i, o) in plan.outcomes.iter().enumerate() {
        if !applied[i] {
            continue;
        }
        newest_applied = newest_applied.max(Some(o.event.order));
        if let Some((file, pos)) = &scan.existing[i].live
            && !rewrite
        {
            position_deletes.push((file.to_string(), *pos));
        }
    }
    report.upserts = live.len() as u64;
    report.deletes = tombstones.len() as u64;
    report.flagged = live.iter().map(|r| r.issues.len() as u64).sum();
    report.warned = live.iter().filter(|r| !r.failed.is_empty()).count() as u64;

    // The history's versions: each applied key's earlier versions, then its new row.
    let history_step = history_schema.as_ref().map(|_| {
        let mut last: BTreeMap<usize, OutRow> = BTreeMap::new();
        let kept_of = live_of.iter().filter(|&&i| applied[i]);
        for (row, &i) in live.iter().zip(kept_of) {
            last.insert(i, row.clone());
        }
        for (row, &i) in tombstones.iter().zip(&tombstone_of) {
            last.insert(i, row.clone());
        }
        let mut step = history::Step {
            truncate,
            bronze_seq: changes.bronze_seq,
            silver_watermark: after,
            ..Default::default()
        };
        // In outcome order, like `last`; those of keys held back by an expectation are left.
        let mut earlier = earlier.into_iter().peekable();
        for (i, row) in last {
            let k = step.keys.len();
            step.keys.push(plan.outcomes[i].key.clone());
            while let Some((o, v)) = earlier.next_if(|(o, _)| *o <= i) {
                if o == i {
                    step.versions.push((k, v));
                }
            }
            step.versions.push((k, row));
        }
        step
    });
    if rewrite {
        for (row, hit) in scan.carried {
            if hit.is_some_and(|i| applied[i]) {
                continue;
            }
            if truncate.is_some_and(|t| row.position.order() <= t) {
                continue;
            }
            if row.op == "d" {
                tombstones.push(row);
            } else {
                live.push(row);
            }
        }
    }

    // Quarantine and the data-quality log first (each records its own watermark), then
    // silver: a crash in between redoes the run, which adds nothing to either again.
    if !plan.quarantined.is_empty() {
        // Counted whole: a run redone after a crash finds them already in quarantine.
        report.quarantined = plan.quarantined.len() as u64;
        quarantine(lake, config, table, &plan.quarantined, &changes).await?;
    }
    quality::record(lake, config, &name, run_id, &dq, changes.bronze_seq).await?;
    report.dq = dq;
    if let (Some(schema), Some(step)) = (history_schema, history_step) {
        let target = history::Target {
            config,
            table,
            silver: &silver,
            columns: &columns,
            silver_arrow: &arrow_schema,
            schema,
        };
        report.history = history::record(lake, target, step).await?;
    }

    let int_keys: Vec<&str> = columns
        .key
        .iter()
        .map(String::as_str)
        .filter(|k| {
            arrow_schema
                .field_with_name(k)
                .is_ok_and(|f| matches!(f.data_type(), DataType::Int32 | DataType::Int64))
        })
        .collect();
    let props = writer_props(config, &int_keys);
    let target = config.silver.target_file_size.0 as usize;
    let iceberg_schema = Arc::new(schema.clone());
    let data_files = crate::lake::write_data(
        lake,
        &silver,
        iceberg_schema.clone(),
        vec![batch(&live)?],
        props.clone(),
        target,
    )
    .await?;
    let tomb_files = crate::lake::write_data(
        lake,
        &silver,
        iceberg_schema,
        vec![batch(&tombstones)?],
        props.clone(),
        target,
    )
    .await?;
    for f in &tomb_files {
        for p in 0..f.record_count() as i64 {
            position_deletes.push((f.file_path().to_string(), p));
        }
    }
    tracing::debug!(table = %name, rss_mib = crate::metrics::resident_mib(), "written");
    let delete_files =
        crate::lake::write_position_deletes(lake, &silver, position_deletes, props).await?;

    // A rewrite replaces every file the scan read.
    let removed: HashSet<String> = if rewrite {
        scan.files.iter().cloned().collect()
    } else {
        HashSet::new()
    };
    let mut summary = BTreeMap::from([
        (
            BRONZE_WATERMARK.to_string(),
            serde_json::json!({
                "table": bronze_name.to_string(),
                "snapshot_id": changes.bronze_snapshot,
                "sequence_number": changes.bronze_seq,
            })
            .to_string(),
        ),
        ("medallion.writer".to_string(), "silver".to_string()),
    ]);
    // Known for tables that recorded it from their first commit on.
    let applied_up_to = if applied_before.is_some() || fresh {
        // A fresh table records it even when nothing applied (all held back by expectations).
        Some(applied_before.max(newest_applied).unwrap_or_default())
    } else {
        None
    };
    // Later commits carry both forward (the commit layer keeps `medallion.` properties).
    if let Some(t) = truncate {
        summary.insert(TRUNCATED_BEFORE.to_string(), t.to_json());
    }
    if let Some(o) = applied_up_to {
        summary.insert(APPLIED_UP_TO.to_string(), o.to_json());
    }
    if keeps_history {
        summary.insert(history::COVERED.to_string(), changes.bronze_seq.to_string());
    }
    let mut all_data = data_files;
    all_data.extend(tomb_files);
    let change = Change::rewrite(all_data, delete_files, removed, summary)
        .with_schema(schema_changed(&silver, &schema).then(|| schema.clone()))
        .with_properties(columns.properties());
    if let Committed::Raced = lake
        .commit_if_unchanged(&silver_name, planned_snapshot, &change, |_| false)
        .await?
    {
        return Err(SilverError::Raced {
            table: name,
            attempts: 1,
        });
    }
    report.live_rows = scan.live_rows;
    report.t_write = t0.elapsed();
    report.elapsed = started.elapsed();
    report.steps = 1;
    Ok(Some(report))
}

/// A key's new row: a TOAST placeholder keeps the value of the row silver had (`prev`), or is
/// null and flagged where silver had none.
fn fill(
    row: merge::NewRow,
    prev: Option<&(Vec<Cell>, Vec<DqIssue>)>,
    columns: &Columns,
) -> (Vec<Cell>, Vec<DqIssue>) {
    let mut issues = row.issues;
    let mut cells = Vec::with_capacity(row.cells.len());
    for (ci, c) in row.cells.into_iter().enumerate() {
        let Some(c) = c else {
            let col = &columns.columns[ci].name;
            match prev {
                Some((pc, pi)) => {
                    cells.push(pc.get(ci).cloned().unwrap_or(Cell::Null));
                    issues.extend(pi.iter().filter(|x| &x.column == col).cloned());
                }
                None => {
                    cells.push(Cell::Null);
                    issues.push(DqIssue {
                        column: col.clone(),
                        reason: "TOAST value not in the records".into(),
                        raw: Some(decode::TOAST_PLACEHOLDER_JSON.to_string()),
                    });
                }
            }
            continue;
        };
        cells.push(c);
    }
    (cells, issues)
}

/// The row a version writes; a delete (`row` = `None`) writes the key, nulls elsewhere, and
/// `_op = 'd'`. `before`: the key's previous row, for TOAST placeholders.
fn version_row(
    row: Option<merge::NewRow>,
    event: &changes::Event,
    before: Option<&(Vec<Cell>, Vec<DqIssue>)>,
    key: &[Cell],
    key_idx: &[usize],
    columns: &Columns,
) -> OutRow {
    let position = event.position.clone();
    let Some(row) = row else {
        let mut cells = vec![Cell::Null; columns.columns.len()];
        for (j, &ci) in key_idx.iter().enumerate() {
            cells[ci] = key[j].clone();
        }
        return OutRow {
            cells,
            op: "d",
            position,
            issues: Vec::new(),
            failed: Vec::new(),
        };
    };
    let (cells, issues) = fill(row, before, columns);
    OutRow {
        cells,
        op: event.op.as_str(),
        position,
        issues,
        failed: Vec::new(),
    }
}

/// The planned schema differs from the table's (new or widened columns, medallion's own
/// columns added by a newer version).
fn schema_changed(table: &LakeTable, schema: &Schema) -> bool {
    let current = table.metadata().current_schema();
    current.as_struct() != schema.as_struct()
        || current.identifier_field_ids().collect::<HashSet<_>>()
            != schema.identifier_field_ids().collect::<HashSet<_>>()
}

fn table_properties(config: &Config, columns: &Columns) -> HashMap<String, String> {
    let mut p = crate::bronze::schema::table_properties(&config.silver.compression);
    p.extend(columns.properties());
    p.insert("write.delete.mode".into(), "merge-on-read".into());
    p.insert("write.update.mode".into(), "merge-on-read".into());
    p
}

/// The quarantine table's schema.
pub fn quarantine_schema() -> Schema {
    use PrimitiveType::*;
    let p = |t| Type::Primitive(t);
    let fields = vec![
        NestedField::required(1, "reason", p(String)),
        NestedField::optional(2, "op", p(String)),
        NestedField::optional(3, "record_key", p(String)),
        NestedField::optional(4, "record_value", p(String)),
        NestedField::required(5, "kafka_topic", p(String)),
        NestedField::required(6, "kafka_partition", p(Int)),
        NestedField::required(7, "kafka_offset", p(Long)),
        NestedField::optional(8, "source_position", p(String)),
        NestedField::optional(9, "source_ts", p(Timestamptz)),
        NestedField::required(10, "quarantined_at", p(Timestamptz)),
        NestedField::optional(
            11,
            "expectations",
            Type::List(iceberg::spec::ListType::new(
                NestedField::list_element(12, p(String), true).into(),
            )),
        ),
        NestedField::optional(13, "row", p(String)),
    ];
    Schema::builder()
        .with_fields(fields.into_iter().map(Arc::new))
        .build()
        .expect("static quarantine schema")
}

/// Appends held-back events to `<table>_quarantine`, skipping those a crashed run already put
/// there (the table records the bronze sequence number it covers).
async fn quarantine(
    lake: &Lake,
    config: &Config,
    table: &str,
    items: &[merge::Quarantined],
    changes: &Changes,
) -> Result<u64, SilverError> {
    let qname = TableName::new(
        config.namespaces.silver.clone(),
        format!("{table}_quarantine"),
    );
    let name = qname.to_string();
    let q = lake
        .load_or_create(
            &qname,
            quarantine_schema(),
            UnboundPartitionSpec::builder().build(),
            HashMap::from([(
                "medallion.layer".to_string(),
                "silver-quarantine".to_string(),
            )]),
        )
        .await?;
    let covered = watermark(&q);
    // Tables made before `expectations` and `row` existed get them.
    let evolved = q.metadata().current_schema().field_by_name("row").is_none();
    let fresh: Vec<&merge::Quarantined> = items
        .iter()
        .filter(|q| q.event.bronze_seq > covered)
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let schema = if evolved {
        Arc::new(quarantine_schema())
    } else {
        q.metadata().current_schema().clone()
    };
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(LakeError::iceberg(&name, "convert the schema"))?,
    );
    let now = chrono::Utc::now().timestamp_micros();
    let describe = |p: &changes::SourcePosition| match (&p.lsn, &p.binlog_file) {
        (Some(l), _) => format!("lsn {l}"),
        (None, Some(f)) => format!(
            "{f}:{}:{}",
            p.binlog_pos.unwrap_or(0),
            p.binlog_row.unwrap_or(0)
        ),
        _ => String::new(),
    };
    let batch = RecordBatch::try_new(
        arrow_schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|q| q.reason.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|q| q.event.op.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|q| q.key_text.as_ref()),
            )),
            Arc::new(StringArray::from_iter(
                fresh.iter().map(|q| q.event.value.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|q| q.event.topic.as_ref()),
            )),
            Arc::new(Int32Array::from_iter_values(
                fresh.iter().map(|q| q.event.position.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                fresh.iter().map(|q| q.event.position.offset),
            )),
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|q| describe(&q.event.position)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(fresh.iter().map(|q| q.event.position.ts_us))
                    .with_timezone("+00:00"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(fresh.iter().map(|_| now))
                    .with_timezone("+00:00"),
            ),
            write::string_lists(
                &fresh
                    .iter()
                    .map(|q| q.checks.as_slice())
                    .collect::<Vec<_>>(),
                arrow_schema.field(10).data_type(),
                "expectations",
            )
            .map_err(|e| SilverError::arrow(&name, e))?,
            Arc::new(StringArray::from_iter(
                fresh.iter().map(|q| q.row.as_deref()),
            )),
        ],
    )
    .map_err(|e| SilverError::arrow(&name, e))?;
    let summary = BTreeMap::from([(
        BRONZE_WATERMARK.to_string(),
        serde_json::json!({ "sequence_number": changes.bronze_seq }).to_string(),
    )]);
    let covered = |t: &LakeTable| watermark(t) >= changes.bronze_seq;
    let new_schema = evolved.then(|| schema.as_ref().clone());
    append_once(
        lake,
        config,
        (&qname, &q),
        schema,
        batch,
        summary,
        new_schema,
        covered,
    )
    .await?;
    Ok(fresh.len() as u64)
}

/// Appends `batch` to a table beside silver (quarantine, `_dq_runs`) in one commit, unless
/// `covered` says the table already has this step's rows (a run redone after a crash): each
/// such table records in `summary` how far its rows go.
#[allow(clippy::too_many_arguments)]
async fn append_once(
    lake: &Lake,
    config: &Config,
    (name, table): (&TableName, &LakeTable),
    schema: Arc<Schema>,
    batch: RecordBatch,
    summary: BTreeMap<String, String>,
    new_schema: Option<Schema>,
    covered: impl Fn(&LakeTable) -> bool,
) -> Result<(), SilverError> {
    let files = crate::lake::write_data(
        lake,
        table,
        schema,
        vec![batch],
        writer_props(config, &[]),
        config.silver.target_file_size.0 as usize,
    )
    .await?;
    lake.commit_with_retry(name, |current| {
        if covered(current) {
            return Ok(None);
        }
        Ok(Some(
            Change::append(files.clone(), summary.clone()).with_schema(new_schema.clone()),
        ))
    })
    .await?;
    Ok(())
}
