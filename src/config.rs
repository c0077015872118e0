//! Pipeline configuration: the `jobs/*.toml` files, environment overrides and validation.
//!
//! A file is parsed strictly (`deny_unknown_fields`), then environment variables of the form
//! `MEDALLION__SECTION__KEY=value` override single keys (for secrets and per-environment
//! settings), then [`Config::validate`] checks every rule and names the key that broke it.
//! Secrets live in [`Secret`], which never prints its value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize, Serializer};

use crate::units::{ByteSize, HumanDuration};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "MEDALLION__";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config key `{key}`: {rule}")]
    Invalid { key: String, rule: String },
}

fn invalid(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        rule: rule.into(),
    }
}

/// A secret value (password, key): printed and serialized as `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// The whole pipeline configuration (one `jobs/*.toml` file).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pipeline: PipelineConfig,
    pub catalog: CatalogConfig,
    pub warehouse: WarehouseConfig,
    #[serde(default)]
    pub namespaces: Namespaces,
    pub source: SourceConfig,
    #[serde(default)]
    pub bronze: BronzeConfig,
    #[serde(default)]
    pub silver: SilverConfig,
    #[serde(default)]
    pub gold: GoldConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub maintain: MaintainConfig,
    /// Where the config file was read from (set by [`Config::load`]). Relative paths in the
    /// file are relative to the working directory, as for every command-line tool.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// A name for logs and metrics.
    #[serde(default = "default_pipeline_name")]
    pub name: String,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            name: default_pipeline_name(),
        }
    }
}

fn default_pipeline_name() -> String {
    "medallion".into()
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// Embedded SQL catalog in a sqlite file (PyIceberg `SqlCatalog` layout).
    Sql,
    /// AWS Glue Data Catalog.
    Glue,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub kind: CatalogKind,
    /// sql: path of the sqlite file.
    pub path: Option<PathBuf>,
    /// sql: the `catalog_name` column value (PyIceberg's catalog name).
    #[serde(default = "default_catalog_name")]
    pub name: String,
    /// glue: AWS region (else the standard AWS chain decides).
    pub region: Option<String>,
    /// glue: endpoint override, e.g. a local Glue-compatible server.
    pub endpoint: Option<String>,
    /// glue: the catalog id (AWS account id) if not the caller's.
    pub catalog_id: Option<String>,
}

fn default_catalog_name() -> String {
    "medallion".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// A local folder, `file:///abs/path`, or `s3://bucket/prefix`.
    pub location: String,
    #[serde(default)]
    pub s3: S3Config,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    /// Usually left out: credentials come from the standard AWS chain.
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
}

/// A layer of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

    /// Its name, which is also its alias in SQL (`silver.users`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One Iceberg namespace (Glue database) per layer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    #[serde(default = "default_ns_bronze")]
    pub bronze: String,
    #[serde(default = "default_ns_silver")]
    pub silver: String,
    #[serde(default = "default_ns_gold")]
    pub gold: String,
}

impl Namespaces {
    /// The namespace of a layer.
    pub fn of(&self, layer: Layer) -> &str {
        match layer {
            Layer::Bronze => &self.bronze,
            Layer::Silver => &self.silver,
            Layer::Gold => &self.gold,
        }
    }
}

