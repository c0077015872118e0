//! medallion: a lakehouse processor for change data capture.
//!
//! Data flows one way. A [`source`] (a Kafka-dump file today, Kafka next) yields raw Debezium
//! records; [`bronze`] lands every record, decoded just enough to know its op, source position
//! and origin, into one Apache Iceberg table per source table, committing the source offsets in
//! the same Iceberg snapshot as the rows so that a crash never loses or duplicates a record.
//! Records that cannot be decoded land in a dead-letter table with the reason. Silver (typed
//! current state per primary key) and gold (SQL models) build on bronze. [`lake`] owns our
//! Iceberg commits on top of the `iceberg` crate's manifest and metadata writers; [`catalog`]
//! keeps the pointer to each table's current metadata (embedded sqlite, or AWS Glue) and moves it
//! only with a compare-and-swap. [`maintain`] keeps every layer's tables fast and small:
//! compaction, snapshot expiry and orphan-file cleanup, keeping what restarts and incremental
//! readers need.

pub mod aws;
pub mod bronze;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod error;
pub mod gold;
pub mod lake;
pub mod maintain;
pub mod metrics;
pub mod query;
pub mod silver;
pub mod source;
pub mod units;

pub use error::Error;
