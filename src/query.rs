//! SQL over the lake: a DataFusion session with every table of every layer registered, under the
//! layer's alias (`bronze.users`, `silver.users`, `gold.daily_revenue`) and under its real
//! namespace (`cdc_demo_dev_bronze.users`), as Athena names them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::scan::IcebergTable;
use crate::lake::{Lake, LakeError, LakeTable};

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
    Ok(pinned_session(lake, config, None).await?.0)
}

/// A session over the current snapshot of every table, and the tables as it reads them
/// (the snapshot each is pinned at). With `memory_limit`, the session's operators share a pool
/// of that many bytes: sorts, aggregations and joins that can spill to disk do beyond it, the
/// others fail with "Resources exhausted".
pub async fn pinned_session(
    lake: &Lake,
    config: &Config,
    memory_limit: Option<usize>,
) -> Result<(SessionContext, HashMap<TableName, LakeTable>), QueryError> {
    let mut pinned = HashMap::new();
    let session_config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("datafusion", "public");
    let ctx = match memory_limit {
        None => SessionContext::new_with_config(session_config),
        Some(limit) => {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_pool(Arc::new(
                    datafusion::execution::memory_pool::FairSpillPool::new(limit),
                ))
                .build_arc()
                .map_err(|source| QueryError::Register {
                    table: "the query engine's memory pool".into(),
                    source,
                })?;
            SessionContext::new_with_config_rt(session_config, runtime)
        }
    };
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
            let provider =
                IcebergTable::new(t.table.clone()).map_err(|e| QueryError::Register {
                    table: name.to_string(),
                    source: DataFusionError::External(Box::new(e)),
                })?;
            pinned.insert(name.clone(), t);
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
    Ok((ctx, pinned))
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
                .with_encoder_factory(Arc::new(FloatEncoders))
                .build::<_, arrow_json::writer::LineDelimited>(out);
            for b in batches {
                w.write(b).map_err(|e| fail("json", e.to_string()))?;
            }
            w.finish().map_err(|e| fail("json", e.to_string()))?;
        }
    }
    Ok(())
}

/// JSON has no NaN or infinities (arrow-json writes them as null, which would lose them): write
/// them as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, as Debezium's JsonConverter does.
#[derive(Debug)]
struct FloatEncoders;

struct FloatEncoder<'a>(&'a dyn arrow::array::Array);

impl arrow_json::Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float32Type, Float64Type};
        let (x, text) = match self.0.data_type() {
            arrow::datatypes::DataType::Float32 => {
                let v = self.0.as_primitive::<Float32Type>().value(idx);
                (v as f64, v.to_string())
            }
            _ => {
                let v = self.0.as_primitive::<Float64Type>().value(idx);
                (v, v.to_string())
            }
        };
        let text = if x.is_nan() {
            "\"NaN\"".to_string()
        } else if x.is_infinite() {
            if x > 0.0 {
                "\"Infinity\""
            } else {
                "\"-Infinity\""
            }
            .to_string()
        } else {
            text
        };
        out.extend_from_slice(text.as_bytes());
    }
}

impl arrow_json::EncoderFactory for FloatEncoders {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a arrow::datatypes::FieldRef,
        array: &'a dyn arrow::array::Array,
        _options: &'a arrow_json::EncoderOptions,
    ) -> Result<Option<arrow_json::writer::NullableEncoder<'a>>, arrow::error::ArrowError> {
        use arrow::datatypes::DataType;
        match array.data_type() {
            DataType::Float32 | DataType::Float64 => {
                Ok(Some(arrow_json::writer::NullableEncoder::new(
                    Box::new(FloatEncoder(array)),
                    array.nulls().cloned(),
                )))
            }
            _ => Ok(None),
        }
    }
}
