//! Table maintenance: compaction, snapshot expiry and orphan cleanup keep every row, never
//! lose a concurrent commit, and keep what restarts and incremental readers need. Checked with
//! our reader and with PyIceberg (every snapshot read back by time travel).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medallion::bronze::ingest::ingest_files;
use medallion::catalog::TableName;
use medallion::lake::LakeTable;
use medallion::maintain::{self, Layer, compact};
use medallion::silver::{self, SilverOptions};

use crate::pyiceberg::{check_with_pyiceberg, run_check};
use crate::silver::{check_against_expected, dump_line, pg_value, scenario_config, split};
use crate::support::{Backend, Workspace, fixture_event_files};

/// Lines of a Kafka-dump file.
fn lines(path: &Path) -> Vec<String> {
    std::io::BufReader::new(std::fs::File::open(path).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_path_buf()
}

/// Records per bronze table (the topic's last part).
fn records_per_table(lines: &[String]) -> HashMap<String, i64> {
    let mut n = HashMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let topic = v["topic"].as_str().unwrap();
        *n.entry(topic.rsplit('.').next().unwrap().to_string())
            .or_default() += 1;
    }
    n
}

async fn load(ws: &Workspace, layer: &str, table: &str) -> LakeTable {
    ws.lake()
        .load(&TableName::new(ws.ns(layer), table))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{layer}.{table} does not exist"))
}

/// Every bronze table holds each record of `expected` exactly once.
async fn assert_exactly_once(ws: &Workspace, expected: &HashMap<String, i64>) {
    for (table, n) in expected {
        let rows = ws
            .count(&format!("SELECT count(*) FROM bronze.{table}"))
            .await;
        let distinct = ws
            .count(&format!(
                "SELECT count(*) FROM (SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM bronze.{table})"
            ))
            .await;
        assert_eq!(
            (rows, distinct),
            (*n, *n),
            "bronze.{table}: (rows, distinct coordinates) should both be {n}"
        );
    }
}

