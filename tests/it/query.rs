//! Reading tables with SQL (`medallion query`, gold, replay): `lake::scan` over tables with many
//! data files whose position deletes apply to all of them — the shape that hung iceberg 0.10.1's
//! own reader (apache/iceberg-rust#2859) — read the same rows whole, filtered, limited, counted,
//! many at once, and as PyIceberg reads them.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use medallion::bronze::ingest::ingest_files;
use medallion::catalog::TableName;
use medallion::maintain::FileStats;
use medallion::silver::{self, SilverOptions};

use crate::pyiceberg::check_with_pyiceberg;
use crate::silver::generated_types;
use crate::support::Workspace;

async fn ids(ws: &Workspace, sql: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    for b in ws.query(sql).await {
        ids.extend(b.column(0).as_primitive::<Int64Type>().iter().flatten());
    }
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_with_many_files_and_shared_deletes_read_the_same_every_way() {
    let ws = Workspace::new(generated_types());
    for round in ws.generated_rounds(300, 8_000, 5, 8) {
        crate::watchdog::step(format!("ingest and silver of {}", round.display()));
        ingest_files(&ws.lake(), &ws.config(), vec![round])
            .await
            .unwrap();
        let (_, errors) = silver::run(&ws.lake(), &ws.config(), &SilverOptions::default())
            .await
            .unwrap();
        assert!(errors.is_empty(), "silver failed: {errors:?}");
    }
    let orders = ws
        .lake()
        .load(&TableName::new("test_silver", "orders"))
        .await
        .unwrap()
        .expect("silver.orders exists");
    let stats = FileStats::of(&orders, u64::MAX).await.unwrap();
    assert!(
        stats.data_files >= 4 && stats.delete_files >= 4,
        "the test needs several data and delete files: {stats:?}"
    );

    crate::watchdog::step("queries over silver.orders");
    let all = ids(&ws, "SELECT CAST(id AS BIGINT) FROM silver.orders").await;
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a key read twice: deletes not applied"
    );
    assert!(all.len() > 100, "too few rows: {}", all.len());
    assert_eq!(
        ws.count("SELECT count(*) FROM silver.orders").await,
        all.len() as i64
    );
    let cut = all[all.len() / 3];
    let below: Vec<i64> = all.iter().copied().filter(|id| *id < cut).collect();
    assert_eq!(
        ids(
            &ws,
            &format!("SELECT CAST(id AS BIGINT) FROM silver.orders WHERE id < {cut}")
        )
        .await,
        below,
        "a pushed-down filter changed the rows"
    );
    let five = ids(&ws, "SELECT CAST(id AS BIGINT) FROM silver.orders LIMIT 5").await;
    assert_eq!(five.len(), 5);
    assert!(five.iter().all(|id| unique.contains(id)));

    // The plan reads with our scan, one partition per core of the session.
    let plan = ws
        .query("EXPLAIN SELECT id FROM silver.orders WHERE id < 10")
        .await;
    let text = arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(text.contains("IcebergScan test_silver.orders"), "{text}");
    assert!(
        text.contains("predicate:["),
        "filter not pushed down:\n{text}"
    );

    // Many reads at once, each the same rows.
    let reads = (0..16).map(|_| ids(&ws, "SELECT CAST(id AS BIGINT) FROM silver.orders"));
    for read in futures::future::join_all(reads).await {
        assert_eq!(read, all);
    }

    check_with_pyiceberg(
        &ws,
        "test_silver",
        "silver",
        &ws.tables("test_silver").await,
    );
}
