//! Slowly changing dimension type 2: `<table>_history` holds every version of every key, with
//! validity ranges that do not overlap and exactly one current row per live key, equal to
//! silver; checked against the generated history applied once, and read back by PyIceberg.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};

use crate::pyiceberg::check_with_pyiceberg;
use crate::silver::{Change, apply, deliver, land_and_run, random_changes};
use crate::support::{Workspace, seeded_rand};

/// One history row of a key, as the test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    op: String,
    v: Option<i64>,
    s: Option<String>,
    from: i64,
    to: Option<i64>,
    current: bool,
}

/// The source commit time (µs) `deliver` gives an event at `lsn`.
fn ts_at(lsn: i64) -> i64 {
    (1_700_000_000_000 + lsn) * 1000
}

/// The history `changes` make, applied once in order: the positions are those `deliver`
/// assigns (snapshot reads at LSN 1000, then every change 8 apart from 2000).
fn versions(changes: &[Change]) -> BTreeMap<i64, Vec<Version>> {
    let mut out: BTreeMap<i64, Vec<Version>> = BTreeMap::new();
    let close = |vs: &mut Vec<Version>, at: i64| {
        if let Some(last) = vs.last_mut().filter(|l| l.current) {
            last.to = Some(at);
            last.current = false;
        }
    };
    let mut lsn = 2000;
    for c in changes {
        match c {
            Change::Upsert { id, op, v, s } => {
                let at = ts_at(if *op == "r" { 1000 } else { lsn });
                let vs = out.entry(*id).or_default();
                let s = match s.as_deref() {
                    Some(medallion::silver::decode::TOAST_PLACEHOLDER) => {
                        vs.last().filter(|l| l.current).and_then(|l| l.s.clone())
                    }
                    other => other.map(str::to_string),
                };
                close(vs, at);
                vs.push(Version {
                    op: op.to_string(),
                    v: Some(*v),
                    s,
                    from: at,
                    to: None,
                    current: true,
                });
            }
            Change::Delete { id } => {
                let at = ts_at(lsn);
                let vs = out.entry(*id).or_default();
                close(vs, at);
                vs.push(Version {
                    op: "d".into(),
                    v: None,
                    s: None,
                    from: at,
                    to: Some(at),
                    current: false,
                });
            }
            Change::Truncate => {
                for vs in out.values_mut() {
                    close(vs, ts_at(lsn));
                }
            }
        }
        lsn += 8;
    }
    out
}

/// `silver.t_history` per key, in source order.
async fn read_history(ws: &Workspace, table: &str) -> BTreeMap<i64, Vec<Version>> {
    let batches = ws
        .query(&format!(
            "SELECT id, _op, v, s, valid_from, valid_to, is_current FROM silver.{table}_history \
             ORDER BY id, _source_lsn"
        ))
        .await;
    let mut out: BTreeMap<i64, Vec<Version>> = BTreeMap::new();
    for b in &batches {
        let id = arrow::compute::cast(b.column(0), &DataType::Int64).unwrap();
        let id = id.as_primitive::<Int64Type>();
        let op = b.column(1).as_string::<i32>();
        let v = b.column(2).as_primitive::<Int64Type>();
        let s = b.column(3).as_string::<i32>();
        let from = b.column(4).as_primitive::<TimestampMicrosecondType>();
        let to = b.column(5).as_primitive::<TimestampMicrosecondType>();
        let current = b.column(6).as_boolean();
        for i in 0..b.num_rows() {
            out.entry(id.value(i)).or_default().push(Version {
                op: op.value(i).to_string(),
                v: v.is_valid(i).then(|| v.value(i)),
                s: s.is_valid(i).then(|| s.value(i).to_string()),
                from: from.value(i),
                to: to.is_valid(i).then(|| to.value(i)),
                current: current.value(i),
            });
        }
    }
    out
}

