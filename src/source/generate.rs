//! A deterministic generator of Debezium PostgreSQL-connector events for an e-commerce source
//! (`users`, `products`, `orders`), modelled on the real events in the fixtures: a snapshot
//! (`op: r`, `snapshot: first/true/last`) of every initial row, then a stream of inserts, updates
//! and deletes (each delete followed by its tombstone) in transactions with increasing LSNs.
//! Same options and seed, same bytes. It feeds the demo, the benchmarks and load tests.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;

use super::SourceRecord;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Rows in the initial snapshot, across the three tables.
    pub keys: u64,
    /// Records in all, snapshot reads included (tombstones count).
    pub events: u64,
    /// Approximate size of each value in bytes; rows are padded with a text column to reach it.
    pub event_size: usize,
    pub seed: u64,
    /// Wrap values and keys in `{"schema", "payload"}` (JsonConverter `schemas.enable=true`).
    pub schemas: bool,
    /// Partitions per topic; a key always goes to the same partition.
    pub partitions: i32,
    /// Debezium `topic.prefix`.
    pub topic_prefix: String,
    /// No new keys after the snapshot: an insert re-inserts a deleted key, or updates a live one
    /// when none is deleted.
    pub fixed_keys: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            keys: 1_000,
            events: 5_000,
            event_size: 0,
            seed: 42,
            schemas: false,
            partitions: 1,
            topic_prefix: "demo".into(),
            fixed_keys: false,
        }
    }
}

/// SplitMix64: tiny, fast and the same on every platform and version, unlike library RNGs.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Users,
    Products,
    Orders,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Products => "products",
            Table::Orders => "orders",
        }
    }
}

const FIRST: &[&str] = &[
    "Kenji", "Chloe", "Bob", "Amara", "Mateo", "Ines", "Priya", "Lars", "Noor", "Yuki", "Omar",
    "Sofia",
];
const LAST: &[&str] = &[
    "OBrien", "Rossi", "Patel", "Ivanova", "Nakamura", "Garcia", "Smith", "Okafor", "Muller",
    "Silva",
];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "JP", "BR", "IN", "AU", "CA", "GB", "NG"];
const CATEGORIES: &[&str] = &[
    "books",
    "electronics",
    "garden",
    "toys",
    "grocery",
    "apparel",
];
const STATUSES: &[&str] = &["pending", "paid", "shipped", "delivered", "cancelled"];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
];

/// Size of a value without its row images (source block, ops, timestamps).
const ENVELOPE_BYTES: usize = 410;

/// Epoch milliseconds of the first generated event (2026-01-01T00:00:00Z).
const START_MS: i64 = 1_767_225_600_000;

/// One row's state, enough to write its before and after images.
#[derive(Debug, Clone)]
struct Row {
    table: Table,
    id: i64,
    version: u64,
    live: bool,
}

/// Generates records lazily; iterate to get them in order.
pub struct Generator {
    opts: GenerateOptions,
    rng: Rng,
    rows: Vec<Row>,
    live: Vec<usize>,
    /// Deleted rows (for `fixed_keys`).
    dead: Vec<usize>,
    next_ids: [i64; 3],
    offsets: std::collections::HashMap<(Table, i32), i64>,
    topics: [Arc<str>; 3],
    emitted: u64,
    snapshot_pos: usize,
    lsn: i64,
    tx_id: i64,
    ts_ms: i64,
    pending: std::collections::VecDeque<SourceRecord>,
}

impl Generator {
    pub fn new(opts: GenerateOptions) -> Self {
        let mut rng = Rng(opts.seed);
        let mut rows = Vec::new();
        let mut next_ids = [1i64, 1, 5_000_000_001];
        for i in 0..opts.keys {
            // 20% users, 5% products, 75% orders, interleaved deterministically.
            let table = match i % 20 {
                0..=3 => Table::Users,
                4 => Table::Products,
                _ => Table::Orders,
            };
            let slot = table_slot(table);
            rows.push(Row {
                table,
                id: next_ids[slot],
                version: rng.below(3),
                live: true,
            });
            next_ids[slot] += 1;
        }
        let live = (0..rows.len()).collect();
        let topics = [Table::Users, Table::Products, Table::Orders]
            .map(|t| Arc::from(format!("{}.public.{}", opts.topic_prefix, t.name())));
        Generator {
            rng,
            rows,
            live,
            dead: Vec::new(),
            next_ids,
            offsets: Default::default(),
            topics,
            emitted: 0,
            snapshot_pos: 0,
            lsn: 29_748_872,
            tx_id: 3049,
            ts_ms: START_MS,
            pending: Default::default(),
            opts,
        }
    }