/// PyIceberg reads every snapshot of every table of the layer (a file a kept snapshot needs
/// that is gone fails it); returns its report.
fn every_snapshot_reads(ws: &Workspace, layer: &str) -> String {
    let out = run_check("snapshots_check.py", ws, &ws.ns(layer), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "PyIceberg cannot read every snapshot of {layer}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `medallion <args>` to the end; its stdout.
fn medallion_ok(ws: &Workspace, args: &[&str]) -> String {
    let (code, out, err) = ws.run(args);
    assert_eq!(code, 0, "medallion {args:?} failed:\n{out}\n{err}");
    out
}

/// Rows of a bronze table as text, in coordinate order.
async fn bronze_rows(ws: &Workspace, table: &str) -> String {
    let batches = ws
        .query(&format!(
            "SELECT * FROM bronze.{table} ORDER BY kafka_topic, kafka_partition, kafka_offset"
        ))
        .await;
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_after_a_thousand_small_bronze_commits_while_ingest_runs() {
    let mut ws = Workspace::new("[bronze]\nmax_rows = 3\n");
    // Over 1,000 commits, each rewriting a growing metadata file: about 200 s here.
    ws.time_limit(std::time::Duration::from_secs(1_800));
    let all = ws.generated_rounds(200, 4_600, 3, 1).remove(0);
    let all_lines = lines(&all);
    // Generated in offset order per partition: the first part lands first, the rest while
    // compaction runs.
    let first = write_lines(&ws.root().join("first.jsonl"), &all_lines[..4_150]);
    let rest = write_lines(&ws.root().join("rest.jsonl"), &all_lines[4_150..]);
    medallion_ok(&ws, &["ingest", "--from", first.to_str().unwrap()]);
    let orders = load(&ws, "bronze", "orders").await;
    let before = maintain::FileStats::of(&orders, u64::MAX).await.unwrap();
    assert!(
        before.data_files >= 1_000 && before.snapshots >= 1_000,
        "not 1,000 small commits: {before:?}"
    );
    let rows_before = bronze_rows(&ws, "orders").await;
    // PyIceberg reads the thousand small files like we do (and, at the end, the compacted ones).
    check_with_pyiceberg(&ws, &ws.ns("bronze"), "bronze", &["orders".to_string()]);

    // Ingest the rest, one record a commit, and compact while it runs.
    let mut ingest = ws
        .medallion()
        .env("MEDALLION__BRONZE__MAX_ROWS", "1")
        .args(["ingest", "--from", rest.to_str().unwrap()])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while load(&ws, "bronze", "orders")
        .await
        .metadata()
        .snapshots()
        .count()
        == before.snapshots
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the second ingest never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = ws.config();
    let options = maintain::Options {
        layer: Some(Layer::Bronze),
        table: Some("orders".into()),
        compact: true,
        ..Default::default()
    };
    let reports = maintain::run(&ws.lake(), &config, &options).await.unwrap();
    let status = ingest.wait().unwrap();
    assert!(status.success(), "the concurrent ingest failed");
    let c = reports[0].compact.clone().expect("compaction ran");
    assert!(reports[0].error.is_none(), "{:?}", reports[0].error);
    assert!(
        c.data_files_rewritten >= 1_000 && c.data_files_rewritten >= 10 * c.data_files_written,
        "compaction did not cut the files 10 times: {c:?}"
    );
    assert!(
        c.commits_meanwhile > 0,
        "the ingest did not commit while compaction ran, so this test proved nothing: {c:?}"
    );

    // Nothing lost or doubled, the first part's rows unchanged.
    assert_exactly_once(&ws, &records_per_table(&all_lines)).await;
    let boundary: HashMap<i64, i64> = all_lines[4_150..]
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["topic"].as_str().unwrap().ends_with(".orders"))
        .fold(HashMap::new(), |mut m, v| {
            let (p, o) = (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
            );
            let e = m.entry(p).or_insert(o);
            *e = (*e).min(o);
            m
        });
    let filter: Vec<String> = boundary
        .iter()
        .map(|(p, o)| format!("NOT (kafka_partition = {p} AND kafka_offset >= {o})"))
        .collect();
    let batches = ws
        .query(&format!(
            "SELECT * FROM bronze.orders WHERE {} ORDER BY kafka_topic, kafka_partition, kafka_offset",
            if filter.is_empty() { "true".to_string() } else { filter.join(" AND ") }
        ))
        .await;
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string(),
        rows_before,
        "the first part's rows changed"
    );

    // Once more with nothing running: the whole table in a few files.
    let reports = maintain::run(&ws.lake(), &config, &options).await.unwrap();
    let after = &reports[0].after;
    assert!(
        after.data_files * 10 <= before.data_files && after.manifests <= 3,
        "{before:?} → {after:?}"
    );
    let tables = ws.tables(&ws.ns("bronze")).await;
    check_with_pyiceberg(&ws, &ws.ns("bronze"), "bronze", &tables);
    // The thousand small commits expired (their files deleted): every snapshot left reads.
    let out = medallion_ok(
        &ws,
        &[
            "maintain",
            "--layer",
            "bronze",
            "--expire-older-than",
            "0s",
            "--retain-last",
            "5",
        ],
    );
    assert!(out.contains("expired"), "{out}");
    let snapshots = every_snapshot_reads(&ws, "bronze");
    assert!(snapshots.contains(".orders: 5 snapshots"), "{snapshots}");
}

/// A silver compaction policy that rewrites every file and keeps every tombstone.
fn silver_policy(ws: &Workspace, table: &LakeTable, keep_tombstones: bool) -> compact::Policy {
    compact::Policy {
        target_size: 128 << 20,
        small_size: u64::MAX,
        min_input_files: 2,
        max_sequence: None,
        keep_tombstones_since: keep_tombstones.then_some(i64::MIN),
        props: silver::file_properties(&ws.config(), table),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_compaction_with_silver_committing_meanwhile_still_equals_the_source() {
    // Each fixture in nine parts. After each part lands in bronze, every silver table is
    // compacted in two steps: its new files are written, then silver runs (replacing and
    // deleting rows in the very files being rewritten), then the compaction commits and must
    // move silver's new deletes onto the rewritten rows.
    let mut rebased = 0;
    let mut skipped = 0;
    for (scenario, path) in fixture_event_files() {
        let ws = Workspace::new(scenario_config(&scenario));
        let lake = ws.lake();
        let config = ws.config();
        for part in split(&path, &ws.root().join("parts"), 9) {
            ingest_files(&lake, &config, vec![part]).await.unwrap();
            let mut prepared = Vec::new();
            for t in ws.tables(&ws.ns("silver")).await {
                let name = TableName::new(ws.ns("silver"), t.clone());
                let table = lake.load(&name).await.unwrap().unwrap();
                let policy = silver_policy(&ws, &table, true);
                prepared.push((
                    name.to_string(),
                    compact::prepare(&lake, &name, &policy).await.unwrap(),
                    policy,
                ));
            }
            let (reports, errors) = silver::run(&lake, &config, &SilverOptions::default())
                .await
                .unwrap();
            assert!(errors.is_empty(), "{scenario}: silver failed: {errors:?}");
            for (name, p, policy) in prepared {
                let report = p.commit(&lake, &policy).await.unwrap();
                // A silver run that rewrote the table (a truncate, a new column's default)
                // removed the files being compacted: that partition must be skipped.
                let rewritten = reports.iter().any(|r| r.table == name && r.rewritten);
                assert_eq!(
                    !report.skipped.is_empty(),
                    rewritten,
                    "{scenario} {name}: skipped {:?}, silver rewrote it: {rewritten}",
                    report.skipped
                );
                skipped += report.skipped.len();
                rebased += report.deletes_rebased;
            }
        }
        check_against_expected(&ws, &scenario);
        every_snapshot_reads(&ws, "silver");
        // Silver's next run finds nothing to do, and a plain maintenance run changes nothing
        // a reader sees.
        let (again, _) = silver::run(&lake, &config, &SilverOptions::default())
            .await
            .unwrap();
        assert!(again.iter().all(|r| r.up_to_date), "{scenario}: {again:?}");
        medallion_ok(&ws, &["maintain", "--layer", "silver"]);
        check_against_expected(&ws, &scenario);
    }
    assert!(
        rebased > 0 && skipped > 0,
        "no silver delete ever landed on a row being compacted ({rebased}), or no compaction \
         met a rewrite ({skipped}): the test proved less than it says"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_silver_table_still_remembers_its_deletes() {
    // Key 1 is created and deleted; silver keeps its tombstone. After compaction, a replay of
    // the create (an older event, new Kafka offset) must not bring it back. Compacting with
    // the tombstones dropped shows the test can fail.
    for keep in [true, false] {
        let ws = Workspace::new("");
        let lake = ws.lake();
        let line = |offset: i64, op: &str, lsn: i64| {
            let (before, after) = match op {
                "d" => (serde_json::json!({"id": 1}), serde_json::Value::Null),
                _ => (
                    serde_json::Value::Null,
                    serde_json::json!({"id": 1, "v": lsn, "s": "x"}),
                ),
            };
            dump_line(
                0,
                offset,
                Some("{\"id\":1}".into()),
                Some(pg_value(op, before, after, lsn)),
            )
        };
        let other = |offset: i64, id: i64| {
            dump_line(
                0,
                offset,
                Some(format!("{{\"id\":{id}}}")),
                Some(pg_value(
                    "c",
                    serde_json::Value::Null,
                    serde_json::json!({"id": id, "v": 0, "s": "y"}),
                    3_000 + id,
                )),
            )
        };
        let runs = [
            vec![line(0, "c", 2_000), other(1, 2)],
            vec![line(2, "d", 2_008), other(3, 3)],
            vec![other(4, 4)],
        ];
        for (i, run) in runs.iter().enumerate() {
            let f = write_lines(&ws.root().join(format!("run{i}.jsonl")), run);
            ingest_files(&lake, &ws.config(), vec![f]).await.unwrap();
            silver::run(&lake, &ws.config(), &SilverOptions::default())
                .await
                .unwrap();
        }
        let name = TableName::new(ws.ns("silver"), "t");
        let table = lake.load(&name).await.unwrap().unwrap();
        let report = compact::compact(&lake, &name, &silver_policy(&ws, &table, keep))
            .await
            .unwrap();
        assert_eq!(report.partitions, 1, "{report:?}");
        let replay = write_lines(&ws.root().join("replay.jsonl"), &[line(5, "c", 2_000)]);
        ingest_files(&lake, &ws.config(), vec![replay])
            .await
            .unwrap();
        silver::run(&lake, &ws.config(), &SilverOptions::default())
            .await
            .unwrap();
        let back = ws.count("SELECT count(*) FROM silver.t WHERE id = 1").await;
        assert_eq!(
            back,
            if keep { 0 } else { 1 },
            "keep tombstones = {keep}: the deleted key {}",
            if keep {
                "came back"
            } else {
                "stayed deleted without its tombstone?"
            }
        );
        assert_eq!(ws.count("SELECT count(*) FROM silver.t").await, 3 + back);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_a_killed_ingest_and_silver_still_land_everything_once() {
    let scenario = "pg-ecommerce/schemas";
    let (_, path) = fixture_event_files()
        .into_iter()
        .find(|(s, _)| s == scenario)
        .expect("the pg-ecommerce fixture");
    let ws = Workspace::new(&format!(
        "[bronze]\nmax_rows = 40\n{}",
        scenario_config(scenario)
    ));
    let parts = split(&path, &ws.root().join("parts"), 2);
    let all: Vec<String> = parts.iter().flat_map(|p| lines(p)).collect();
    medallion_ok(&ws, &["ingest", "--from", parts[0].to_str().unwrap()]);
    medallion_ok(&ws, &["silver"]);
    let bronze_before: usize = {
        let mut n = 0;
        for t in ws.tables(&ws.ns("bronze")).await {
            n += load(&ws, "bronze", &t).await.metadata().snapshots().count();
        }
        n
    };
    let out = medallion_ok(
        &ws,
        &[
            "maintain",
            "--expire-older-than",
            "0s",
            "--retain-last",
            "1",
        ],
    );
    assert!(out.contains("expired"), "{out}");
    for t in ws.tables(&ws.ns("bronze")).await {
        let table = load(&ws, "bronze", &t).await;
        // The current snapshot, and the one silver's watermark names.
        assert!(
            table.metadata().snapshots().count() <= 2,
            "bronze.{t} kept {} snapshots",
            table.metadata().snapshots().count()
        );
    }
    assert!(
        bronze_before > 20,
        "too few bronze commits to expire: {bronze_before}"
    );
    every_snapshot_reads(&ws, "bronze");
    every_snapshot_reads(&ws, "silver");

    // The second half: killed after its first commit, then run to the end.
    let mut ingest = ws
        .medallion()
        .env("MEDALLION__BRONZE__MAX_ROWS", "5")
        .args(["ingest", "--from", parts[1].to_str().unwrap()])
        .spawn()
        .unwrap();
    let snapshots = || async {
        let mut n = 0;
        for t in ws.tables(&ws.ns("bronze")).await {
            n += load(&ws, "bronze", &t).await.metadata().snapshots().count();
        }
        n
    };
    let base = snapshots().await;
    let started = Instant::now();
    while snapshots().await < base + 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the ingest never committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    medallion_ok(&ws, &["ingest", "--from", parts[1].to_str().unwrap()]);
    assert_exactly_once(&ws, &records_per_table(&all)).await;
    medallion_ok(&ws, &["silver"]);
    check_against_expected(&ws, scenario);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_compaction_and_expiry_silver_and_gold_stay_incremental_and_correct() {
    let ws = Workspace::new(&format!(
        "[bronze]\nmax_rows = 100\n{}",
        crate::silver::generated_types()
    ));
    let rounds = ws.generated_rounds(300, 3_000, 11, 3);
    medallion_ok(&ws, &["ingest", "--from", rounds[0].to_str().unwrap()]);
    medallion_ok(&ws, &["silver"]);
    medallion_ok(&ws, &["gold"]);
    // Round 2 lands in bronze but silver has not read it: bronze compaction may only rewrite
    // what silver applied.
    medallion_ok(&ws, &["ingest", "--from", rounds[1].to_str().unwrap()]);
    let applied = {
        let silver = load(&ws, "silver", "orders").await;
        let w: serde_json::Value = serde_json::from_str(
            silver
                .summary_property(medallion::silver::BRONZE_WATERMARK)
                .unwrap(),
        )
        .unwrap();
        w["sequence_number"].as_i64().unwrap()
    };
    // Everything at once: compaction, expiry down to one snapshot (but what gold read, and
    // the bronze snapshot silver applied, are kept).
    let out = medallion_ok(
        &ws,
        &[
            "maintain",
            "--compact",
            "--expire-older-than",
            "0s",
            "--retain-last",
            "1",
        ],
    );
    assert!(out.contains("compacted"), "{out}");
    let bronze = load(&ws, "bronze", "orders").await;
    let files = medallion::lake::live_files(&bronze, i64::MIN)
        .await
        .unwrap();
    assert!(
        files.iter().any(|f| f.sequence_number > applied),
        "bronze files silver has not read were compacted: {out}"
    );
    medallion_ok(&ws, &["silver"]);
    medallion_ok(&ws, &["ingest", "--from", rounds[2].to_str().unwrap()]);
    medallion_ok(&ws, &["silver"]);
    let gold = medallion_ok(&ws, &["gold"]);
    assert!(
        gold.matches("incremental").count() >= 2 && !gold.contains("is gone"),
        "gold did not build incrementally after maintenance:\n{gold}\nmaintenance:\n{out}"
    );
    let incremental = [
        rows_of(&ws, "SELECT * FROM gold.user_ltv ORDER BY user_id").await,
        rows_of(&ws, "SELECT * FROM gold.daily_revenue ORDER BY order_date").await,
    ];
    medallion_ok(&ws, &["gold", "--full-refresh"]);
    let full = [
        rows_of(&ws, "SELECT * FROM gold.user_ltv ORDER BY user_id").await,
        rows_of(&ws, "SELECT * FROM gold.daily_revenue ORDER BY order_date").await,
    ];
    assert_eq!(
        incremental, full,
        "incremental gold differs from a full build"
    );
    // Silver equals the same rounds without maintenance (the same runs: a `drop` expectation
    // makes silver depend on how events are split into runs).
    let all: Vec<String> = rounds.iter().flat_map(|r| lines(r)).collect();
    assert_exactly_once(&ws, &records_per_table(&all)).await;
    let clean = Workspace::new(&format!(
        "[bronze]\nmax_rows = 100\n{}",
        crate::silver::generated_types()
    ));
    for r in &rounds {
        medallion_ok(&clean, &["ingest", "--from", r.to_str().unwrap()]);
        medallion_ok(&clean, &["silver"]);
    }
    for t in ["users", "products", "orders"] {
        assert_eq!(
            crate::silver::silver_rows(&ws, t).await,
            crate::silver::silver_rows(&clean, t).await,
            "silver.{t} after maintenance differs from a clean run"
        );
    }
    every_snapshot_reads(&ws, "gold");
    every_snapshot_reads(&ws, "silver");
}

async fn rows_of(ws: &Workspace, sql: &str) -> String {
    arrow::util::pretty::pretty_format_batches(&ws.query(sql).await)
        .unwrap()
        .to_string()
}

/// Runs ingest with a commit that dies right before its catalog swap.
fn crash_a_commit(ws: &Workspace, file: &Path) {
    let out = ws
        .medallion()
        .env(medallion::lake::commit::CRASH_BEFORE_SWAP, "1")
        .args(["ingest", "--from", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the ingest with {} set did not crash",
        medallion::lake::commit::CRASH_BEFORE_SWAP
    );
}

/// The orphans `maintain --dry-run` lists for bronze.
fn listed_orphans(ws: &Workspace, age: &str) -> (String, Vec<String>) {
    let out = medallion_ok(
        ws,
        &[
            "maintain",
            "--layer",
            "bronze",
            "--remove-orphans-older-than",
            age,
            "--dry-run",
        ],
    );
    let paths = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("file:") || l.starts_with("s3:"))
        .map(str::to_string)
        .collect();
    (out, paths)
}

async fn orphans_of_a_crashed_commit(backend: Backend) {
    let ws = Workspace::on_backend(backend, "");
    let parts = ws.generated_rounds(100, 1_000, 5, 2);
    medallion_ok(&ws, &["ingest", "--from", parts[0].to_str().unwrap()]);
    crash_a_commit(&ws, &parts[1]);
    let (out, orphans) = listed_orphans(&ws, "0s");
    // The crashed commit's data file, manifest, manifest list and metadata file at least.
    assert!(orphans.len() >= 4, "{out}");
    assert!(orphans.iter().any(|p| p.ends_with(".parquet")), "{out}");
    assert!(
        orphans.iter().any(|p| p.ends_with(".metadata.json")),
        "{out}"
    );
    let io = ws.lake().file_io().clone();
    for p in &orphans {
        assert!(
            io.exists(p).await.unwrap(),
            "{p} was listed but does not exist"
        );
    }
    // Too young for the default age: nothing is touched.
    let (out, young) = listed_orphans(&ws, "3d");
    assert!(young.is_empty() && out.contains("too young"), "{out}");
    let out = medallion_ok(
        &ws,
        &[
            "maintain",
            "--layer",
            "bronze",
            "--remove-orphans-older-than",
            "0s",
        ],
    );
    assert!(out.contains(&format!("deleted {}", orphans.len())), "{out}");
    for p in &orphans {
        assert!(!io.exists(p).await.unwrap(), "{p} is still there");
    }
    assert!(listed_orphans(&ws, "0s").1.is_empty());
    // Nothing referenced went: every snapshot reads, and the rest lands exactly once.
    every_snapshot_reads(&ws, "bronze");
    medallion_ok(&ws, &["ingest", "--from", parts[1].to_str().unwrap()]);
    let all: Vec<String> = parts.iter().flat_map(|p| lines(p)).collect();
    assert_exactly_once(&ws, &records_per_table(&all)).await;
    let tables = ws.tables(&ws.ns("bronze")).await;
    check_with_pyiceberg(&ws, &ws.ns("bronze"), "bronze", &tables);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cleanup_removes_a_crashed_commit_and_nothing_live() {
    orphans_of_a_crashed_commit(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cleanup_on_s3_removes_a_crashed_commit_and_nothing_live() {
    orphans_of_a_crashed_commit(Backend::S3Glue).await;
}

#[test]
fn maintain_help_teaches() {
    let ws = Workspace::new("");
    let out = medallion_ok(&ws, &["maintain", "--help"]);
    for word in [
        "compact",
        "expire",
        "remove-orphans",
        "dry-run",
        "retain_last",
        "Kafka offsets",
    ] {
        assert!(out.contains(word), "--help does not mention {word}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discarding_a_history_that_compaction_just_rewrote_still_discards_it() {
    // A silver run that finds a history whose rows never reached silver discards it; if a
    // compaction of that history commits in between, the discard must not take it for another
    // silver run's and give up (the rows would then be written twice).
    let ws = Workspace::new(crate::silver::generated_types());
    let rounds = ws.generated_rounds(200, 1_500, 4, 2);
    for r in &rounds {
        medallion_ok(&ws, &["ingest", "--from", r.to_str().unwrap()]);
        medallion_ok(&ws, &["silver"]);
    }
    let lake = ws.lake();
    let name = TableName::new(ws.ns("silver"), "users_history");
    let stale = lake.load(&name).await.unwrap().unwrap();
    let policy = silver_policy(&ws, &stale, true);
    let report = compact::compact(&lake, &name, &policy).await.unwrap();
    assert_eq!(report.partitions, 1, "nothing compacted: {report:?}");
    silver::history::discard(&lake, &stale).await.unwrap();
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.users_history").await,
        0,
        "the history was not discarded"
    );
}
