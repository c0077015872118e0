//! Debezium envelope decoding, shared by every source.
//!
//! Decodes just what bronze records beside the raw bytes: what kind of record it is (a change,
//! a tombstone, a MySQL schema change, a heartbeat, transaction metadata), the op, the event and
//! source timestamps, and the source position — PostgreSQL `lsn`/`txId`/`sequence`, MySQL
//! `file`/`pos`/`row`/`gtid` — plus the snapshot marker and the source database/schema/table.
//! Values come with a schema (`{"schema": …, "payload": …}`, JsonConverter `schemas.enable=true`)
//! or without; keys likewise. Typed decoding of the row images is silver's job.
//!
//! A record that is not a valid Debezium record gives a [`DecodeError`] whose kind and message
//! go to the dead-letter table: nothing here ever stops a run.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::value::RawValue;

/// The kinds of records a Debezium connector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A row change: ops c, u, d, r, t.
    Change,
    /// A null value after a delete (Kafka compaction marker).
    Tombstone,
    /// A MySQL schema-change record (DDL) on the `<topic.prefix>` topic.
    SchemaChange,
    /// A heartbeat (`__debezium-heartbeat.<prefix>`).
    Heartbeat,
    /// Transaction metadata (BEGIN/END on `<prefix>.transaction`).
    Transaction,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Change => "change",
            Kind::Tombstone => "tombstone",
            Kind::SchemaChange => "schema_change",
            Kind::Heartbeat => "heartbeat",
            Kind::Transaction => "transaction",
        }
    }
}

/// Debezium ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    Truncate,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }

    /// Ops that are about one row, and so need the row's key.
    pub fn needs_key(self) -> bool {
        !matches!(self, Op::Truncate)
    }
}

/// The `source` block: origin and position of a change.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Source<'a> {
    #[serde(borrow, default)]
    pub connector: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub db: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub schema: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub table: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "snapshot_marker")]
    pub snapshot: Option<Cow<'a, str>>,
    #[serde(default)]
    pub ts_ms: Option<i64>,
    #[serde(default)]
    pub ts_us: Option<i64>,
    // PostgreSQL
    #[serde(default)]
    pub lsn: Option<i64>,
    #[serde(default, rename = "txId")]
    pub tx_id: Option<i64>,
    #[serde(borrow, default)]
    pub sequence: Option<Cow<'a, str>>,
    // MySQL
    #[serde(borrow, default)]
    pub file: Option<Cow<'a, str>>,
    #[serde(default)]
    pub pos: Option<i64>,
    #[serde(default)]
    pub row: Option<i32>,
    #[serde(borrow, default)]
    pub gtid: Option<Cow<'a, str>>,
}

/// `snapshot` is a string in Debezium 2+ (`"true"`, `"first"`, `"last"`, `"false"`,
/// `"incremental"`) and a boolean in Debezium 1.x; both become the string.
fn snapshot_marker<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Marker {
        S(String),
        B(bool),
    }
    Ok(match Option::<Marker>::deserialize(d)? {
        None => None,
        Some(Marker::S(s)) => Some(Cow::Owned(s)),
        Some(Marker::B(b)) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
    })
}

/// All top-level fields any Debezium value can have (envelope, schema change, transaction,
/// heartbeat); unknown fields are ignored.
#[derive(Deserialize)]
struct Fields<'a> {
    /// `Some(None)`: present and JSON null; `None`: absent.
    #[serde(borrow, default, deserialize_with = "present")]
    schema: Option<Option<&'a RawValue>>,
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Option<Option<&'a RawValue>>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(default)]
    ts_ms: Option<i64>,
    #[serde(default)]
    ts_us: Option<i64>,
    #[serde(borrow, default)]
    ddl: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "tableChanges")]
    table_changes: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<&'de RawValue>>, D::Error> {
    Option::<&'de RawValue>::deserialize(d).map(Some)
}

/// A decoded record: borrowed from the value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The key and value text, checked to be UTF-8.
    pub key: Option<&'a str>,
    pub value: Option<&'a str>,
    pub kind: Kind,
    pub op: Option<Op>,
    /// The value came as `{"schema", "payload"}`.
    pub has_schema: bool,
    /// Event time (when Debezium processed it): payload `ts_us`, else `ts_ms` × 1000.
    pub event_ts_us: Option<i64>,
    pub source: Source<'a>,
}

impl Decoded<'_> {
    /// Source time (when the change happened in the database), microseconds.
    pub fn source_ts_us(&self) -> Option<i64> {
        self.source.ts_us.or(self.source.ts_ms.map(|ms| ms * 1000))
    }
}

