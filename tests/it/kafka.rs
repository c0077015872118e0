//! The Kafka source against a real broker (tansu): fixtures through Kafka, SIGTERM, SIGKILL
//! loops with a live producer, and two workers in one group.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use medallion::source::generate::{GenerateOptions, Generator};
use medallion::source::produce::{KafkaSink, ensure_topics};

use crate::broker::Broker;
use crate::support::{Workspace, fixture_event_files, seeded_rand};

/// Rows in every bronze table (DLQ included) and distinct Kafka coordinates among them.
async fn landed(ws: &Workspace) -> (i64, i64) {
    let tables = ws.tables("test_bronze").await;
    if tables.is_empty() {
        return (0, 0);
    }
    let union = tables
        .iter()
        .map(|t| format!("SELECT kafka_topic, kafka_partition, kafka_offset FROM bronze.\"{t}\""))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = ws.count(&format!("SELECT count(*) FROM ({union})")).await;
    let distinct = ws
        .count(&format!(
            "SELECT count(*) FROM (SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM ({union}))"
        ))
        .await;
    (rows, distinct)
}

/// Rows per (table, kind, op) over the data tables.
async fn kinds(ws: &Workspace) -> BTreeMap<(String, String, String), i64> {
    let mut out = BTreeMap::new();
    for t in ws.tables("test_bronze").await {
        if t.starts_with('_') {
            continue;
        }
        let sql = format!(
            "SELECT kind, coalesce(op, '-') AS op, count(*) AS n FROM bronze.\"{t}\" GROUP BY 1, 2"
        );
        for b in ws.query(&sql).await {
            let kind = b.column(0).as_string::<i32>();
            let op = b.column(1).as_string::<i32>();
            let n = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.insert(
                    (
                        t.clone(),
                        kind.value(i).to_string(),
                        op.value(i).to_string(),
                    ),
                    n.value(i),
                );
            }
        }
    }
    out
}

fn kafka_ws(broker: &Broker, pattern: &str, group: &str, bronze: &str) -> Workspace {
    Workspace::with_source(&broker.source_toml(pattern, group), bronze)
}