fn default_ns_bronze() -> String {
    "bronze".into()
}
fn default_ns_silver() -> String {
    "silver".into()
}
fn default_ns_gold() -> String {
    "gold".into()
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            bronze: default_ns_bronze(),
            silver: default_ns_silver(),
            gold: default_ns_gold(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Kafka-dump JSONL files (plain or gzipped).
    File,
    /// A Kafka cluster.
    Kafka,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// file: the files to ingest, in order (overridden by `ingest --from`).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// kafka: connection and subscription.
    pub kafka: Option<KafkaConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Topics to subscribe to by name.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Or a regex of topic names, e.g. `^dbserver1\.public\..*`.
    pub topic_pattern: Option<String>,
    pub group_id: String,
    /// Where a partition never seen in bronze starts.
    #[serde(default = "default_reset")]
    pub auto_offset_reset: String,
    /// librdkafka client settings passed through as they are (SASL/SSL included). Numbers and
    /// booleans are accepted and passed as their text (`"fetch.wait.max.ms" = 50`).
    #[serde(default, deserialize_with = "client_properties")]
    pub properties: BTreeMap<String, String>,
    /// Client settings whose values are secret (e.g. `sasl.password`); set them from the
    /// environment: `MEDALLION__SOURCE__KAFKA__SECRET_PROPERTIES__SASL.PASSWORD`.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, Secret>,
    /// Also produce every dead letter to this Kafka topic (created if missing), with the
    /// reason in `medallion.*` headers. The DLQ table stays the record; the topic is for
    /// alerting and consumers, and gets each dead letter at least once.
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// How long the brokers may stay unreachable before ingest stops with an error (exit 75)
    /// instead of waiting on.
    #[serde(default = "default_max_outage")]
    pub max_outage: HumanDuration,
}

fn default_reset() -> String {
    "earliest".into()
}
fn default_max_outage() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimePartition {
    Hour,
    Day,
    Month,
}

/// How long storage and catalog failures are retried (exponential backoff) before a run stops
/// with an error naming what failed (exit 75): the circuit breaker.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Give up after retrying this long.
    #[serde(default = "default_retry_max_elapsed")]
    pub max_elapsed: HumanDuration,
    /// The longest wait between two attempts (waits start at 20 ms and double).
    #[serde(default = "default_retry_max_backoff")]
    pub max_backoff: HumanDuration,
}

fn default_retry_max_elapsed() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(120))
}
fn default_retry_max_backoff() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_elapsed: default_retry_max_elapsed(),
            max_backoff: default_retry_max_backoff(),
        }
    }
}

/// Bronze landing: batching, file layout and topic → table routing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BronzeConfig {
    /// Flush a batch after this many records ...
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// ... or this many bytes of raw key + value ...
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// ... or this long after its first record, whichever comes first.
    #[serde(default = "default_max_interval")]
    pub max_interval: HumanDuration,
    /// Records larger than this (key + value) go to the DLQ instead of bronze.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: ByteSize,
    /// Time transform of `ingested_at` that partitions every bronze table.
    #[serde(default = "default_partition")]
    pub partition: TimePartition,
    /// Parquet compression: `zstd(LEVEL)`, `snappy`, `lz4`, `gzip(LEVEL)` or `uncompressed`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Roll data files at about this size.
    #[serde(default = "default_target_file_size")]
    pub target_file_size: ByteSize,
    /// The dead-letter table (in the bronze namespace) for records that cannot be decoded.
    #[serde(default = "default_dlq_table")]
    pub dlq_table: String,
    /// Topic → table routes, first match wins. Topics that match none land in a table named
    /// after the topic (every character outside `[a-z0-9_]` becomes `_`).
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
}

fn default_max_rows() -> usize {
    250_000
}
fn default_max_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}
fn default_max_record_bytes() -> ByteSize {
    ByteSize(8 << 20)
}
fn default_partition() -> TimePartition {
    TimePartition::Day
}
fn default_compression() -> String {
    "zstd(1)".into()
}
fn default_target_file_size() -> ByteSize {
    ByteSize(256 << 20)
}
fn default_dlq_table() -> String {
    "_dlq".into()
}

impl Default for BronzeConfig {
    fn default() -> Self {
        BronzeConfig {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_interval: default_max_interval(),
            max_record_bytes: default_max_record_bytes(),
            partition: default_partition(),
            compression: default_compression(),
            target_file_size: default_target_file_size(),
            dlq_table: default_dlq_table(),
            routes: Vec::new(),
        }
    }
}

/// One routing rule: topics matching `topic` (a regex, anchored) land in `table`, where `$1`,
/// `${name}` refer to the regex's capture groups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub topic: String,
    pub table: String,
    /// The source table has no primary key: change records without a Kafka key are valid.
    #[serde(default)]
    pub keyless: bool,
}

