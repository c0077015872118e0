//! The bronze rows a silver run has not seen yet, reduced to what the merge needs.
//!
//! Bronze is append-only: the rows committed since the last silver run are the live data files
//! whose data sequence number is above the watermark recorded in the silver table. Per primary
//! key only the latest event in source order is kept (with its raw value), plus the events
//! before it when a TOAST placeholder makes an earlier image matter: a first pass reads only the
//! columns that order events, a second reads the rows that won, so a value is read out of
//! Parquet (and copied) only when it matters. Values are decoded later.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrowPrimitiveType, AsArray, BooleanArray, Int32Array, Int64Array, PrimitiveArray,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMicrosecondType};
use futures::TryStreamExt;
use iceberg::spec::DataContentType;

use parquet::file::metadata::ParquetMetaData;
use serde_json::value::RawValue;

use super::SilverError;
use super::files::{Rows, in_parallel, open_parquet, read_parquet};
use crate::lake::LakeTable;
use crate::lake::{LiveFile, live_files};
use crate::source::debezium::Op;

/// Where an event sits in the source's history. Compared field by field: PostgreSQL LSN or the
/// MySQL binlog file number, the binlog position, the row in the binlog event, the source
/// timestamp (µs), then the Kafka partition and offset as the last resort: only where the
/// event has no source position. With one, the same position is the same change, however
/// often Kafka delivered it (a replay, a connector restart), so a redelivery is never newer
/// than the change itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Order {
    pub log: i64,
    pub pos: i64,
    pub row: i64,
    pub ts_us: i64,
    pub partition: i32,
    pub offset: i64,
}

impl Order {
    fn source(&self) -> (i64, i64, i64, i64) {
        (self.log, self.pos, self.row, self.ts_us)
    }

    /// The Kafka coordinates count only for an event without a source position.
    fn kafka(&self) -> Option<(i32, i64)> {
        (self.log == 0).then_some((self.partition, self.offset))
    }
}

impl Ord for Order {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.source()
            .cmp(&other.source())
            .then_with(|| self.kafka().cmp(&other.kafka()))
    }
}