/// Starts `ingest` with `args`, stderr piped so logs can be watched.
fn spawn_ingest(ws: &Workspace, args: &[&str]) -> Child {
    ws.medallion_logging("info")
        .arg("ingest")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `ingest --until-caught-up` to the end; fails with `what` and its stderr unless it exits 0.
fn ingest_until_caught_up(ws: &Workspace, what: &str) {
    let out = ws
        .medallion()
        .args(["ingest", "--until-caught-up"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn signal(child: &Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Generates `events` demo events on 2 partitions per table into the workspace's broker.
fn generate_to_kafka(ws: &Workspace, events: u64) {
    let st = ws
        .medallion()
        .args(["generate", "--to-kafka", "--keys", "500"])
        .args(["--events", &events.to_string(), "--partitions", "2"])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Sends stderr lines of `child` that contain any of `needles` to the returned channel.
fn watch_stderr(
    child: &mut Child,
    needles: &'static [&'static str],
) -> std::sync::mpsc::Receiver<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if needles.iter().any(|n| line.contains(n)) {
                let _ = tx.send(line);
            }
        }
    });
    rx
}

/// Waits for a child with a deadline; kills it and fails if it overruns.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A producer thread writing generated events until stopped; returns how many it produced.
struct Producer {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: JoinHandle<u64>,
}

impl Producer {
    async fn start(broker: &Broker, partitions: i32, per_second: u64) -> Producer {
        let config = broker.kafka_config();
        let topics = ["users", "products", "orders"]
            .iter()
            .map(|t| (format!("demo.public.{t}"), partitions))
            .collect();
        ensure_topics(&config, &topics).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let handle = std::thread::spawn(move || {
            let sink = KafkaSink::connect(&config).unwrap();
            let events = Generator::new(GenerateOptions {
                keys: 2000,
                events: u64::MAX / 2,
                partitions,
                seed: 11,
                ..Default::default()
            });
            let started = Instant::now();
            for r in events {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                sink.send(&r).unwrap();
                let k = n.fetch_add(1, Ordering::Relaxed) + 1;
                // Keep to the rate.
                let due = Duration::from_secs_f64(k as f64 / per_second as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            sink.finish().unwrap()
        });
        Producer { stop, sent, handle }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let delivered = self.handle.join().unwrap();
        assert_eq!(delivered, self.sent.load(Ordering::Relaxed));
        delivered
    }
}

/// GET /metrics over plain HTTP.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The values of the samples whose line starts with `prefix`.
fn samples(text: &str, prefix: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_through_kafka_land_exactly_once() {
    for (scenario, file) in fixture_event_files() {
        let broker = Broker::start();
        let ws = kafka_ws(&broker, "^.*", "fixtures", "");
        let out = ws.medallion().arg("produce").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{scenario}: produce failed: {stderr}");
        let produced: i64 = stderr
            .split("produced ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{scenario}: no count in {stderr}"));
        assert!(produced > 0);

        ingest_until_caught_up(&ws, &format!("{scenario}: ingest failed"));
        let (rows, distinct) = landed(&ws).await;
        assert_eq!(
            distinct, produced,
            "{scenario}: every produced record landed"
        );
        assert_eq!(rows, produced, "{scenario}: no record landed twice");

        // The same file through the file source decodes to the same kinds and ops.
        let file_ws = Workspace::new("");
        let st = file_ws
            .medallion()
            .arg("ingest")
            .arg("--from")
            .arg(&file)
            .status()
            .unwrap();
        assert!(st.success());
        let via_kafka = kinds(&ws).await;
        assert!(!via_kafka.is_empty());
        assert_eq!(via_kafka, kinds(&file_ws).await, "{scenario}");

        // A second run finds nothing new.
        ingest_until_caught_up(&ws, &format!("{scenario}: second ingest failed"));
        assert_eq!(landed(&ws).await, (produced, produced), "{scenario}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_follow_commits_the_open_batch_and_exits_fast() {
    let broker = Broker::start();
    // Batches that never fill or time out on their own: only the shutdown commits.
    let ws = kafka_ws(
        &broker,
        r"^demo\..*",
        "sigterm",
        "[bronze]\nmax_rows = 1000000\nmax_interval = \"10m\"\n",
    );
    let st = ws
        .medallion()
        .args([
            "generate",
            "--to-kafka",
            "--keys",
            "500",
            "--events",
            "5000",
        ])
        .args(["--partitions", "2"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = spawn_ingest(&ws, &["--follow", "--metrics-addr", "127.0.0.1:0"]);
    // Wait until the progress log says all 5000 records were read.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics: http://") {
                let _ = tx.send(Some(url.trim_end_matches("/metrics").to_string()));
            }
            if line.contains("progress") && line.contains("read=5000") {
                let _ = tx.send(None);
            }
        }
    });
    let metrics_addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the metrics address is printed")
        .expect("printed before progress");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("ingest --follow read the 5000 records");
    assert_eq!(
        landed(&ws).await,
        (0, 0),
        "nothing committed before SIGTERM"
    );

    // Prometheus metrics while the batch is open: consumption per topic, lag per partition.
    let text = scrape(&metrics_addr);
    let consumed: u64 = samples(&text, "medallion_records_consumed_total{")
        .iter()
        .sum();
    assert_eq!(consumed, 5000, "{text}");
    let lags = samples(&text, "medallion_partition_lag{");
    assert_eq!(lags.len(), 6, "a lag per assigned partition: {text}");
    assert!(lags.iter().all(|l| *l == 0), "caught up: {text}");
    assert!(text.contains("# TYPE medallion_commit_seconds histogram"));
    let t = Instant::now();
    sigterm(&child);
    let st = wait_within(&mut child, Duration::from_secs(5), "ingest after SIGTERM");
    assert!(st.success(), "exit 0 after SIGTERM, got {st}");
    eprintln!("exited {:?} after SIGTERM", t.elapsed());
    assert_eq!(landed(&ws).await, (5000, 5000));
    // The group's offsets were committed too (for lag tools), before it left.
    assert_eq!(group_committed(&broker, "sigterm"), 5000);
}

/// A process stalled past the session timeout (SIGSTOP: a long GC-like pause, a frozen VM) is
/// thrown out of the group and rejoins. `--until-caught-up` must not take the empty
/// assignment between the revocation and the new assignment for being done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_rejoins_and_still_lands_everything() {
    let broker = Broker::start();
    // Small batches: many commits, so the stall surely comes in the middle of the run.
    let ws = kafka_ws(
        &broker,
        r"^demo\..*",
        "stall",
        "[bronze]\nmax_rows = 1000\n",
    );
    generate_to_kafka(&ws, 30_000);
    let mut child = spawn_ingest(&ws, &["--until-caught-up"]);
    let lines = watch_stderr(&mut child, &["committed batch", "revoked", "caught up"]);
    let first = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("a first commit");
    assert!(first.contains("committed batch"), "{first}");
    signal(&child, "STOP");
    // session.timeout.ms is 6000 in the test configuration.
    std::thread::sleep(Duration::from_secs(9));
    signal(&child, "CONT");
    let st = wait_within(
        &mut child,
        Duration::from_secs(120),
        "ingest after the stall",
    );
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(st.success(), "exit 0, got {st}: {seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("revoked")),
        "the stall cost the partitions (else the test proves nothing): {seen:?}"
    );
    assert_eq!(landed(&ws).await, (30_000, 30_000));
}

/// The sum of the offsets a consumer group has committed on the demo topics.
fn group_committed(broker: &Broker, group: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in ["users", "products", "orders"] {
        for p in 0..2 {
            tpl.add_partition(&format!("demo.public.{t}"), p);
        }
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(n) => n,
            other => panic!(
                "{}[{}] has no committed offset: {other:?}",
                e.topic(),
                e.partition()
            ),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loop_with_a_live_producer_lands_everything_once() {
    let broker = Broker::start();
    let ws = kafka_ws(
        &broker,
        r"^demo\..*",
        "killed",
        "[bronze]\nmax_rows = 2000\nmax_interval = \"1s\"\n",
    );
    let producer = Producer::start(&broker, 3, 3000).await;
    let mut rand = seeded_rand(0x6b61_666b);
    let mut kills = 0;
    while kills < 20 {
        let mut child = ws
            .medallion()
            .args(["ingest", "--follow"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1000 + rand(4000)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "ingest --follow exited on its own"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let produced = producer.stop() as i64;
    ingest_until_caught_up(&ws, "final ingest");
    let (rows, distinct) = landed(&ws).await;
    eprintln!("{kills} kills; produced {produced}, landed {rows}");
    assert_eq!(distinct, produced, "every produced record landed");
    assert_eq!(rows, produced, "no record landed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_one_killed_still_exactly_once() {
    let broker = Broker::start();
    let ws = kafka_ws(
        &broker,
        r"^demo\..*",
        "pair",
        "[bronze]\nmax_rows = 2000\nmax_interval = \"1s\"\n",
    );
    let producer = Producer::start(&broker, 4, 3000).await;
    let spawn = || {
        ws.medallion()
            .args(["ingest", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut a = spawn();
    let mut b = spawn();
    std::thread::sleep(Duration::from_secs(10));
    let before_kill = landed(&ws).await.0;
    assert!(before_kill > 0, "the pair committed before the kill");
    a.kill().unwrap(); // SIGKILL mid-run
    a.wait().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let produced = producer.stop() as i64;
    // The survivor takes the dead worker's partitions over and catches up.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (rows, _) = landed(&ws).await;
        if rows >= produced {
            break;
        }
        assert!(
            b.try_wait().unwrap().is_none(),
            "the surviving worker exited"
        );
        assert!(
            Instant::now() < deadline,
            "the survivor did not land everything: {rows} of {produced}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sigterm(&b);
    let st = wait_within(&mut b, Duration::from_secs(10), "survivor after SIGTERM");
    assert!(st.success());
    let mut report = String::new();
    std::io::Read::read_to_string(&mut b.stdout.take().unwrap(), &mut report).unwrap();
    let survivor_read: i64 = report
        .strip_prefix("read ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report from the survivor: {report}"));
    assert!(
        survivor_read < produced,
        "the killed worker had partitions too (survivor read {survivor_read} of {produced})"
    );
    let (rows, distinct) = landed(&ws).await;
    assert_eq!(distinct, produced, "every produced record landed");
    assert_eq!(rows, produced, "no record landed twice");
}

/// With `source.kafka.dlq_topic`, every dead letter also goes to that topic, with the reason
/// and its coordinates in headers; the DLQ table holds them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_also_go_to_the_kafka_dlq_topic() {
    use medallion::source::SourceRecord;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};

    let broker = Broker::start();
    let source = broker
        .source_toml(r"^demo\..*", "dlq-topic")
        .replace("group_id = ", "dlq_topic = \"medallion.dlq\"\ngroup_id = ");
    let ws = Workspace::with_source(&source, "");
    generate_to_kafka(&ws, 300);
    // Two records that are not Debezium JSON, at known offsets of a partition of their own.
    let config = broker.kafka_config();
    ensure_topics(
        &config,
        &BTreeMap::from([("demo.public.broken".to_string(), 1)]),
    )
    .await
    .unwrap();
    let sink = KafkaSink::connect(&config).unwrap();
    for offset in 0..3 {
        // The third is too large for a DLQ topic record: its value is left out there.
        let pad = if offset == 2 { 600 * 1024 } else { 0 };
        sink.send(&SourceRecord {
            topic: Arc::from("demo.public.broken"),
            partition: 0,
            offset,
            timestamp_ms: Some(1_767_225_600_000),
            key: Some(b"{\"id\":1}".to_vec()),
            value: Some(format!("{{not json {offset}{}", " ".repeat(pad)).into_bytes()),
            headers: vec![("trace".into(), Some(b"abc".to_vec()))],
        })
        .unwrap();
    }
    assert_eq!(sink.finish().unwrap(), 3);

    ingest_until_caught_up(&ws, "ingest with a DLQ topic");
    let dlq_rows = ws.count("SELECT count(*) FROM bronze.\"_dlq\"").await;
    assert_eq!(dlq_rows, 3);

    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "dlq-reader")
        .set("session.timeout.ms", "6000")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["medallion.dlq"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 3 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let headers: BTreeMap<String, String> = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let v = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_string(), v.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            got.push((value, headers));
        }
    }
    got.sort_by_key(|(_, h)| h["medallion.offset"].clone());
    assert_eq!(got.len(), 3, "every dead letter on the topic: {got:?}");
    for (i, (value, h)) in got.iter().enumerate() {
        if i == 2 {
            assert_eq!(value, "", "a large value is left out");
            assert!(
                h["medallion.value_omitted"].starts_with(&format!("{} bytes", 600 * 1024 + 11)),
                "{h:?}"
            );
        } else {
            assert_eq!(value, &format!("{{not json {i}"));
        }
        assert_eq!(h["medallion.error_kind"], "invalid_json", "{h:?}");
        assert_eq!(h["medallion.topic"], "demo.public.broken");
        assert_eq!(h["medallion.partition"], "0");
        assert_eq!(h["medallion.offset"], i.to_string());
        assert_eq!(h["medallion.target_table"], "broken");
        assert_eq!(h["trace"], "abc", "original headers kept");
        assert!(!h["medallion.reason"].is_empty());
    }
}

/// Brokers gone for longer than `source.kafka.max_outage`: ingest stops with an error that
/// names them, and exit code 75 (retry later), instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_past_max_outage_stops_ingest_with_exit_75() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    let source = broker
        .source_toml(r"^demo\..*", "outage")
        .replace("group_id = ", "max_outage = \"3s\"\ngroup_id = ");
    let ws = Workspace::with_source(&source, "[bronze]\nmax_interval = \"1s\"\n");
    generate_to_kafka(&ws, 200);
    let mut child = spawn_ingest(&ws, &["--follow"]);
    let lines = watch_stderr(&mut child, &[""]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("a first commit")
        .contains("committed batch")
    {}
    let t = Instant::now();
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let seen: Vec<String> = lines.try_iter().collect();
            panic!("no exit 60 s after the outage:\n{}", seen.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The watcher may still be reading the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let seen: Vec<String> = lines.try_iter().collect();
    assert_eq!(st.code(), Some(75), "exit 75: {seen:?}");
    let error = seen
        .iter()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line: {seen:?}"));
    assert!(
        error.contains(&addr) && error.contains("max_outage"),
        "{error}"
    );
    eprintln!(
        "stopped {:?} after the broker went away: {error}",
        t.elapsed()
    );
    assert_eq!(landed(&ws).await, (200, 200), "what was read was committed");
}

/// A committer slower than the reader (tiny batches): the reader pauses its partitions instead
/// of piling up batches, the run report says how long, and every record lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_committer_pauses_the_reader_and_loses_nothing() {
    let broker = Broker::start();
    let ws = kafka_ws(
        &broker,
        r"^demo\..*",
        "backpressure",
        "[bronze]\nmax_rows = 100\n",
    );
    generate_to_kafka(&ws, 3_000);
    let out = ws
        .medallion_logging("info,medallion::bronze::kafka=debug")
        .args(["ingest", "--until-caught-up"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let held: f64 = stdout
        .split("s of reading held back by commits")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no held-back time in {stdout}"));
    assert!(held > 0.0, "the reader was paused: {stdout}");
    assert!(stderr.contains("committer behind: pausing"), "{stderr}");
    assert_eq!(landed(&ws).await, (3_000, 3_000));
}
