//! The command line: one subcommand per job an Airflow task (or a person) runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

use crate::bronze::ingest::{self, IngestReport};
use crate::bronze::kafka::{self, RunMode};
use crate::bronze::offsets::{OFFSETS_PROPERTY, Watermarks};
use crate::bronze::replay::{ReplayOptions, replay_dlq};
use crate::catalog::TableName;
use crate::config::{Config, SourceKind};
use crate::error::{Error, Result};
use crate::gold;
use crate::lake::Lake;
use crate::maintain;
use crate::metrics::Metrics;
use crate::query::{self, Format};
use crate::silver;
use crate::source::SourceItem;
use crate::source::file::DumpReader;
use crate::source::generate::{GenerateOptions, Generator};
use crate::source::produce::{self, KafkaSink};
use crate::units::HumanDuration;

#[derive(Debug, Parser)]
#[command(
    name = "medallion",
    version,
    about = "Change data capture into a lakehouse: Debezium events → bronze → silver → gold Apache Iceberg tables",
    long_about = "medallion turns a stream of Debezium change events (from PostgreSQL or MySQL, via Kafka or \
Kafka-dump files) into Apache Iceberg tables in three layers:\n\n  \
bronze  every raw event, exactly once, with its source position and Kafka coordinates\n  \
silver  the current row per primary key, typed, equal to the source table\n  \
gold    SQL models over silver, materialized atomically\n\n\
Tables live in a warehouse (a local folder or S3) and are registered in a catalog (an embedded \
sqlite file, or AWS Glue for Athena). Every command reads its pipeline from a TOML file in jobs/ \
(--config); any key can be overridden from the environment as MEDALLION__SECTION__KEY=value.\n\n\
Start with `medallion demo`.",
    after_help = "Exit codes: 0 success, 1 failure, 2 bad configuration or usage (fix, do not retry), \
75 temporary failure (retry later)."
)]
pub struct Cli {
    /// The pipeline configuration.
    #[arg(
        long,
        short,
        global = true,
        env = "MEDALLION_CONFIG",
        default_value = "jobs/local.toml"
    )]
    pub config: PathBuf,

    /// Log as JSON lines (for log shippers) instead of text.
    #[arg(long, global = true, env = "MEDALLION_LOG_JSON")]
    pub log_json: bool,

    /// Log level filter, e.g. `info`, `debug`, `medallion=debug,iceberg=warn`.
    #[arg(long, global = true, env = "MEDALLION_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Land source records in bronze, exactly once.
    ///
    /// Reads the configured source (Kafka-dump JSONL files, plain or gzipped, or a Kafka
    /// consumer group: `--until-caught-up` for scheduled runs, `--follow` to run until SIGTERM)
    /// and lands every record in the bronze table of its topic, with the source offsets
    /// committed in the same Iceberg snapshot. Records that are not valid Debezium records go to the DLQ table
    /// with the reason. Interrupt or kill it at any point: the next run resumes from the offsets
    /// in bronze and lands nothing twice.
    Ingest(IngestArgs),
    /// Bring silver up to date: the current row per primary key, typed, equal to the source.
    ///
    /// For each bronze table with change events (or `silver.include`), reads the bronze rows
    /// committed since the last silver run, decodes them with the Debezium schema (or the
    /// types in `silver.tables.<table>.columns`), applies them per key in source order
    /// (PostgreSQL LSN, MySQL binlog position, then Kafka offset) and commits the new rows and
    /// the position deletes of the old ones in one snapshot with the new bronze watermark.
    /// Deletes remove the row; a truncate empties the table; replayed or older events change
    /// nothing. Values with no typed form (`infinity`, a lost TOAST value) are null with a note
    /// in `_dq_issues`; events that do not fit their columns go to `<table>_quarantine` with
    /// the reason. The expectations of `silver.tables.<table>.expectations` are checked on
    /// every new row (warn: flagged in `_dq_failed`; drop; quarantine; fail: the table commits
    /// nothing) and each run's counts are appended to `silver._dq_runs` (see `medallion dq`).
    /// Safe to interrupt and re-run at any point.
    Silver(SilverArgs),
    /// Build the gold models: the SQL files of `gold.models` (sql/gold), in dependency order.
    ///
    /// Each `<table>.sql` is one SELECT over silver tables (`silver.orders`) and other gold
    /// models (`gold.user_ltv`). Its header says how it is built and what must hold:
    ///
    ///   -- materialized: table            rebuilt in full each run (the default)
    ///   -- materialized: incremental      only the rows whose unique key a change touched
    ///   -- unique_key: order_date         the columns that identify a row
    ///   -- changed_keys: CAST(ordered_at AS DATE) FROM silver.orders
    ///                                     incremental, one per table read: the keys a changed
    ///                                     row touches (as it is now and as it was)
    ///   -- partitioned_by: month(order_date), bucket(16, user_id)
    ///   -- assert: unique(col) | not_null(col) | accepted_values(col, ['a', 'b'])
    ///              | row_count > 0 | relationships(col, silver.users.id)
    ///   -- assert_sql: SELECT * FROM {{ this }} WHERE revenue < 0   (must return no rows)
    ///
    /// A model's new rows are committed in one snapshot, only once every assertion holds; a
    /// model that fails keeps its previous table and the models that read it are skipped. Ends
    /// with a report (model, status, rows, time, how it was built); exits 1 if any model failed.
    #[command(verbatim_doc_comment)]
    Gold(GoldArgs),
    /// Data quality: the latest silver run's results per table and expectation.
    ///
    /// From `silver._dq_runs`: rows checked and failed per expectation (and per built-in check:
    /// `_key_not_null`, `_fits_type`, `_decodes`, whose failures are in `<table>_quarantine`).
    Dq(DqArgs),
    /// Run the whole pipeline on generated sample data, on the embedded catalog.
    ///
    /// Generates e-commerce change events (users, products, orders), ingests them into bronze,
    /// brings silver up to date (with the job config's expectations and the users' history),
    /// builds the gold models of sql/gold, and prints each layer, the data-quality summary and
    /// one user's versions. Needs no service.
    Demo(DemoArgs),
    /// Keep tables fast and small: compaction, snapshot expiry and orphan-file cleanup.
    ///
    /// Without --compact, --expire or --remove-orphans (or their options) it does all three,
    /// with each layer's defaults from `[maintain.bronze]`, `[maintain.silver]` and
    /// `[maintain.gold]` in the job config; `medallion tables` shows when it is due.
    ///
    ///   compact         rewrites a partition's small data files (below small_file_size, by
    ///                   default 3/4 of the layer's target_file_size) once there are
    ///                   min_input_files of them, and files with 20% or more rows deleted, into
    ///                   files of target_file_size; folds position deletes into them and merges
    ///                   the partition's delete files into at most one, and the manifests. Safe
    ///                   while ingest and silver run: their commits are never lost (deletes that
    ///                   land on rewritten rows meanwhile are moved to the new files).
    ///   expire          removes snapshots older than expire_older_than, keeping the newest
    ///                   retain_last, then deletes the files only they referenced. Never removes
    ///                   the current snapshot (it holds the Kafka offsets ingest resumes from),
    ///                   the bronze snapshot silver last applied, or the snapshots the last gold
    ///                   builds read (so they stay incremental).
    ///   remove-orphans  deletes files under a table's folder that no snapshot references
    ///                   (crashed or lost commits) once older than remove_orphans_older_than;
    ///                   keep that above the longest commit of any job (default 3 days).
    ///
    /// Bronze compaction only rewrites files silver has already applied, and silver tombstones
    /// younger than silver.delete_retention are kept. Ends with a report per table (files,
    /// small files, delete files, manifests and snapshots before and after); exits 1 if any
    /// table failed (the others are still maintained).
    #[command(verbatim_doc_comment)]
    Maintain(MaintainArgs),
    /// List every table: snapshots, rows, files (small ones and delete files too, to see when
    /// `medallion maintain` is due), last commit and recorded source offsets.
    Tables(TablesArgs),
    /// Run SQL over all layers (DataFusion), e.g. `SELECT op, count(*) FROM bronze.users GROUP BY op`.
    ///
    /// Tables are named `<layer>.<table>` (bronze, silver, gold) or by their real namespace.
    Query(QueryArgs),
    /// Generate realistic Debezium PostgreSQL events to a Kafka-dump file.
    ///
    /// Deterministic: the same options and seed give the same bytes. A snapshot of `--keys`
    /// rows (op r), then inserts, updates and deletes (each with its tombstone) up to
    /// `--events` records in all.
    Generate(GenerateArgs),
    /// Produce Kafka-dump files to the Kafka cluster of `source.kafka`, record by record.
    ///
    /// Keeps each record's topic, partition, key, value, timestamp and headers byte for byte
    /// (the broker gives new offsets); creates missing topics with enough partitions. For
    /// replaying captured Debezium events into a test cluster, and load tests.
    Produce(ProduceArgs),
    /// Dead letters: records that could not be decoded, with the reason.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Check the configuration and print it as loaded (secrets shown as ***).
    Config,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first: where each came from and why it failed.
    List(DlqListArgs),
    /// Re-ingest dead letters after a fix (a route marked `keyless`, a larger
    /// `bronze.max_record_bytes`, a newer medallion), exactly once.
    ///
    /// Each dead letter is decoded again with the current configuration. Those that decode
    /// land in their bronze table with their original Kafka coordinates; those that still fail
    /// stay in the DLQ. Running it again, or after a crash, lands nothing twice: a dead letter
    /// already in its table is left alone. A dead letter beyond what ingest has committed for
    /// its partition waits for the next ingest (replay again then).
    Replay(DlqReplayArgs),
}