/// Silver: typed current-state tables, one per bronze table with change events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SilverConfig {
    /// Only these bronze tables get a silver table (default: every one with change events).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// How decimals arrive in records without a schema: Debezium's `decimal.handling.mode`
    /// (`precise`: base64 unscaled, `string`, `double`).
    #[serde(default)]
    pub decimal_handling: crate::silver::types::DecimalHandling,
    /// Parquet compression of silver data files.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Roll data files at about this size.
    #[serde(default = "default_silver_file_size")]
    pub target_file_size: ByteSize,
    /// A run commits in steps: each step reads bronze files until the latest events it keeps
    /// per key reach about this size (raw JSON), so memory stays bounded on any backlog. Peak
    /// memory is about 3-4 times this (the decoded rows and the files being written).
    #[serde(default = "default_silver_step_bytes")]
    pub max_step_bytes: ByteSize,
    /// How long a deleted key's delete position is kept (so a replayed older event cannot bring
    /// it back); table maintenance drops older ones.
    #[serde(default = "default_delete_retention")]
    pub delete_retention: HumanDuration,
    /// Per-table settings, by silver table name.
    #[serde(default)]
    pub tables: BTreeMap<String, SilverTableConfig>,
}

/// Table maintenance (`medallion maintain`): what it does to each layer when the command line
/// does not say otherwise.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainConfig {
    #[serde(default)]
    pub bronze: MaintainLayer,
    #[serde(default)]
    pub silver: MaintainLayer,
    #[serde(default)]
    pub gold: MaintainLayer,
}

/// Maintenance of one layer's tables. Compaction writes files of the layer's
/// `target_file_size`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainLayer {
    /// Data files below this size are small (default: three quarters of the layer's
    /// `target_file_size`).
    #[serde(default)]
    pub small_file_size: Option<ByteSize>,
    /// Compact a partition once it has this many small files; a file with position deletes
    /// is always rewritten (its deleted rows dropped).
    #[serde(default = "default_min_input_files")]
    pub min_input_files: usize,
    /// Expire snapshots older than this (time travel reaches back this far)…
    #[serde(default = "default_maintain_age")]
    pub expire_older_than: HumanDuration,
    /// …but keep at least this many of the newest.
    #[serde(default = "default_retain_last")]
    pub retain_last: usize,
    /// Delete files under a table's folder that no snapshot references once they are this
    /// old (younger ones may belong to a commit in flight).
    #[serde(default = "default_maintain_age")]
    pub remove_orphans_older_than: HumanDuration,
}

impl Default for MaintainLayer {
    fn default() -> Self {
        MaintainLayer {
            small_file_size: None,
            min_input_files: default_min_input_files(),
            expire_older_than: default_maintain_age(),
            retain_last: default_retain_last(),
            remove_orphans_older_than: default_maintain_age(),
        }
    }
}

fn default_min_input_files() -> usize {
    5
}
fn default_retain_last() -> usize {
    10
}
fn default_maintain_age() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3 * 86_400))
}

/// Gold: SQL models over silver, materialized as tables.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoldConfig {
    /// The folder of the models, one `<table>.sql` per gold table (relative to the working
    /// directory).
    #[serde(default = "default_gold_models")]
    pub models: PathBuf,
    /// Models of one wave (that do not read each other) built at once, at most; fewer when
    /// their estimated memory does not fit in `max_memory`. Each holds its result in memory
    /// until it commits.
    #[serde(default = "default_gold_parallelism")]
    pub parallelism: usize,
    /// Memory for the models being built at once: a model's estimate is what it reads (the
    /// Parquet size of its tables' current snapshots) times 4, for Arrow's decoded size. Also
    /// the query engine's memory pool: sorts and aggregations spill to disk beyond it. Default:
    /// half of the memory available when the run starts.
    #[serde(default)]
    pub max_memory: Option<ByteSize>,
    /// Parquet compression of gold data files.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Roll data files at about this size.
    #[serde(default = "default_silver_file_size")]
    pub target_file_size: ByteSize,
}

