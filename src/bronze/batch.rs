//! Batching with exactly-once bookkeeping.
//!
//! The [`Batcher`] takes source items in order, routes and decodes each, and appends it to its
//! table's rows or to the dead letters. It keeps, per table, the watermark (next offset) of every
//! partition: a record below its destination table's watermark was landed before and is skipped.
//! A batch is taken when it reaches the row, byte or time limit, whichever comes first.
//!
//! Exactly once across tables: a partition's records go to its routed table or, if they cannot
//! be decoded, to the DLQ. The committer commits the DLQ first, recording every partition of the
//! batch, then the data tables. So whatever the crash point, each record is either committed in
//! its destination (and its watermark says so) or not committed anywhere, and a restart from the
//! routed table's watermark (else the DLQ's) skips exactly what was landed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::BronzeError;
use super::offsets::Watermarks;
use super::route::Router;
use super::rows::{DataRows, DlqRows, SizeHint};
use crate::source::debezium::{self, DecodeError, Decoded, ErrorKind};
use crate::source::{Partition, SourceItem, SourceRecord};

/// When a batch is due.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_interval: Duration,
    pub max_record_bytes: usize,
}

/// What one table's part of a batch covers.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    /// Next offset per partition after this batch.
    pub next: BTreeMap<Partition, i64>,
    /// First offset this table accepted per partition: committed offsets above it mean another
    /// writer landed the same records.
    pub first_accepted: BTreeMap<Partition, i64>,
}

impl Coverage {
    fn note(&mut self, p: &Partition, offset: i64, accepted: bool) {
        match self.next.get_mut(p) {
            Some(n) => *n = (*n).max(offset + 1),
            None => {
                self.next.insert(p.clone(), offset + 1);
            }
        }
        if accepted && !self.first_accepted.contains_key(p) {
            self.first_accepted.insert(p.clone(), offset);
        }
    }
}

/// One table's share of a batch.
#[derive(Debug)]
pub struct Part {
    pub table: Arc<str>,
    pub is_dlq: bool,
    pub batch: RecordBatch,
    pub coverage: Coverage,
}

/// Decodes a record as bronze takes it: at most `max_bytes` of key and value, a Debezium
/// envelope, a key unless the table is `keyless`.
pub fn decode_record(
    r: &SourceRecord,
    keyless: bool,
    max_bytes: usize,
) -> Result<Decoded<'_>, DecodeError> {
    let size = r.payload_bytes();
    if size > max_bytes {
        return Err(DecodeError::new(
            ErrorKind::TooLarge,
            format!("record is {size} bytes, over bronze.max_record_bytes = {max_bytes}"),
        ));
    }
    debezium::decode(r.key.as_deref(), r.value.as_deref(), keyless)
}

/// A batch ready to be written and committed: the DLQ part (if any) first.
#[derive(Debug)]
pub struct Flush {
    pub parts: Vec<Part>,
    pub ingested_at_us: i64,
    /// Next offset per partition over the whole batch: where a consumer resumes once every
    /// part is committed.
    pub next: BTreeMap<Partition, i64>,
    /// Raw bytes of the records in the batch.
    pub bytes: usize,
}

/// Counts for the run report.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub read: u64,
    pub landed: u64,
    pub dead_letters: u64,
    pub skipped: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_table: BTreeMap<String, u64>,
    /// Records read per topic.
    pub read_by_topic: BTreeMap<Arc<str>, u64>,
    /// Dead letters per topic.
    pub dlq_by_topic: BTreeMap<Arc<str>, u64>,
}

pub struct Batcher {
    router: Router,
    dlq_table: Arc<str>,
    limits: Limits,
    data_schema: SchemaRef,
    /// Watermarks per table (the DLQ included): as committed, plus what this process accepted.
    watermarks: HashMap<Arc<str>, Watermarks>,
    open: BTreeMap<Arc<str>, (DataRows, Coverage)>,
    /// Size of each table's previous batch, to size its next one (capped by the limits).
    sizes: HashMap<Arc<str>, SizeHint>,
    dlq: DlqRows,
    dlq_coverage: Coverage,
    rows: usize,
    bytes: usize,
    opened_at: Option<Instant>,
    pub counts: Counts,
}