#[derive(Debug, Args)]
pub struct DlqReplayArgs {
    /// Only dead letters bound for this bronze table.
    #[arg(long)]
    pub table: Option<String>,
    /// Show what would be replayed; commit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// At most this many rows.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Kafka-dump files (plain or gzipped), produced in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Kafka-dump files to ingest, in order, instead of `source.files` (file source only).
    #[arg(long = "from", value_name = "FILE")]
    pub from: Vec<PathBuf>,
    /// Exit once the source is drained (the only mode of the file source).
    #[arg(long, conflicts_with = "follow")]
    pub until_caught_up: bool,
    /// Keep running until SIGTERM/Ctrl-C (Kafka source).
    #[arg(long)]
    pub follow: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct SilverArgs {
    /// Only this table (by its name in bronze and silver).
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(Debug, Args)]
pub struct GoldArgs {
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// With --model: also every model that reads it, directly or not.
    #[arg(long, requires = "model")]
    pub downstream: bool,
    /// Print the models, what each reads, and the order they would run in; build nothing.
    #[arg(long)]
    pub plan: bool,
    /// Rebuild `materialized: incremental` models in full (they rebuild in full on their own
    /// the first time, and when their file or partitioning changed).
    #[arg(long)]
    pub full_refresh: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Records to generate.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Rows in the generated snapshot.
    #[arg(long, default_value_t = 2_000)]
    pub keys: u64,
}

#[derive(Debug, Args)]
pub struct DqArgs {
    /// Only this silver table.
    #[arg(long)]
    pub table: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Only this table: `orders` (in every layer) or `silver.orders`.
    #[arg(long)]
    pub table: Option<String>,
    /// Only this layer: bronze, silver or gold.
    #[arg(long)]
    pub layer: Option<String>,
    /// Compact small files and files thinned by deletes.
    #[arg(long)]
    pub compact: bool,
    /// Expire snapshots with each layer's defaults.
    #[arg(long)]
    pub expire: bool,
    /// Expire snapshots older than this (e.g. 12h, 3d) instead of the layer's default.
    #[arg(long, value_name = "DURATION")]
    pub expire_older_than: Option<HumanDuration>,
    /// When expiring, keep at least the newest N snapshots instead of the layer's default.
    #[arg(long, value_name = "N")]
    pub retain_last: Option<usize>,
    /// Delete unreferenced files with each layer's default age.
    #[arg(long)]
    pub remove_orphans: bool,
    /// Delete unreferenced files older than this (e.g. 3d) instead of the layer's default.
    #[arg(long, value_name = "DURATION")]
    pub remove_orphans_older_than: Option<HumanDuration>,
    /// Say which snapshots and files would go; change nothing (compaction does not run).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    /// Only this layer: bronze, silver or gold.
    #[arg(long)]
    pub layer: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement (it may start with `-- ` comments); or give --file.
    #[arg(allow_hyphen_values = true, required_unless_present = "file")]
    pub sql: Option<String>,
    /// Read the SQL statement from this file (e.g. one of sql/athena/*.sql); `-` for stdin.
    #[arg(long, conflicts_with = "sql")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output file (`.gz` for gzip); `-` for standard output.
    #[arg(long, short, required_unless_present = "to_kafka")]
    pub out: Option<PathBuf>,
    /// Produce to the Kafka cluster of `source.kafka` instead (topics are created when missing).
    #[arg(long, conflicts_with = "out")]
    pub to_kafka: bool,
    /// Rows in the initial snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// Records in all (snapshot reads and tombstones included).
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Approximate size of each value in bytes (padding text column); 0 for natural size.
    #[arg(long, default_value_t = 0)]
    pub event_size: usize,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Wrap keys and values in {"schema","payload"} (JsonConverter schemas.enable=true).
    #[arg(long)]
    pub schemas: bool,
    /// Partitions per topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Debezium topic.prefix.
    #[arg(long, default_value = "demo")]
    pub topic_prefix: String,
    /// Keep the key space at `--keys`: inserts re-insert deleted keys (or update a live one)
    /// instead of adding new ones, so `--events` are spread over a fixed set of keys.
    #[arg(long)]
    pub fixed_keys: bool,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) if a.to_kafka => {
            let config = Config::load(&cli.config)?;
            generate_to_kafka(&config, &a).await
        }
        Command::Generate(a) => generate(&a),
        Command::Produce(a) => {
            let config = Config::load(&cli.config)?;
            produce(&config, &a).await
        }
        Command::Config => {
            let config = Config::load(&cli.config)?;
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Ingest(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            let report = run_ingest(&lake, &config, &a).await?;
            print_report(&report);
            Ok(())
        }
        Command::Silver(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            run_silver(&lake, &config, a.table.clone()).await
        }
        Command::Gold(a) => {
            let config = Config::load(&cli.config)?;
            if a.plan {
                return print_gold_plan(&config, &a);
            }
            let lake = Lake::open(&config)?;
            run_gold(&lake, &config, &a).await
        }
        Command::Dq(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            print_dq(&lake, &config, &a).await
        }
        Command::Maintain(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            run_maintain(&lake, &config, &a).await
        }
        Command::Tables(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            print_tables(&lake, &config, a.layer.as_deref()).await
        }
        Command::Query(a) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            let sql = match (&a.sql, &a.file) {
                (Some(sql), _) => sql.clone(),
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let mut sql = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut sql).map_err(
                        |source| Error::Io {
                            what: "read the SQL from standard input".into(),
                            source,
                        },
                    )?;
                    sql
                }
                (None, Some(f)) => std::fs::read_to_string(f).map_err(|source| Error::Io {
                    what: format!("read the SQL from {}", f.display()),
                    source,
                })?,
                (None, None) => unreachable!("clap requires one"),
            };
            let ctx = query::session(&lake, &config).await?;
            let batches = query::run(&ctx, &sql).await?;
            let mut out = std::io::stdout().lock();
            query::write(&mut out, &batches, a.format)?;
            Ok(())
        }
        Command::Demo(a) => demo(&cli.config, &a).await,
        Command::Dlq(DlqCommand::Replay(a)) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            let options = ReplayOptions {
                table: a.table.clone(),
                dry_run: a.dry_run,
            };
            let report = replay_dlq(&lake, &config, &options).await?;
            if a.dry_run {
                println!("dry run: nothing committed");
            }
            for line in report.lines() {
                println!("{line}");
            }
            Ok(())
        }
        Command::Dlq(DlqCommand::List(a)) => {
            let config = Config::load(&cli.config)?;
            let lake = Lake::open(&config)?;
            let dlq = &config.bronze.dlq_table;
            let name = TableName::new(config.namespaces.bronze.clone(), dlq.clone());
            if lake.load(&name).await?.is_none() {
                println!("no dead letters: {name} does not exist yet");
                return Ok(());
            }
            let ctx = query::session(&lake, &config).await?;
            let sql = format!(
                "SELECT ingested_at, kafka_topic AS topic, kafka_partition AS partition, \
                 kafka_offset AS offset, source_file, source_line, target_table, error_kind, reason \
                 FROM bronze.\"{dlq}\" ORDER BY ingested_at DESC, topic, partition, offset LIMIT {}",
                a.limit
            );
            let batches = query::run(&ctx, &sql).await?;
            let mut out = std::io::stdout().lock();
            query::write(&mut out, &batches, a.format)?;
            Ok(())
        }
    }
}

