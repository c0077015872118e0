//! The bronze landing schemas: one for every source table, one for the dead-letter table.
//!
//! A bronze row is the raw record exactly as received (key and value text) plus what bronze
//! decoded of it: kind and op, event and source times, the source position, where it came from
//! in the database and on Kafka, and when it landed. Every table is partitioned by a time
//! transform of `ingested_at`.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{
    ListType, Literal, NestedField, PrimitiveType, Schema, Struct, StructType, Transform, Type,
    UnboundPartitionSpec,
};

use crate::config::TimePartition;

fn p(t: PrimitiveType) -> Type {
    Type::Primitive(t)
}

fn headers_type(list_id: i32) -> Type {
    Type::List(ListType::new(
        NestedField::list_element(
            list_id,
            Type::Struct(StructType::new(vec![
                NestedField::required(list_id + 1, "key", p(PrimitiveType::String)).into(),
                NestedField::optional(list_id + 2, "value", p(PrimitiveType::Binary)).into(),
            ])),
            true,
        )
        .into(),
    ))
}

// Field ids are numbered as Iceberg assigns fresh ids at table creation (top-level fields
// first, then nested ones), so the schema we build rows with is the table's schema.

/// The schema of every bronze source table.
pub fn data_schema() -> Schema {
    use PrimitiveType::*;
    let fields = vec![
        NestedField::required(1, "kafka_topic", p(String)),
        NestedField::required(2, "kafka_partition", p(Int)),
        NestedField::required(3, "kafka_offset", p(Long)),
        NestedField::optional(4, "kafka_timestamp", p(Timestamptz)),
        NestedField::optional(5, "kafka_headers", headers_type(27)),
        NestedField::optional(6, "record_key", p(String)),
        NestedField::optional(7, "record_value", p(String)),
        NestedField::required(8, "kind", p(String)),
        NestedField::optional(9, "op", p(String)),
        NestedField::optional(10, "event_ts", p(Timestamptz)),
        NestedField::optional(11, "source_ts", p(Timestamptz)),
        NestedField::optional(12, "source_connector", p(String)),
        NestedField::optional(13, "source_name", p(String)),
        NestedField::optional(14, "source_db", p(String)),
        NestedField::optional(15, "source_schema", p(String)),
        NestedField::optional(16, "source_table", p(String)),
        NestedField::optional(17, "snapshot", p(String)),
        NestedField::optional(18, "pg_lsn", p(Long)),
        NestedField::optional(19, "pg_tx_id", p(Long)),
        NestedField::optional(20, "pg_sequence", p(String)),
        NestedField::optional(21, "binlog_file", p(String)),
        NestedField::optional(22, "binlog_pos", p(Long)),
        NestedField::optional(23, "binlog_row", p(Int)),
        NestedField::optional(24, "gtid", p(String)),
        NestedField::required(25, "has_schema", p(Boolean)),
        NestedField::required(26, "ingested_at", p(Timestamptz)),
    ];
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields.into_iter().map(Arc::new))
        .build()
        .expect("static bronze schema is valid")
}

/// The schema of the dead-letter table.
pub fn dlq_schema() -> Schema {
    use PrimitiveType::*;
    let fields = vec![
        NestedField::optional(1, "kafka_topic", p(String)),
        NestedField::optional(2, "kafka_partition", p(Int)),
        NestedField::optional(3, "kafka_offset", p(Long)),
        NestedField::optional(4, "kafka_timestamp", p(Timestamptz)),
        NestedField::optional(5, "kafka_headers", headers_type(14)),
        NestedField::optional(6, "raw_key", p(Binary)),
        NestedField::optional(7, "raw_value", p(Binary)),
        NestedField::required(8, "error_kind", p(String)),
        NestedField::required(9, "reason", p(String)),
        NestedField::optional(10, "target_table", p(String)),
        NestedField::optional(11, "source_file", p(String)),
        NestedField::optional(12, "source_line", p(Long)),
        NestedField::required(13, "ingested_at", p(Timestamptz)),
    ];
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields.into_iter().map(Arc::new))
        .build()
        .expect("static DLQ schema is valid")
}

/// `hour`/`day`/`month(ingested_at)` of a bronze or DLQ schema.
pub fn partition_spec(schema: &Schema, granularity: TimePartition) -> UnboundPartitionSpec {
    let source = schema
        .field_by_name("ingested_at")
        .expect("bronze schemas have ingested_at")
        .id;
    let (transform, name) = match granularity {
        TimePartition::Hour => (Transform::Hour, "ingested_at_hour"),
        TimePartition::Day => (Transform::Day, "ingested_at_day"),
        TimePartition::Month => (Transform::Month, "ingested_at_month"),
    };
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(source, name, transform)
        .expect("static partition spec is valid")
        .build()
}

/// The partition value of `ingested_at` (µs since the epoch) under the table's transform.
pub fn partition_value(transform: Transform, ingested_at_us: i64) -> Struct {
    let hours = ingested_at_us.div_euclid(3_600_000_000);
    let days = ingested_at_us.div_euclid(86_400_000_000);
    let lit = match transform {
        Transform::Hour => Literal::int(hours as i32),
        Transform::Month => {
            let date = chrono::DateTime::from_timestamp_micros(ingested_at_us)
                .expect("in range")
                .date_naive();
            use chrono::Datelike;
            Literal::int((date.year() - 1970) * 12 + date.month0() as i32)
        }
        _ => Literal::date(days as i32),
    };
    Struct::from_iter([Some(lit)])
}

/// Table properties for new bronze tables.
pub fn table_properties(compression: &str) -> HashMap<String, String> {
    HashMap::from([
        ("write.format.default".to_string(), "parquet".to_string()),
        (
            "write.parquet.compression-codec".to_string(),
            compression.split('(').next().unwrap_or("zstd").to_string(),
        ),
        ("medallion.layer".to_string(), "bronze".to_string()),
    ])
}
