//! Every real Debezium fixture lands in bronze exactly once, byte for byte, with ops, positions,
//! tombstones and schema-change records decoded and kept.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, Int64Type};
use medallion::bronze::ingest::ingest_files;

use crate::support::{Workspace, fixture_event_files};

type Coord = (String, i32, i64);

struct Expected {
    key: Option<String>,
    value: Option<String>,
    kind: &'static str,
    op: Option<String>,
}

fn read_fixture(path: &std::path::Path) -> BTreeMap<Coord, Expected> {
    let f = std::fs::File::open(path).unwrap();
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let mut out = BTreeMap::new();
    for line in r.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let coord = (
            v["topic"].as_str().unwrap().to_string(),
            v["partition"].as_i64().unwrap() as i32,
            v["offset"].as_i64().unwrap(),
        );
        let key = v["key"].as_str().map(str::to_string);
        let value = v["value"].as_str().map(str::to_string);
        let (kind, op) = match &value {
            None => ("tombstone", None),
            Some(s) => {
                let j: serde_json::Value = serde_json::from_str(s).unwrap();
                let p = if j.get("payload").is_some() {
                    &j["payload"]
                } else {
                    &j
                };
                match p.get("op").and_then(|o| o.as_str()) {
                    Some(op) => ("change", Some(op.to_string())),
                    None if p.get("ddl").is_some() => ("schema_change", None),
                    None => panic!("fixture record {coord:?} of unexpected shape"),
                }
            }
        };
        let prev = out.insert(
            coord.clone(),
            Expected {
                key,
                value,
                kind,
                op,
            },
        );
        assert!(prev.is_none(), "fixture repeats {coord:?}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_lands_exactly_once() {
    for (scenario, path) in fixture_event_files() {
        let ws = Workspace::new("[bronze]\nmax_rows = 100\n");
        let expected = read_fixture(&path);
        let config = ws.config();
        let lake = ws.lake();

        let report = ingest_files(&lake, &config, vec![path.clone()])
            .await
            .unwrap();
        assert_eq!(report.counts.read as usize, expected.len(), "{scenario}");
        assert_eq!(
            report.counts.landed as usize,
            expected.len(),
            "{scenario}: all valid"
        );
        assert_eq!(report.counts.dead_letters, 0, "{scenario}");
        assert!(
            report.commits > 1,
            "{scenario}: small batches make several commits"
        );

        // Read every bronze table back.
        let tables = ws.tables("test_bronze").await;
        assert!(
            !tables.contains(&"_dlq".to_string()),
            "{scenario}: no dead letters expected"
        );
        let mut seen: HashMap<Coord, usize> = HashMap::new();
        for t in &tables {
            let batches = ws
                .query(&format!(
                    "SELECT kafka_topic, kafka_partition, kafka_offset, record_key, record_value, kind, op, \
                     pg_lsn, binlog_file, binlog_pos, source_table, event_ts, has_schema FROM bronze.{t}"
                ))
                .await;
            for b in &batches {
                let topic = b.column(0).as_string::<i32>();
                let part = b.column(1).as_primitive::<Int32Type>();
                let off = b.column(2).as_primitive::<Int64Type>();
                let key = b.column(3).as_string::<i32>();
                let value = b.column(4).as_string::<i32>();
                let kind = b.column(5).as_string::<i32>();
                let op = b.column(6).as_string::<i32>();
                let lsn = b.column(7).as_primitive::<Int64Type>();
                let file = b.column(8).as_string::<i32>();
                let pos = b.column(9).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    use arrow::array::Array;
                    let c = (topic.value(i).to_string(), part.value(i), off.value(i));
                    *seen.entry(c.clone()).or_default() += 1;
                    let e = expected
                        .get(&c)
                        .unwrap_or_else(|| panic!("{scenario}: unexpected {c:?}"));
                    let opt = |a: &arrow::array::StringArray, i| {
                        (!a.is_null(i)).then(|| a.value(i).to_string())
                    };
                    assert_eq!(opt(key, i), e.key, "{scenario} {c:?}: key byte for byte");
                    assert_eq!(
                        opt(value, i),
                        e.value,
                        "{scenario} {c:?}: value byte for byte"
                    );
                    assert_eq!(kind.value(i), e.kind, "{scenario} {c:?}");
                    assert_eq!(opt(op, i), e.op, "{scenario} {c:?}");
                    if e.kind == "change" {
                        if scenario.starts_with("pg") {
                            assert!(!lsn.is_null(i), "{scenario} {c:?}: PostgreSQL lsn decoded");
                        } else {
                            assert!(
                                !file.is_null(i) && !pos.is_null(i),
                                "{scenario} {c:?}: binlog position decoded"
                            );
                        }
                    }
                }
            }
        }
        let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dupes.is_empty(), "{scenario}: duplicated {dupes:?}");
        let missing: Vec<_> = expected.keys().filter(|c| !seen.contains_key(*c)).collect();
        assert!(missing.is_empty(), "{scenario}: missing {missing:?}");

        // Kinds are kept: tombstones, and MySQL's schema-change topic.
        let tombstones = expected.values().filter(|e| e.kind == "tombstone").count();
        assert!(tombstones > 0, "{scenario}: fixtures have tombstones");
        if scenario.starts_with("mysql") {
            assert!(
                tables.contains(&"dbserver2".to_string()),
                "{scenario}: schema-change topic kept: {tables:?}"
            );
            let n = ws
                .count("SELECT count(*) FROM bronze.dbserver2 WHERE kind = 'schema_change'")
                .await;
            assert_eq!(n, 13, "{scenario}: every schema-change record kept");
        }

        // The same file again lands nothing.
        let again = ingest_files(&lake, &config, vec![path.clone()])
            .await
            .unwrap();
        assert_eq!(
            again.counts.landed, 0,
            "{scenario}: second ingest lands nothing"
        );
        assert_eq!(again.counts.skipped as usize, expected.len(), "{scenario}");
        assert_eq!(again.commits, 0, "{scenario}: nothing to commit");
        let total: i64 = {
            let mut n = 0;
            for t in &tables {
                n += ws.count(&format!("SELECT count(*) FROM bronze.{t}")).await;
            }
            n
        };
        assert_eq!(
            total as usize,
            expected.len(),
            "{scenario}: still exactly once"
        );
    }
}