async fn run_ingest(lake: &Lake, config: &Config, a: &IngestArgs) -> Result<IngestReport> {
    let metrics = Metrics::default();
    if let Some(addr) = a.metrics_addr {
        let bound = metrics.serve(addr).await.map_err(|source| Error::Io {
            what: format!("serve metrics on {addr}"),
            source,
        })?;
        tracing::info!(url = %format!("http://{bound}/metrics"), "serving metrics");
        eprintln!("metrics: http://{bound}/metrics");
    }
    match config.source.kind {
        SourceKind::File => {
            if a.follow {
                return Err(Error::Usage(
                    "--follow needs a Kafka source; a file source always stops at the end of its files".into(),
                ));
            }
            let files: Vec<PathBuf> = if a.from.is_empty() {
                config
                    .source
                    .files
                    .iter()
                    .map(|f| config.resolve(f))
                    .collect()
            } else {
                a.from.clone()
            };
            if files.is_empty() {
                return Err(Error::Usage(
                    "nothing to ingest: give --from FILE or set source.files in the config".into(),
                ));
            }
            Ok(ingest::ingest_files_with_metrics(lake, config, files, metrics).await?)
        }
        SourceKind::Kafka => {
            if !a.from.is_empty() {
                return Err(Error::Usage(
                    "--from reads Kafka-dump files; this configuration has a Kafka source".into(),
                ));
            }
            let mode = if a.follow {
                RunMode::Follow
            } else {
                RunMode::UntilCaughtUp
            };
            let stop = Arc::new(AtomicBool::new(false));
            tokio::spawn(stop_on_signal(stop.clone()));
            Ok(kafka::ingest_kafka(lake, config, mode, stop, metrics).await?)
        }
    }
}