/// Ranges of a key do not overlap, and a live key has exactly one current row: the last.
fn assert_well_formed(history: &BTreeMap<i64, Vec<Version>>, live: &[i64], what: &str) {
    for (id, vs) in history {
        let current: Vec<usize> = (0..vs.len()).filter(|&i| vs[i].current).collect();
        let want = if live.contains(id) {
            vec![vs.len() - 1]
        } else {
            vec![]
        };
        assert_eq!(current, want, "{what}: key {id}: current rows {vs:?}");
        for w in vs.windows(2) {
            let to = w[0].to.expect("only the last row is open");
            assert!(
                w[0].from <= to && to <= w[1].from,
                "{what}: key {id}: ranges overlap: {w:?}"
            );
        }
        let last = vs.last().unwrap();
        assert_eq!(
            last.to.is_none(),
            last.current,
            "{what}: key {id}: {last:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reproduces_every_version_with_one_current_row_per_live_key() {
    // Seeded random key histories (creates, updates with TOAST placeholders, deletes and
    // re-creates), delivered as Debezium does (a key's events in its partition), with
    // duplicates and replays, over 1–5 bronze batches with silver after each; every third case
    // in many small steps.
    for seed in 1..=24u64 {
        let mut rand = seeded_rand(seed * 104_729);
        let keys = 5 + rand(30) as i64;
        let n = 20 + rand(150) as usize;
        let changes = random_changes(&mut rand, keys, n, true, false);
        let want = versions(&changes);
        let partitions = 1 + rand(3) as i32;
        let lines = deliver(&mut rand, &changes, partitions, true);
        let small = if seed % 3 == 0 {
            "[bronze]\nmax_rows = 20\n[silver]\nmax_step_bytes = \"2KiB\"\n"
        } else {
            ""
        };
        let ws = Workspace::new(&format!("{small}[silver.tables.t]\nhistory = true\n"));
        let runs = 1 + rand(5) as usize;
        for (i, chunk) in lines.chunks(lines.len().div_ceil(runs)).enumerate() {
            land_and_run(&ws, &format!("part{i}.jsonl"), chunk).await;
        }
        let what = format!(
            "seed {seed} ({} changes over {keys} keys, {partitions} partitions, {runs} runs)",
            changes.len()
        );
        let got = read_history(&ws, "t").await;
        assert_eq!(
            got, want,
            "{what}: the history differs from every version in order"
        );
        let silver = apply(&changes);
        let live: Vec<i64> = silver.keys().copied().collect();
        assert_well_formed(&got, &live, &what);
        let current: BTreeMap<i64, (i64, Option<String>)> = got
            .iter()
            .filter_map(|(id, vs)| {
                let c = vs.iter().find(|v| v.current)?;
                Some((*id, (c.v.unwrap(), c.s.clone())))
            })
            .collect();
        assert_eq!(
            current, silver,
            "{what}: the current rows differ from silver"
        );
        if seed == 1 {
            check_with_pyiceberg(
                &ws,
                "test_silver",
                "silver",
                &["t".to_string(), "t_history".to_string()],
            );
        }
    }
}

/// Kafka-dump lines for `changes` in one partition, as `deliver` numbers them.
fn one_partition(changes: &[Change]) -> Vec<String> {
    let mut rand = seeded_rand(5);
    deliver(&mut rand, changes, 1, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_turned_on_later_starts_from_silver_and_a_truncate_closes_it() {
    let up = |id, op, v| Change::Upsert {
        id,
        op,
        v,
        s: Some(format!("s{id}")),
    };
    let changes = vec![
        up(1, "r", 10),
        up(2, "r", 20),
        up(3, "r", 30),
        up(1, "u", 11),
        Change::Delete { id: 3 },
        // History on from here.
        up(2, "u", 21),
        up(4, "c", 40),
        Change::Truncate,
        up(4, "c", 41),
    ];
    // Replays of the earlier events come along in `deliver`; silver skips them.
    let lines = one_partition(&changes);
    let ws = Workspace::new("");
    // The first five changes (and their tombstone), without history.
    let split = lines
        .iter()
        .position(|l| l.contains(&format!("\\\"lsn\\\":{}", 2000 + 5 * 8)))
        .unwrap();
    land_and_run(&ws, "before.jsonl", &lines[..split]).await;
    assert!(
        !ws.tables("test_silver")
            .await
            .contains(&"t_history".to_string())
    );

    let text = std::fs::read_to_string(&ws.config_path).unwrap();
    std::fs::write(
        &ws.config_path,
        text + "[silver.tables.t]\nhistory = true\n",
    )
    .unwrap();
    let truncate = lines
        .iter()
        .position(|l| l.contains("\\\"op\\\":\\\"t\\\""))
        .unwrap();
    land_and_run(&ws, "on.jsonl", &lines[split..truncate]).await;
    land_and_run(&ws, "truncate.jsonl", &lines[truncate..]).await;

    let got = read_history(&ws, "t").await;
    let v = |op: &str, v: i64, id: i64, from: i64, to: Option<i64>| Version {
        op: op.into(),
        v: Some(v),
        s: Some(format!("s{id}")),
        from: ts_at(from),
        to: to.map(ts_at),
        current: to.is_none(),
    };
    // Started from silver: key 1 at its update, key 2 at its snapshot read; key 3 was gone.
    // The truncate (at LSN 2056) closes every current version; key 4 comes back after it.
    let want = BTreeMap::from([
        (1, vec![v("u", 11, 1, 2024, Some(2056))]),
        (
            2,
            vec![
                v("r", 20, 2, 1000, Some(2040)),
                v("u", 21, 2, 2040, Some(2056)),
            ],
        ),
        (
            4,
            vec![v("c", 40, 4, 2048, Some(2056)), v("c", 41, 4, 2064, None)],
        ),
    ]);
    assert_eq!(got, want);
    assert_well_formed(&got, &[4], "truncate");
    let (code, out, err) = ws.run(&["query", "SELECT count(*) AS n FROM silver.t_history"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('5'), "{out}");
}
