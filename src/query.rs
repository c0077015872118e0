//! SQL over the lake: a DataFusion session with every table of every layer registered, under the
//! layer's alias (`bronze.users`, `silver.users`, `gold.daily_revenue`) and under its real
//! namespace (`cdc_demo_dev_bronze.users`), as Athena names them.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use iceberg_datafusion::IcebergStaticTableProvider;

use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Lake, LakeError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query failed: {source}\n  query: {sql}")]
    Sql {
        sql: String,
        #[source]
        source: DataFusionError,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("cannot register {table}: {source}")]
    Register {
        table: String,
        #[source]
        source: DataFusionError,
    },
    #[error("cannot write the result as {format}: {message}")]
    Output { format: String, message: String },
}

/// Output formats of `medallion query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// The layers and their namespaces.
pub fn layers(config: &Config) -> [(&'static str, String); 3] {
    [
        ("bronze", config.namespaces.bronze.clone()),
        ("silver", config.namespaces.silver.clone()),
        ("gold", config.namespaces.gold.clone()),
    ]
}

/// A session over the current snapshot of every table.
pub async fn session(lake: &Lake, config: &Config) -> Result<SessionContext, QueryError> {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public"),
    );
    let catalog = ctx
        .catalog("datafusion")
        .expect("the default catalog exists");
    for (alias, namespace) in layers(config) {
        let schema = Arc::new(MemorySchemaProvider::new());
        let tables = lake
            .catalog()
            .list_tables(&namespace)
            .await
            .map_err(LakeError::from)?;
        for table in tables {
            let name = TableName::new(namespace.clone(), table.clone());
            let Some(t) = lake.load(&name).await? else {
                continue;
            };
            let provider = IcebergStaticTableProvider::try_new_from_table(t.table)
                .await
                .map_err(|e| QueryError::Register {
                    table: name.to_string(),
                    source: DataFusionError::External(Box::new(e)),
                })?;
            schema
                .register_table(table.clone(), Arc::new(provider))
                .map_err(|source| QueryError::Register {
                    table: name.to_string(),
                    source,
                })?;
        }
        catalog
            .register_schema(alias, schema.clone())
            .map_err(|source| QueryError::Register {
                table: alias.to_string(),
                source,
            })?;
        if namespace != alias {
            catalog
                .register_schema(&namespace, schema)
                .map_err(|source| QueryError::Register {
                    table: namespace.clone(),
                    source,
                })?;
        }
    }
    Ok(ctx)
}

/// Runs one SQL statement and collects the result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    let err = |source| QueryError::Sql {
        sql: sql.to_string(),
        source,
    };
    let df = ctx.sql(sql).await.map_err(err)?;
    df.collect().await.map_err(err)
}

/// Writes batches in a format.
pub fn write(
    out: &mut dyn std::io::Write,
    batches: &[RecordBatch],
    format: Format,
) -> Result<(), QueryError> {
    let fail = |format: &str, message: String| QueryError::Output {
        format: format.into(),
        message,
    };
    match format {
        Format::Table => {
            let text = arrow::util::pretty::pretty_format_batches(batches)
                .map_err(|e| fail("table", e.to_string()))?;
            writeln!(out, "{text}").map_err(|e| fail("table", e.to_string()))?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
                .map_err(|e| fail("table", e.to_string()))?;
        }
        Format::Csv => {
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(out);
            for b in batches {
                w.write(b).map_err(|e| fail("csv", e.to_string()))?;
            }
        }
        Format::Json => {
            let mut w = arrow_json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow_json::writer::LineDelimited>(out);
            for b in batches {
                w.write(b).map_err(|e| fail("json", e.to_string()))?;
            }
            w.finish().map_err(|e| fail("json", e.to_string()))?;
        }
    }
    Ok(())
}