impl PartialOrd for Order {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Order {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Order {}

impl std::hash::Hash for Order {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source().hash(state);
        self.kafka().hash(state);
    }
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
        order_of(
            self.lsn,
            self.binlog_file.as_deref(),
            self.binlog_pos,
            self.binlog_row,
            self.ts_us,
            self.partition,
            self.offset,
        )
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
    fn has_placeholder(&self) -> bool {
        use memchr::memmem::Finder;
        use std::sync::LazyLock;
        // The placeholder, as text and in a bytea column (base64).
        static TEXT: LazyLock<Finder> =
            LazyLock::new(|| Finder::new(b"__debezium_unavailable_value"));
        static BASE64: LazyLock<Finder> =
            LazyLock::new(|| Finder::new(b"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ"));
        self.value.as_deref().is_some_and(|v| {
            TEXT.find(v.as_bytes()).is_some() || BASE64.find(v.as_bytes()).is_some()
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
    pub fn latest(&self) -> &Event {
        self.events.last().expect("never empty")
    }

    /// Adds an event to a chain, in order; the same event again (a replay or a duplicate) is
    /// kept once.
    fn offer(&mut self, e: Event) {
        self.chain = true;
        let i = self.events.partition_point(|x| x.order < e.order);
        if self.events.get(i).is_some_and(|x| x.order == e.order) {
            return;
        }
        self.events.insert(i, e);
    }
}

/// What a run read from bronze.
#[derive(Debug, Default)]
pub struct Changes {
    /// Per key payload text (`{"id":1}`): the events that matter.
    pub keys: Vec<(Box<str>, KeyEvents)>,
    /// The latest truncate, if any.
    pub truncate: Option<Order>,
    /// The value text of the latest event that carried a schema: its schema is the table's
    /// newest.
    pub newest_schema: Option<(Order, Arc<str>)>,
    pub rows_read: u64,
    pub events: u64,
    pub skipped: u64,
    /// The connector of the first event that names one.
    pub connector: Option<String>,
    /// The bronze data sequence number read up to (every file at or below it is read).
    pub bronze_seq: i64,
    /// Estimated bytes the kept events hold (keys × average value size).
    pub retained_bytes: u64,
    /// Files left for the next step (the step budget was reached).
    pub more: bool,
    pub bronze_snapshot: Option<i64>,
    pub files: usize,
    /// Keys whose TOAST placeholders needed all of their events (a third read).
    pub chains: usize,
}

/// The columns the first pass reads: what orders the events, not their values.
const INDEX_COLUMNS: [&str; 12] = [
    "kind",
    "op",
    "record_key",
    "has_schema",
    "source_connector",
    "source_ts",
    "pg_lsn",
    "binlog_file",
    "binlog_pos",
    "binlog_row",
    "kafka_partition",
    "kafka_offset",
];

/// The columns an event is built from.
const EVENT_COLUMNS: [&str; 13] = [
    "kind",
    "op",
    "record_key",
    "record_value",
    "has_schema",
    "kafka_topic",
    "source_ts",
    "pg_lsn",
    "binlog_file",
    "binlog_pos",
    "binlog_row",
    "kafka_partition",
    "kafka_offset",
];

/// Per key bookkeeping besides its value, for the budget estimate.
const KEY_OVERHEAD_BYTES: u64 = 160;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// The latest event of a key seen by the first pass.
#[derive(Debug, Clone, Copy)]
struct Slot {
    order: Order,
    file: u32,
    row: u32,
    /// Events of the key in this step.
    events: u32,
}

/// Per key, its latest event. Keys that are one integer field (`{"id":42}`, the usual primary
/// key) are held as the integer, which is several times faster to hash and compare than text;
/// any other key as its text.
#[derive(Default)]
struct KeyIndex {
    /// `{"<field>":` of the integer keys, learned from the first key.
    prefix: Option<Box<str>>,
    ints: FastMap<i64, Slot>,
    texts: FastMap<Box<str>, Slot>,
}

impl KeyIndex {
    fn len(&self) -> usize {
        self.ints.len() + self.texts.len()
    }

    /// Records an event of a key: it becomes the key's latest if it is later in source order.
    fn offer(&mut self, payload: &str, order: Order, file: u32, row: u32) {
        if self.prefix.is_none() {
            self.prefix = int_key_prefix(payload).map(Box::from);
        }
        let int = self.prefix.as_deref().and_then(|p| int_key(payload, p));
        let fresh = Slot {
            order,
            file,
            row,
            events: 1,
        };
        let slot = match int {
            Some(n) => self.ints.get_mut(&n),
            None => self.texts.get_mut(payload),
        };
        match (slot, int) {
            (Some(s), _) => {
                s.events += 1;
                if order > s.order {
                    *s = Slot {
                        events: s.events,
                        ..fresh
                    };
                }
            }
            (None, Some(n)) => {
                self.ints.insert(n, fresh);
            }
            (None, None) => {
                self.texts.insert(payload.into(), fresh);
            }
        }
    }

    /// Every key as its payload text, with its slot.
    fn into_entries(self) -> impl Iterator<Item = (Box<str>, Slot)> {
        let prefix = self.prefix.unwrap_or_default();
        self.ints
            .into_iter()
            .map(move |(n, s)| (format!("{prefix}{n}}}").into_boxed_str(), s))
            .chain(self.texts)
    }
}

/// `{"id":` of a key payload `{"id":42}`, if it is one integer field.
fn int_key_prefix(payload: &str) -> Option<&str> {
    let rest = payload.strip_prefix("{\"")?;
    let end = rest.find("\":")?;
    let name = &rest[..end];
    if name.contains(['"', '\\']) {
        return None;
    }
    let prefix = &payload[..end + 4];
    int_key(payload, prefix).map(|_| prefix)
}

/// The integer of `payload` if it is exactly `prefix`, an integer in canonical JSON form, `}`:
/// so that the integer gives back the same text.
fn int_key(payload: &str, prefix: &str) -> Option<i64> {
    let digits = payload.strip_prefix(prefix)?.strip_suffix('}')?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    let canonical = !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit())
        && (unsigned == "0" || !unsigned.starts_with('0'))
        && digits != "-0";
    if !canonical {
        return None;
    }
    digits.parse().ok()
}

/// Reads `files` of `bronze` (ascending by sequence number) and reduces them to [`Changes`],
/// stopping after a sequence number's files once the kept events are estimated to hold
/// `budget` bytes.
///
/// Three passes, so that values are read (and copied) only for the events that matter:
/// 1. the ordering columns of every row: per key, where its latest event is;
/// 2. the full rows of those latest events only (a Parquet row selection);
/// 3. only when a latest event has a TOAST placeholder and the key has earlier events in the
///    step: every event of those keys, so the merge can carry values forward.
///
/// With `every_event` (a table that keeps its history), pass 3 reads every event of every key
/// that has more than one, and the budget counts events instead of keys.
pub async fn read(
    bronze: &LakeTable,
    files: &[LiveFile],
    budget: u64,
    every_event: bool,
) -> Result<Changes, SilverError> {
    let mut changes = Changes::default();
    let name = bronze.name.to_string();
    let file_error = |path: &str, message: String| SilverError::File {
        table: name.clone(),
        file: path.to_string(),
        message,
    };

    let started = std::time::Instant::now();
    // 1. Index: per key, its latest event's file and row.
    let mut index = KeyIndex::default();
    let mut newest_schema: Option<(Order, u32, u32)> = None;
    let (mut value_bytes, mut value_rows) = (0u64, 0u64);
    for (fi, file) in files.iter().enumerate() {
        let (path, seq) = (&file.path, file.sequence_number);
        if changes.retained_bytes >= budget && seq > changes.bronze_seq {
            changes.more = true;
            break;
        }
        changes.bronze_seq = seq;
        changes.files = fi + 1;
        let (mut stream, meta) =
            open_parquet(bronze, path, Some(&INDEX_COLUMNS), Rows::All, 65536).await?;
        value_bytes += column_bytes(&meta, "record_value");
        value_rows += meta.file_metadata().num_rows() as u64;
        let mut row = 0u32;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| SilverError::parquet(&name, path, e))?
        {
            let cols = Cols::new(&batch).map_err(|m| file_error(path, m))?;
            for i in 0..batch.num_rows() {
                let at = row + i as u32;
                changes.rows_read += 1;
                let Some(op) = cols.change_op(i) else {
                    changes.skipped += 1;
                    continue;
                };
                changes.events += 1;
                if changes.connector.is_none() {
                    changes.connector = cols.connector(i).map(str::to_string);
                }
                let order = cols.order(i);
                if op == Op::Truncate {
                    if changes.truncate.is_none_or(|t| t < order) {
                        changes.truncate = Some(order);
                    }
                    continue;
                }
                if cols.has_schema(i) && newest_schema.is_none_or(|(o, _, _)| o < order) {
                    newest_schema = Some((order, fi as u32, at));
                }
                let payload = key_payload(cols.key(i).map_err(|m| file_error(path, m))?)
                    .map_err(|m| file_error(path, m))?;
                index.offer(payload, order, fi as u32, at);
            }
            row += batch.num_rows() as u32;
        }
        let avg = value_bytes / value_rows.max(1);
        let kept = if every_event {
            changes.events
        } else {
            index.len() as u64
        };
        changes.retained_bytes = kept * (avg + KEY_OVERHEAD_BYTES);
    }
    let step = &files[..changes.files];
    let t_index = started.elapsed();
    // Memory after each pass, for the debug log (read only when it is on).
    let rss = || tracing::enabled!(tracing::Level::DEBUG).then(crate::metrics::resident_mib);
    let rss_index = rss();

    // 2. The latest event of every key.
    let mut wanted: Vec<Vec<(u32, u32)>> = vec![Vec::new(); step.len()];
    let mut payloads: Vec<Box<str>> = Vec::with_capacity(index.len());
    let mut slots: Vec<Slot> = Vec::with_capacity(index.len());
    for (k, s) in index.into_entries() {
        wanted[s.file as usize].push((s.row, payloads.len() as u32));
        payloads.push(k);
        slots.push(s);
    }
    let mut kept: Vec<Option<KeyEvents>> = vec![None; payloads.len()];
    let mut topics = Topics::default();
    // Files in parallel: decompressing values is most of the work.
    let shared = Arc::new(bronze.clone());
    let reads = wanted
        .into_iter()
        .enumerate()
        .filter(|(_, want)| !want.is_empty())
        .map(|(fi, mut want)| {
            want.sort_unstable();
            let (table, file) = (shared.clone(), step[fi].clone());
            async move {
                let rows: Vec<u32> = want.iter().map(|w| w.0).collect();
                let mut events = Vec::with_capacity(rows.len());
                let mut topics = Topics::default();
                read_events(&table, &file, &rows, &mut topics, |key, e| {
                    events.push((key, e))
                })
                .await?;
                Ok((want, events))
            }
        });
    in_parallel(&name, reads, |(want, events): (Vec<(u32, u32)>, Vec<_>)| {
        for ((_, k), (key, event)) in want.into_iter().zip(events) {
            kept[k as usize] = Some(KeyEvents {
                key,
                events: vec![event],
                chain: false,
            });
        }
    })
    .await?;
    if let Some((order, fi, row)) = newest_schema {
        let file = &step[fi as usize];
        let mut value = None;
        read_events(bronze, file, &[row], &mut topics, |_, e| value = e.value).await?;
        changes.newest_schema = value.map(|v| (order, v));
    }

    let t_latest = started.elapsed() - t_index;
    let rss_latest = rss();
    // 3. Keys whose latest event needs earlier ones (TOAST placeholders, or every version
    //    for the history).
    let chains: FastMap<&str, usize> = kept
        .iter()
        .enumerate()
        .filter(|(i, k)| {
            slots[*i].events > 1
                && (every_event || k.as_ref().is_some_and(|k| k.latest().has_placeholder()))
        })
        .map(|(i, _)| (payloads[i].as_ref(), i))
        .collect();
    changes.chains = chains.len();
    if !chains.is_empty() {
        for file in step {
            let mut rows = Vec::new();
            let mut owners = Vec::new();
            let mut stream = read_parquet(
                bronze,
                &file.path,
                Some(&["kind", "op", "record_key"]),
                Rows::All,
                65536,
            )
            .await?;
            let mut row = 0u32;
            while let Some(batch) = stream
                .try_next()
                .await
                .map_err(|e| SilverError::parquet(&name, &file.path, e))?
            {
                let cols = Cols::new(&batch).map_err(|m| file_error(&file.path, m))?;
                for i in 0..batch.num_rows() {
                    if cols.change_op(i).is_none_or(|op| op == Op::Truncate) {
                        continue;
                    }
                    let key = cols.key(i).map_err(|m| file_error(&file.path, m))?;
                    let payload = key_payload(key).map_err(|m| file_error(&file.path, m))?;
                    if let Some(&k) = chains.get(payload) {
                        rows.push(row + i as u32);
                        owners.push(k);
                    }
                }
                row += batch.num_rows() as u32;
            }
            if rows.is_empty() {
                continue;
            }
            let mut owner = owners.into_iter();
            read_events(bronze, file, &rows, &mut topics, |_, event| {
                let k = owner.next().expect("one event per selected row");
                if let Some(k) = kept[k].as_mut() {
                    k.offer(event);
                }
            })
            .await?;
        }
    }
    tracing::debug!(
        table = %name,
        index = ?t_index,
        latest = ?t_latest,
        chains = ?(started.elapsed() - t_index - t_latest),
        rss_index_mib = ?rss_index,
        rss_latest_mib = ?rss_latest,
        rss_mib = crate::metrics::resident_mib(),
        "read bronze"
    );
    changes.keys = payloads
        .into_iter()
        .zip(kept)
        .filter_map(|(p, k)| k.map(|k| (p, k)))
        .collect();

    // The bronze snapshot that committed the last sequence number read.
    changes.bronze_snapshot = bronze
        .metadata()
        .snapshots()
        .find(|s| s.sequence_number() == changes.bronze_seq)
        .map(|s| s.snapshot_id());
    Ok(changes)
}

/// Uncompressed bytes of a top-level column in a Parquet file.
fn column_bytes(meta: &ParquetMetaData, column: &str) -> u64 {
    let Some(ci) = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == column)
    else {
        return 0;
    };
    meta.row_groups()
        .iter()
        .map(|rg| rg.column(ci).uncompressed_size().max(0) as u64)
        .sum()
}

/// Topic names, shared by the events that name them.
#[derive(Default)]
struct Topics(HashMap<String, Arc<str>>);

impl Topics {
    fn get(&mut self, t: &str) -> Arc<str> {
        if let Some(a) = self.0.get(t) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(t);
        self.0.insert(t.to_string(), a.clone());
        a
    }
}

/// Reads the change events at `rows` (ascending) of a bronze file, calling `each` with the
/// raw key text and the event, in row order.
async fn read_events(
    bronze: &LakeTable,
    file: &LiveFile,
    rows: &[u32],
    topics: &mut Topics,
    mut each: impl FnMut(Arc<str>, Event),
) -> Result<(), SilverError> {
    let name = bronze.name.to_string();
    let path = &file.path;
    let error = |message| SilverError::File {
        table: name.clone(),
        file: path.clone(),
        message,
    };
    let mut stream =
        read_parquet(bronze, path, Some(&EVENT_COLUMNS), Rows::Only(rows), 1024).await?;
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(|e| SilverError::parquet(&name, path, e))?
    {
        let cols = Cols::new(&batch).map_err(error)?;
        let text = |n: &str| string_col(&batch, n).and_then(|c| req(c, n)).map_err(error);
        let (value, topic) = (text("record_value")?, text("kafka_topic")?);
        for i in 0..batch.num_rows() {
            let op = cols
                .change_op(i)
                .ok_or_else(|| error("a selected row is no longer a change event".into()))?;
            let event = Event {
                order: cols.order(i),
                op,
                position: cols.position(i),
                topic: topics.get(topic.value(i)),
                value: (op != Op::Delete && !value.is_null(i)).then(|| Arc::from(value.value(i))),
                has_schema: cols.has_schema(i),
                bronze_seq: file.sequence_number,
            };
            each(Arc::from(cols.key(i).map_err(error)?), event);
        }
    }
    Ok(())
}

fn string_col<'a>(b: &'a RecordBatch, name: &str) -> Result<Option<&'a StringArray>, String> {
    match b.column_by_name(name) {
        None => Ok(None),
        Some(c) => c
            .as_string_opt::<i32>()
            .map(Some)
            .ok_or_else(|| format!("column {name} is {:?}, expected a string", c.data_type())),
    }
}