    fn topic(&self, t: Table) -> Arc<str> {
        self.topics[table_slot(t)].clone()
    }

    fn partition_of(&self, id: i64) -> i32 {
        (id.unsigned_abs() % self.opts.partitions.max(1) as u64) as i32
    }

    fn next_offset(&mut self, t: Table, p: i32) -> i64 {
        let o = self.offsets.entry((t, p)).or_insert(0);
        let v = *o;
        *o += 1;
        v
    }

    fn record(&mut self, row: &Row, key: String, value: Option<String>) -> SourceRecord {
        let partition = self.partition_of(row.id);
        let offset = self.next_offset(row.table, partition);
        SourceRecord {
            topic: self.topic(row.table),
            partition,
            offset,
            timestamp_ms: Some(self.ts_ms + 150),
            key: Some(key.into_bytes()),
            value: value.map(String::into_bytes),
            headers: Vec::new(),
        }
    }

    fn key_json(&self, row: &Row) -> String {
        if self.opts.schemas {
            let ty = if row.table == Table::Orders {
                "int64"
            } else {
                "int32"
            };
            format!(
                "{{\"schema\":{{\"type\":\"struct\",\"fields\":[{{\"type\":\"{ty}\",\"optional\":false,\"field\":\"id\"}}],\"optional\":false,\"name\":\"{}.public.{}.Key\"}},\"payload\":{{\"id\":{}}}}}",
                self.opts.topic_prefix,
                row.table.name(),
                row.id
            )
        } else {
            format!("{{\"id\":{}}}", row.id)
        }
    }

    /// The row image of `row` at its current version.
    fn image(&self, row: &Row, images: usize) -> String {
        let mut r = Rng(self.opts.seed
            ^ (row.id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)
            ^ (row.table as u64) << 60);
        let v = row.version;
        let mut s = String::with_capacity(256);
        match row.table {
            Table::Users => {
                let first = r.pick(FIRST);
                let last = r.pick(LAST);
                let country = if (r.below(10) + v).is_multiple_of(7) {
                    "null".to_string()
                } else {
                    format!("\"{}\"", COUNTRIES[((r.below(10) + v) % 10) as usize])
                };
                let created_us = (START_MS - 86_400_000 * 400) * 1000
                    + (r.below(86_400_000 * 300) as i64) * 1000
                    + row.id % 1000;
                let _ = write!(
                    s,
                    "{{\"id\":{},\"email\":\"{}.{}@example.com\",\"full_name\":\"{} {}\",\"country\":{},\"created_at\":\"{}\",\"is_active\":{}",
                    row.id,
                    first.to_lowercase(),
                    row.id,
                    first,
                    last,
                    country,
                    zoned_timestamp(created_us),
                    (v % 5) != 4
                );
            }
            Table::Products => {
                let cents = 199 + r.below(50_000) as i64 + (v as i64 % 7) * 100;
                let _ = write!(
                    s,
                    "{{\"id\":{},\"sku\":\"SKU-{:06}\",\"name\":\"{} {}\",\"category\":\"{}\",\"price\":\"{}\",\"stock\":{}",
                    row.id,
                    row.id,
                    r.pick(WORDS),
                    r.pick(WORDS),
                    r.pick(CATEGORIES),
                    decimal_base64(cents),
                    (r.below(500) + v * 3) % 1000
                );
            }
            Table::Orders => {
                let users = self.next_ids[0].max(2) - 1;
                let products = self.next_ids[1].max(2) - 1;
                let status = STATUSES[(v as usize).min(STATUSES.len() - 1)];
                let ordered_us =
                    (START_MS - 86_400_000 * 30) * 1000 + r.below(86_400_000 * 30) as i64 * 1000;
                let shipped = if v >= 2 {
                    format!("{}", ordered_us / 86_400_000_000 + 2)
                } else {
                    "null".into()
                };
                let _ = write!(
                    s,
                    "{{\"id\":{},\"user_id\":{},\"product_id\":{},\"quantity\":{},\"unit_price\":\"{}\",\"status\":\"{}\",\"ordered_at\":{},\"shipped_on\":{}",
                    row.id,
                    1 + r.below(users as u64),
                    1 + r.below(products as u64),
                    1 + r.below(5),
                    decimal_base64(199 + r.below(20_000) as i64),
                    status,
                    ordered_us,
                    shipped
                );
            }
        }
        // Pad with a text column so the whole value comes to about `event_size`: the envelope
        // without images is about ENVELOPE_BYTES, shared by the images the value carries.
        let budget = self.opts.event_size.saturating_sub(ENVELOPE_BYTES) / images.max(1);
        let want = budget.saturating_sub(s.len() + 20);
        let pad_col = match row.table {
            Table::Users => "bio",
            Table::Products => "description",
            Table::Orders => "notes",
        };
        if want > 0 {
            let _ = write!(s, ",\"{pad_col}\":\"");
            let mut n = 0;
            while n < want {
                let w = r.pick(WORDS);
                s.push_str(w);
                s.push(' ');
                n += w.len() + 1;
            }
            s.push('"');
        } else {
            let _ = write!(s, ",\"{pad_col}\":null");
        }
        s.push('}');
        s
    }

