//! Arrow builders for bronze rows and dead letters: records are appended one by one as they are
//! decoded and turned into one `RecordBatch` per table when the batch flushes.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, LargeBinaryBuilder, ListBuilder,
    StringBuilder, StructBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::source::debezium::{DecodeError, Decoded};
use crate::source::{SourceRecord, Unreadable};

const UTC: &str = "+00:00";

fn ts(b: &mut TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone(UTC))
}

/// The Kafka columns both schemas start with (topic, partition, offset, timestamp, headers).
struct KafkaColumns {
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    headers: ListBuilder<StructBuilder>,
}

impl KafkaColumns {
    fn new(schema: &SchemaRef) -> Self {
        let DataType::List(element) = schema.field(4).data_type() else {
            unreachable!("field 5 of the bronze schemas is the headers list")
        };
        let DataType::Struct(fields) = element.data_type() else {
            unreachable!("headers are a list of structs")
        };
        KafkaColumns {
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new(),
            headers: ListBuilder::new(StructBuilder::from_fields(fields.clone(), 0))
                .with_field(element.clone()),
        }
    }

    fn append(&mut self, r: Option<&SourceRecord>) {
        match r {
            Some(r) => {
                self.topic.append_value(&r.topic);
                self.partition.append_value(r.partition);
                self.offset.append_value(r.offset);
                self.timestamp
                    .append_option(r.timestamp_ms.map(|ms| ms * 1000));
                // No headers is an empty list, never null: PyIceberg reads a null list as
                // empty, and a Kafka record always has a (possibly empty) header collection.
                let s = self.headers.values();
                for (k, v) in &r.headers {
                    s.field_builder::<StringBuilder>(0)
                        .expect("key")
                        .append_value(k);
                    s.field_builder::<LargeBinaryBuilder>(1)
                        .expect("value")
                        .append_option(v.as_deref());
                    s.append(true);
                }
                self.headers.append(true);
            }
            None => {
                self.topic.append_null();
                self.partition.append_null();
                self.offset.append_null();
                self.timestamp.append_null();
                self.headers.append(true);
            }
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            ts(&mut self.timestamp),
            Arc::new(self.headers.finish()),
        ]
    }
}

/// Rows of one bronze source table.
pub struct DataRows {
    schema: SchemaRef,
    kafka: KafkaColumns,
    key: StringBuilder,
    value: StringBuilder,
    kind: StringBuilder,
    op: StringBuilder,
    event_ts: TimestampMicrosecondBuilder,
    source_ts: TimestampMicrosecondBuilder,
    connector: StringBuilder,
    name: StringBuilder,
    db: StringBuilder,
    src_schema: StringBuilder,
    table: StringBuilder,
    snapshot: StringBuilder,
    lsn: Int64Builder,
    tx_id: Int64Builder,
    sequence: StringBuilder,
    binlog_file: StringBuilder,
    binlog_pos: Int64Builder,
    binlog_row: Int32Builder,
    gtid: StringBuilder,
    has_schema: BooleanBuilder,
    pub rows: usize,
}

/// How big a table's batch was, to size the next one: building a large batch in buffers that
/// grow by doubling copies it several times and leaves the allocator fragmented.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeHint {
    pub rows: usize,
    pub key_bytes: usize,
    pub value_bytes: usize,
}

impl DataRows {
    pub fn new(schema: SchemaRef, hint: SizeHint) -> Self {
        DataRows {
            kafka: KafkaColumns::new(&schema),
            schema,
            key: StringBuilder::with_capacity(hint.rows, hint.key_bytes),
            value: StringBuilder::with_capacity(hint.rows, hint.value_bytes),
            kind: StringBuilder::new(),
            op: StringBuilder::new(),
            event_ts: TimestampMicrosecondBuilder::new(),
            source_ts: TimestampMicrosecondBuilder::new(),
            connector: StringBuilder::new(),
            name: StringBuilder::new(),
            db: StringBuilder::new(),
            src_schema: StringBuilder::new(),
            table: StringBuilder::new(),
            snapshot: StringBuilder::new(),
            lsn: Int64Builder::new(),
            tx_id: Int64Builder::new(),
            sequence: StringBuilder::new(),
            binlog_file: StringBuilder::new(),
            binlog_pos: Int64Builder::new(),
            binlog_row: Int32Builder::new(),
            gtid: StringBuilder::new(),
            has_schema: BooleanBuilder::new(),
            rows: 0,
        }
    }