fn int_col<'a, T: arrow::datatypes::ArrowPrimitiveType>(
    b: &'a RecordBatch,
    name: &str,
) -> Result<Option<&'a arrow::array::PrimitiveArray<T>>, String> {
    match b.column_by_name(name) {
        None => Ok(None),
        Some(c) => c.as_primitive_opt::<T>().map(Some).ok_or_else(|| {
            format!(
                "column {name} is {:?}, expected {}",
                c.data_type(),
                T::DATA_TYPE
            )
        }),
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

/// The bronze columns of one batch that place an event in the source's history.
struct Cols<'a> {
    kind: &'a StringArray,
    op: &'a StringArray,
    key: &'a StringArray,
    connector: Option<&'a StringArray>,
    has_schema: Option<&'a BooleanArray>,
    source_ts: Option<&'a TimestampMicrosecondArray>,
    lsn: Option<&'a Int64Array>,
    binlog_file: Option<&'a StringArray>,
    binlog_pos: Option<&'a Int64Array>,
    binlog_row: Option<&'a Int32Array>,
    partition: Option<&'a Int32Array>,
    offset: Option<&'a Int64Array>,
}

impl<'a> Cols<'a> {
    fn new(b: &'a RecordBatch) -> Result<Self, String> {
        Ok(Cols {
            kind: req(string_col(b, "kind")?, "kind")?,
            op: req(string_col(b, "op")?, "op")?,
            key: req(string_col(b, "record_key")?, "record_key")?,
            connector: string_col(b, "source_connector")?,
            has_schema: b
                .column_by_name("has_schema")
                .and_then(|c| c.as_boolean_opt()),
            source_ts: b
                .column_by_name("source_ts")
                .and_then(|c| match c.data_type() {
                    DataType::Timestamp(_, _) => c.as_primitive_opt::<TimestampMicrosecondType>(),
                    _ => None,
                }),
            lsn: int_col::<Int64Type>(b, "pg_lsn")?,
            binlog_file: string_col(b, "binlog_file")?,
            binlog_pos: int_col::<Int64Type>(b, "binlog_pos")?,
            binlog_row: int_col::<Int32Type>(b, "binlog_row")?,
            partition: int_col::<Int32Type>(b, "kafka_partition")?,
            offset: int_col::<Int64Type>(b, "kafka_offset")?,
        })
    }