    fn value_json(
        &self,
        row: &Row,
        op: &str,
        before: Option<&str>,
        after: Option<&str>,
        snapshot: &str,
    ) -> String {
        let payload = format!(
            "{{\"before\":{},\"after\":{},\"source\":{{\"version\":\"3.6.3.Final\",\"connector\":\"postgresql\",\"name\":\"{}\",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":\"shop\",\"sequence\":\"[null,\\\"{}\\\"]\",\"ts_us\":{},\"ts_ns\":{},\"schema\":\"public\",\"table\":\"{}\",\"txId\":{},\"lsn\":{},\"xmin\":null}},\"transaction\":null,\"op\":\"{}\",\"ts_ms\":{},\"ts_us\":{},\"ts_ns\":{}}}",
            before.unwrap_or("null"),
            after.unwrap_or("null"),
            self.opts.topic_prefix,
            self.ts_ms - 40,
            snapshot,
            self.lsn,
            (self.ts_ms - 40) * 1000,
            (self.ts_ms - 40) * 1_000_000,
            row.table.name(),
            self.tx_id,
            self.lsn,
            op,
            self.ts_ms,
            self.ts_ms * 1000 + 123,
            self.ts_ms * 1_000_000 + 123_456
        );
        if self.opts.schemas {
            format!(
                "{{\"schema\":{},\"payload\":{}}}",
                value_schema(&self.opts.topic_prefix, row.table),
                payload
            )
        } else {
            payload
        }
    }

    fn step(&mut self) {
        // Snapshot first: one read per initial row.
        if (self.snapshot_pos as u64) < self.opts.keys {
            let i = self.snapshot_pos;
            self.snapshot_pos += 1;
            let row = self.rows[i].clone();
            let marker = if i == 0 {
                "first"
            } else if i as u64 + 1 == self.opts.keys {
                "last"
            } else {
                "true"
            };
            self.ts_ms += 1;
            let after = self.image(&row, 1);
            let value = self.value_json(&row, "r", None, Some(&after), marker);
            let key = self.key_json(&row);
            let rec = self.record(&row, key, Some(value));
            self.pending.push_back(rec);
            return;
        }
        // Then a transaction of 1–3 changes.
        self.tx_id += 1;
        self.ts_ms += 1 + self.rng.below(20) as i64;
        for _ in 0..1 + self.rng.below(3) {
            self.lsn += 40 + self.rng.below(400) as i64;
            let mut roll = self.rng.below(100);
            if self.opts.fixed_keys && (self.live.is_empty() || roll < 25) {
                if !self.dead.is_empty() {
                    // Re-insert a deleted key.
                    let di = self.rng.below(self.dead.len() as u64) as usize;
                    let idx = self.dead.swap_remove(di);
                    self.rows[idx].version += 1;
                    self.rows[idx].live = true;
                    self.live.push(idx);
                    let row = self.rows[idx].clone();
                    let after = self.image(&row, 1);
                    let value = self.value_json(&row, "c", None, Some(&after), "false");
                    let key = self.key_json(&row);
                    let rec = self.record(&row, key, Some(value));
                    self.pending.push_back(rec);
                    continue;
                }
                if !self.live.is_empty() {
                    roll = 50; // an update instead
                }
            }
            if self.live.is_empty() || roll < 25 {
                // Insert a new row (orders most often).
                let table = match self.rng.below(10) {
                    0..=1 => Table::Users,
                    2 => Table::Products,
                    _ => Table::Orders,
                };
                let slot = table_slot(table);
                let row = Row {
                    table,
                    id: self.next_ids[slot],
                    version: 0,
                    live: true,
                };
                self.next_ids[slot] += 1;
                self.rows.push(row.clone());
                self.live.push(self.rows.len() - 1);
                let after = self.image(&row, 1);
                let value = self.value_json(&row, "c", None, Some(&after), "false");
                let key = self.key_json(&row);
                let rec = self.record(&row, key, Some(value));
                self.pending.push_back(rec);
            } else if roll < 90 {
                let li = self.rng.below(self.live.len() as u64) as usize;
                let idx = self.live[li];
                let before_row = self.rows[idx].clone();
                self.rows[idx].version += 1;
                let row = self.rows[idx].clone();
                let before = self.image(&before_row, 2);
                let after = self.image(&row, 2);
                let value = self.value_json(&row, "u", Some(&before), Some(&after), "false");
                let key = self.key_json(&row);
                let rec = self.record(&row, key, Some(value));
                self.pending.push_back(rec);
            } else {
                let li = self.rng.below(self.live.len() as u64) as usize;
                let idx = self.live.swap_remove(li);
                self.rows[idx].live = false;
                self.dead.push(idx);
                let row = self.rows[idx].clone();
                let before = self.image(&row, 1);
                let value = self.value_json(&row, "d", Some(&before), None, "false");
                let key = self.key_json(&row);
                let rec = self.record(&row, key.clone(), Some(value));
                self.pending.push_back(rec);
                let tomb = self.record(&row, key, None);
                self.pending.push_back(tomb);
            }
        }
    }
}

