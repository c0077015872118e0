//! Crash safety: `medallion ingest` killed with SIGKILL at random moments, again and again,
//! then run to the end: every record is in bronze (or the DLQ) exactly once.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use crate::support::{Workspace, seeded_rand};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_ingest_never_loses_or_duplicates() {
    let ws = Workspace::new("[bronze]\nmax_rows = 1500\nmax_interval = \"1s\"\n");
    // Generated events with a malformed line every 997 records, so the DLQ and the data
    // tables commit in the same batches.
    let clean = ws.root().join("clean.jsonl");
    let st = ws
        .medallion()
        .args([
            "generate",
            "--keys",
            "3000",
            "--events",
            "45000",
            "--partitions",
            "3",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&clean)
        .status()
        .unwrap();
    assert!(st.success());
    let path = ws.root().join("events.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut records = 0u64;
    let mut garbage = 0u64;
    for (i, l) in std::io::BufReader::new(std::fs::File::open(&clean).unwrap())
        .lines()
        .enumerate()
    {
        out.write_all(l.unwrap().as_bytes()).unwrap();
        out.write_all(b"\n").unwrap();
        records += 1;
        if i % 997 == 500 {
            out.write_all(b"{\"topic\": \"demo.public.orders\", garbage\n")
                .unwrap();
            garbage += 1;
        }
    }
    out.flush().unwrap();
    drop(out);

    let mut rand = seeded_rand(0x5eed);
    let mut kills = 0;
    let mut finished_early = 0;
    let started = Instant::now();
    let mut attempt = 0u64;
    while kills < 20 {
        attempt += 1;
        assert!(
            attempt < 200,
            "could not kill a running ingest 20 times ({kills} kills)"
        );
        let mut child = ws
            .medallion()
            .arg("ingest")
            .arg("--from")
            .arg(&path)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rand(900)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        } else {
            finished_early += 1;
        }
    }
    let st = ws
        .medallion()
        .arg("ingest")
        .arg("--from")
        .arg(&path)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "the final ingest after {kills} kills succeeds"
    );
    eprintln!(
        "{kills} kills, {finished_early} runs finished before their kill, {:?}",
        started.elapsed()
    );

    let landed = ws.count(
        "SELECT count(*) FROM (SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.users \
         UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.products \
         UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.orders)",
    )
    .await;
    let distinct = ws.count(
        "SELECT count(*) FROM (SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM (\
         SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.users \
         UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.products \
         UNION ALL SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.orders))",
    )
    .await;
    assert_eq!(distinct as u64, records, "every record landed");
    assert_eq!(landed as u64, records, "no record landed twice");
    let dlq = ws.count("SELECT count(*) FROM bronze._dlq").await;
    let dlq_distinct = ws
        .count("SELECT count(DISTINCT source_line) FROM bronze._dlq")
        .await;
    assert_eq!(dlq as u64, garbage, "every malformed line in the DLQ once");
    assert_eq!(dlq_distinct as u64, garbage);
}