impl Default for GoldConfig {
    fn default() -> Self {
        GoldConfig {
            models: default_gold_models(),
            parallelism: default_gold_parallelism(),
            max_memory: None,
            compression: default_compression(),
            target_file_size: default_silver_file_size(),
        }
    }
}

fn default_gold_models() -> PathBuf {
    PathBuf::from("sql/gold")
}
fn default_gold_parallelism() -> usize {
    2
}

fn default_silver_file_size() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_silver_step_bytes() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_delete_retention() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 24 * 3600))
}

impl Default for SilverConfig {
    fn default() -> Self {
        SilverConfig {
            include: None,
            decimal_handling: Default::default(),
            compression: default_compression(),
            target_file_size: default_silver_file_size(),
            max_step_bytes: default_silver_step_bytes(),
            delete_retention: default_delete_retention(),
            tables: BTreeMap::new(),
        }
    }
}

/// One silver table's settings.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SilverTableConfig {
    /// Overrides `silver.decimal_handling` for this table.
    #[serde(default)]
    pub decimal_handling: Option<crate::silver::types::DecimalHandling>,
    /// Column types and defaults where the records do not carry them: `price = "decimal(10,2)"`
    /// or `loyalty_points = { type = "int", default = 0 }`.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnConfig>,
    /// Data-quality expectations, checked on every row a run writes (in the order given).
    #[serde(default)]
    pub expectations: Vec<ExpectationConfig>,
    /// A field in schema-less records that the table does not have yet (records with a schema
    /// always add the columns an `ALTER TABLE … ADD COLUMN` brings).
    #[serde(default)]
    pub new_columns: NewColumns,
    /// Keep every version of every row in `<table>_history` (slowly changing dimension type
    /// 2): the row's columns plus `valid_from`, `valid_to` and `is_current`, written in the
    /// same run as silver.
    #[serde(default)]
    pub history: bool,
}

/// What a new field in schema-less records does to a silver table that has columns already.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NewColumns {
    /// Becomes a nullable column; rows written before read null (or the configured default).
    #[default]
    Add,
    /// Left out of silver (it stays in bronze).
    Ignore,
    /// Stops the table's run with a message naming the field; other tables go on.
    Fail,
}

/// A data-quality expectation, in the style of Delta Live Tables.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectationConfig {
    /// Its name in flags, quarantine rows, `_dq_runs` and messages.
    pub name: String,
    /// A SQL boolean expression over the decoded row, e.g. `price >= 0`. A row fails when it is
    /// false; null (unknown) passes, as in a SQL CHECK constraint.
    pub expr: String,
    /// What a failing row does.
    #[serde(default)]
    pub action: DqAction,
}

/// What a row that fails an expectation does.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum DqAction {
    /// Kept in silver, its name in `_dq_failed`.
    #[default]
    Warn,
    /// Left out of silver (the key keeps its previous row) and counted.
    Drop,
    /// Left out of silver and written to `<table>_quarantine` with the names it failed.
    Quarantine,
    /// The table's run stops before it commits anything, with a non-zero exit.
    Fail,
}

impl DqAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DqAction::Warn => "warn",
            DqAction::Drop => "drop",
            DqAction::Quarantine => "quarantine",
            DqAction::Fail => "fail",
        }
    }
}

/// A column's configured type and/or default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ColumnConfig {
    Type(String),
    Full {
        #[serde(rename = "type", default)]
        ty: Option<String>,
        #[serde(default)]
        default: Option<toml::Value>,
    },
}

impl ColumnConfig {
    pub fn type_name(&self) -> Option<&str> {
        match self {
            ColumnConfig::Type(t) => Some(t),
            ColumnConfig::Full { ty, .. } => ty.as_deref(),
        }
    }