impl Iterator for Generator {
    type Item = SourceRecord;

    fn next(&mut self) -> Option<SourceRecord> {
        if self.emitted >= self.opts.events {
            return None;
        }
        while self.pending.is_empty() {
            self.step();
        }
        self.emitted += 1;
        self.pending.pop_front()
    }
}

fn table_slot(t: Table) -> usize {
    match t {
        Table::Users => 0,
        Table::Products => 1,
        Table::Orders => 2,
    }
}

/// `io.debezium.time.ZonedTimestamp` text of a UTC instant in microseconds.
fn zoned_timestamp(us: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_micros(us).expect("in range");
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Kafka Connect `Decimal` (precise mode): base64 of the big-endian two's-complement unscaled value.
fn decimal_base64(unscaled: i64) -> String {
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let b = bytes[start];
        let next_neg = bytes[start + 1] & 0x80 != 0;
        if (b == 0 && !next_neg) || (b == 0xff && next_neg) {
            start += 1;
        } else {
            break;
        }
    }
    base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
}

fn value_schema(prefix: &str, t: Table) -> String {
    let fields = match t {
        Table::Users => {
            r#"{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"email"},{"type":"string","optional":true,"field":"full_name"},{"type":"string","optional":true,"field":"country"},{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"created_at"},{"type":"boolean","optional":false,"default":true,"field":"is_active"},{"type":"string","optional":true,"field":"bio"}"#
        }
        Table::Products => {
            r#"{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":false,"field":"sku"},{"type":"string","optional":false,"field":"name"},{"type":"string","optional":false,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"books,electronics,garden,toys,grocery,apparel"},"field":"category"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},{"type":"int32","optional":false,"field":"stock"},{"type":"string","optional":true,"field":"description"}"#
        }
        Table::Orders => {
            r#"{"type":"int64","optional":false,"field":"id"},{"type":"int32","optional":false,"field":"user_id"},{"type":"int32","optional":false,"field":"product_id"},{"type":"int32","optional":false,"field":"quantity"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"unit_price"},{"type":"string","optional":false,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"pending,paid,shipped,delivered,cancelled"},"field":"status"},{"type":"int64","optional":false,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"ordered_at"},{"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"shipped_on"},{"type":"string","optional":true,"field":"notes"}"#
        }
    };
    let n = t.name();
    format!(
        r#"{{"type":"struct","fields":[{{"type":"struct","fields":[{fields}],"optional":true,"name":"{prefix}.public.{n}.Value","field":"before"}},{{"type":"struct","fields":[{fields}],"optional":true,"name":"{prefix}.public.{n}.Value","field":"after"}},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"version"}},{{"type":"string","optional":false,"field":"connector"}},{{"type":"string","optional":false,"field":"name"}},{{"type":"int64","optional":false,"field":"ts_ms"}},{{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}},"default":"false","field":"snapshot"}},{{"type":"string","optional":false,"field":"db"}},{{"type":"string","optional":true,"field":"sequence"}},{{"type":"int64","optional":true,"field":"ts_us"}},{{"type":"int64","optional":true,"field":"ts_ns"}},{{"type":"string","optional":false,"field":"schema"}},{{"type":"string","optional":false,"field":"table"}},{{"type":"int64","optional":true,"field":"txId"}},{{"type":"int64","optional":true,"field":"lsn"}},{{"type":"int64","optional":true,"field":"xmin"}}],"optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"}},{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"id"}},{{"type":"int64","optional":false,"field":"total_order"}},{{"type":"int64","optional":false,"field":"data_collection_order"}}],"optional":true,"name":"event.block","version":1,"field":"transaction"}},{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{{"type":"int64","optional":true,"field":"ts_us"}},{{"type":"int64","optional":true,"field":"ts_ns"}}],"optional":false,"name":"{prefix}.public.{n}.Envelope","version":2}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::debezium::{Kind, Op, decode};

    #[test]
    fn deterministic_and_decodable() {
        let opts = GenerateOptions {
            keys: 50,
            events: 400,
            schemas: true,
            partitions: 3,
            ..Default::default()
        };
        let a: Vec<_> = Generator::new(opts.clone()).collect();
        let b: Vec<_> = Generator::new(opts).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 400);
        let mut ops = std::collections::HashMap::new();
        let mut last_lsn = 0;
        for r in &a {
            let d = decode(r.key.as_deref(), r.value.as_deref(), false).unwrap();
            *ops.entry(d.op.map(Op::as_str).unwrap_or(d.kind.as_str()))
                .or_insert(0) += 1;
            if d.kind == Kind::Change {
                assert!(d.has_schema);
                let lsn = d.source.lsn.unwrap();
                assert!(lsn >= last_lsn);
                last_lsn = lsn;
            }
            let v: Option<serde_json::Value> =
                r.value.as_ref().map(|v| serde_json::from_slice(v).unwrap());
            assert!(v.is_none() || v.unwrap().is_object());
        }
        assert_eq!(ops["r"], 50);
        for k in ["c", "u", "d", "tombstone"] {
            assert!(ops.get(k).copied().unwrap_or(0) > 0, "no {k} in {ops:?}");
        }
        assert_eq!(ops["d"], ops["tombstone"]);
    }

    #[test]
    fn fixed_keys_keep_the_key_space() {
        let opts = GenerateOptions {
            keys: 40,
            events: 3000,
            fixed_keys: true,
            ..Default::default()
        };
        let mut keys = std::collections::HashSet::new();
        let mut reinserts = 0;
        for r in Generator::new(opts) {
            let d = decode(r.key.as_deref(), r.value.as_deref(), false).unwrap();
            if d.op == Some(Op::Create) {
                reinserts += 1;
            }
            keys.insert((r.topic.to_string(), r.key.unwrap()));
        }
        assert_eq!(keys.len(), 40, "no key beyond the snapshot's");
        assert!(reinserts > 0, "deleted keys come back");
    }

    #[test]
    fn offsets_are_dense_per_partition() {
        let recs: Vec<_> = Generator::new(GenerateOptions {
            partitions: 4,
            ..Default::default()
        })
        .collect();
        let mut next: std::collections::HashMap<(String, i32), i64> = Default::default();
        for r in recs {
            let e = next.entry((r.topic.to_string(), r.partition)).or_insert(0);
            assert_eq!(r.offset, *e);
            *e += 1;
        }
    }

    #[test]
    fn event_size_is_respected() {
        let recs: Vec<_> = Generator::new(GenerateOptions {
            event_size: 1024,
            events: 2000,
            ..Default::default()
        })
        .collect();
        let sizes: Vec<usize> = recs
            .iter()
            .filter_map(|r| r.value.as_ref().map(Vec::len))
            .collect();
        let avg = sizes.iter().sum::<usize>() / sizes.len();
        assert!((900..1200).contains(&avg), "average value size {avg}");
    }

    #[test]
    fn decimals_are_twos_complement() {
        assert_eq!(decimal_base64(12345), "MDk=");
        assert_eq!(decimal_base64(-1), "/w==");
        assert_eq!(decimal_base64(128), "AIA=");
    }
}
