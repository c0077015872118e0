//! Silver equals the source: every real Debezium fixture, through bronze and silver, compared
//! with the database's final state by an independent checker (PyIceberg reads silver; the
//! fixture's own `replay_check.py` normalises both sides), in one run and in many small runs.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;

use medallion::bronze::ingest::ingest_files;
use medallion::silver::{self, SilverOptions, TableReport};

use crate::pyiceberg::{check_with_pyiceberg, python};
use crate::support::{Workspace, fixture_event_files, fixtures_dir};

/// What each scenario's consumer must be told (the fixtures' README, "Per scenario").
fn scenario_config(scenario: &str) -> &'static str {
    match scenario {
        "pg-ecommerce/noschemas" => {
            r#"
[silver.tables.products.columns]
price = "decimal(10,2)"
attributes = "json"
[silver.tables.orders.columns]
unit_price = "decimal(10,2)"
ordered_at = "timestamptz"
shipped_on = "date"
[silver.tables.users.columns]
created_at = "timestamptz"
loyalty_points = { default = 0 }
"#
        }
        "mysql-ecommerce" => {
            r#"
[silver.tables.products.columns]
tags = "json"
attributes = "json"
"#
        }
        "pg-types/string" => {
            r#"
[silver.tables.type_matrix.columns]
c_numeric_38_10 = "decimal(38,10)"
c_numeric = "decimal"
c_money = "decimal(19,2)"
"#
        }
        _ => "",
    }
}

async fn run_silver(ws: &Workspace) -> Vec<TableReport> {
    let config = ws.config();
    let (reports, errors) = silver::run(&ws.lake(), &config, &SilverOptions::default())
        .await
        .unwrap();
    assert!(errors.is_empty(), "silver failed: {errors:?}");
    reports
}

/// Runs the independent checker; panics with its output on any difference.
pub fn check_against_expected(ws: &Workspace, scenario: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/silver_check.py");
    let out = Command::new(python())
        .arg(&script)
        .arg("--catalog-db")
        .arg(ws.root().join("catalog.db"))
        .arg("--warehouse")
        .arg(ws.root().join("warehouse"))
        .arg("--namespace")
        .arg("test_silver")
        .arg("--fixture-root")
        .arg(fixtures_dir())
        .arg("--scenario")
        .arg(scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("MATCH"),
        "{scenario}: silver differs from the source's final state:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Splits a gzipped dump into `n` plain parts, in order.
fn split(path: &Path, dir: &Path, n: usize) -> Vec<PathBuf> {
    let f = std::fs::File::open(path).unwrap();
    let lines: Vec<String> = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .lines()
        .map(Result::unwrap)
        .collect();
    let per = lines.len().div_ceil(n);
    std::fs::create_dir_all(dir).unwrap();
    lines
        .chunks(per)
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.join(format!("part{i:03}.jsonl"));
            std::fs::write(&p, chunk.join("\n") + "\n").unwrap();
            p
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_equals_the_source_in_one_run() {
    for (scenario, path) in fixture_event_files() {
        let ws = Workspace::new(scenario_config(&scenario));
        ingest_files(&ws.lake(), &ws.config(), vec![path])
            .await
            .unwrap();
        let reports = run_silver(&ws).await;
        assert!(!reports.is_empty(), "{scenario}: no silver table");
        check_against_expected(&ws, &scenario);
        // Nothing new: a second run changes nothing.
        let again = run_silver(&ws).await;
        assert!(
            again.iter().all(|r| r.up_to_date),
            "{scenario}: a run with nothing new did something: {again:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_equals_the_source_in_many_small_runs() {
    // Nine bronze batches with a silver run after each: merges into existing rows (position
    // deletes), TOAST values kept from earlier runs, the ALTER TABLE default filled into rows
    // already in silver (a rewrite), a truncate after earlier runs.
    for (scenario, path) in fixture_event_files() {
        let ws = Workspace::new(scenario_config(&scenario));
        let mut rewrote = false;
        for part in split(&path, &ws.root().join("parts"), 9) {
            ingest_files(&ws.lake(), &ws.config(), vec![part])
                .await
                .unwrap();
            rewrote |= run_silver(&ws).await.iter().any(|r| r.rewritten);
        }
        check_against_expected(&ws, &scenario);
        if scenario.contains("ecommerce") || scenario.starts_with("pg-types") {
            assert!(
                rewrote,
                "{scenario}: expected a rewrite (ADD COLUMN default or truncate)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_every_silver_table_like_we_do() {
    for (scenario, path) in fixture_event_files() {
        if !(scenario == "pg-types/precise" || scenario == "mysql-ecommerce") {
            continue;
        }
        let ws = Workspace::new(scenario_config(&scenario));
        for part in split(&path, &ws.root().join("parts"), 3) {
            ingest_files(&ws.lake(), &ws.config(), vec![part])
                .await
                .unwrap();
            run_silver(&ws).await;
        }
        let tables = ws.tables("test_silver").await;
        assert!(tables.len() >= 2, "{scenario}: {tables:?}");
        check_with_pyiceberg(&ws, "test_silver", "silver", &tables);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reports_each_table_and_a_second_run_is_a_no_op() {
    let (_, path) = fixture_event_files()
        .into_iter()
        .find(|(s, _)| s == "pg-ecommerce/schemas")
        .unwrap();
    let ws = Workspace::new("");
    let out = ws
        .medallion()
        .arg("ingest")
        .arg("--from")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ws.medallion().arg("silver").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in ["orders", "products", "users"] {
        assert!(stdout.contains(&format!("test_silver.{t}: ")), "{stdout}");
    }
    assert!(stdout.contains("columns added"), "{stdout}");
    assert_eq!(ws.count("SELECT count(*) FROM silver.users").await, 72);
    assert_eq!(ws.count("SELECT count(*) FROM silver.orders").await, 304);
    let out = ws
        .medallion()
        .args(["silver", "--table", "users"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(stdout.trim(), "test_silver.users: up to date");
    let out = ws
        .medallion()
        .args(["silver", "--table", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no bronze table test_bronze.nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
