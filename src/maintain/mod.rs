//! Table maintenance for every layer: compaction ([`compact`]), snapshot expiry ([`expire`])
//! and orphan-file cleanup ([`orphans`]), with what each layer's readers need kept:
//!
//! - bronze: the current snapshot carries the Kafka offsets a restart resumes from (every
//!   commit carries them forward, compactions included), so it is never expired. Silver reads
//!   bronze by data sequence number: compaction only rewrites files silver has applied, and the
//!   new files keep the newest sequence number of those they replace, so silver's next
//!   increment is exactly what it would have been. The bronze snapshot silver's watermark names
//!   is kept.
//! - silver: compaction folds position deletes into the rewritten files, but keeps the
//!   tombstones of deletes younger than `silver.delete_retention` (deleted again) so that a
//!   replayed older event cannot bring a deleted row back.
//! - gold (and anything gold reads): the snapshots a gold build recorded as read
//!   (`medallion.read.<layer>.<table>`) are kept, so the next build stays incremental.

pub mod compact;
pub mod expire;
pub mod orphans;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use iceberg::spec::DataContentType;

use crate::catalog::TableName;
use crate::config::{Config, MaintainLayer};
use crate::gold::incremental::{parse_read_key, source_name};
use crate::lake::{Lake, LakeError, LakeTable, live_files};

pub use crate::config::Layer;

/// What maintenance needs to know of a layer.
impl Layer {
    pub fn settings(self, config: &Config) -> &MaintainLayer {
        match self {
            Layer::Bronze => &config.maintain.bronze,
            Layer::Silver => &config.maintain.silver,
            Layer::Gold => &config.maintain.gold,
        }
    }

    /// The size the layer's writers roll files at, which compaction writes too.
    pub fn target_file_size(self, config: &Config) -> u64 {
        match self {
            Layer::Bronze => config.bronze.target_file_size.0,
            Layer::Silver => config.silver.target_file_size.0,
            Layer::Gold => config.gold.target_file_size.0,
        }
    }

    /// Data files below this size count as small.
    pub fn small_file_size(self, config: &Config) -> u64 {
        self.settings(config)
            .small_file_size
            .map_or(self.target_file_size(config) / 4 * 3, |s| s.0)
    }
}

/// What `medallion maintain` does.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this layer.
    pub layer: Option<Layer>,
    /// Only this table (`orders`, or `silver.orders`).
    pub table: Option<String>,
    pub compact: bool,
    pub expire: bool,
    pub remove_orphans: bool,
    /// Override the layers' `expire_older_than`.
    pub expire_older_than: Option<Duration>,
    /// Override the layers' `retain_last`.
    pub retain_last: Option<usize>,
    /// Override the layers' `remove_orphans_older_than`.
    pub orphans_older_than: Option<Duration>,
    /// Say what would be done; change nothing.
    pub dry_run: bool,
}

/// A table's files, to see when maintenance is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub data_files: usize,
    /// Data files below the layer's small-file size.
    pub small_files: usize,
    pub delete_files: usize,
    pub manifests: usize,
    pub snapshots: usize,
    pub bytes: u64,
}

impl FileStats {
    pub async fn of(table: &LakeTable, small_size: u64) -> Result<FileStats, LakeError> {
        let mut stats = FileStats {
            snapshots: table.metadata().snapshots().count(),
            ..Default::default()
        };
        let Some(snapshot) = table.current_snapshot() else {
            return Ok(stats);
        };
        stats.manifests = table
            .table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(LakeError::iceberg(&table.name, "read the manifest list"))?
            .entries()
            .len();
        for f in live_files(table, i64::MIN).await? {
            stats.bytes += f.size;
            if f.content == DataContentType::Data {
                stats.data_files += 1;
                if f.size < small_size {
                    stats.small_files += 1;
                }
            } else {
                stats.delete_files += 1;
            }
        }
        Ok(stats)
    }
}

/// What maintenance did to one table.
#[derive(Debug)]
pub struct TableReport {
    pub layer: Layer,
    pub table: TableName,
    pub before: FileStats,
    pub after: FileStats,
    pub compact: Option<compact::Report>,
    pub expire: Option<expire::Report>,
    pub orphans: Option<orphans::Report>,
    pub elapsed: Duration,
    /// Why the table's maintenance stopped, if it failed.
    pub error: Option<String>,
}

/// Runs maintenance on every selected table, layer by layer (bronze, silver, gold). A table
/// that fails is reported and the others go on.
pub async fn run(
    lake: &Lake,
    config: &Config,
    options: &Options,
) -> Result<Vec<TableReport>, LakeError> {
    let needs = Needs::read(lake, config).await?;
    let (only_layer, only_table) = match options.table.as_deref().map(|t| t.split_once('.')) {
        Some(Some((l, t))) if Layer::parse(l).is_some() => (Layer::parse(l), Some(t.to_string())),
        _ => (options.layer, options.table.clone()),
    };
    let mut reports = Vec::new();
    for layer in Layer::ALL {
        if only_layer.is_some_and(|l| l != layer) {
            continue;
        }
        let ns = config.namespaces.of(layer).to_string();
        let mut tables = lake.catalog().list_tables(&ns).await?;
        tables.sort();
        for t in tables {
            if only_table.as_ref().is_some_and(|o| *o != t) {
                continue;
            }
            let name = TableName::new(ns.clone(), t.clone());
            reports.push(maintain_table(lake, config, options, &needs, layer, &name).await);
        }
    }
    if let Some(t) = &options.table
        && reports.is_empty()
    {
        return Err(LakeError::Invalid {
            table: t.clone(),
            message: "no such table in any layer (see `medallion tables`)".into(),
        });
    }
    Ok(reports)
}