/// Runs silver and prints one line per table; any failed table fails the command (after the
/// others ran).
pub async fn run_silver(lake: &Lake, config: &Config, table: Option<String>) -> Result<()> {
    let options = silver::SilverOptions { table };
    let (reports, mut errors) = silver::run(lake, config, &options).await?;
    if reports.is_empty() && errors.is_empty() {
        println!("silver: no bronze table with change events yet (run `medallion ingest` first)");
    }
    for r in &reports {
        print_silver_report(r);
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0).1.into()),
        n => {
            for (t, e) in &errors {
                eprintln!("silver {t}: {e}");
            }
            let retryable = errors.iter().all(|(_, e)| e.is_retryable());
            Err(Error::Silver(silver::SilverError::Failed {
                tables: n,
                retryable,
            }))
        }
    }
}

/// The model graph and the order a run would take.
fn print_gold_plan(config: &Config, a: &GoldArgs) -> Result<()> {
    let (models, graph) = gold::load(config)?;
    let selected = graph
        .select(a.model.as_deref(), a.downstream)
        .map_err(gold::GoldError::from)?;
    println!(
        "{} gold models in {} ({} selected); they run in this order, each wave's models at once:",
        models.len(),
        config.resolve(&config.gold.models).display(),
        selected.len()
    );
    let mut step = 0;
    let levels = graph.levels().map_err(gold::GoldError::from)?;
    for (i, wave) in levels.iter().enumerate() {
        let wave: Vec<&String> = wave.iter().filter(|m| selected.contains(*m)).collect();
        if wave.is_empty() {
            continue;
        }
        println!("wave {}:", i + 1);
        for name in wave {
            step += 1;
            let m = models.iter().find(|m| &m.name == name).expect("a model");
            let reads: Vec<String> = m.reads.iter().map(|r| r.to_string()).collect();
            println!("  {step}. {name}  reads {}", reads.join(", "));
            if !m.description.is_empty() {
                println!("       {}", m.description);
            }
            match m.materialized {
                gold::model::Materialized::Table => println!("       materialized: table"),
                gold::model::Materialized::Incremental => println!(
                    "       materialized: incremental by ({})",
                    m.unique_key.join(", ")
                ),
            }
            if !m.partitioned_by.is_empty() {
                let p: Vec<String> = m.partitioned_by.iter().map(|p| p.to_string()).collect();
                println!("       partitioned by {}", p.join(", "));
            }
            for x in &m.assertions {
                println!("       assert {x}");
            }
        }
    }
    Ok(())
}

/// Builds the gold models and prints the report.
async fn run_gold(lake: &Lake, config: &Config, a: &GoldArgs) -> Result<()> {
    let options = gold::GoldOptions {
        model: a.model.clone(),
        downstream: a.downstream,
        full_refresh: a.full_refresh,
    };
    let reports = gold::run(lake, config, &options).await?;
    let width = reports
        .iter()
        .map(|r| r.model.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:width$}  {:8}  {:>10}  {:>8}  how",
        "model", "status", "rows", "time"
    );
    for r in &reports {
        let status = match &r.status {
            gold::Status::Built => "built",
            gold::Status::Failed(_) => "FAILED",
            gold::Status::Skipped(_) => "skipped",
        };
        println!(
            "{:width$}  {status:8}  {:>10}  {:>7.2}s  {}",
            r.model,
            r.rows,
            r.elapsed.as_secs_f64(),
            r.how
        );
    }
    let mut failed = 0;
    let mut skipped = 0;
    for r in &reports {
        match &r.status {
            gold::Status::Built => {}
            gold::Status::Failed(e) => {
                failed += 1;
                eprintln!("\ngold {}: {e}", r.model);
            }
            gold::Status::Skipped(why) => {
                skipped += 1;
                eprintln!("gold {}: skipped: {why}", r.model);
            }
        }
    }
    if failed + skipped > 0 {
        return Err(gold::GoldError::Failed {
            failed,
            skipped,
            total: reports.len(),
        }
        .into());
    }
    Ok(())
}