impl Batcher {
    pub fn new(
        router: Router,
        dlq_table: &str,
        limits: Limits,
        data_schema: SchemaRef,
        dlq_schema: SchemaRef,
        committed: HashMap<Arc<str>, Watermarks>,
    ) -> Self {
        Batcher {
            router,
            dlq_table: Arc::from(dlq_table),
            limits,
            dlq: DlqRows::new(dlq_schema),
            data_schema,
            watermarks: committed,
            open: BTreeMap::new(),
            sizes: HashMap::new(),
            dlq_coverage: Coverage::default(),
            rows: 0,
            bytes: 0,
            opened_at: None,
            counts: Counts::default(),
        }
    }

    /// Where a consumer of partition `p` should start: the routed table's watermark, else the
    /// DLQ's, else `None` (never seen: the source's reset policy decides).
    pub fn resume_offset(&mut self, p: &Partition) -> Option<i64> {
        let table = self.router.route(&p.topic).table.clone();
        self.watermarks
            .get(&table)
            .and_then(|w| w.get(p))
            .or_else(|| self.watermarks.get(&self.dlq_table).and_then(|w| w.get(p)))
    }

    /// Replaces what this batcher believes of `partitions` with the committed watermarks
    /// (another worker may have moved them since). Call only with nothing of them open.
    pub fn refresh(&mut self, partitions: &[Partition], committed: &HashMap<Arc<str>, Watermarks>) {
        let tables: Vec<Arc<str>> = self
            .watermarks
            .keys()
            .chain(committed.keys())
            .cloned()
            .collect();
        for table in tables {
            let fresh = committed.get(&table);
            let w = self.watermarks.entry(table).or_default();
            for p in partitions {
                match fresh.and_then(|f| f.get(p)) {
                    Some(n) => {
                        w.0.insert(p.clone(), n);
                    }
                    None => {
                        w.0.remove(p);
                    }
                }
            }
        }
    }

    fn accept(&mut self, table: &Arc<str>, p: &Partition, offset: i64) -> bool {
        let w = self.watermarks.entry(table.clone()).or_default();
        if w.get(p).is_some_and(|next| offset < next) {
            return false;
        }
        w.advance(p, offset + 1);
        true
    }

    /// Routes, decodes and appends one item.
    pub fn push(&mut self, item: SourceItem) {
        self.counts.read += 1;
        if self.opened_at.is_none() {
            self.opened_at = Some(Instant::now());
        }
        match item {
            SourceItem::Record(r) => self.push_record(r),
            SourceItem::Unreadable(u) => {
                let (p, offset) = u.position();
                let target = u
                    .record
                    .as_ref()
                    .map(|r| self.router.route(&r.topic).table.clone());
                let dlq = self.dlq_table.clone();
                let accepted = self.accept(&dlq, &p, offset);
                self.dlq_coverage.note(&p, offset, accepted);
                if accepted {
                    self.dlq.append_unreadable(&u, target.as_deref());
                    self.counts.dead_letters += 1;
                    *self.counts.dlq_by_topic.entry(p.topic.clone()).or_default() += 1;
                    self.rows += 1;
                    self.bytes += u.raw.len();
                } else {
                    self.counts.skipped += 1;
                }
            }
        }
    }