/// Why a record is not a valid Debezium record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidUtf8,
    InvalidJson,
    NotEnvelope,
    UnknownOp,
    MissingImage,
    MissingKey,
    InvalidKey,
    TooLarge,
    Unreadable,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::NotEnvelope => "not_debezium",
            ErrorKind::UnknownOp => "unknown_op",
            ErrorKind::MissingImage => "missing_row_image",
            ErrorKind::MissingKey => "missing_key",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DecodeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DecodeError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one record. `keyless`: the table has no primary key, so a change without a Kafka key
/// is valid.
pub fn decode<'a>(
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    keyless: bool,
) -> Result<Decoded<'a>, DecodeError> {
    let key = match key {
        Some(k) => Some(check_key(k)?),
        None => None,
    };
    let Some(value) = value else {
        if key.is_none() {
            return Err(DecodeError::new(
                ErrorKind::MissingKey,
                "record has neither key nor value",
            ));
        }
        return Ok(Decoded {
            key,
            value: None,
            kind: Kind::Tombstone,
            op: None,
            has_schema: false,
            event_ts_us: None,
            source: Source::default(),
        });
    };
    let text = std::str::from_utf8(value).map_err(|e| {
        DecodeError::new(
            ErrorKind::InvalidUtf8,
            format!(
                "value is not valid UTF-8 (first bad byte at {})",
                e.valid_up_to()
            ),
        )
    })?;
    let top = parse_fields(text, "value")?;
    // With a schema: the envelope is the payload; the schema itself is silver's business.
    let is_envelope = top.op.is_none() && (top.schema.is_some() || top.payload.is_some());
    let (fields, has_schema) = if is_envelope {
        match top.payload {
            Some(Some(p)) => (parse_fields(p.get(), "payload")?, true),
            Some(None) => {
                return Ok(Decoded {
                    key,
                    value: Some(text),
                    kind: Kind::Tombstone,
                    op: None,
                    has_schema: true,
                    event_ts_us: None,
                    source: Source::default(),
                });
            }
            None => {
                return Err(DecodeError::new(
                    ErrorKind::NotEnvelope,
                    "value has a \"schema\" but no \"payload\"",
                ));
            }
        }
    } else {
        (top, false)
    };
    let event_ts_us = fields.ts_us.or(fields.ts_ms.map(|ms| ms * 1000));
    if let Some(op) = fields.op.as_deref() {
        let op = Op::parse(op).ok_or_else(|| {
            DecodeError::new(
                ErrorKind::UnknownOp,
                format!("unknown op {op:?} (expected one of c, u, d, r, t)"),
            )
        })?;
        let Some(source) = fields.source else {
            return Err(DecodeError::new(
                ErrorKind::NotEnvelope,
                format!("op {:?} without a \"source\" block", op.as_str()),
            ));
        };
        if matches!(op, Op::Create | Op::Read | Op::Update) && fields.after.is_none() {
            return Err(DecodeError::new(
                ErrorKind::MissingImage,
                format!("op {:?} without an \"after\" row image", op.as_str()),
            ));
        }
        if let Some(after) = fields.after {
            check_object(after, "after")?;
        }
        if let Some(before) = fields.before {
            check_object(before, "before")?;
        }
        if op.needs_key() && key.is_none() && !keyless {
            return Err(DecodeError::new(
                ErrorKind::MissingKey,
                format!(
                    "op {:?} without a Kafka key; the table has a primary key (mark the route `keyless = true` if it has none)",
                    op.as_str()
                ),
            ));
        }
        return Ok(Decoded {
            key,
            value: Some(text),
            kind: Kind::Change,
            op: Some(op),
            has_schema,
            event_ts_us,
            source,
        });
    }
    let kind = if fields.ddl.is_some() || fields.table_changes.is_some() {
        Kind::SchemaChange
    } else if fields.status.is_some() && fields.id.is_some() {
        Kind::Transaction
    } else if fields.ts_ms.is_some()
        && fields.before.is_none()
        && fields.after.is_none()
        && fields.source.is_none()
    {
        Kind::Heartbeat
    } else {
        return Err(DecodeError::new(
            ErrorKind::NotEnvelope,
            "not a Debezium record: no \"op\", and not a schema change, heartbeat or transaction record",
        ));
    };
    Ok(Decoded {
        key,
        value: Some(text),
        kind,
        op: None,
        has_schema,
        event_ts_us,
        source: fields.source.unwrap_or_default(),
    })
}

