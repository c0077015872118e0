//! The lake: our Iceberg tables and the commits we own.
//!
//! The `iceberg` crate (0.10.1) writes data files, manifests, manifest lists and metadata files,
//! but only commits fast appends through its own catalog trait. Every commit here goes through
//! [`commit`]: plan a [`Change`] against the table as loaded, write the manifests, the manifest
//! list, the snapshot and the next metadata file, then move the catalog pointer with a
//! compare-and-swap. A lost race reloads the table and re-plans (the planner decides whether its
//! change still applies), with exponential backoff and a time limit.
//!
//! Snapshot summary properties under `medallion.` (source offsets, watermarks) are carried from
//! each snapshot to the next unless a change overrides them, so the current snapshot always holds
//! the complete state a restart needs.

pub mod commit;
pub mod data;
pub mod s3;
pub mod scan;
pub mod storage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::io::FileIO;
use iceberg::spec::{
    FormatVersion, Schema, SnapshotRef, TableMetadata, TableMetadataBuilder, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableCreation};

pub use commit::Change;
pub use storage::{Listed, Listing};

use crate::catalog::{Catalog, CatalogError, Pointer, TableName};
use crate::config::Config;
pub use data::{
    LiveFile, conform, live_files, live_files_at, read_file, read_position_deletes, write_data,
    write_keyed, write_partitioned, write_position_deletes,
};

/// Prefix of our snapshot summary properties.
pub const SUMMARY_PREFIX: &str = "medallion.";

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{table}: {what}: {source}")]
    Iceberg {
        table: String,
        what: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(
        "{table}: gave up committing after {attempts} attempts in {elapsed:?} (lost races to other writers, or storage/catalog failures; retry.max_elapsed); last error: {last}"
    )]
    RetriesExhausted {
        table: TableName,
        attempts: u32,
        elapsed: Duration,
        last: Box<LakeError>,
    },
    #[error(
        "gave up on {what} after retrying for {elapsed:?} (retry.max_elapsed); last error: {last}"
    )]
    GaveUp {
        what: String,
        elapsed: Duration,
        last: Box<LakeError>,
    },
    #[error("{table}: {message}")]
    Invalid { table: String, message: String },
    /// The plan no longer fits the table (a file it replaces was removed meanwhile): re-plan.
    #[error("{table}: stale commit: {message}")]
    Stale { table: String, message: String },
    #[error("warehouse {location}: {message}")]
    Storage { location: String, message: String },
}

impl LakeError {
    pub(crate) fn iceberg(
        table: impl ToString,
        what: impl Into<String>,
    ) -> impl FnOnce(iceberg::Error) -> LakeError {
        let table = table.to_string();
        let what = what.into();
        move |source| LakeError::Iceberg {
            table,
            what,
            source: Box::new(source),
        }
    }

    /// Lost races, busy catalogs and storage hiccups are retryable; invalid data is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Catalog(e) => e.is_retryable(),
            LakeError::Iceberg { source, .. } => source.retryable(),
            LakeError::RetriesExhausted { .. } | LakeError::GaveUp { .. } => true,
            _ => false,
        }
    }

    /// Worth another attempt within the retry budget: storage I/O failures (iceberg reports
    /// them as `Unexpected`, or marks them retryable) and busy catalogs. Not invalid data,
    /// unsupported features or missing tables, which no wait will mend.
    pub fn is_transient(&self) -> bool {
        match self {
            LakeError::Iceberg { source, .. } => {
                source.retryable() || source.kind() == iceberg::ErrorKind::Unexpected
            }
            LakeError::Storage { .. } => true,
            LakeError::Catalog(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Another writer committed first: reload and plan again.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            LakeError::Catalog(CatalogError::Conflict { .. }) | LakeError::Stale { .. }
        )
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;

/// A table as loaded: its catalog pointer and the `iceberg` crate's view of its metadata.
#[derive(Debug, Clone)]
pub struct LakeTable {
    pub name: TableName,
    pub pointer: Pointer,
    pub table: Table,
}

impl LakeTable {
    pub fn metadata(&self) -> &TableMetadata {
        self.table.metadata()
    }

    pub fn current_snapshot(&self) -> Option<&SnapshotRef> {
        self.table.metadata().current_snapshot()
    }

    /// A `medallion.` summary property of the current snapshot.
    pub fn summary_property(&self, key: &str) -> Option<&str> {
        self.current_snapshot()?
            .summary()
            .additional_properties
            .get(key)
            .map(String::as_str)
    }
}

/// What [`Lake::commit_if_unchanged`] did.
#[derive(Debug)]
pub enum Committed {
    /// Committed (the table after it), or nothing to do (`None`: the work was there).
    Done(Option<Box<LakeTable>>),
    /// Another writer committed since the change was planned; nothing was committed.
    Raced,
}

/// How long and how often an operation is retried (lost races, storage and catalog failures).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The budget: no attempt starts after this much time spent retrying.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// From the `[retry]` section.
    pub fn from_config(config: &crate::config::RetryConfig) -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: config.max_backoff.0,
            max_elapsed: config.max_elapsed.0,
        }
    }

    /// Waits between attempts of one operation.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            started: Instant::now(),
            next: self.initial_backoff,
            failures: 0,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_config(&crate::config::RetryConfig::default())
    }
}

