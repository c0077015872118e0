//! Storage failures: retried with backoff while they last (nothing lost, nothing twice), and
//! past `retry.max_elapsed` the run stops with exit 75 and an error naming what failed.
//!
//! The failure is real, not mocked: the table's `data` folder is replaced by a plain file, so
//! creating data files under it fails (even for root, unlike a permission change).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::Workspace;

/// Generates `events` demo events and splits them into two dump files (first half, second).
fn two_files(ws: &Workspace, events: u64) -> (PathBuf, PathBuf, usize) {
    let all = ws.root().join("all.jsonl");
    let st = ws
        .medallion()
        .args(["generate", "--keys", "50", "--events", &events.to_string()])
        .arg("--out")
        .arg(&all)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let (pa, pb) = (ws.root().join("a.jsonl"), ws.root().join("b.jsonl"));
    std::fs::write(&pa, a.join("\n") + "\n").unwrap();
    std::fs::write(&pb, b.join("\n") + "\n").unwrap();
    (pa, pb, lines.len())
}

fn data_dir(ws: &Workspace, table: &str) -> PathBuf {
    ws.root()
        .join("warehouse")
        .join("test_bronze")
        .join(table)
        .join("data")
}

/// Replaces the folder with a plain file; returns where the folder went.
fn break_storage(data: &Path) -> PathBuf {
    let aside = data.with_extension("aside");
    std::fs::rename(data, &aside).unwrap();
    std::fs::write(data, b"not a folder").unwrap();
    aside
}

fn heal_storage(data: &Path, aside: &Path) {
    std::fs::remove_file(data).unwrap();
    std::fs::rename(aside, data).unwrap();
}

async fn rows(ws: &Workspace) -> i64 {
    let mut n = 0;
    for t in ["users", "products", "orders"] {
        n += ws.count(&format!("SELECT count(*) FROM bronze.{t}")).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_that_heals_is_retried_and_loses_nothing() {
    let ws = Workspace::new("[retry]\nmax_elapsed = \"60s\"\nmax_backoff = \"500ms\"\n");
    let (a, b, total) = two_files(&ws, 400);
    let st = ws.medallion().arg("ingest").arg("--from").arg(&a).status();
    assert!(st.unwrap().success());
    let data = data_dir(&ws, "users");
    assert!(
        data.is_dir(),
        "{} exists after the first ingest",
        data.display()
    );
    let aside = break_storage(&data);

    let child = ws
        .medallion()
        .arg("ingest")
        .arg("--from")
        .arg(&b)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    heal_storage(&data, &aside);
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying") && stderr.contains("test_bronze.users"),
        "the failure was seen and retried: {stderr}"
    );
    eprintln!("finished {:?} after the storage healed", t.elapsed());
    assert_eq!(rows(&ws).await, total as i64, "every record once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_past_max_elapsed_stops_with_exit_75() {
    let ws = Workspace::new("[retry]\nmax_elapsed = \"2s\"\nmax_backoff = \"200ms\"\n");
    let (a, b, _) = two_files(&ws, 200);
    let st = ws.medallion().arg("ingest").arg("--from").arg(&a).status();
    assert!(st.unwrap().success());
    let before = rows(&ws).await;
    let data = data_dir(&ws, "users");
    let aside = break_storage(&data);
    let out = ws
        .medallion()
        .arg("ingest")
        .arg("--from")
        .arg(&b)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("gave up on writing the data files of test_bronze.users")
            && stderr.contains("retry.max_elapsed"),
        "{stderr}"
    );
    // The tables are as they were before the failed run; healed, a rerun lands the rest.
    heal_storage(&data, &aside);
    assert!(rows(&ws).await >= before);
    let st = ws.medallion().arg("ingest").arg("--from").arg(&b).status();
    assert!(st.unwrap().success());
    let out = ws
        .medallion()
        .args(["query", "--format", "csv"])
        .arg("SELECT count(*) - count(DISTINCT kafka_topic || ':' || CAST(kafka_partition AS VARCHAR) || ':' || CAST(kafka_offset AS VARCHAR)) FROM bronze.users")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().nth(1), Some("0"), "no duplicates: {text}");
}
