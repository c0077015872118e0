//! The catalog: where each table's current metadata file is, and nothing more.
//!
//! Every stage commits through [`crate::lake`], which writes a new metadata file and then asks
//! the catalog to move the table's pointer from the location it read to the new one. The move is
//! conditional (compare-and-swap): if another writer moved the pointer first, [`Catalog::swap`]
//! fails with [`CatalogError::Conflict`] and the writer reloads and re-plans. Implementations:
//! [`sql::SqlCatalog`] (embedded sqlite, the layout PyIceberg's `SqlCatalog` reads) and, for AWS,
//! Glue (`UpdateTable` with the `VersionId` read before the commit).

pub mod glue;
pub mod sql;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::spec::TableMetadata;

use crate::config::{CatalogKind, Config};

/// A table's name: `namespace.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub namespace: String,
    pub table: String,
}

impl TableName {
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Self {
        TableName {
            namespace: namespace.into(),
            table: table.into(),
        }
    }

    pub fn to_ident(&self) -> iceberg::TableIdent {
        iceberg::TableIdent::new(
            iceberg::NamespaceIdent::new(self.namespace.clone()),
            self.table.clone(),
        )
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.table)
    }
}

/// Where a table's current metadata is, as read from the catalog. `version` is the catalog's
/// own concurrency token where it has one (Glue's `VersionId`); sqlite compares the location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    pub metadata_location: String,
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "table {table} was committed by another writer meanwhile (expected it at {expected}); reload and retry"
    )]
    Conflict { table: TableName, expected: String },
    #[error("table {0} already exists")]
    AlreadyExists(TableName),
    #[error("table {0} does not exist")]
    NotFound(TableName),
    #[error("sqlite catalog {path}: {what}: {source}")]
    Sqlite {
        path: String,
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("Glue {what}: {message}")]
    Glue {
        what: String,
        message: String,
        retryable: bool,
    },
    #[error(
        "the Glue table {0} exists but is not an Iceberg table (no table_type=ICEBERG and metadata_location); medallion will not overwrite it: drop it or route the table to another name"
    )]
    NotIceberg(TableName),
}

impl CatalogError {
    /// A lost race or a busy database is worth retrying; a missing table is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            CatalogError::Conflict { .. } => true,
            CatalogError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            CatalogError::Glue { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// The pointer store behind every table.
#[async_trait]
pub trait Catalog: fmt::Debug + Send + Sync {
    /// A short description for logs (`sqlite catalog at …`).
    fn describe(&self) -> String;

    /// Creates the namespace if it does not exist; `location` is its default folder.
    async fn ensure_namespace(&self, namespace: &str, location: &str) -> Result<(), CatalogError>;

    /// Table names in a namespace, sorted.
    async fn list_tables(&self, namespace: &str) -> Result<Vec<String>, CatalogError>;

    /// The current pointer of a table, or `None` if it does not exist.
    async fn load(&self, table: &TableName) -> Result<Option<Pointer>, CatalogError>;

    /// Registers a new table at its first metadata file. Fails with `AlreadyExists` if another
    /// writer created it first.
    async fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
        metadata: &TableMetadata,
    ) -> Result<(), CatalogError>;

    /// Moves the pointer from `expected` to `new_location`, only if it is still at `expected`.
    async fn swap(
        &self,
        table: &TableName,
        expected: &Pointer,
        new_location: &str,
        metadata: &TableMetadata,
    ) -> Result<(), CatalogError>;
}

/// Opens the catalog the configuration names.
pub fn open(config: &Config) -> Result<Arc<dyn Catalog>, CatalogError> {
    match config.catalog.kind {
        CatalogKind::Sql => {
            let path = config.resolve(config.catalog.path.as_deref().expect("validated"));
            Ok(Arc::new(sql::SqlCatalog::open(
                &path,
                &config.catalog.name,
            )?))
        }
        CatalogKind::Glue => Ok(Arc::new(glue::GlueCatalog::new(
            config.catalog.region.clone(),
            config.catalog.endpoint.clone(),
            config.catalog.catalog_id.clone(),
        ))),
    }
}