    fn push_record(&mut self, r: SourceRecord) {
        match self.counts.read_by_topic.get_mut(&r.topic) {
            Some(n) => *n += 1,
            None => {
                self.counts.read_by_topic.insert(r.topic.clone(), 1);
            }
        }
        let p = r.partition_id();
        let route = self.router.route(&r.topic).clone();
        let size = r.payload_bytes();
        let decoded = decode_record(&r, route.keyless, self.limits.max_record_bytes);
        let dlq = self.dlq_table.clone();
        match decoded {
            Ok(d) => {
                // Every record of the batch moves the DLQ's coverage, so the DLQ commit records
                // every partition the batch read.
                let accepted = self.accept(&route.table, &p, r.offset);
                self.dlq_coverage.note(&p, r.offset, false);
                if !accepted {
                    self.counts.skipped += 1;
                    return;
                }
                let (rows, cov) = match self.open.get_mut(&route.table) {
                    Some(open) => open,
                    None => {
                        let hint = self.size_hint(&route.table);
                        let rows = DataRows::new(self.data_schema.clone(), hint);
                        self.open
                            .entry(route.table.clone())
                            .or_insert((rows, Coverage::default()))
                    }
                };
                rows.append(&r, &d);
                cov.note(&p, r.offset, true);
                self.counts.landed += 1;
                *self
                    .counts
                    .by_kind
                    .entry(d.op.map(|o| o.as_str()).unwrap_or(d.kind.as_str()))
                    .or_default() += 1;
            }
            Err(e) => {
                let accepted = self.accept(&dlq, &p, r.offset);
                self.dlq_coverage.note(&p, r.offset, accepted);
                if !accepted {
                    self.counts.skipped += 1;
                    return;
                }
                self.dlq.append_record(&r, &e, &route.table);
                self.counts.dead_letters += 1;
                *self.counts.dlq_by_topic.entry(r.topic.clone()).or_default() += 1;
            }
        }
        self.rows += 1;
        self.bytes += size;
    }

    /// The size of the table's previous batch, at most the batch limits (and a tenth more, so
    /// that a batch of the same size does not grow its buffers at the end).
    fn size_hint(&self, table: &str) -> SizeHint {
        let h = self.sizes.get(table).copied().unwrap_or_default();
        let cap = |n: usize, max: usize| (n + n / 10).min(max);
        SizeHint {
            rows: cap(h.rows, self.limits.max_rows),
            key_bytes: cap(h.key_bytes, self.limits.max_bytes),
            value_bytes: cap(h.value_bytes, self.limits.max_bytes),
        }
    }

    /// Whether the open batch reached a limit. The clock is read every 256 records only: call
    /// [`Batcher::due_in`] to wait for the interval when records stop coming.
    pub fn is_due(&self) -> bool {
        self.rows >= self.limits.max_rows
            || self.bytes >= self.limits.max_bytes
            || (self.counts.read.is_multiple_of(256)
                && self
                    .opened_at
                    .is_some_and(|t| t.elapsed() >= self.limits.max_interval))
    }

    /// Time until the interval limit of the open batch, `None` if nothing is open.
    pub fn due_in(&self) -> Option<Duration> {
        self.opened_at
            .map(|t| self.limits.max_interval.saturating_sub(t.elapsed()))
    }

    pub fn is_empty(&self) -> bool {
        self.opened_at.is_none()
    }

    /// Takes the open batch. Returns `None` if nothing was read since the last take. A batch
    /// whose records were all skipped still returns its DLQ coverage only if the DLQ got rows.
    pub fn take(&mut self) -> Result<Option<Flush>, BronzeError> {
        if self.opened_at.take().is_none() {
            return Ok(None);
        }
        let now = chrono::Utc::now().timestamp_micros();
        let mut parts = Vec::new();
        let dlq_cov = std::mem::take(&mut self.dlq_coverage);
        let next = dlq_cov.next.clone();
        if self.dlq.rows > 0 {
            parts.push(Part {
                table: self.dlq_table.clone(),
                is_dlq: true,
                batch: self.dlq.finish(now).map_err(BronzeError::arrow("DLQ"))?,
                coverage: dlq_cov,
            });
        }
        for (table, (mut rows, coverage)) in std::mem::take(&mut self.open) {
            self.sizes.insert(table.clone(), rows.size());
            parts.push(Part {
                batch: rows.finish(now).map_err(BronzeError::arrow(&table))?,
                table,
                is_dlq: false,
                coverage,
            });
            *self
                .counts
                .by_table
                .entry(parts.last().expect("pushed").table.to_string())
                .or_default() += parts.last().expect("pushed").batch.num_rows() as u64;
        }
        self.rows = 0;
        let bytes = std::mem::take(&mut self.bytes);
        if parts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Flush {
            parts,
            ingested_at_us: now,
            next,
            bytes,
        }))
    }
}