/// The latest run's data-quality counts per silver table.
async fn print_dq(lake: &Lake, config: &Config, a: &DqArgs) -> Result<()> {
    let runs = silver::quality::RUNS_TABLE;
    let name = TableName::new(config.namespaces.silver.clone(), runs);
    if lake.load(&name).await?.is_none() {
        println!("no data-quality results yet: {name} does not exist (run `medallion silver`)");
        return Ok(());
    }
    let filter = match &a.table {
        Some(t) => {
            crate::config::check_identifier("--table", t)?;
            format!("WHERE table_name = '{}.{t}'", config.namespaces.silver)
        }
        None => String::new(),
    };
    let sql = format!(
        "WITH latest AS (SELECT table_name, max(run_id) AS run_id FROM silver.{runs} {filter} \
         GROUP BY table_name) \
         SELECT d.table_name AS \"table\", d.expectation, d.action, \
         sum(d.rows_checked) AS checked, sum(d.rows_failed) AS failed, \
         round(100.0 * sum(d.rows_failed) / nullif(sum(d.rows_checked), 0), 2) AS failed_pct, \
         max(d.run_at) AS run_at \
         FROM silver.{runs} d JOIN latest l ON d.table_name = l.table_name AND d.run_id = l.run_id \
         GROUP BY d.table_name, d.expectation, d.action ORDER BY 1, 2"
    );
    let ctx = query::session(lake, config).await?;
    let batches = query::run(&ctx, &sql).await?;
    let mut out = std::io::stdout().lock();
    query::write(&mut out, &batches, a.format)?;
    Ok(())
}

fn print_silver_report(r: &silver::TableReport) {
    if r.up_to_date {
        println!("{}: up to date", r.table);
        return;
    }
    println!(
        "{}: {} events from {} bronze rows ({} files, {} commit{}) in {:.2}s: {} keys, {} upserts, {} deletes, {} stale (already applied), {} quarantined, {} dropped, {} rows warned, {} cells flagged{}{}{}",
        r.table,
        r.events,
        r.bronze_rows,
        r.bronze_files,
        r.steps,
        if r.steps == 1 { "" } else { "s" },
        r.elapsed.as_secs_f64(),
        r.keys,
        r.upserts,
        r.deletes,
        r.stale,
        r.quarantined,
        r.dropped,
        r.warned,
        r.flagged,
        if r.truncated { "; truncated" } else { "" },
        if r.history > 0 {
            format!("; {} history rows", r.history)
        } else {
            String::new()
        },
        if r.columns_added.is_empty() {
            String::new()
        } else {
            format!("; columns added: {}", r.columns_added.join(", "))
        }
    );
    println!(
        "  time: {:.2}s reading bronze and keeping the latest per key, {:.2}s decoding, {:.2}s looking up {} silver rows, {:.2}s writing and committing",
        r.t_read.as_secs_f64(),
        r.t_decode.as_secs_f64(),
        r.t_lookup.as_secs_f64(),
        r.rows_scanned,
        r.t_write.as_secs_f64()
    );
}

/// Sets `stop` on SIGTERM or Ctrl-C (SIGINT); the ingest loop then commits and exits 0.
async fn stop_on_signal(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    stop.store(true, Ordering::Relaxed);
}

fn print_report(r: &IngestReport) {
    let c = &r.counts;
    println!(
        "read {} records in {:.2}s ({:.0} records/s): {} landed, {} to the DLQ, {} already in bronze (skipped); {} commits, {} data files",
        c.read,
        r.elapsed.as_secs_f64(),
        r.records_per_second(),
        c.landed,
        c.dead_letters,
        c.skipped,
        r.commits,
        r.files_written
    );
    let source_wait = r
        .source_waited
        .map(|w| format!(", {:.2}s waiting for the broker", w.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "  time: {:.2}s writing and committing, {:.2}s of reading held back by commits{source_wait}",
        r.committing.as_secs_f64(),
        r.reader_waited.as_secs_f64()
    );
    if let Some(t) = r.first_record_after {
        println!(
            "  first record after {:.2}s (joining the group); {:.0} records/s from there",
            t.as_secs_f64(),
            r.streaming_records_per_second()
        );
    }
    if !c.by_table.is_empty() {
        let per: Vec<String> = c
            .by_table
            .iter()
            .map(|(t, n)| format!("{t}: {n}"))
            .collect();
        println!("  rows per table: {}", per.join(", "));
    }
    if !c.by_kind.is_empty() {
        let per: Vec<String> = c.by_kind.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  by op/kind: {}", per.join(", "));
    }
}

fn generate_options(a: &GenerateArgs) -> GenerateOptions {
    GenerateOptions {
        keys: a.keys,
        events: a.events,
        event_size: a.event_size,
        seed: a.seed,
        schemas: a.schemas,
        partitions: a.partitions.max(1),
        topic_prefix: a.topic_prefix.clone(),
        fixed_keys: a.fixed_keys,
    }
}

fn kafka_config(config: &Config) -> Result<&crate::config::KafkaConfig> {
    config.source.kafka.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "{} has no [source.kafka] section: set source.kind = \"kafka\" and source.kafka.bootstrap_servers",
            config
                .path
                .as_deref()
                .map_or("the configuration".into(), |p| p.display().to_string())
        ))
    })
}

