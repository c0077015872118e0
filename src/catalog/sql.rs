//! The embedded catalog: a sqlite file with the tables of the Iceberg JDBC / PyIceberg
//! `SqlCatalog` layout (`iceberg_tables`, `iceberg_namespace_properties`), so PyIceberg opens it
//! with `SqlCatalog(name, uri="sqlite:///…", warehouse=…)` and no service runs anywhere.
//!
//! The pointer swap is one `UPDATE … WHERE metadata_location = <expected>` that must change
//! exactly one row; sqlite serialises writers across processes, so two writers racing on one
//! table cannot both win.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use iceberg::spec::TableMetadata;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Catalog, CatalogError, Pointer, TableName};

#[derive(Debug)]
pub struct SqlCatalog {
    path: PathBuf,
    name: String,
    conn: Mutex<Connection>,
}

impl SqlCatalog {
    /// Opens (and on first use creates) the sqlite catalog file.
    pub fn open(path: &Path, name: &str) -> Result<Self, CatalogError> {
        let err = |what: &str| {
            let path = path.display().to_string();
            let what = what.to_string();
            move |source| CatalogError::Sqlite { path, what, source }
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(err("set busy timeout"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS iceberg_tables (
                catalog_name VARCHAR(255) NOT NULL,
                table_namespace VARCHAR(255) NOT NULL,
                table_name VARCHAR(255) NOT NULL,
                metadata_location VARCHAR(1000),
                previous_metadata_location VARCHAR(1000),
                iceberg_type VARCHAR(5),
                PRIMARY KEY (catalog_name, table_namespace, table_name)
            );
            CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
                catalog_name VARCHAR(255) NOT NULL,
                namespace VARCHAR(255) NOT NULL,
                property_key VARCHAR(255) NOT NULL,
                property_value VARCHAR(1000) NOT NULL,
                PRIMARY KEY (catalog_name, namespace, property_key)
            );",
        )
        .map_err(err("create catalog tables"))?;
        Ok(SqlCatalog {
            path: path.to_path_buf(),
            name: name.to_string(),
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> CatalogError {
        let path = self.path.display().to_string();
        let what = what.into();
        move |source| CatalogError::Sqlite { path, what, source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    fn describe(&self) -> String {
        format!("sqlite catalog {} ({})", self.name, self.path.display())
    }

    async fn ensure_namespace(&self, namespace: &str, location: &str) -> Result<(), CatalogError> {
        let conn = self.conn();
        for (k, v) in [("exists", "true"), ("location", location)] {
            conn.execute(
                "INSERT OR IGNORE INTO iceberg_namespace_properties
                 (catalog_name, namespace, property_key, property_value) VALUES (?1, ?2, ?3, ?4)",
                params![self.name, namespace, k, v],
            )
            .map_err(self.err(format!("create namespace {namespace}")))?;
        }
        Ok(())
    }

    async fn list_tables(&self, namespace: &str) -> Result<Vec<String>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT table_name FROM iceberg_tables
                 WHERE catalog_name = ?1 AND table_namespace = ?2 ORDER BY table_name",
            )
            .map_err(self.err("list tables"))?;
        let rows = stmt
            .query_map(params![self.name, namespace], |r| r.get::<_, String>(0))
            .map_err(self.err("list tables"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.err("list tables"))
    }

    async fn load(&self, table: &TableName) -> Result<Option<Pointer>, CatalogError> {
        let conn = self.conn();
        let loc: Option<Option<String>> = conn
            .query_row(
                "SELECT metadata_location FROM iceberg_tables
                 WHERE catalog_name = ?1 AND table_namespace = ?2 AND table_name = ?3",
                params![self.name, table.namespace, table.table],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err(format!("load {table}")))?;
        Ok(loc.flatten().map(|metadata_location| Pointer {
            metadata_location,
            version: None,
        }))
    }

    async fn create(
        &self,
        table: &TableName,
        metadata_location: &str,
        _metadata: &TableMetadata,
    ) -> Result<(), CatalogError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "INSERT OR IGNORE INTO iceberg_tables
                 (catalog_name, table_namespace, table_name, metadata_location,
                  previous_metadata_location, iceberg_type)
                 VALUES (?1, ?2, ?3, ?4, NULL, 'TABLE')",
                params![self.name, table.namespace, table.table, metadata_location],
            )
            .map_err(self.err(format!("create {table}")))?;
        if n == 1 {
            Ok(())
        } else {
            Err(CatalogError::AlreadyExists(table.clone()))
        }
    }

    async fn swap(
        &self,
        table: &TableName,
        expected: &Pointer,
        new_location: &str,
        _metadata: &TableMetadata,
    ) -> Result<(), CatalogError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE iceberg_tables
                 SET metadata_location = ?1, previous_metadata_location = ?2
                 WHERE catalog_name = ?3 AND table_namespace = ?4 AND table_name = ?5
                   AND metadata_location = ?2",
                params![
                    new_location,
                    expected.metadata_location,
                    self.name,
                    table.namespace,
                    table.table
                ],
            )
            .map_err(self.err(format!("commit {table}")))?;
        if n == 1 {
            Ok(())
        } else {
            Err(CatalogError::Conflict {
                table: table.clone(),
                expected: expected.metadata_location.clone(),
            })
        }
    }
}
