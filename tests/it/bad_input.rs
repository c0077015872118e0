//! Malformed input never stops a run and is never dropped: each bad record lands in the DLQ
//! table with its reason, while the valid records around it land in bronze — exactly once.

use std::collections::BTreeMap;
use std::io::Write;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use medallion::bronze::ingest::ingest_files;

use crate::support::Workspace;

const TOPIC: &str = "shop.public.items";

fn valid_value(id: i64) -> String {
    format!(
        r#"{{"before":null,"after":{{"id":{id},"name":"item {id}"}},"source":{{"connector":"postgresql","name":"shop","ts_ms":1767225600000,"snapshot":"false","db":"shop","schema":"public","table":"items","txId":{id},"lsn":{}}},"op":"c","ts_ms":1767225600100}}"#,
        1000 + id
    )
}

/// A dump line with arbitrary key and value JSON fragments (already JSON-encoded or `null`).
fn line(offset: i64, key: &str, value: &str) -> Vec<u8> {
    format!(r#"{{"topic":"{TOPIC}","partition":0,"offset":{offset},"timestamp":1767225600200,"key":{key},"value":{value}}}"#)
        .into_bytes()
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The malformed corpus: (description, the line's bytes, whether the Kafka coordinates survive).
fn corpus(next_offset: &mut i64) -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut o = || {
        let v = *next_offset;
        *next_offset += 1;
        v
    };
    let k = js(r#"{"id":1}"#);
    let huge = format!(
        r#"{{"op":"c","source":{{}},"after":{{"blob":"{}"}}}}"#,
        "x".repeat(10 << 20)
    );
    let invalid_utf8 = |offset: i64| {
        let mut l = format!(
            r#"{{"topic":"{TOPIC}","partition":0,"offset":{offset},"key":{k},"value":"{{\"op\":\"c"#
        )
        .into_bytes();
        l.extend_from_slice(b"\xff\xfe\"}");
        l
    };
    vec![
        (
            "truncated JSON value",
            line(o(), &k, &js(r#"{"before":null,"after":{"id":1"#)),
            true,
        ),
        (
            "op of the wrong type",
            line(o(), &k, &js(r#"{"op":5,"source":{},"after":{}}"#)),
            true,
        ),
        (
            "unknown op",
            line(o(), &k, &js(r#"{"op":"x","source":{},"after":{}}"#)),
            true,
        ),
        (
            "binary garbage line",
            vec![0x00, 0x9f, 0x92, 0x96, 0xff, 0x13, 0x37, 0x80, 0x81],
            false,
        ),
        (
            "schema without payload",
            line(o(), &k, &js(r#"{"schema":{"type":"struct"}}"#)),
            true,
        ),
        ("a 10 MB value", line(o(), &k, &js(&huge)), true),
        ("invalid UTF-8 in the value", invalid_utf8(o()), true),
        ("value is a JSON array", line(o(), &k, &js("[1,2,3]")), true),
        (
            "value is a JSON string",
            line(o(), &k, &js("\"hello\"")),
            true,
        ),
        ("value is an empty object", line(o(), &k, &js("{}")), true),
        (
            "op c without after",
            line(o(), &k, &js(r#"{"op":"c","source":{},"before":null}"#)),
            true,
        ),
        (
            "after is not an object",
            line(o(), &k, &js(r#"{"op":"c","source":{},"after":42}"#)),
            true,
        ),
        (
            "no source block",
            line(o(), &k, &js(r#"{"op":"u","before":{},"after":{}}"#)),
            true,
        ),
        (
            "key is not JSON",
            line(o(), &js("id=1"), &js(&valid_value(1))),
            true,
        ),
        (
            "key is a JSON scalar",
            line(o(), &js("42"), &js(&valid_value(1))),
            true,
        ),
        (
            "missing key on an update",
            line(
                o(),
                "null",
                &js(&valid_value(1).replace("\"op\":\"c\"", "\"op\":\"u\"")),
            ),
            true,
        ),
        ("neither key nor value", line(o(), "null", "null"), true),
        (
            "source.lsn of the wrong type",
            line(
                o(),
                &k,
                &js(r#"{"op":"c","source":{"lsn":"abc"},"after":{}}"#),
            ),
            true,
        ),
        ("empty value", line(o(), &k, &js("")), true),
        (
            "key schema without payload",
            line(o(), &js(r#"{"schema":{}}"#), &js(&valid_value(1))),
            true,
        ),
        (
            "dump line without offset",
            format!(r#"{{"topic":"{TOPIC}","partition":0,"key":null,"value":null}}"#).into_bytes(),
            false,
        ),
        (
            "dump line with a wrong type",
            format!(
                r#"{{"topic":"{TOPIC}","partition":"zero","offset":1,"key":null,"value":null}}"#
            )
            .into_bytes(),
            false,
        ),
        (
            "truncated dump line",
            br#"{"topic":"shop.public.items","partition":0,"off"#.to_vec(),
            false,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_go_to_the_dlq_and_valid_ones_land() {
    let ws = Workspace::new("[bronze]\nmax_rows = 7\n");
    let path = ws.root().join("bad.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut offset = 0i64;
    let mut valid = Vec::new();
    let mut bad_lines = Vec::new();
    let bad = corpus(&mut 1_000_000);
    for (i, (what, bytes, has_coords)) in bad.iter().enumerate() {
        // Two valid records around every bad one.
        for _ in 0..2 {
            f.write_all(&line(
                offset,
                &js(&format!(r#"{{"id":{offset}}}"#)),
                &js(&valid_value(offset)),
            ))
            .unwrap();
            f.write_all(b"\n").unwrap();
            valid.push(offset);
            offset += 1;
        }
        f.write_all(bytes).unwrap();
        f.write_all(b"\n").unwrap();
        bad_lines.push((i, *what, *has_coords));
    }
    drop(f);
    assert!(bad.len() >= 15);

    let config = ws.config();
    let lake = ws.lake();
    let report = ingest_files(&lake, &config, vec![path.clone()])
        .await
        .unwrap();
    assert_eq!(report.counts.landed as usize, valid.len());
    assert_eq!(
        report.counts.dead_letters as usize,
        bad.len(),
        "every bad record is a dead letter"
    );

    // Valid records: all in bronze, once.
    let n = ws.count("SELECT count(*) FROM bronze.items").await;
    assert_eq!(n as usize, valid.len());
    let d = ws
        .count("SELECT count(DISTINCT kafka_offset) FROM bronze.items")
        .await;
    assert_eq!(d as usize, valid.len());

    // Bad records: all in the DLQ, each with a kind and a reason.
    let batches = ws
        .query("SELECT kafka_offset, error_kind, reason, raw_value, source_line, target_table FROM bronze._dlq ORDER BY source_line, kafka_offset")
        .await;
    let mut rows = Vec::new();
    for b in &batches {
        let off = b.column(0).as_primitive::<Int64Type>();
        let kind = b.column(1).as_string::<i32>();
        let reason = b.column(2).as_string::<i32>();
        let raw = b.column(3).as_binary::<i64>();
        let line = b.column(4).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(!reason.value(i).is_empty());
            assert!(!kind.value(i).is_empty());
            assert!(
                !raw.is_null(i) || kind.value(i) == "missing_key",
                "raw bytes kept: {}",
                reason.value(i)
            );
            rows.push((
                (!off.is_null(i)).then(|| off.value(i)),
                kind.value(i).to_string(),
                reason.value(i).to_string(),
                (!line.is_null(i)).then(|| line.value(i)),
            ));
        }
    }
    assert_eq!(rows.len(), bad.len(), "{rows:#?}");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *kinds.entry(r.1.clone()).or_default() += 1;
    }
    for k in [
        "invalid_json",
        "not_debezium",
        "unknown_op",
        "too_large",
        "unreadable",
        "missing_key",
        "invalid_key",
        "missing_row_image",
    ] {
        assert!(
            kinds.contains_key(k),
            "no dead letter of kind {k}: {kinds:?}"
        );
    }
    let with_coords = bad.iter().filter(|b| b.2).count();
    assert_eq!(
        rows.iter().filter(|r| r.0.is_some()).count(),
        with_coords,
        "Kafka coordinates kept where readable"
    );
    let huge = rows.iter().find(|r| r.1 == "too_large").unwrap();
    assert!(huge.2.contains("max_record_bytes"), "{}", huge.2);

    // Again: nothing new, neither in bronze nor in the DLQ.
    let again = ingest_files(&lake, &config, vec![path]).await.unwrap();
    assert_eq!(again.counts.landed + again.counts.dead_letters, 0);
    assert_eq!(
        ws.count("SELECT count(*) FROM bronze._dlq").await as usize,
        bad.len()
    );
    assert_eq!(
        ws.count("SELECT count(*) FROM bronze.items").await as usize,
        valid.len()
    );
}