async fn generate_to_kafka(config: &Config, a: &GenerateArgs) -> Result<()> {
    let kafka = kafka_config(config)?;
    let opts = generate_options(a);
    let topics = ["users", "products", "orders"]
        .iter()
        .map(|t| (format!("{}.public.{t}", opts.topic_prefix), opts.partitions))
        .collect();
    produce::ensure_topics(kafka, &topics).await?;
    let kafka = kafka.clone();
    let n = tokio::task::spawn_blocking(move || -> Result<u64> {
        let sink = KafkaSink::connect(&kafka)?;
        for r in Generator::new(opts) {
            sink.send(&r)?;
        }
        Ok(sink.finish()?)
    })
    .await
    .map_err(|_| Error::Usage("the producer thread stopped".into()))??;
    eprintln!(
        "produced {n} records to {}",
        kafka_config(config)?.bootstrap_servers
    );
    Ok(())
}

async fn produce(config: &Config, a: &ProduceArgs) -> Result<()> {
    let kafka = kafka_config(config)?.clone();
    // First pass: the topics and how many partitions each needs.
    let files = a.files.clone();
    let scan = files.clone();
    let topics = tokio::task::spawn_blocking(move || -> Result<BTreeMap<String, i32>> {
        let mut topics = BTreeMap::new();
        for f in &scan {
            let mut r = DumpReader::open(f)?;
            while let Some(item) = r.next_item()? {
                if let SourceItem::Record(rec) = item {
                    let n = topics.entry(rec.topic.to_string()).or_insert(0);
                    *n = (*n).max(rec.partition + 1);
                }
            }
        }
        Ok(topics)
    })
    .await
    .map_err(|_| Error::Usage("the reader thread stopped".into()))??;
    produce::ensure_topics(&kafka, &topics).await?;
    let servers = kafka.bootstrap_servers.clone();
    let (n, skipped) = tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        let sink = KafkaSink::connect(&kafka)?;
        let mut skipped = 0;
        for f in &files {
            let mut r = DumpReader::open(f)?;
            while let Some(item) = r.next_item()? {
                match item {
                    SourceItem::Record(rec) => sink.send(&rec)?,
                    SourceItem::Unreadable(u) => {
                        skipped += 1;
                        tracing::warn!(file = %u.file, line = u.line + 1, reason = %u.reason, "unreadable line not produced");
                    }
                }
            }
        }
        Ok((sink.finish()?, skipped))
    })
    .await
    .map_err(|_| Error::Usage("the producer thread stopped".into()))??;
    eprintln!("produced {n} records to {servers}; {skipped} unreadable lines skipped");
    Ok(())
}

fn generate(a: &GenerateArgs) -> Result<()> {
    let opts = generate_options(a);
    let out = a
        .out
        .clone()
        .expect("clap requires --out without --to-kafka");
    let write_all = |out: &mut dyn Write| -> std::io::Result<u64> {
        let mut n = 0;
        for r in Generator::new(opts.clone()) {
            crate::source::file::write_record(out, &r)?;
            n += 1;
        }
        out.flush()?;
        Ok(n)
    };
    let io = |source| Error::Io {
        what: format!("write {}", out.display()),
        source,
    };
    let n = if out.as_os_str() == "-" {
        write_all(&mut std::io::BufWriter::new(std::io::stdout().lock())).map_err(io)?
    } else {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::File::create(&out).map_err(io)?;
        if out.extension().is_some_and(|e| e == "gz") {
            let mut gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(file),
                flate2::Compression::fast(),
            );
            let n = write_all(&mut gz).map_err(io)?;
            gz.finish().map_err(io)?;
            n
        } else {
            write_all(&mut std::io::BufWriter::with_capacity(1 << 20, file)).map_err(io)?
        }
    };
    eprintln!("wrote {n} records to {}", out.display());
    Ok(())
}

/// Runs `medallion maintain` and prints its report.
pub async fn run_maintain(lake: &Lake, config: &Config, a: &MaintainArgs) -> Result<()> {
    let layer = match a.layer.as_deref() {
        None => None,
        Some(l) => Some(
            maintain::Layer::parse(l)
                .ok_or_else(|| Error::Usage(format!("--layer {l}: use bronze, silver or gold")))?,
        ),
    };
    let expire = a.expire || a.expire_older_than.is_some() || a.retain_last.is_some();
    let orphans = a.remove_orphans || a.remove_orphans_older_than.is_some();
    let everything = !(a.compact || expire || orphans);
    let options = maintain::Options {
        layer,
        table: a.table.clone(),
        compact: a.compact || everything,
        expire: expire || everything,
        remove_orphans: orphans || everything,
        expire_older_than: a.expire_older_than.map(|d| d.0),
        retain_last: a.retain_last,
        orphans_older_than: a.remove_orphans_older_than.map(|d| d.0),
        dry_run: a.dry_run,
    };
    if let Some(age) = options.orphans_older_than
        && age < std::time::Duration::from_secs(3600)
    {
        tracing::warn!(
            "--remove-orphans-older-than {}: files of a commit still in flight may be deleted; use an age this short only while no job writes",
            HumanDuration(age)
        );
    }
    let reports = maintain::run(lake, config, &options).await?;
    let mut out = std::io::stdout().lock();
    let failed = print_maintenance(&mut out, &reports, a.dry_run).map_err(|source| Error::Io {
        what: "write to stdout".into(),
        source,
    })?;
    if failed > 0 {
        return Err(Error::Maintenance {
            failed,
            tables: reports.len(),
        });
    }
    Ok(())
}