/// Exponential backoff with jitter, within the policy's time budget.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// After a failed attempt: how long to wait before the next one, or `None` once the budget
    /// is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.failures += 1;
        if self.started.elapsed() >= self.policy.max_elapsed {
            return None;
        }
        let jitter = rand::random_range(0..=self.next.as_millis() as u64 / 2 + 1);
        let delay = self.next + Duration::from_millis(jitter);
        self.next = (self.next * 2).min(self.policy.max_backoff);
        Some(delay)
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits before the next attempt, logging why; `Err(GaveUp)` once the budget is spent.
    pub async fn wait(&mut self, what: &str, error: LakeError) -> Result<()> {
        let Some(delay) = self.next_delay() else {
            return Err(LakeError::GaveUp {
                what: what.to_string(),
                elapsed: self.elapsed(),
                last: Box::new(error),
            });
        };
        tracing::warn!(what, error = %error, retry_in_ms = delay.as_millis() as u64, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// The catalog plus the warehouse storage: everything needed to load, create and commit tables.
#[derive(Debug, Clone)]
pub struct Lake {
    catalog: Arc<dyn Catalog>,
    file_io: FileIO,
    listing: Arc<dyn Listing>,
    warehouse: String,
    pub retry: RetryPolicy,
}

impl Lake {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        file_io: FileIO,
        listing: Arc<dyn Listing>,
        warehouse: String,
    ) -> Self {
        Lake {
            catalog,
            file_io,
            listing,
            warehouse: warehouse.trim_end_matches('/').to_string(),
            retry: RetryPolicy::default(),
        }
    }

    /// Opens the catalog and warehouse storage of a configuration.
    pub fn open(config: &Config) -> Result<Self> {
        let catalog = crate::catalog::open(config)?;
        let (file_io, warehouse, listing) = storage::open(config)?;
        let mut lake = Lake::new(catalog, file_io, listing, warehouse);
        lake.retry = RetryPolicy::from_config(&config.retry);
        Ok(lake)
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    /// Lists the files under a folder of the warehouse.
    pub fn listing(&self) -> &Arc<dyn Listing> {
        &self.listing
    }

    /// The warehouse root as a URL (`file:///…` or `s3://…`).
    pub fn warehouse(&self) -> &str {
        &self.warehouse
    }

    pub fn namespace_location(&self, namespace: &str) -> String {
        format!("{}/{}", self.warehouse, namespace)
    }

    pub fn table_location(&self, name: &TableName) -> String {
        format!("{}/{}/{}", self.warehouse, name.namespace, name.table)
    }

    /// Loads a table, or `None` if the catalog does not know it.
    pub async fn load(&self, name: &TableName) -> Result<Option<LakeTable>> {
        let Some(pointer) = self.catalog.load(name).await? else {
            return Ok(None);
        };
        Ok(Some(self.load_at(name, pointer).await?))
    }

    async fn load_at(&self, name: &TableName, pointer: Pointer) -> Result<LakeTable> {
        let metadata = TableMetadata::read_from(&self.file_io, &pointer.metadata_location)
            .await
            .map_err(LakeError::iceberg(
                name,
                format!("read metadata {}", pointer.metadata_location),
            ))?;
        self.table_at(name, pointer, metadata)
    }

    /// A table as of a pointer and the metadata it points to.
    pub(crate) fn table_at(
        &self,
        name: &TableName,
        pointer: Pointer,
        metadata: TableMetadata,
    ) -> Result<LakeTable> {
        let table = Table::builder()
            .file_io(self.file_io.clone())
            .metadata_location(pointer.metadata_location.clone())
            .metadata(metadata)
            .identifier(name.to_ident())
            .runtime(iceberg::Runtime::current())
            .build()
            .map_err(LakeError::iceberg(name, "open table"))?;
        Ok(LakeTable {
            name: name.clone(),
            pointer,
            table,
        })
    }

    /// Loads a table, creating it (format v2) if it does not exist. Two writers creating the
    /// same table at once both end up with the one that won.
    pub async fn load_or_create(
        &self,
        name: &TableName,
        schema: Schema,
        partition_spec: UnboundPartitionSpec,
        properties: HashMap<String, String>,
    ) -> Result<LakeTable> {
        if let Some(t) = self.load(name).await? {
            return Ok(t);
        }
        self.catalog
            .ensure_namespace(&name.namespace, &self.namespace_location(&name.namespace))
            .await?;
        let location = self.table_location(name);
        let creation = TableCreation::builder()
            .name(name.table.clone())
            .location(location.clone())
            .schema(schema)
            .partition_spec(partition_spec)
            .properties(properties)
            .format_version(FormatVersion::V2)
            .build();
        let metadata = TableMetadataBuilder::from_table_creation(creation)
            .and_then(|b| b.build())
            .map_err(LakeError::iceberg(name, "build initial metadata"))?
            .metadata;
        let loc = MetadataLocation::new_with_metadata(&location, &metadata);
        let metadata_location = loc.to_string();
        metadata
            .write_to(&self.file_io, &loc)
            .await
            .map_err(LakeError::iceberg(
                name,
                format!("write {metadata_location}"),
            ))?;
        match self
            .catalog
            .create(name, &metadata_location, &metadata)
            .await
        {
            Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.load(name)
            .await?
            .ok_or_else(|| CatalogError::NotFound(name.clone()).into())
    }

    /// Commits `change`, planned against the table at snapshot `planned`, unless `done` says the
    /// table already has this work (a redone run). If another writer committed meanwhile, the
    /// change (planned against rows that moved) is not committed and the result is
    /// [`Committed::Raced`]: plan again from the new snapshot.
    pub async fn commit_if_unchanged(
        &self,
        name: &TableName,
        planned: Option<i64>,
        change: &Change,
        done: impl Fn(&LakeTable) -> bool,
    ) -> Result<Committed> {
        let mut raced = false;
        let table = self
            .commit_with_retry(name, |now| {
                if done(now) {
                    return Ok(None);
                }
                if now.current_snapshot().map(|s| s.snapshot_id()) != planned {
                    raced = true;
                    return Ok(None);
                }
                Ok(Some(change.clone()))
            })
            .await?;
        Ok(if raced {
            Committed::Raced
        } else {
            Committed::Done(table.map(Box::new))
        })
    }

    /// Commits the change `plan` makes of the table as currently loaded. On a lost race the
    /// table is reloaded and `plan` is called again; it returns `None` when there is nothing
    /// (left) to commit, e.g. because another writer already committed the same work.
    pub async fn commit_with_retry<F>(
        &self,
        name: &TableName,
        mut plan: F,
    ) -> Result<Option<LakeTable>>
    where
        F: FnMut(&LakeTable) -> Result<Option<Change>>,
    {
        let mut backoff = self.retry.backoff();
        loop {
            let result = match self.load_existing(name).await {
                Ok(table) => match plan(&table)? {
                    None => return Ok(None),
                    Some(change) => self.commit(&table, change).await,
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(t) => return Ok(Some(t)),
                Err(e) => self.retry_after(name, &mut backoff, e).await?,
            }
        }
    }

    /// Changes the table's metadata without a new snapshot (expired snapshots), as planned by
    /// `plan` on the table as currently loaded; re-planned after a lost race. `plan` returns
    /// `None` when there is nothing to change.
    pub async fn update_metadata_with_retry<F, U>(
        &self,
        name: &TableName,
        mut plan: F,
    ) -> Result<Option<LakeTable>>
    where
        F: FnMut(&LakeTable) -> Result<Option<U>>,
        U: FnOnce(TableMetadataBuilder) -> iceberg::Result<TableMetadataBuilder>,
    {
        let mut backoff = self.retry.backoff();
        loop {
            let result = match self.load_existing(name).await {
                Ok(table) => match plan(&table)? {
                    None => return Ok(None),
                    Some(update) => commit::commit_metadata(self, &table, update).await,
                },
                Err(e) => Err(e),
            };
            match result {
                Ok(t) => return Ok(Some(t)),
                Err(e) => self.retry_after(name, &mut backoff, e).await?,
            }
        }
    }

    /// Commits `change` on top of `table` as loaded, once: a lost race is an error
    /// ([`LakeError::is_conflict`]); callers retry with [`Lake::retry_after`].
    pub async fn commit(&self, table: &LakeTable, change: Change) -> Result<LakeTable> {
        commit::commit(self, table, change).await
    }

    /// Loads a table that must exist.
    pub async fn load_existing(&self, name: &TableName) -> Result<LakeTable> {
        self.load(name)
            .await?
            .ok_or_else(|| CatalogError::NotFound(name.clone()).into())
    }

    /// After a failed commit attempt: waits before the next one if the failure is a lost race
    /// or transient and the retry budget allows, else returns the error (or
    /// [`LakeError::RetriesExhausted`]).
    pub async fn retry_after(
        &self,
        name: &TableName,
        backoff: &mut Backoff,
        e: LakeError,
    ) -> Result<()> {
        if !(e.is_conflict() || e.is_retryable() || e.is_transient()) {
            return Err(e);
        }
        let Some(delay) = backoff.next_delay() else {
            return Err(LakeError::RetriesExhausted {
                table: name.clone(),
                attempts: backoff.failures(),
                elapsed: backoff.elapsed(),
                last: Box::new(e),
            });
        };
        tracing::debug!(table = %name, attempt = backoff.failures(), error = %e, "commit failed, retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}