async fn maintain_table(
    lake: &Lake,
    config: &Config,
    options: &Options,
    needs: &Needs,
    layer: Layer,
    name: &TableName,
) -> TableReport {
    let started = Instant::now();
    let small = layer.small_file_size(config);
    let mut report = TableReport {
        layer,
        table: name.clone(),
        before: FileStats::default(),
        after: FileStats::default(),
        compact: None,
        expire: None,
        orphans: None,
        elapsed: Duration::ZERO,
        error: None,
    };
    let result: Result<(), LakeError> = async {
        let table = lake.load_existing(name).await?;
        report.before = FileStats::of(&table, small).await?;
        // Readers that loaded the table before this run may be reading its current snapshot:
        // compaction's commits must not push it out of `retain_last` in the same run.
        let mut protected = needs.snapshots.get(name).cloned().unwrap_or_default();
        protected.extend(table.current_snapshot().map(|s| s.snapshot_id()));
        let settings = layer.settings(config);
        if options.compact && !options.dry_run {
            let policy = compact_policy(config, layer, &table, needs);
            report.compact = Some(compact::compact(lake, name, &policy).await?);
        }
        if options.expire {
            let policy = expire::Policy {
                older_than: options
                    .expire_older_than
                    .unwrap_or(settings.expire_older_than.0),
                retain_last: options.retain_last.unwrap_or(settings.retain_last),
                protected,
            };
            report.expire = Some(expire::expire(lake, name, &policy, options.dry_run).await?);
        }
        if options.remove_orphans {
            let age = options
                .orphans_older_than
                .unwrap_or(settings.remove_orphans_older_than.0);
            report.orphans = Some(orphans::remove_orphans(lake, name, age, options.dry_run).await?);
        }
        let table = lake.load_existing(name).await?;
        report.after = FileStats::of(&table, small).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(table = %name, error = %e, "maintenance failed");
        report.error = Some(e.to_string());
    }
    report.elapsed = started.elapsed();
    report
}

fn compact_policy(
    config: &Config,
    layer: Layer,
    table: &LakeTable,
    needs: &Needs,
) -> compact::Policy {
    let settings = layer.settings(config);
    let props = match layer {
        Layer::Bronze => crate::bronze::writer::file_properties(
            &config.bronze,
            table.name.table == config.bronze.dlq_table,
        ),
        Layer::Silver => crate::silver::file_properties(config, table),
        Layer::Gold => crate::gold::file_properties(config),
    };
    let retention = config.silver.delete_retention.0;
    let since = SystemTime::now()
        .checked_sub(retention)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as i64);
    compact::Policy {
        target_size: layer.target_file_size(config),
        small_size: layer.small_file_size(config),
        min_input_files: settings.min_input_files,
        max_sequence: needs.applied.get(&table.name).copied(),
        keep_tombstones_since: (layer == Layer::Silver).then_some(since),
        props,
    }
}

/// What readers need of other tables, read once before maintenance starts: what they recorded
/// then (readers only move forward). A reader mid-run holds the snapshot it loaded, which is
/// why the snapshot current when a table's maintenance starts is kept too.
#[derive(Debug, Default)]
struct Needs {
    /// Snapshots to keep, per table.
    snapshots: HashMap<TableName, HashSet<i64>>,
    /// Per bronze table read by silver: the data sequence number silver has applied up to.
    applied: HashMap<TableName, i64>,
}

impl Needs {
    async fn read(lake: &Lake, config: &Config) -> Result<Needs, LakeError> {
        let mut needs = Needs::default();
        // Gold builds: the snapshot of each table read.
        let gold = &config.namespaces.gold;
        for t in lake.catalog().list_tables(gold).await? {
            let Some(table) = lake.load(&TableName::new(gold.clone(), t)).await? else {
                continue;
            };
            for s in table.metadata().snapshots() {
                // Only the current build's reads matter, but older builds that are still kept
                // may be rolled back to.
                for (key, value) in &s.summary().additional_properties {
                    let (Some(source), Ok(id)) = (parse_read_key(key), value.parse::<i64>()) else {
                        continue;
                    };
                    let name = source_name(config, &source);
                    needs.snapshots.entry(name).or_default().insert(id);
                }
            }
        }
        // Silver: how far it applied each bronze table.
        let silver = &config.namespaces.silver;
        let silver_tables: HashSet<String> = lake
            .catalog()
            .list_tables(silver)
            .await?
            .into_iter()
            .collect();
        for t in lake
            .catalog()
            .list_tables(&config.namespaces.bronze)
            .await?
        {
            let bronze = TableName::new(config.namespaces.bronze.clone(), t.clone());
            let readers = [t.clone(), format!("{t}_quarantine"), format!("{t}_history")];
            if !readers.iter().any(|r| silver_tables.contains(r)) {
                continue;
            }
            // Silver commits last in a run, so its own watermark is the lowest.
            let mut applied = 0;
            if let Some(s) = lake
                .load(&TableName::new(silver.clone(), t.clone()))
                .await?
            {
                let w = s
                    .summary_property(crate::silver::BRONZE_WATERMARK)
                    .and_then(|w| serde_json::from_str::<serde_json::Value>(w).ok());
                if let Some(w) = w {
                    applied = w["sequence_number"].as_i64().unwrap_or(0);
                    if let Some(id) = w["snapshot_id"].as_i64() {
                        needs
                            .snapshots
                            .entry(bronze.clone())
                            .or_default()
                            .insert(id);
                    }
                }
            }
            needs.applied.insert(bronze, applied);
        }
        Ok(needs)
    }
}
