//! Bronze: every raw Debezium record landed exactly once in an Iceberg table per source table.
//!
//! [`batch`] routes, decodes and batches records and keeps the exactly-once bookkeeping;
//! [`rows`] builds the Arrow rows; [`writer`] writes Parquet files and commits each table with
//! its source offsets ([`offsets`]); [`ingest`] runs a file source through them and [`kafka`]
//! a Kafka consumer group member.

pub mod batch;
pub mod dlq;
pub mod ingest;
pub mod kafka;
pub mod offsets;
pub mod replay;
pub mod route;
pub mod rows;
pub mod schema;
pub mod writer;

use crate::lake::LakeError;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum BronzeError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("bronze table {table}: cannot build the batch: {source}")]
    Arrow {
        table: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("the {0} stopped unexpectedly")]
    Stopped(&'static str),
}

impl BronzeError {
    pub(crate) fn arrow(table: &str) -> impl FnOnce(arrow::error::ArrowError) -> BronzeError {
        let table = table.to_string();
        move |source| BronzeError::Arrow { table, source }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            BronzeError::Lake(e) => e.is_retryable(),
            BronzeError::Source(e) => e.is_retryable(),
            _ => false,
        }
    }
}