fn parse_fields<'a>(text: &'a str, what: &str) -> Result<Fields<'a>, DecodeError> {
    let first = text.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        // Tell invalid JSON from valid JSON that is not an object.
        return Err(match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => DecodeError::new(
                ErrorKind::NotEnvelope,
                format!("{what} is JSON but not an object"),
            ),
            Err(e) => DecodeError::new(
                ErrorKind::InvalidJson,
                format!("{what} is not valid JSON: {e}"),
            ),
        });
    }
    serde_json::from_str::<Fields>(text).map_err(|e| {
        let kind = if e.is_data() {
            ErrorKind::NotEnvelope
        } else {
            ErrorKind::InvalidJson
        };
        let msg = if e.is_data() {
            format!("{what} has a field of the wrong type: {e}")
        } else {
            format!("{what} is not valid JSON: {e}")
        };
        DecodeError::new(kind, msg)
    })
}

fn check_object(v: &RawValue, what: &str) -> Result<(), DecodeError> {
    if v.get().trim_start().starts_with('{') {
        Ok(())
    } else {
        Err(DecodeError::new(
            ErrorKind::NotEnvelope,
            format!("\"{what}\" is not an object"),
        ))
    }
}

/// A key must be a JSON object, or `{"schema", "payload"}` around one.
fn check_key(k: &[u8]) -> Result<&str, DecodeError> {
    let text = std::str::from_utf8(k).map_err(|e| {
        DecodeError::new(
            ErrorKind::InvalidKey,
            format!(
                "key is not valid UTF-8 (first bad byte at {})",
                e.valid_up_to()
            ),
        )
    })?;
    #[derive(Deserialize)]
    struct KeyFields<'a> {
        #[serde(borrow, default)]
        schema: Option<&'a RawValue>,
        #[serde(borrow, default)]
        payload: Option<&'a RawValue>,
    }
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::new(
            ErrorKind::InvalidKey,
            "key is not a JSON object",
        ));
    }
    let f: KeyFields = serde_json::from_str(text).map_err(|e| {
        DecodeError::new(ErrorKind::InvalidKey, format!("key is not valid JSON: {e}"))
    })?;
    if f.schema.is_some() {
        match f.payload {
            Some(p) if p.get().trim_start().starts_with('{') => {}
            _ => {
                return Err(DecodeError::new(
                    ErrorKind::InvalidKey,
                    "key has a schema but its payload is not an object",
                ));
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(key: Option<&str>, value: Option<&str>) -> Result<Decoded<'static>, DecodeError> {
        let k: Option<&'static [u8]> =
            key.map(|k| &*Box::leak(k.as_bytes().to_vec().into_boxed_slice()));
        let v: Option<&'static [u8]> =
            value.map(|v| &*Box::leak(v.as_bytes().to_vec().into_boxed_slice()));
        decode(k, v, false)
    }

    const PG: &str = r#"{"before":null,"after":{"id":1},"source":{"version":"3.6.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":1795258938380,"snapshot":"first","db":"inventory","sequence":"[null,\"29748872\"]","ts_us":1795258938380575,"schema":"public","table":"users","txId":3049,"lsn":29748872,"xmin":null},"transaction":null,"op":"r","ts_ms":1795258938422,"ts_us":1795258938422694}"#;

    #[test]
    fn postgres_change_without_schema() {
        let d = dec(Some(r#"{"id":1}"#), Some(PG)).unwrap();
        assert_eq!(d.kind, Kind::Change);
        assert_eq!(d.op, Some(Op::Read));
        assert!(!d.has_schema);
        assert_eq!(d.event_ts_us, Some(1795258938422694));
        assert_eq!(d.source_ts_us(), Some(1795258938380575));
        assert_eq!(d.source.lsn, Some(29748872));
        assert_eq!(d.source.tx_id, Some(3049));
        assert_eq!(d.source.sequence.as_deref(), Some("[null,\"29748872\"]"));
        assert_eq!(d.source.snapshot.as_deref(), Some("first"));
        assert_eq!(d.source.table.as_deref(), Some("users"));
    }

    #[test]
    fn envelope_with_schema_and_mysql_position() {
        let v = r#"{"schema":{"type":"struct","fields":[]},"payload":{"before":{"id":2},"after":{"id":2},"source":{"connector":"mysql","name":"dbserver2","ts_ms":1795258963000,"snapshot":null,"db":"inventory","table":"users","server_id":1,"gtid":null,"file":"mysql-bin.000007","pos":125388,"row":3},"op":"u","ts_ms":1795258963454}}"#;
        let k = r#"{"schema":{"type":"struct"},"payload":{"id":2}}"#;
        let d = dec(Some(k), Some(v)).unwrap();
        assert!(d.has_schema);
        assert_eq!(d.op, Some(Op::Update));
        assert_eq!(d.source.file.as_deref(), Some("mysql-bin.000007"));
        assert_eq!(d.source.pos, Some(125388));
        assert_eq!(d.source.row, Some(3));
        assert_eq!(d.event_ts_us, Some(1795258963454000));
        assert_eq!(d.source.snapshot, None);
    }

    #[test]
    fn tombstones_schema_changes_heartbeats_transactions() {
        assert_eq!(
            dec(Some(r#"{"id":1}"#), None).unwrap().kind,
            Kind::Tombstone
        );
        let ddl = r#"{"schema":{},"payload":{"source":{"connector":"mysql","file":"f","pos":4,"row":0},"ts_ms":1,"databaseName":"inventory","ddl":"DROP TABLE x","tableChanges":[]}}"#;
        assert_eq!(
            dec(Some(r#"{"databaseName":""}"#), Some(ddl)).unwrap().kind,
            Kind::SchemaChange
        );
        assert_eq!(
            dec(Some(r#"{"serverName":"s"}"#), Some(r#"{"ts_ms":17}"#))
                .unwrap()
                .kind,
            Kind::Heartbeat
        );
        let tx = r#"{"status":"BEGIN","id":"571:53195832","event_count":null,"data_collections":null,"ts_ms":1}"#;
        assert_eq!(
            dec(Some(r#"{"id":"571:53195832"}"#), Some(tx))
                .unwrap()
                .kind,
            Kind::Transaction
        );
        let truncate = r#"{"before":null,"after":null,"source":{"connector":"postgresql","lsn":5},"op":"t","ts_ms":1}"#;
        let d = dec(None, Some(truncate)).unwrap();
        assert_eq!(d.op, Some(Op::Truncate));
    }

    #[test]
    fn bad_records_say_why() {
        let cases: &[(Option<&str>, Option<&str>, ErrorKind)] = &[
            (
                Some(r#"{"id":1}"#),
                Some("{\"before\":null,"),
                ErrorKind::InvalidJson,
            ),
            (Some(r#"{"id":1}"#), Some("[1,2]"), ErrorKind::NotEnvelope),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"hello":"world"}"#),
                ErrorKind::NotEnvelope,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":"x","source":{},"after":{}}"#),
                ErrorKind::UnknownOp,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":"c","source":{}}"#),
                ErrorKind::MissingImage,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":"c","after":{}}"#),
                ErrorKind::NotEnvelope,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":5,"source":{},"after":{}}"#),
                ErrorKind::NotEnvelope,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":"c","source":{"lsn":"abc"},"after":{}}"#),
                ErrorKind::NotEnvelope,
            ),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"op":"c","source":{},"after":7}"#),
                ErrorKind::NotEnvelope,
            ),
            (
                None,
                Some(r#"{"op":"c","source":{},"after":{}}"#),
                ErrorKind::MissingKey,
            ),
            (
                Some("17"),
                Some(r#"{"op":"c","source":{},"after":{}}"#),
                ErrorKind::InvalidKey,
            ),
            (Some(r#"{"schema":{}}"#), None, ErrorKind::InvalidKey),
            (None, None, ErrorKind::MissingKey),
            (
                Some(r#"{"id":1}"#),
                Some(r#"{"schema":{"type":"struct"}}"#),
                ErrorKind::NotEnvelope,
            ),
        ];
        for (k, v, kind) in cases {
            let e = dec(*k, *v).expect_err(&format!("{k:?} {v:?}"));
            assert_eq!(e.kind, *kind, "{k:?} {v:?}: {e}");
            assert!(!e.message.is_empty());
        }
        let e = decode(Some(b"{\"id\":1}"), Some(b"{\"op\":\"c\xff\"}"), false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidUtf8);
    }

    #[test]
    fn keyless_tables_accept_changes_without_key() {
        let v = br#"{"op":"c","source":{},"after":{}}"#;
        assert!(decode(None, Some(v), true).is_ok());
    }

    #[test]
    fn schema_envelope_with_null_payload_is_a_tombstone() {
        let d = dec(
            Some(r#"{"id":1}"#),
            Some(r#"{"schema":null,"payload":null}"#),
        )
        .unwrap();
        assert_eq!(d.kind, Kind::Tombstone);
    }
}
