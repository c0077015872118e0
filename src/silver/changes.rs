//! The bronze rows a silver run has not seen yet, reduced to what the merge needs.
//!
//! Bronze is append-only: the rows committed since the last silver run are the live data files
//! whose data sequence number is above the watermark recorded in the silver table. They are
//! read with only the columns the merge needs, and reduced on the fly: per primary key only the
//! latest event in source order is kept (with its raw value), plus the events before it when a
//! TOAST placeholder makes an earlier image matter. Values are decoded later, for the survivors
//! only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMicrosecondType};
use futures::TryStreamExt;
use iceberg::spec::DataContentType;
use serde_json::value::RawValue;

use super::SilverError;
use super::files::{LiveFile, live_files, read_parquet};
use crate::lake::LakeTable;
use crate::source::debezium::Op;

/// Where an event sits in the source's history. Compared field by field: PostgreSQL LSN or the
/// MySQL binlog file number, the binlog position, the row in the binlog event, the source
/// timestamp (µs), then the Kafka partition and offset as the last resort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Order {
    pub log: i64,
    pub pos: i64,
    pub row: i64,
    pub ts_us: i64,
    pub partition: i32,
    pub offset: i64,
}

impl Order {
    /// The number in a binlog file name (`mysql-bin.000042` → 42).
    pub fn binlog_number(file: &str) -> i64 {
        file.rsplit('.')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> String {
        format!(
            "[{},{},{},{},{},{}]",
            self.log, self.pos, self.row, self.ts_us, self.partition, self.offset
        )
    }

    pub fn from_json(s: &str) -> Option<Order> {
        let v: (i64, i64, i64, i64, i32, i64) = serde_json::from_str(s).ok()?;
        Some(Order {
            log: v.0,
            pos: v.1,
            row: v.2,
            ts_us: v.3,
            partition: v.4,
            offset: v.5,
        })
    }
}

/// The source position of an event as recorded in silver's `_source_*` columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePosition {
    pub lsn: Option<i64>,
    pub binlog_file: Option<Arc<str>>,
    pub binlog_pos: Option<i64>,
    pub binlog_row: Option<i32>,
    pub ts_us: Option<i64>,
    pub partition: i32,
    pub offset: i64,
}

