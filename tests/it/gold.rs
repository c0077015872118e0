//! Gold: the shipped models build over generated silver in dependency order, PyIceberg reads
//! every gold table like `medallion query`, and a failing assertion publishes nothing: the
//! model keeps its previous snapshot and the models that read it are skipped.

use std::path::{Path, PathBuf};

use crate::pyiceberg::check_with_pyiceberg;
use crate::silver::generated_types;
use crate::support::Workspace;

/// The repository's models.
fn shipped_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql/gold")
}

/// A workspace typed like the demo, with gold models from `models`, and generated events
/// through bronze and silver.
fn workspace_with_silver(models: &Path) -> Workspace {
    let ws = Workspace::new(&format!(
        "[gold]\nmodels = \"{}\"\n{}",
        models.display(),
        generated_types()
    ));
    let file = ws.root().join("events.jsonl");
    let file = file.to_str().unwrap();
    for args in [
        &[
            "generate", "--keys", "300", "--events", "6000", "--seed", "3", "--out", file,
        ][..],
        &["ingest", "--from", file],
        &["silver"],
    ] {
        let (code, _, err) = ws.run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    ws
}

async fn snapshot(ws: &Workspace, model: &str) -> Option<i64> {
    ws.lake()
        .load(&medallion::catalog::TableName::new("test_gold", model))
        .await
        .unwrap()
        .and_then(|t| t.current_snapshot().map(|s| s.snapshot_id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_models_build_in_order_and_pyiceberg_reads_them() {
    let ws = workspace_with_silver(&shipped_models());
    let (code, out, err) = ws.run(&["gold", "--plan"]);
    assert_eq!(code, 0, "{err}");
    let pos = |m: &str| {
        out.find(&format!(". {m} "))
            .unwrap_or_else(|| panic!("{m}: {out}"))
    };
    assert!(pos("user_ltv") < pos("user_segments"), "{out}");

    let (code, out, err) = ws.run(&["gold"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let models = [
        "daily_revenue",
        "orders_by_status",
        "product_performance",
        "user_ltv",
        "user_segments",
    ];
    for m in models {
        let line = out
            .lines()
            .find(|l| l.starts_with(m))
            .unwrap_or_else(|| panic!("{m}: {out}"));
        assert!(line.contains("built"), "{line}");
    }
    // Every user has a row, and the segments add up to the users.
    let users = ws.count("SELECT count(*) FROM silver.users").await;
    assert!(users > 100, "{users}");
    assert_eq!(ws.count("SELECT count(*) FROM gold.user_ltv").await, users);
    assert_eq!(
        ws.count("SELECT CAST(sum(users) AS BIGINT) FROM gold.user_segments")
            .await,
        users
    );
    assert_eq!(
        ws.count(
            "SELECT count(*) FROM gold.orders_by_status o JOIN \
             (SELECT status, count(*) AS n FROM silver.orders GROUP BY status) s \
             ON o.status = s.status AND o.orders = s.n"
        )
        .await,
        ws.count("SELECT count(DISTINCT status) FROM silver.orders")
            .await
    );
    check_with_pyiceberg(&ws, "test_gold", "gold", &models.map(str::to_string));

    // A second run replaces each table in one new snapshot, with the same rows.
    let before = snapshot(&ws, "user_ltv").await;
    let (code, _, err) = ws.run(&["gold", "--model", "user_ltv"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(snapshot(&ws, "user_ltv").await, before);
    assert_eq!(ws.count("SELECT count(*) FROM gold.user_ltv").await, users);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_assertion_publishes_nothing_and_skips_downstream_models() {
    let models = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(shipped_models()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, models.path().join(f.file_name().unwrap())).unwrap();
    }
    let ws = workspace_with_silver(models.path());
    let (code, _, err) = ws.run(&["gold"]);
    assert_eq!(code, 0, "{err}");
    let ltv = snapshot(&ws, "user_ltv").await;
    let segments = snapshot(&ws, "user_segments").await;
    let rows = ws.count("SELECT count(*) FROM gold.user_ltv").await;

    // Every user would now be a VIP, which an assertion forbids.
    let path = models.path().join("user_ltv.sql");
    let sql = std::fs::read_to_string(&path).unwrap();
    let broken = sql
        .replace(
            "-- materialized: table",
            "-- materialized: table\n-- assert_sql: SELECT * FROM {{ this }} WHERE segment = 'vip' AND orders = 0",
        )
        .replace(">= 1000 THEN 'vip'", ">= 0 THEN 'vip'");
    std::fs::write(&path, broken).unwrap();
    let (code, out, err) = ws.run(&["gold"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("user_ltv") && l.contains("FAILED")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("user_segments") && l.contains("skipped")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("daily_revenue") && l.contains("built")),
        "{out}"
    );
    assert!(
        err.contains(
            "assertion `sql: SELECT * FROM {{ this }} WHERE segment = 'vip' AND orders = 0` failed"
        ),
        "{err}"
    );
    assert!(
        err.contains("user_segments: skipped: user_ltv did not build"),
        "{err}"
    );
    assert!(
        err.contains("| user_id"),
        "a sample of the failing rows: {err}"
    );
    assert_eq!(snapshot(&ws, "user_ltv").await, ltv);
    assert_eq!(snapshot(&ws, "user_segments").await, segments);
    assert_eq!(ws.count("SELECT count(*) FROM gold.user_ltv").await, rows);

    // --model with --downstream runs the model and those that read it, nothing else.
    std::fs::write(&path, sql).unwrap();
    let (code, out, err) = ws.run(&["gold", "--model", "user_ltv", "--downstream"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_ne!(snapshot(&ws, "user_ltv").await, ltv);
    assert_ne!(snapshot(&ws, "user_segments").await, segments);
}
