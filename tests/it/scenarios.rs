//! The scenario suite, run on the embedded default (sqlite catalog, local folder) and on S3 +
//! Glue (SeaweedFS and moto server, started by `./run.sh test`): every real Debezium fixture
//! through bronze and silver in three runs, equal to the source's final state; generated events
//! through bronze, silver and gold in two rounds (the second incremental). PyIceberg reads every
//! table of every layer with the same rows as `medallion query`; on Glue, every Glue table is
//! checked field by field against what Athena needs (`tests/glue_check.py`).

use std::collections::BTreeSet;

use medallion::bronze::ingest::ingest_files;
use medallion::silver::{self, SilverOptions};

use crate::glue::glue_check;
use crate::gold::shipped_models;
use crate::pyiceberg::check_with_pyiceberg;
use crate::silver::{check_against_expected, generated_types, scenario_config, split};
use crate::support::{Backend, Workspace, fixture_event_files};

async fn check_layers(ws: &Workspace, layers: &[&str]) {
    for layer in layers {
        let ns = ws.ns(layer);
        let tables = ws.tables(&ns).await;
        assert!(!tables.is_empty(), "no {layer} tables");
        check_with_pyiceberg(ws, &ns, layer, &tables);
    }
}

async fn fixtures_through_bronze_and_silver(backend: Backend) {
    let mut types = BTreeSet::new();
    for (scenario, path) in fixture_event_files() {
        let ws = Workspace::on_backend(backend, scenario_config(&scenario));
        for part in split(&path, &ws.root().join("parts"), 3) {
            crate::watchdog::step(format!(
                "{scenario}: ingest and silver of {}",
                part.display()
            ));
            ingest_files(&ws.lake(), &ws.config(), vec![part])
                .await
                .unwrap();
            let (reports, errors) =
                silver::run(&ws.lake(), &ws.config(), &SilverOptions::default())
                    .await
                    .unwrap();
            assert!(errors.is_empty(), "{scenario}: silver failed: {errors:?}");
            assert!(!reports.is_empty(), "{scenario}: no silver table");
        }
        check_against_expected(&ws, &scenario);
        check_layers(&ws, &["bronze", "silver"]).await;
        if backend == Backend::S3Glue {
            types.extend(glue_check(&ws, &["bronze", "silver"]));
        }
    }
    if backend == Backend::S3Glue {
        // The fixtures cover the type mapping: every kind of column silver writes.
        for t in [
            "boolean",
            "int",
            "long",
            "float",
            "double",
            "decimal",
            "date",
            "timestamp",
            "timestamptz",
            "string",
            "binary",
            "list",
            "struct",
        ] {
            assert!(
                types.contains(t),
                "no fixture column of type {t}: {types:?}"
            );
        }
    }
}

async fn generated_events_through_gold(backend: Backend) {
    let ws = Workspace::on_backend(
        backend,
        &format!(
            "[gold]\nmodels = \"{}\"\n{}",
            shipped_models().display(),
            generated_types()
        ),
    );
    for (round, file) in ws.generated_rounds(300, 6000, 5, 2).into_iter().enumerate() {
        for args in [
            &["ingest", "--from", file.to_str().unwrap()][..],
            &["silver"],
        ] {
            let (code, _, err) = ws.run(args);
            assert_eq!(code, 0, "round {round} {args:?}: {err}");
        }
        let (code, out, err) = ws.run(&["gold"]);
        assert_eq!(code, 0, "round {round}: {out}\n{err}");
        let ltv = out
            .lines()
            .find(|l| l.starts_with("user_ltv"))
            .unwrap_or_else(|| panic!("{out}"));
        let how = if round == 0 {
            "full (first build)"
        } else {
            "incremental:"
        };
        assert!(ltv.contains(how), "round {round}: {ltv}");
        // Gold reflects silver after every round.
        let users = ws.count("SELECT count(*) FROM silver.users").await;
        assert!(users > 100, "{users}");
        assert_eq!(ws.count("SELECT count(*) FROM gold.user_ltv").await, users);
        assert_eq!(
            ws.count("SELECT CAST(sum(users) AS BIGINT) FROM gold.user_segments")
                .await,
            users
        );
        assert_eq!(
            ws.count("SELECT CAST(sum(orders) AS BIGINT) FROM gold.orders_by_status")
                .await,
            ws.count("SELECT count(*) FROM silver.orders").await
        );
    }
    check_layers(&ws, &["bronze", "silver", "gold"]).await;
    if backend == Backend::S3Glue {
        glue_check(&ws, &["bronze", "silver", "gold"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_through_bronze_and_silver_on_the_embedded_catalog() {
    fixtures_through_bronze_and_silver(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_through_bronze_and_silver_on_s3_and_glue() {
    fixtures_through_bronze_and_silver(Backend::S3Glue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_events_through_gold_on_the_embedded_catalog() {
    generated_events_through_gold(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_events_through_gold_on_s3_and_glue() {
    generated_events_through_gold(Backend::S3Glue).await;
}