    /// Appends a record and what was decoded of it. Key and value were checked to be UTF-8.
    pub fn append(&mut self, r: &SourceRecord, d: &Decoded<'_>) {
        self.kafka.append(Some(r));
        self.key.append_option(d.key);
        self.value.append_option(d.value);
        self.kind.append_value(d.kind.as_str());
        self.op.append_option(d.op.map(|o| o.as_str()));
        self.event_ts.append_option(d.event_ts_us);
        self.source_ts.append_option(d.source_ts_us());
        let s = &d.source;
        self.connector.append_option(s.connector.as_deref());
        self.name.append_option(s.name.as_deref());
        self.db.append_option(s.db.as_deref());
        self.src_schema.append_option(s.schema.as_deref());
        self.table.append_option(s.table.as_deref());
        self.snapshot.append_option(s.snapshot.as_deref());
        self.lsn.append_option(s.lsn);
        self.tx_id.append_option(s.tx_id);
        self.sequence.append_option(s.sequence.as_deref());
        self.binlog_file.append_option(s.file.as_deref());
        self.binlog_pos.append_option(s.pos);
        self.binlog_row.append_option(s.row);
        self.gtid.append_option(s.gtid.as_deref());
        self.has_schema.append_value(d.has_schema);
        self.rows += 1;
    }

    /// The size of what was appended so far.
    pub fn size(&self) -> SizeHint {
        SizeHint {
            rows: self.rows,
            key_bytes: self.key.values_slice().len(),
            value_bytes: self.value.values_slice().len(),
        }
    }

    pub fn finish(&mut self, ingested_at_us: i64) -> Result<RecordBatch, ArrowError> {
        let mut cols = self.kafka.finish();
        cols.extend([
            Arc::new(self.key.finish()) as ArrayRef,
            Arc::new(self.value.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.op.finish()),
            ts(&mut self.event_ts),
            ts(&mut self.source_ts),
            Arc::new(self.connector.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.db.finish()),
            Arc::new(self.src_schema.finish()),
            Arc::new(self.table.finish()),
            Arc::new(self.snapshot.finish()),
            Arc::new(self.lsn.finish()),
            Arc::new(self.tx_id.finish()),
            Arc::new(self.sequence.finish()),
            Arc::new(self.binlog_file.finish()),
            Arc::new(self.binlog_pos.finish()),
            Arc::new(self.binlog_row.finish()),
            Arc::new(self.gtid.finish()),
            Arc::new(self.has_schema.finish()),
            constant_ts(ingested_at_us, self.rows),
        ]);
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}

fn constant_ts(us: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![us; n]).with_timezone(UTC))
}

/// Rows of the dead-letter table.
pub struct DlqRows {
    schema: SchemaRef,
    kafka: KafkaColumns,
    raw_key: LargeBinaryBuilder,
    raw_value: LargeBinaryBuilder,
    error_kind: StringBuilder,
    reason: StringBuilder,
    target_table: StringBuilder,
    source_file: StringBuilder,
    source_line: Int64Builder,
    pub rows: usize,
}

impl DlqRows {
    pub fn new(schema: SchemaRef) -> Self {
        DlqRows {
            kafka: KafkaColumns::new(&schema),
            schema,
            raw_key: LargeBinaryBuilder::new(),
            raw_value: LargeBinaryBuilder::new(),
            error_kind: StringBuilder::new(),
            reason: StringBuilder::new(),
            target_table: StringBuilder::new(),
            source_file: StringBuilder::new(),
            source_line: Int64Builder::new(),
            rows: 0,
        }
    }

    /// A record that reached us but is not a valid Debezium record.
    pub fn append_record(&mut self, r: &SourceRecord, err: &DecodeError, target: &str) {
        self.kafka.append(Some(r));
        self.raw_key.append_option(r.key.as_deref());
        self.raw_value.append_option(r.value.as_deref());
        self.error_kind.append_value(err.kind.as_str());
        self.reason.append_value(&err.message);
        self.target_table.append_value(target);
        self.source_file.append_null();
        self.source_line.append_null();
        self.rows += 1;
    }

    /// Input that could not be read as a record; the raw bytes are the whole line.
    pub fn append_unreadable(&mut self, u: &Unreadable, target: Option<&str>) {
        self.kafka.append(u.record.as_ref());
        self.raw_key.append_null();
        self.raw_value.append_value(&u.raw);
        self.error_kind
            .append_value(crate::source::debezium::ErrorKind::Unreadable.as_str());
        self.reason.append_value(&u.reason);
        self.target_table.append_option(target);
        self.source_file.append_value(&u.file);
        self.source_line.append_value(u.line);
        self.rows += 1;
    }

    pub fn finish(&mut self, ingested_at_us: i64) -> Result<RecordBatch, ArrowError> {
        let mut cols = self.kafka.finish();
        cols.extend([
            Arc::new(self.raw_key.finish()) as ArrayRef,
            Arc::new(self.raw_value.finish()),
            Arc::new(self.error_kind.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.target_table.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_line.finish()),
            constant_ts(ingested_at_us, self.rows),
        ]);
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), cols)
    }
}