impl SourcePosition {
    pub fn order(&self) -> Order {
        let (log, pos, row) = match (&self.lsn, &self.binlog_file) {
            (Some(lsn), _) => (*lsn, 0, 0),
            (None, Some(f)) => (
                Order::binlog_number(f),
                self.binlog_pos.unwrap_or(0),
                self.binlog_row.unwrap_or(0) as i64,
            ),
            (None, None) => (0, 0, 0),
        };
        Order {
            log,
            pos,
            row,
            ts_us: self.ts_us.unwrap_or(0),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// One change event of a key.
#[derive(Debug, Clone)]
pub struct Event {
    pub order: Order,
    pub op: Op,
    pub position: SourcePosition,
    pub topic: Arc<str>,
    /// The raw value text (for c/r/u: the row image is decoded from it).
    pub value: Option<Arc<str>>,
    pub has_schema: bool,
    /// Data sequence number of the bronze file it came from.
    pub bronze_seq: i64,
}

impl Event {
    fn held_bytes(&self) -> u64 {
        self.value.as_ref().map_or(0, |v| v.len() as u64) + 96
    }

    fn has_placeholder(&self) -> bool {
        self.value.as_deref().is_some_and(|v| {
            memchr::memmem::find(v.as_bytes(), b"__debezium_unavailable_value").is_some()
                || memchr::memmem::find(v.as_bytes(), b"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ")
                    .is_some()
        })
    }
}

/// The events of one key that matter: the latest, and (once a TOAST placeholder is involved)
/// every one, so the merge can carry values forward.
#[derive(Debug, Clone)]
pub struct KeyEvents {
    /// The raw key text as produced (for reports and quarantine).
    pub key: Arc<str>,
    /// Ascending by order; one event unless `chain`.
    pub events: Vec<Event>,
    pub chain: bool,
}

impl KeyEvents {
    fn held_bytes(&self) -> u64 {
        self.events.iter().map(Event::held_bytes).sum()
    }

    pub fn latest(&self) -> &Event {
        self.events.last().expect("never empty")
    }

    /// Takes in a later-read event. Without a chain, the one event kept never has a
    /// placeholder (an event with one starts the chain), so only the newcomer is checked.
    fn offer(&mut self, e: Event) {
        if self.chain || e.has_placeholder() {
            self.chain = true;
            let i = self.events.partition_point(|x| x.order < e.order);
            if self.events.get(i).is_some_and(|x| x.order == e.order) {
                return; // the same event again (a replay or a duplicate)
            }
            self.events.insert(i, e);
        } else if e.order > self.latest().order {
            self.events[0] = e;
        }
    }
}

/// What a run read from bronze.
#[derive(Debug, Default)]
pub struct Changes {
    /// Per key payload text (`{"id":1}`): the events that matter.
    pub keys: HashMap<Box<str>, KeyEvents>,
    /// The latest truncate, if any.
    pub truncate: Option<Order>,
    /// The value text of the latest event that carried a schema: its schema is the table's
    /// newest.
    pub newest_schema: Option<(Order, Arc<str>)>,
    /// The first event seen with a value, when no event had a schema (to learn the connector).
    pub rows_read: u64,
    pub events: u64,
    pub skipped: u64,
    pub connector: Option<String>,
    /// The bronze data sequence number read up to (every file at or below it is read).
    pub bronze_seq: i64,
    /// Raw value bytes held for the kept events.
    pub retained_bytes: u64,
    /// Files left for the next step (the step budget was reached).
    pub more: bool,
    pub bronze_snapshot: Option<i64>,
    pub files: usize,
}

const COLUMNS: [&str; 15] = [
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "record_key",
    "record_value",
    "kind",
    "op",
    "source_ts",
    "source_connector",
    "pg_lsn",
    "binlog_file",
    "binlog_pos",
    "binlog_row",
    "has_schema",
    "event_ts",
];

/// The data files of `bronze` added after data sequence number `after`, ascending by
/// sequence number.
pub async fn new_files(bronze: &LakeTable, after: i64) -> Result<Vec<LiveFile>, SilverError> {
    let mut files: Vec<LiveFile> = live_files(bronze, after)
        .await?
        .into_iter()
        .filter(|f| f.content == DataContentType::Data)
        .collect();
    files.sort_by_key(|f| f.sequence_number);
    Ok(files)
}

/// Reads `files` of `bronze` (ascending by sequence number) and reduces them to [`Changes`],
/// stopping after a sequence number's files once the kept events hold `budget` bytes.
pub async fn read(
    bronze: &LakeTable,
    files: &[LiveFile],
    budget: u64,
) -> Result<Changes, SilverError> {
    let mut changes = Changes::default();
    let name = bronze.name.to_string();
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        let (path, seq) = (&file.path, &file.sequence_number);
        if changes.retained_bytes >= budget && *seq > changes.bronze_seq {
            changes.more = true;
            break;
        }
        changes.bronze_seq = *seq;
        changes.files = i + 1;
        let mut stream = read_parquet(bronze, path, Some(&COLUMNS), 8192).await?;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| SilverError::parquet(&name, path, e))?
        {
            reduce(&mut changes, &batch, *seq, &mut topics).map_err(|message| {
                SilverError::File {
                    table: name.clone(),
                    file: path.clone(),
                    message,
                }
            })?;
        }
    }
    // The bronze snapshot that committed the last sequence number read.
    changes.bronze_snapshot = bronze
        .metadata()
        .snapshots()
        .find(|s| s.sequence_number() == changes.bronze_seq)
        .map(|s| s.snapshot_id());
    Ok(changes)
}

fn string_col<'a>(
    b: &'a RecordBatch,
    name: &str,
) -> Result<Option<&'a arrow::array::StringArray>, String> {
    match b.column_by_name(name) {
        None => Ok(None),
        Some(c) => c
            .as_string_opt::<i32>()
            .map(Some)
            .ok_or_else(|| format!("column {name} is {:?}, expected a string", c.data_type())),
    }
}

fn req<T>(c: Option<T>, name: &str) -> Result<T, String> {
    c.ok_or_else(|| format!("column {name} is missing: not a bronze table?"))
}

/// The payload part of a key: `{"schema":…,"payload":{…}}` → `{…}`.
pub fn key_payload(key: &str) -> Result<&str, String> {
    if !key.starts_with("{\"schema\"") {
        return Ok(key);
    }
    #[derive(serde::Deserialize)]
    struct K<'a> {
        #[serde(borrow)]
        payload: Option<&'a RawValue>,
    }
    let k: K = serde_json::from_str(key).map_err(|e| format!("key is not JSON: {e}"))?;
    Ok(k.payload.map(|p| p.get()).unwrap_or("null"))
}