    /// The op of a change event (`None` for other records).
    fn change_op(&self, i: usize) -> Option<Op> {
        if self.kind.value(i) != "change" || self.op.is_null(i) {
            return None;
        }
        Op::parse(self.op.value(i))
    }

    fn key(&self, i: usize) -> Result<&'a str, String> {
        if self.key.is_null(i) {
            return Err(format!(
                "partition {} offset {}: a change without a key; silver needs the primary key",
                self.partition.map_or(0, |a| a.value(i)),
                self.offset.map_or(0, |a| a.value(i))
            ));
        }
        Ok(self.key.value(i))
    }

    fn connector(&self, i: usize) -> Option<&'a str> {
        self.connector.filter(|c| !c.is_null(i)).map(|c| c.value(i))
    }

    fn has_schema(&self, i: usize) -> bool {
        self.has_schema.is_some_and(|h| h.value(i))
    }

    fn binlog_file(&self, i: usize) -> Option<&'a str> {
        self.binlog_file
            .filter(|c| !c.is_null(i))
            .map(|c| c.value(i))
    }

    fn order(&self, i: usize) -> Order {
        order_of(
            opt(self.lsn, i),
            self.binlog_file(i),
            opt(self.binlog_pos, i),
            opt(self.binlog_row, i),
            opt(self.source_ts, i),
            opt(self.partition, i).unwrap_or(0),
            opt(self.offset, i).unwrap_or(0),
        )
    }

    fn position(&self, i: usize) -> SourcePosition {
        SourcePosition {
            lsn: opt(self.lsn, i),
            binlog_file: self.binlog_file(i).map(Arc::from),
            binlog_pos: opt(self.binlog_pos, i),
            binlog_row: opt(self.binlog_row, i),
            ts_us: opt(self.source_ts, i),
            partition: opt(self.partition, i).unwrap_or(0),
            offset: opt(self.offset, i).unwrap_or(0),
        }
    }
}

