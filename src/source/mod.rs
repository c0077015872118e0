//! Sources: where raw Debezium records come from, before anything is decoded.
//!
//! A source yields [`SourceItem`]s in order: records with their Kafka coordinates (topic,
//! partition, offset), or input that could not even be read as a record (a broken line of a
//! dump file), which still has a position so that exactly-once holds for it too. [`file`] reads
//! Kafka-dump JSONL; [`generate`] makes realistic Debezium events; [`debezium`] decodes the
//! envelope for every source alike.

pub mod debezium;
mod dump_line;
pub mod file;
pub mod generate;
pub mod kafka;
pub mod produce;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A topic partition, the unit of ordering and of recorded offsets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// One record as it was on Kafka: raw key and value bytes, untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Kafka record timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Kafka headers in order; a header value may be null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl SourceRecord {
    pub fn partition_id(&self) -> Partition {
        Partition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }

    /// Raw size of key and value.
    pub fn payload_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// Input that could not be read as a record at all. `position` is a pseudo partition for
/// exactly-once (`file:<path>` partition 0, offset = line number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub file: Arc<str>,
    /// 0-based line number in the file.
    pub line: i64,
    pub raw: Vec<u8>,
    pub reason: String,
    /// The Kafka coordinates, where they could still be read.
    pub record: Option<SourceRecord>,
}

impl Unreadable {
    /// The pseudo partition of a file's unreadable lines.
    pub fn position(&self) -> (Partition, i64) {
        match &self.record {
            Some(r) => (r.partition_id(), r.offset),
            None => (
                Partition {
                    topic: Arc::from(format!("file:{}", self.file)),
                    partition: 0,
                },
                self.line,
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceItem {
    Record(SourceRecord),
    Unreadable(Unreadable),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka: cannot {what}: {message}")]
    Kafka { what: String, message: String },
    /// The brokers stayed unreachable longer than `source.kafka.max_outage`: worth retrying
    /// later (exit 75), after checking the brokers and the network.
    #[error(
        "kafka: the brokers {brokers} were unreachable for {down_for_s}s (source.kafka.max_outage); \
         last error: {last_error}. Check that they are up and reachable, then run again"
    )]
    Outage {
        brokers: String,
        down_for_s: u64,
        last_error: String,
    },
    #[error("source kind `{0}` is not available in this build yet")]
    Unsupported(String),
}

impl SourceError {
    /// Whether running again later may succeed (the brokers were down).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Outage { .. })
    }
}