    /// The default as a JSON value, the way Debezium would send it.
    pub fn default_json(&self) -> Option<serde_json::Value> {
        match self {
            ColumnConfig::Full {
                default: Some(v), ..
            } => serde_json::to_value(v).ok(),
            _ => None,
        }
    }
}

impl Config {
    /// Reads, overrides from the environment and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let mut config = Self::from_toml_str(&text, path, &env)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses `text`, applies `env` overrides (`MEDALLION__A__B=value`) and validates.
    pub fn from_toml_str(
        text: &str,
        path: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        for (var, value) in env {
            apply_env_override(&mut doc, var, value)?;
        }
        let config: Config = doc
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule that serde cannot express; the error names the key and the rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.catalog.kind {
            CatalogKind::Sql => {
                if self.catalog.path.is_none() {
                    return Err(invalid(
                        "catalog.path",
                        "required when catalog.kind = \"sql\": the sqlite file, e.g. \"warehouse/catalog.db\"",
                    ));
                }
            }
            CatalogKind::Glue => {
                if self.catalog.path.is_some() {
                    return Err(invalid(
                        "catalog.path",
                        "only used with catalog.kind = \"sql\"",
                    ));
                }
            }
        }
        if self.catalog.name.is_empty() {
            return Err(invalid("catalog.name", "must not be empty"));
        }
        let loc = &self.warehouse.location;
        if loc.is_empty() {
            return Err(invalid("warehouse.location", "must not be empty"));
        }
        if loc.contains("://") && !(loc.starts_with("s3://") || loc.starts_with("file://")) {
            return Err(invalid(
                "warehouse.location",
                format!(
                    "'{loc}' has an unsupported scheme: use a local folder, file:///path or s3://bucket/prefix"
                ),
            ));
        }
        if self.catalog.kind == CatalogKind::Glue && !loc.starts_with("s3://") {
            return Err(invalid(
                "warehouse.location",
                "a Glue catalog needs an s3:// warehouse: Athena cannot read a local folder",
            ));
        }
        for (key, ns) in [
            ("namespaces.bronze", &self.namespaces.bronze),
            ("namespaces.silver", &self.namespaces.silver),
            ("namespaces.gold", &self.namespaces.gold),
        ] {
            check_identifier(key, ns)?;
        }
        let n = &self.namespaces;
        if n.bronze == n.silver || n.bronze == n.gold || n.silver == n.gold {
            return Err(invalid(
                "namespaces",
                "bronze, silver and gold must be three different names",
            ));
        }
        for (layer, m) in [
            ("bronze", &self.maintain.bronze),
            ("silver", &self.maintain.silver),
            ("gold", &self.maintain.gold),
        ] {
            if m.min_input_files < 2 {
                return Err(invalid(
                    format!("maintain.{layer}.min_input_files"),
                    "must be at least 2 (rewriting one small file into one small file gains nothing)",
                ));
            }
            if m.retain_last < 1 {
                return Err(invalid(
                    format!("maintain.{layer}.retain_last"),
                    "must be at least 1 (the current snapshot is always kept)",
                ));
            }
        }
        match self.source.kind {
            SourceKind::File => {
                if self.source.kafka.is_some() {
                    return Err(invalid(
                        "source.kafka",
                        "only used with source.kind = \"kafka\"",
                    ));
                }
            }
            SourceKind::Kafka => {
                let Some(k) = &self.source.kafka else {
                    return Err(invalid(
                        "source.kafka",
                        "required when source.kind = \"kafka\" (bootstrap_servers, group_id, topics or topic_pattern)",
                    ));
                };
                if k.bootstrap_servers.trim().is_empty() {
                    return Err(invalid(
                        "source.kafka.bootstrap_servers",
                        "must not be empty",
                    ));
                }
                if k.group_id.trim().is_empty() {
                    return Err(invalid("source.kafka.group_id", "must not be empty"));
                }
                match (&k.topics.is_empty(), &k.topic_pattern) {
                    (true, None) => {
                        return Err(invalid(
                            "source.kafka.topics",
                            "give a topic list or source.kafka.topic_pattern",
                        ));
                    }
                    (false, Some(_)) => {
                        return Err(invalid(
                            "source.kafka.topic_pattern",
                            "give either topics or topic_pattern, not both",
                        ));
                    }
                    _ => {}
                }
                if let Some(p) = &k.topic_pattern {
                    let re = Regex::new(p).map_err(|e| {
                        invalid(
                            "source.kafka.topic_pattern",
                            format!("not a valid regex: {e}"),
                        )
                    })?;
                    if let Some(d) = &k.dlq_topic
                        && re.is_match(d)
                    {
                        return Err(invalid(
                            "source.kafka.dlq_topic",
                            format!(
                                "'{d}' matches topic_pattern, so ingest would read its own dead letters; narrow the pattern or rename the topic"
                            ),
                        ));
                    }
                }
                if let Some(d) = &k.dlq_topic
                    && (d.is_empty() || k.topics.contains(d))
                {
                    return Err(invalid(
                        "source.kafka.dlq_topic",
                        "must be a topic name that is not one of source.kafka.topics",
                    ));
                }
                if !["earliest", "latest", "error"].contains(&k.auto_offset_reset.as_str()) {
                    return Err(invalid(
                        "source.kafka.auto_offset_reset",
                        "must be \"earliest\", \"latest\" or \"error\"",
                    ));
                }
                for key in k.properties.keys() {
                    if key.contains("password") || key.contains("secret") {
                        return Err(invalid(
                            format!("source.kafka.properties.{key}"),
                            "looks like a secret: put it in source.kafka.secret_properties, set from the environment",
                        ));
                    }
                }
            }
        }
        let b = &self.bronze;
        if b.max_rows == 0 {
            return Err(invalid("bronze.max_rows", "must be at least 1"));
        }
        if b.max_bytes.0 < 1024 {
            return Err(invalid("bronze.max_bytes", "must be at least 1KiB"));
        }
        if b.max_interval.0.is_zero() {
            return Err(invalid("bronze.max_interval", "must be longer than 0"));
        }
        if b.target_file_size.0 < (1 << 20) {
            return Err(invalid("bronze.target_file_size", "must be at least 1MiB"));
        }
        crate::bronze::writer::parse_compression(&b.compression)
            .map_err(|rule| invalid("bronze.compression", rule))?;
        check_identifier("bronze.dlq_table", &b.dlq_table)?;
        for (i, r) in b.routes.iter().enumerate() {
            let key = format!("bronze.route[{i}]");
            Regex::new(&format!("^(?:{})$", r.topic))
                .map_err(|e| invalid(format!("{key}.topic"), format!("not a valid regex: {e}")))?;
            // A template must expand to a valid table name for some topic; check its literal
            // parts now so a typo fails at start-up.
            let literal = re_template_literal(&r.table);
            if !literal.is_empty() {
                let sample = literal.replace('$', "");
                if sample
                    .chars()
                    .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                {
                    return Err(invalid(
                        format!("{key}.table"),
                        format!(
                            "'{}' may only contain a-z, 0-9, _ and capture references ($1, ${{name}})",
                            r.table
                        ),
                    ));
                }
            }
            if r.table == b.dlq_table {
                return Err(invalid(format!("{key}.table"), "must not be the DLQ table"));
            }
        }
        let g = &self.gold;
        crate::bronze::writer::parse_compression(&g.compression)
            .map_err(|rule| invalid("gold.compression", rule))?;
        if g.max_memory.is_some_and(|m| m.0 < 64 << 20) {
            return Err(invalid("gold.max_memory", "must be at least 64MiB"));
        }
        if g.parallelism == 0 {
            return Err(invalid("gold.parallelism", "must be at least 1"));
        }
        if g.target_file_size.0 < (1 << 20) {
            return Err(invalid("gold.target_file_size", "must be at least 1MiB"));
        }
        let s = &self.silver;
        crate::bronze::writer::parse_compression(&s.compression)
            .map_err(|rule| invalid("silver.compression", rule))?;
        if s.target_file_size.0 < (1 << 20) {
            return Err(invalid("silver.target_file_size", "must be at least 1MiB"));
        }
        for name in s.include.iter().flatten() {
            check_identifier("silver.include", name)?;
        }
        for (table, t) in &s.tables {
            check_identifier(&format!("silver.tables.{table}"), table)?;
            for (col, c) in &t.columns {
                let key = format!("silver.tables.{table}.columns.{col}");
                if let ColumnConfig::Full {
                    ty: None,
                    default: None,
                } = c
                {
                    return Err(invalid(key, "give a type, a default, or both"));
                }
                if let Some(ty) = c.type_name() {
                    crate::silver::types::ConfiguredType::parse(ty)
                        .map_err(|rule| invalid(format!("{key}.type"), rule))?;
                }
            }
            let mut names = std::collections::HashSet::new();
            for (i, e) in t.expectations.iter().enumerate() {
                let key = format!("silver.tables.{table}.expectations[{i}]");
                check_identifier(&format!("{key}.name"), &e.name)?;
                if e.name.starts_with('_') {
                    return Err(invalid(
                        format!("{key}.name"),
                        "names starting with `_` are medallion's built-in checks",
                    ));
                }
                if !names.insert(e.name.as_str()) {
                    return Err(invalid(
                        format!("{key}.name"),
                        format!("`{}` is used twice; names must be unique per table", e.name),
                    ));
                }
                crate::silver::quality::parse_expr(&e.expr)
                    .map_err(|rule| invalid(format!("{key}.expr"), rule))?;
            }
        }
        Ok(())
    }