fn opt<T: ArrowPrimitiveType>(a: Option<&PrimitiveArray<T>>, i: usize) -> Option<T::Native> {
    a.and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
}

/// The order of a source position (see [`Order`]).
fn order_of(
    lsn: Option<i64>,
    binlog_file: Option<&str>,
    binlog_pos: Option<i64>,
    binlog_row: Option<i32>,
    ts_us: Option<i64>,
    partition: i32,
    offset: i64,
) -> Order {
    let (log, pos, row) = match (lsn, binlog_file) {
        (Some(lsn), _) => (lsn, 0, 0),
        (None, Some(f)) => (
            Order::binlog_number(f),
            binlog_pos.unwrap_or(0),
            binlog_row.unwrap_or(0) as i64,
        ),
        (None, None) => (0, 0, 0),
    };
    Order {
        log,
        pos,
        row,
        ts_us: ts_us.unwrap_or(0),
        partition,
        offset,
    }
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
        // The same source position delivered twice is the same change.
        assert_eq!(pg(10, 1).order(), pg(10, 2).order());
        let kafka_only = |off| SourcePosition {
            offset: off,
            ..Default::default()
        };
        assert!(kafka_only(1).order() < kafka_only(2).order());
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
    fn int_keys() {
        assert_eq!(int_key_prefix("{\"id\":42}"), Some("{\"id\":"));
        assert_eq!(int_key_prefix("{\"id\":\"a\"}"), None);
        assert_eq!(int_key_prefix("{\"a\":1,\"b\":2}"), None);
        let p = "{\"id\":";
        assert_eq!(int_key("{\"id\":-7}", p), Some(-7));
        assert_eq!(int_key("{\"id\":0}", p), Some(0));
        for text in [
            "{\"id\":07}",
            "{\"id\":-0}",
            "{\"id\":+7}",
            "{\"id\":7 }",
            "{\"id\":1e3}",
        ] {
            assert_eq!(int_key(text, p), None, "{text}");
        }
        assert_eq!(int_key("{\"id\":99999999999999999999}", p), None);
        let mut index = KeyIndex::default();
        let at = |log| Order {
            log,
            ..Default::default()
        };
        index.offer("{\"id\":1}", at(5), 0, 0);
        index.offer("{\"id\":1}", at(3), 0, 1);
        index.offer("{\"id\":01}", at(4), 0, 2);
        let mut entries: Vec<_> = index.into_entries().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(entries.len(), 2);
        assert_eq!(&*entries[1].0, "{\"id\":1}");
        assert_eq!((entries[1].1.order, entries[1].1.events), (at(5), 2));
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