fn print_maintenance(
    out: &mut impl Write,
    reports: &[maintain::TableReport],
    dry_run: bool,
) -> std::io::Result<usize> {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let mut failed = 0;
    let mut layer = None;
    for r in reports {
        if layer != Some(r.layer) {
            layer = Some(r.layer);
            writeln!(out, "{} ({})", r.layer.as_str(), r.table.namespace)?;
        }
        let (b, f) = (&r.before, &r.after);
        writeln!(
            out,
            "  {:<32} data files {} → {} (small {} → {}), delete files {} → {}, manifests {} → {}, snapshots {} → {}  [{:.1} s]",
            r.table.table,
            b.data_files,
            f.data_files,
            b.small_files,
            f.small_files,
            b.delete_files,
            f.delete_files,
            b.manifests,
            f.manifests,
            b.snapshots,
            f.snapshots,
            r.elapsed.as_secs_f64()
        )?;
        if let Some(c) = &r.compact {
            if c.partitions > 0 {
                writeln!(
                    out,
                    "  {:<32} compacted {} partition(s): {} data files → {}, {} delete files → {}, {} deleted rows dropped, {} deletes moved onto new files; read {}, wrote {}",
                    "",
                    c.partitions,
                    c.data_files_rewritten,
                    c.data_files_written,
                    c.delete_files_removed,
                    c.delete_files_written,
                    c.rows_dropped,
                    c.deletes_rebased,
                    mb(c.bytes_read),
                    mb(c.bytes_written)
                )?;
            }
            for s in &c.skipped {
                writeln!(out, "  {:<32} not compacted: {s}", "")?;
            }
        }
        if let Some(e) = &r.expire
            && (e.snapshots_expired > 0 || e.snapshots_protected > 0)
        {
            writeln!(
                out,
                "  {:<32} {} {} of {} snapshots ({} kept for readers), {} {} files{}",
                "",
                if dry_run { "would expire" } else { "expired" },
                e.snapshots_expired,
                e.snapshots_before,
                e.snapshots_protected,
                if dry_run { "would delete" } else { "deleted" },
                e.files_deleted,
                if dry_run {
                    String::new()
                } else {
                    format!(" ({})", mb(e.bytes_deleted))
                }
            )?;
        }
        if let Some(o) = &r.orphans
            && o.orphans > 0
        {
            writeln!(
                out,
                "  {:<32} {} orphan files: {} {}{}, {} too young to touch",
                "",
                o.orphans,
                if dry_run { "would delete" } else { "deleted" },
                o.files_deleted,
                if dry_run {
                    String::new()
                } else {
                    format!(" ({})", mb(o.bytes_deleted))
                },
                o.too_young
            )?;
            if dry_run {
                for p in &o.paths {
                    writeln!(out, "  {:<32}   {p}", "")?;
                }
            }
        }
        if let Some(e) = &r.error {
            failed += 1;
            writeln!(out, "  {:<32} FAILED: {e}", "")?;
        }
    }
    Ok(failed)
}

/// Prints every table of the selected layers.
pub async fn print_tables(lake: &Lake, config: &Config, layer: Option<&str>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let io = |source| Error::Io {
        what: "write to stdout".into(),
        source,
    };
    for (alias, namespace) in query::layers(config) {
        if layer.is_some_and(|l| l != alias) {
            continue;
        }
        let tables = lake
            .catalog()
            .list_tables(&namespace)
            .await
            .map_err(crate::lake::LakeError::from)?;
        writeln!(out, "{alias} ({namespace}): {} table(s)", tables.len()).map_err(io)?;
        for table in tables {
            let name = TableName::new(namespace.clone(), table.clone());
            let Some(t) = lake.load(&name).await? else {
                continue;
            };
            let md = t.metadata();
            let snap = t.current_snapshot();
            let prop = |k: &str| {
                snap.and_then(|s| s.summary().additional_properties.get(k).cloned())
                    .unwrap_or_else(|| "0".into())
            };
            let last = snap
                .and_then(|s| chrono::DateTime::from_timestamp_millis(s.timestamp_ms()))
                .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "never".into());
            // Rows a reader sees: every row written, less those position deletes removed (each
            // live row is deleted at most once).
            let num = |k: &str| prop(k).parse::<u64>().unwrap_or(0);
            let live = num("total-records").saturating_sub(num("total-position-deletes"));
            let layer = maintain::Layer::parse(alias).unwrap_or(maintain::Layer::Gold);
            let stats = maintain::FileStats::of(&t, layer.small_file_size(config)).await?;
            let due = stats.small_files >= layer.settings(config).min_input_files
                || stats.delete_files >= 2
                || stats.manifests >= 100;
            writeln!(
                out,
                "  {table:<32} snapshots {:>5}  rows {live:>10}  files {:>5} (small {:>5})  delete files {:>4}  manifests {:>4}  last commit {last}{}",
                md.snapshots().count(),
                stats.data_files,
                stats.small_files,
                stats.delete_files,
                stats.manifests,
                if due { "  (maintenance due)" } else { "" },
            )
            .map_err(io)?;
            if let Some(w) = t.summary_property(crate::silver::BRONZE_WATERMARK)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(w)
            {
                writeln!(
                    out,
                    "  {:<32} bronze applied up to snapshot {} (sequence {})",
                    "", v["snapshot_id"], v["sequence_number"]
                )
                .map_err(io)?;
            }
            if let Some(w) = t
                .summary_property(OFFSETS_PROPERTY)
                .and_then(|s| Watermarks::from_json(s).ok())
            {
                let parts: Vec<String> = w.0.iter().map(|(p, o)| format!("{p}→{o}")).collect();
                let shown = if parts.len() > 6 {
                    format!("{} … (+{} more)", parts[..6].join(", "), parts.len() - 6)
                } else {
                    parts.join(", ")
                };
                writeln!(out, "  {:<32} offsets: {shown}", "").map_err(io)?;
            }
        }
    }
    Ok(())
}

