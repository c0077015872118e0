//! The DLQ read back (for `dlq replay`), and the optional Kafka DLQ topic that receives every
//! dead letter too, for teams that alert on or consume dead letters from Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};

use crate::config::KafkaConfig;
use crate::source::debezium::ErrorKind;
use crate::source::produce::{KafkaSink, ensure_topics};
use crate::source::{SourceError, SourceRecord};

/// A Kafka header: key and (possibly null) value.
type Header = (String, Option<Vec<u8>>);

/// A row of the DLQ table, read back.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The Kafka record as it was; `None` for input that was not a record (a broken dump line).
    pub record: Option<SourceRecord>,
    pub error_kind: String,
    pub reason: String,
    pub target_table: Option<String>,
}

/// The rows of a batch in the DLQ table's schema (columns found by name).
pub fn dead_letters(b: &RecordBatch) -> Result<Vec<DeadLetter>, arrow::error::ArrowError> {
    let col = |name: &str| {
        b.column_by_name(name).cloned().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("the DLQ has no column {name}"))
        })
    };
    let text = |name: &str| cast(&col(name)?, &DataType::Utf8);
    let topic = text("kafka_topic")?;
    let topic = topic.as_string::<i32>();
    let partition = cast(&col("kafka_partition")?, &DataType::Int32)?;
    let partition = partition.as_primitive::<arrow::datatypes::Int32Type>();
    let offset = cast(&col("kafka_offset")?, &DataType::Int64)?;
    let offset = offset.as_primitive::<Int64Type>();
    let ts = cast(&col("kafka_timestamp")?, &DataType::Int64)?;
    let ts = ts.as_primitive::<Int64Type>();
    let headers = col("kafka_headers")?;
    let headers = headers.as_list::<i32>();
    let key = cast(&col("raw_key")?, &DataType::LargeBinary)?;
    let key = key.as_binary::<i64>();
    let value = cast(&col("raw_value")?, &DataType::LargeBinary)?;
    let value = value.as_binary::<i64>();
    let kind = text("error_kind")?;
    let kind = kind.as_string::<i32>();
    let reason = text("reason")?;
    let reason = reason.as_string::<i32>();
    let target = text("target_table")?;
    let target = target.as_string::<i32>();
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let error_kind = kind.value(i).to_string();
        let is_record = !(topic.is_null(i)
            || partition.is_null(i)
            || offset.is_null(i)
            || error_kind == ErrorKind::Unreadable.as_str());
        let record = if is_record {
            let t = topic.value(i);
            let t = match topics.get(t) {
                Some(a) => a.clone(),
                None => {
                    let a: Arc<str> = Arc::from(t);
                    topics.insert(t.to_string(), a.clone());
                    a
                }
            };
            Some(SourceRecord {
                topic: t,
                partition: partition.value(i),
                offset: offset.value(i),
                timestamp_ms: (!ts.is_null(i)).then(|| ts.value(i).div_euclid(1000)),
                key: (!key.is_null(i)).then(|| key.value(i).to_vec()),
                value: (!value.is_null(i)).then(|| value.value(i).to_vec()),
                headers: if headers.is_null(i) {
                    Vec::new()
                } else {
                    header_pairs(&headers.value(i))?
                },
            })
        } else {
            None
        };
        out.push(DeadLetter {
            record,
            error_kind,
            reason: reason.value(i).to_string(),
            target_table: (!target.is_null(i)).then(|| target.value(i).to_string()),
        });
    }
    Ok(out)
}

/// A row's headers (a list of `{key, value}` structs) as pairs.
fn header_pairs(list: &Arc<dyn Array>) -> Result<Vec<Header>, arrow::error::ArrowError> {
    let s = list.as_struct();
    let keys = cast(s.column(0), &DataType::Utf8)?;
    let keys = keys.as_string::<i32>();
    let values = cast(s.column(1), &DataType::LargeBinary)?;
    let values = values.as_binary::<i64>();
    Ok((0..s.len())
        .map(|i| {
            (
                keys.value(i).to_string(),
                (!values.is_null(i)).then(|| values.value(i).to_vec()),
            )
        })
        .collect())
}

/// The Kafka DLQ topic (`source.kafka.dlq_topic`). Each dead letter is produced with its raw
/// key and value and its original headers, plus `medallion.error_kind`, `medallion.reason`,
/// `medallion.target_table` and its coordinates (`medallion.topic`, `medallion.partition`,
/// `medallion.offset`). Produced and confirmed before the DLQ commit, so while the brokers take
/// them the topic receives every dead letter at least once (a crash before the commit re-reads
/// and re-sends; the DLQ table stays exactly once). Values over 512 KiB are left out (a
/// `medallion.value_omitted` header says so).
pub struct DlqTopic {
    sink: KafkaSink,
    topic: String,
}

/// Values above this are left out of DLQ topic records (the broker's default record limit is
/// about 1 MB); the DLQ table has them.
const MAX_TOPIC_VALUE: usize = 512 * 1024;

impl DlqTopic {
    /// Connects, and creates the topic if it is missing (one partition). Creation may be
    /// refused (ACLs) for a topic that exists: that is only a warning.
    pub async fn connect(config: &KafkaConfig, topic: &str) -> Result<DlqTopic, SourceError> {
        if let Err(e) = ensure_topics(config, &BTreeMap::from([(topic.to_string(), 1)])).await {
            tracing::warn!(topic, error = %e, "could not check or create the DLQ topic; producing to it anyway");
        }
        Ok(DlqTopic {
            sink: KafkaSink::connect(config)?,
            topic: topic.to_string(),
        })
    }

    /// Produces the dead letters and waits until the broker has them. Best effort: the DLQ
    /// table is the record, so a failure is logged and never stops ingest.
    pub fn publish(&self, letters: &[DeadLetter]) {
        if let Err(e) = self.try_publish(letters) {
            tracing::error!(
                topic = %self.topic,
                dead_letters = letters.len(),
                error = %e,
                "could not deliver dead letters to the DLQ topic; they are in the DLQ table"
            );
        }
    }

    fn try_publish(&self, letters: &[DeadLetter]) -> Result<(), SourceError> {
        for d in letters {
            let Some(r) = &d.record else { continue };
            let mut headers = r.headers.clone();
            let mut add =
                |k: &str, v: &str| headers.push((k.to_string(), Some(v.as_bytes().to_vec())));
            add("medallion.error_kind", &d.error_kind);
            add("medallion.reason", &d.reason);
            if let Some(t) = &d.target_table {
                add("medallion.target_table", t);
            }
            add("medallion.topic", &r.topic);
            add("medallion.partition", &r.partition.to_string());
            add("medallion.offset", &r.offset.to_string());
            let mut value = r.value.clone();
            if let Some(v) = value.take_if(|v| v.len() > MAX_TOPIC_VALUE) {
                add(
                    "medallion.value_omitted",
                    &format!("{} bytes; the DLQ table has it", v.len()),
                );
            }
            let out = SourceRecord {
                headers,
                value,
                ..r.clone()
            };
            self.sink.send_to(&self.topic, None, &out)?;
        }
        self.sink.finish()?;
        Ok(())
    }
}
