//! Gold: every shipped model gives its golden output over a fixed, hand-written silver; they
//! build over generated silver in dependency order, PyIceberg reads every gold table like
//! `medallion query`; incremental models equal a full rebuild after every round of changes;
//! and a failing assertion publishes nothing: the model keeps its previous snapshot and the
//! models that read it are skipped.

use std::path::{Path, PathBuf};

use crate::pyiceberg::check_with_pyiceberg;
use crate::silver::generated_types;
use crate::support::Workspace;

/// The repository's models.
pub fn shipped_models() -> PathBuf {
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

async fn gold_table(ws: &Workspace, model: &str) -> Option<medallion::lake::LakeTable> {
    ws.lake()
        .load(&medallion::catalog::TableName::new("test_gold", model))
        .await
        .unwrap()
}

async fn snapshot(ws: &Workspace, model: &str) -> Option<i64> {
    gold_table(ws, model)
        .await
        .and_then(|t| t.current_snapshot().map(|s| s.snapshot_id()))
}

/// A gold table's rows as `medallion query --format csv` prints them, ordered by the first
/// column.
fn gold_csv(ws: &Workspace, model: &str) -> String {
    let (code, out, err) = ws.run(&[
        "query",
        "--format",
        "csv",
        &format!("SELECT * FROM gold.{model} ORDER BY 1"),
    ]);
    assert_eq!(code, 0, "{err}");
    out
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

    // A second run replaces a table model in one new snapshot, with the same rows; an
    // incremental model whose inputs did not change is left as it is.
    let products = ws
        .count("SELECT count(*) FROM gold.product_performance")
        .await;
    let (before, ltv) = (
        snapshot(&ws, "product_performance").await,
        snapshot(&ws, "user_ltv").await,
    );
    let (code, out, err) = ws.run(&["gold", "--model", "product_performance"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("full (materialized: table)"), "{out}");
    assert_ne!(snapshot(&ws, "product_performance").await, before);
    assert_eq!(
        ws.count("SELECT count(*) FROM gold.product_performance")
            .await,
        products
    );
    let (code, out, err) = ws.run(&["gold", "--model", "user_ltv"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(snapshot(&ws, "user_ltv").await, ltv);
}

/// The repository's golden files: a fixed silver (`tests/golden/silver/*.sql`, built as
/// tables of the silver namespace) and each model's expected rows (`expected/<model>.csv`,
/// worked out by hand).
fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_model_gives_its_golden_output() {
    let ws = Workspace::new(&format!(
        "[gold]\nmodels = \"{}\"\n",
        shipped_models().display()
    ));
    // The fixed silver: the fixture "models" built into the silver namespace.
    let out = ws
        .medallion()
        .env("MEDALLION__NAMESPACES__GOLD", "test_silver")
        .env("MEDALLION__NAMESPACES__SILVER", "test_unused")
        .env("MEDALLION__GOLD__MODELS", golden().join("silver"))
        .arg("gold")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        ws.tables("test_silver").await,
        ["orders", "products", "users"]
    );

    let (code, out, err) = ws.run(&["gold"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut models = Vec::new();
    for f in std::fs::read_dir(shipped_models()).unwrap() {
        let model = f
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let expected = std::fs::read_to_string(golden().join(format!("expected/{model}.csv")))
            .unwrap_or_else(|e| {
                panic!("{model} has no golden output in tests/golden/expected: {e}")
            });
        assert_eq!(gold_csv(&ws, &model), expected, "gold.{model}");
        models.push(model);
    }
    assert_eq!(models.len(), 5);
    check_with_pyiceberg(&ws, "test_gold", "gold", &models);

    // daily_revenue is partitioned by month, as its header says.
    let table = gold_table(&ws, "daily_revenue").await.unwrap();
    let spec = table.metadata().default_partition_spec();
    let fields: Vec<String> = spec.fields().iter().map(|f| f.name.clone()).collect();
    assert_eq!(fields, ["order_date_month"]);
}

/// Models of the shipped set plus two that move keys: an order changing status leaves one
/// status and joins another (so the old image must count), and a user whose last pending
/// order is paid leaves the model altogether.
const MOVING_KEYS: [(&str, &str); 2] = [
    (
        "orders_per_status.sql",
        "-- materialized: incremental\n-- unique_key: status\n\
         -- changed_keys: status FROM silver.orders\n\
         SELECT status, COUNT(*) AS orders, SUM(quantity) AS units FROM silver.orders GROUP BY status",
    ),
    (
        "pending_per_user.sql",
        "-- materialized: incremental\n-- unique_key: user_id\n\
         -- changed_keys: user_id FROM silver.orders\n-- partitioned_by: bucket(4, user_id)\n\
         SELECT user_id, COUNT(*) AS pending, MIN(ordered_at) AS oldest FROM silver.orders \
         WHERE status = 'pending' GROUP BY user_id",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_models_equal_a_full_rebuild_after_every_round() {
    let models = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(shipped_models()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, models.path().join(f.file_name().unwrap())).unwrap();
    }
    for (file, sql) in MOVING_KEYS {
        std::fs::write(models.path().join(file), sql).unwrap();
    }
    let incremental = [
        "daily_revenue",
        "user_ltv",
        "orders_per_status",
        "pending_per_user",
    ];
    // The smallest memory budget: models wait for each other, the engine's pool is tight.
    let ws = Workspace::new(&format!(
        "[gold]\nmodels = \"{}\"\nparallelism = 4\nmax_memory = \"64MiB\"\n{}",
        models.path().display(),
        generated_types()
    ));
    for (round, file) in ws
        .generated_rounds(200, 8000, 11, 4)
        .into_iter()
        .enumerate()
    {
        for args in [
            &["ingest", "--from", file.to_str().unwrap()][..],
            &["silver"],
        ] {
            let (code, _, err) = ws.run(args);
            assert_eq!(code, 0, "{args:?}: {err}");
        }
        let (code, out, err) = ws.run(&["gold"]);
        assert_eq!(code, 0, "{out}\n{err}");
        for m in incremental {
            let line = out
                .lines()
                .find(|l| l.starts_with(m))
                .unwrap_or_else(|| panic!("{out}"));
            let how = if round == 0 {
                "full (first build)"
            } else {
                "incremental:"
            };
            assert!(line.contains(how), "round {round}: {line}");
        }
        let built: Vec<String> = incremental.iter().map(|m| gold_csv(&ws, m)).collect();
        // The same models rebuilt in full.
        let (code, out, err) = ws.run(&["gold", "--full-refresh"]);
        assert_eq!(code, 0, "{out}\n{err}");
        for (m, inc) in incremental.iter().zip(&built) {
            let full = gold_csv(&ws, m);
            assert!(full.lines().count() > 2, "{m}: {full}");
            assert_eq!(
                inc, &full,
                "round {round}: gold.{m} built incrementally differs from a full rebuild"
            );
        }
    }
    // Users whose last pending order moved on left the model.
    let pending = ws.count("SELECT count(*) FROM gold.pending_per_user").await;
    assert!(ws.count("SELECT count(*) FROM silver.users").await > pending);

    // New partitioning: rebuilt in full under the new spec, the old files' manifests keep
    // theirs; the rows are the same.
    let path = models.path().join("pending_per_user.sql");
    let sql = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        sql.replace("bucket(4, user_id)", "truncate(50, user_id)"),
    )
    .unwrap();
    let before = gold_csv(&ws, "pending_per_user");
    let (code, out, err) = ws.run(&["gold", "--model", "pending_per_user"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("full (the model file changed"), "{out}");
    let after = gold_csv(&ws, "pending_per_user");
    assert_eq!(before, after);
    let table = gold_table(&ws, "pending_per_user").await.unwrap();
    let spec = table.metadata().default_partition_spec();
    assert_eq!(spec.fields()[0].name, "user_id_trunc");
    assert!(table.metadata().partition_specs_iter().count() >= 2);
    check_with_pyiceberg(&ws, "test_gold", "gold", &incremental.map(str::to_string));
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
            "-- materialized: incremental",
            "-- materialized: incremental\n-- assert_sql: SELECT * FROM {{ this }} WHERE segment = 'vip' AND orders = 0",
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
    // user_ltv's file is back as it was built and nothing it reads changed: it is up to date.
    std::fs::write(&path, sql).unwrap();
    let (code, out, err) = ws.run(&["gold", "--model", "user_ltv", "--downstream"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(snapshot(&ws, "user_ltv").await, ltv);
    assert_ne!(snapshot(&ws, "user_segments").await, segments);
}