async fn demo(config_path: &std::path::Path, a: &DemoArgs) -> Result<()> {
    let config = Config::load(config_path)?;
    let lake = Lake::open(&config)?;
    println!(
        "== medallion demo: {} records over {} keys, catalog: {}",
        a.events,
        a.keys,
        lake.catalog().describe()
    );
    println!("   warehouse: {}", lake.warehouse());
    let dir = config.resolve(std::path::Path::new(".medallion/demo"));
    let file = dir.join("events.jsonl");
    generate(&GenerateArgs {
        out: Some(file.clone()),
        to_kafka: false,
        keys: a.keys,
        events: a.events,
        event_size: 0,
        seed: 42,
        schemas: false,
        partitions: 2,
        topic_prefix: "demo".into(),
        fixed_keys: false,
    })?;
    println!("\n== bronze: ingest {}", file.display());
    let report = ingest::ingest_files(&lake, &config, vec![file.clone()]).await?;
    print_report(&report);
    println!("\n== bronze: ingest the same file again (exactly once: nothing new lands)");
    let again = ingest::ingest_files(&lake, &config, vec![file]).await?;
    print_report(&again);
    println!();
    print_tables(&lake, &config, Some("bronze")).await?;
    let ctx = query::session(&lake, &config).await?;
    let sql = "SELECT source_table, op, kind, count(*) AS records, max(pg_lsn) AS last_lsn \
               FROM (SELECT * FROM bronze.users UNION ALL SELECT * FROM bronze.products UNION ALL SELECT * FROM bronze.orders) \
               GROUP BY source_table, op, kind ORDER BY source_table, op";
    println!("\n== {sql}");
    let batches = query::run(&ctx, sql).await?;
    query::write(&mut std::io::stdout().lock(), &batches, Format::Table)?;

    println!("\n== silver: the current row per key, typed (decimals, timestamps, dates)");
    run_silver(&lake, &config, None).await?;
    println!("\n== silver: run again (nothing new in bronze: nothing to do)");
    run_silver(&lake, &config, None).await?;
    println!();
    print_tables(&lake, &config, Some("silver")).await?;
    let ctx = query::session(&lake, &config).await?;
    for sql in [
        "SELECT id, email, country, created_at, is_active, _op, _source_lsn FROM silver.users ORDER BY id LIMIT 5",
        "SELECT status, count(*) AS orders, sum(quantity * unit_price) AS revenue, max(ordered_at) AS last_order \
         FROM silver.orders GROUP BY status ORDER BY status",
    ] {
        println!("\n== {sql}");
        let batches = query::run(&ctx, sql).await?;
        query::write(&mut std::io::stdout().lock(), &batches, Format::Table)?;
    }
    println!("\n== data quality: the expectations of the job config, per table (medallion dq)");
    print_dq(
        &lake,
        &config,
        &DqArgs {
            table: None,
            format: Format::Table,
        },
    )
    .await?;
    let quarantine = TableName::new(config.namespaces.silver.clone(), "orders_quarantine");
    if lake.load(&quarantine).await?.is_some() {
        let sql = "SELECT reason, record_key, row FROM silver.orders_quarantine \
                   ORDER BY kafka_partition, kafka_offset LIMIT 3";
        println!("\n== {sql}");
        let batches = query::run(&ctx, sql).await?;
        query::write(&mut std::io::stdout().lock(), &batches, Format::Table)?;
    }
    println!(
        "\n== gold: the models of {} (medallion gold)",
        config.gold.models.display()
    );
    run_gold(
        &lake,
        &config,
        &GoldArgs {
            model: None,
            downstream: false,
            plan: false,
            full_refresh: false,
        },
    )
    .await?;
    let ctx = query::session(&lake, &config).await?;
    for sql in [
        "SELECT * FROM gold.user_segments ORDER BY lifetime_value DESC",
        "SELECT * FROM gold.daily_revenue ORDER BY order_date DESC LIMIT 5",
    ] {
        println!("\n== {sql}");
        let batches = query::run(&ctx, sql).await?;
        query::write(&mut std::io::stdout().lock(), &batches, Format::Table)?;
    }
    let history = TableName::new(config.namespaces.silver.clone(), "users_history");
    if lake.load(&history).await?.is_some() {
        // The versions of the user that changed most (the job config keeps the users' history).
        let sql = "SELECT id, email, country, _op, valid_from, valid_to, is_current \
                   FROM silver.users_history WHERE id = (SELECT id FROM silver.users_history \
                   GROUP BY id ORDER BY count(*) DESC, id LIMIT 1) ORDER BY valid_from, _source_lsn";
        println!("\n== history (SCD type 2): {sql}");
        let batches = query::run(&ctx, sql).await?;
        query::write(&mut std::io::stdout().lock(), &batches, Format::Table)?;
    }
    println!(
        "\nTry: medallion query \"SELECT category, avg(price) FROM silver.products GROUP BY category\""
    );
    Ok(())
}