fn reduce(
    changes: &mut Changes,
    b: &RecordBatch,
    bronze_seq: i64,
    topics: &mut HashMap<String, Arc<str>>,
) -> Result<(), String> {
    let kind = req(string_col(b, "kind")?, "kind")?;
    let op = req(string_col(b, "op")?, "op")?;
    let key = req(string_col(b, "record_key")?, "record_key")?;
    let value = req(string_col(b, "record_value")?, "record_value")?;
    let topic = req(string_col(b, "kafka_topic")?, "kafka_topic")?;
    let connector = string_col(b, "source_connector")?;
    let binlog_file = string_col(b, "binlog_file")?;
    let int64 = |n: &str| -> Result<Option<&arrow::array::Int64Array>, String> {
        Ok(match b.column_by_name(n) {
            None => None,
            Some(c) => Some(
                c.as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| format!("column {n} is not a long"))?,
            ),
        })
    };
    let int32 = |n: &str| -> Result<Option<&arrow::array::Int32Array>, String> {
        Ok(match b.column_by_name(n) {
            None => None,
            Some(c) => Some(
                c.as_primitive_opt::<Int32Type>()
                    .ok_or_else(|| format!("column {n} is not an int"))?,
            ),
        })
    };
    let partition = req(int32("kafka_partition")?, "kafka_partition")?;
    let offset = req(int64("kafka_offset")?, "kafka_offset")?;
    let lsn = int64("pg_lsn")?;
    let binlog_pos = int64("binlog_pos")?;
    let binlog_row = int32("binlog_row")?;
    let source_ts = match b.column_by_name("source_ts") {
        Some(c) if matches!(c.data_type(), DataType::Timestamp(_, _)) => {
            Some(c.as_primitive::<TimestampMicrosecondType>())
        }
        _ => None,
    };
    let has_schema = b
        .column_by_name("has_schema")
        .and_then(|c| c.as_boolean_opt());
    let opt_i64 = |a: Option<&arrow::array::Int64Array>, i: usize| {
        a.and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
    };
    for i in 0..b.num_rows() {
        changes.rows_read += 1;
        if kind.value(i) != "change" {
            changes.skipped += 1;
            continue;
        }
        let Some(op) = (!op.is_null(i)).then(|| Op::parse(op.value(i))).flatten() else {
            changes.skipped += 1;
            continue;
        };
        changes.events += 1;
        if changes.connector.is_none()
            && let Some(c) = connector.filter(|c| !c.is_null(i))
        {
            changes.connector = Some(c.value(i).to_string());
        }
        let t = topic.value(i);
        let topic = match topics.get(t) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(t);
                topics.insert(t.to_string(), a.clone());
                a
            }
        };
        let position = SourcePosition {
            lsn: opt_i64(lsn, i),
            binlog_file: binlog_file
                .filter(|c| !c.is_null(i))
                .map(|c| Arc::from(c.value(i))),
            binlog_pos: opt_i64(binlog_pos, i),
            binlog_row: binlog_row.and_then(|a| (!a.is_null(i)).then(|| a.value(i))),
            ts_us: source_ts.and_then(|a| (!a.is_null(i)).then(|| a.value(i))),
            partition: partition.value(i),
            offset: offset.value(i),
        };
        let order = position.order();
        if op == Op::Truncate {
            if changes.truncate.is_none_or(|t| t < order) {
                changes.truncate = Some(order);
            }
            continue;
        }
        let has_schema = has_schema.is_some_and(|h| h.value(i));
        let value_text = (!value.is_null(i)).then(|| value.value(i));
        if has_schema
            && let Some(v) = value_text
            && changes
                .newest_schema
                .as_ref()
                .is_none_or(|(o, _)| *o < order)
        {
            changes.newest_schema = Some((order, Arc::from(v)));
        }
        if key.is_null(i) {
            return Err(format!(
                "{} partition {} offset {}: a change without a key; silver needs the primary key",
                topic, position.partition, position.offset
            ));
        }
        let key_text = key.value(i);
        let payload = key_payload(key_text)?;
        // An event older than a key's kept full image cannot change the outcome: skip it
        // before copying its value.
        let wins = match changes.keys.get(payload) {
            Some(k) => k.chain || order > k.latest().order,
            None => true,
        };
        if !wins {
            continue;
        }
        let event = Event {
            order,
            op,
            position,
            topic,
            value: if op == Op::Delete {
                None
            } else {
                value_text.map(Arc::from)
            },
            has_schema,
            bronze_seq,
        };
        match changes.keys.get_mut(payload) {
            Some(k) => {
                let before = k.held_bytes();
                k.offer(event);
                changes.retained_bytes = changes.retained_bytes + k.held_bytes() - before;
            }
            None => {
                changes.retained_bytes += event.held_bytes();
                let chain = event.has_placeholder();
                changes.keys.insert(
                    payload.into(),
                    KeyEvents {
                        key: Arc::from(key_text),
                        events: vec![event],
                        chain,
                    },
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders() {
        let pg = |lsn, off| SourcePosition {
            lsn: Some(lsn),
            offset: off,
            ..Default::default()
        };
        assert!(pg(10, 5).order() < pg(11, 1).order());
        assert!(pg(10, 1).order() < pg(10, 2).order());
        let my = |file: &str, pos, row| SourcePosition {
            binlog_file: Some(Arc::from(file)),
            binlog_pos: Some(pos),
            binlog_row: Some(row),
            ..Default::default()
        };
        assert!(my("mysql-bin.000009", 900, 0).order() < my("mysql-bin.000010", 4, 0).order());
        assert!(my("mysql-bin.000010", 4, 0).order() < my("mysql-bin.000010", 4, 1).order());
        let o = my("b.000003", 7, 2).order();
        assert_eq!(Order::from_json(&o.to_json()), Some(o));
    }

    #[test]
    fn key_payloads() {
        assert_eq!(key_payload("{\"id\":1}").unwrap(), "{\"id\":1}");
        assert_eq!(
            key_payload("{\"schema\":{\"type\":\"struct\",\"fields\":[]},\"payload\":{\"id\":1}}")
                .unwrap(),
            "{\"id\":1}"
        );
    }
}