    /// Resolves a path from the config file: absolute paths as they are, relative ones against
    /// the current directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        }
    }

    /// The config as TOML with every secret replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }
}

/// The parts of a route template that are not capture references.
fn re_template_literal(t: &str) -> String {
    let re = Regex::new(r"\$(\{[A-Za-z0-9_]+\}|[0-9]+)").expect("static regex");
    re.replace_all(t, "").into_owned()
}

/// Namespace and table names: lowercase letters, digits and `_`, starting with a letter or `_`
/// (what Glue and Athena accept without quoting).
pub fn check_identifier(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "'{name}' must be lowercase letters, digits and _, starting with a letter or _"
            ),
        ))
    }
}

/// A map of client settings whose values may be strings, numbers or booleans (as written in
/// TOML, or as an environment override parses them), kept as text.
fn client_properties<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Text>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Text::String(s) => s,
                Text::Int(n) => n.to_string(),
                Text::Float(x) => x.to_string(),
                Text::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

fn apply_env_override(doc: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let path = &var[ENV_PREFIX.len()..];
    let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(ConfigError::Env {
            var: var.into(),
            message: "expected MEDALLION__SECTION__KEY (sections and keys separated by __)".into(),
        });
    }
    let mut table = doc;
    for k in &keys[..keys.len() - 1] {
        let entry = table
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
            var: var.into(),
            message: format!("`{k}` is not a section, so it cannot hold a key"),
        })?;
    }
    // Numbers and booleans keep their type; everything else is a string.
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    table.insert(keys[keys.len() - 1].clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[catalog]
kind = "sql"
path = "warehouse/catalog.db"

[warehouse]
location = "warehouse"

[source]
kind = "file"
"#;

    const KAFKA: &str = r#"
[catalog]
kind = "sql"
path = "c.db"
[warehouse]
location = "w"
[source]
kind = "kafka"
[source.kafka]
bootstrap_servers = "127.0.0.1:9092"
group_id = "g"
topics = ["t"]
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Config::from_toml_str(text, Path::new("test.toml"), &env)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.namespaces.bronze, "bronze");
        assert_eq!(c.bronze.max_rows, 250_000);
        assert_eq!(c.bronze.partition, TimePartition::Day);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load(&format!("{MINIMAL}\n[bronze]\nmax_rowz = 5\n"), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("max_rowz"), "{msg}");
        assert!(msg.contains("test.toml"), "{msg}");
    }

    #[test]
    fn invalid_value_names_key_and_rule() {
        let err = load(&format!("{MINIMAL}\n[bronze]\nmax_rows = 0\n"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `bronze.max_rows`: must be at least 1"
        );
        let err = load(&format!("{MINIMAL}\n[bronze]\nmax_interval = \"5\"\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("needs a unit"), "{err}");
        let err = load(
            &format!("{MINIMAL}\n[namespaces]\nbronze = \"Bronze-Layer\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("namespaces.bronze"), "{err}");
        let err = load(
            &format!("{MINIMAL}\n[bronze]\ncompression = \"brotli9\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("bronze.compression"), "{err}");
    }

    #[test]
    fn env_overrides_single_keys() {
        let c = load(
            MINIMAL,
            &[
                ("MEDALLION__BRONZE__MAX_ROWS", "42"),
                ("MEDALLION__NAMESPACES__BRONZE", "cdc_demo_dev_bronze"),
            ],
        )
        .unwrap();
        assert_eq!(c.bronze.max_rows, 42);
        assert_eq!(c.namespaces.bronze, "cdc_demo_dev_bronze");
        let err = load(MINIMAL, &[("MEDALLION__BRONZE__NOPE", "1")]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let c = load(
            KAFKA,
            &[(
                "MEDALLION__SOURCE__KAFKA__SECRET_PROPERTIES__SASL.PASSWORD",
                "hunter2",
            )],
        )
        .unwrap();
        let k = c.source.kafka.as_ref().unwrap();
        assert_eq!(k.secret_properties["sasl.password"].expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_redacted_toml().contains("hunter2"));
    }

    #[test]
    fn client_properties_take_numbers_and_booleans_from_toml_and_the_environment() {
        let text = format!(
            "{KAFKA}properties = {{ \"fetch.wait.max.ms\" = 50, \"check.crcs\" = true }}\n"
        );
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        apply_env_override(
            &mut doc,
            "MEDALLION__SOURCE__KAFKA__PROPERTIES__MAX.PARTITION.FETCH.BYTES",
            "8388608",
        )
        .unwrap();
        let c: Config = doc.try_into().unwrap();
        let p = &c.source.kafka.unwrap().properties;
        assert_eq!(p["fetch.wait.max.ms"], "50");
        assert_eq!(p["check.crcs"], "true");
        assert_eq!(p["max.partition.fetch.bytes"], "8388608");
    }

    #[test]
    fn a_dlq_topic_that_ingest_would_read_back_is_refused() {
        let own = KAFKA.replace(
            "topics = [\"t\"]",
            "topic_pattern = '^.*'\ndlq_topic = \"dlq\"",
        );
        let err = load(&own, &[]).unwrap_err().to_string();
        assert!(err.contains("source.kafka.dlq_topic"), "{err}");
        let listed = KAFKA.replace(
            "topics = [\"t\"]",
            "topics = [\"t\", \"d\"]\ndlq_topic = \"d\"",
        );
        assert!(load(&listed, &[]).is_err());
        let fine = KAFKA.replace("topics = [\"t\"]", "topics = [\"t\"]\ndlq_topic = \"d\"");
        assert_eq!(
            load(&fine, &[])
                .unwrap()
                .source
                .kafka
                .unwrap()
                .dlq_topic
                .as_deref(),
            Some("d")
        );
    }

    #[test]
    fn secret_in_plain_properties_is_refused() {
        let text = format!("{KAFKA}properties = {{ \"sasl.password\" = \"x\" }}\n");
        let err = load(&text, &[]).unwrap_err();
        assert!(err.to_string().contains("secret_properties"), "{err}");
    }

    #[test]
    fn shipped_job_files_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let mut n = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&p).unwrap();
                Config::from_toml_str(&text, &p, &[]).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(
            n >= 2,
            "expected at least jobs/local.toml and the AWS example"
        );
    }
}
