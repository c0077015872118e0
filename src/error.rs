//! The crate's top-level error: one variant per stage, each keeping its cause, and the process
//! exit code a scheduler (Airflow, cron) can act on.

use crate::bronze::BronzeError;
use crate::bronze::replay::ReplayError;
use crate::catalog::CatalogError;
use crate::config::ConfigError;
use crate::lake::LakeError;
use crate::query::QueryError;
use crate::source::SourceError;

/// Any failure of a medallion command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Bronze(#[from] BronzeError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Silver(#[from] crate::silver::SilverError),
    #[error(transparent)]
    Gold(#[from] crate::gold::GoldError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(
        "maintenance failed on {failed} of {tables} tables (each one's error is in the report above)"
    )]
    Maintenance { failed: usize, tables: usize },
}

impl Error {
    /// Exit codes: 2 for a bad configuration or command line (fix the input, do not retry),
    /// 75 (EX_TEMPFAIL) for failures worth retrying later, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            Error::Gold(
                crate::gold::GoldError::Model(_)
                | crate::gold::GoldError::Graph(_)
                | crate::gold::GoldError::NoModels(_),
            ) => 2,
            Error::Query(QueryError::Sql { .. }) => 2,
            e if e.is_retryable() => 75,
            _ => 1,
        }
    }

    /// Whether running the same command again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Catalog(e) => e.is_retryable(),
            Error::Lake(e) => e.is_retryable(),
            Error::Bronze(e) => e.is_retryable(),
            Error::Source(e) => e.is_retryable(),
            Error::Replay(e) => e.is_retryable(),
            Error::Silver(e) => e.is_retryable(),
            Error::Gold(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
