//! The commit layer: writers racing on one table through separate catalog connections all get
//! their snapshots in (compare-and-swap, reload, re-plan), and none is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use medallion::bronze::schema;
use medallion::catalog::TableName;
use medallion::config::TimePartition;
use medallion::lake::{Change, Lake};

use crate::support::Workspace;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_no_snapshot() {
    let ws = Workspace::new("");
    let name = TableName::new("test_bronze", "race");
    let s = schema::dlq_schema();
    let spec = schema::partition_spec(&s, TimePartition::Day);
    ws.lake()
        .load_or_create(&name, s, spec, Default::default())
        .await
        .unwrap();

    const WRITERS: usize = 4;
    const COMMITS: usize = 15;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        // Each writer has its own Lake, so its own sqlite connection: a separate process would
        // behave the same.
        let lake = Arc::new(ws.lake());
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            for c in 0..COMMITS {
                let key = format!("medallion.writer-{w}");
                lake.commit_with_retry(&name, |t| {
                    attempts += 1;
                    // Re-planned against the reloaded table on every retry: carry a counter.
                    let prev: usize = t
                        .summary_property(&key)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    assert_eq!(prev, c, "writer {w} sees its own previous commits");
                    Ok(Some(Change::append(
                        vec![],
                        BTreeMap::from([(key.clone(), (c + 1).to_string())]),
                    )))
                })
                .await
                .unwrap()
                .expect("committed");
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for t in tasks {
        attempts += t.await.unwrap();
    }
    let lake: Lake = ws.lake();
    let t = lake.load(&name).await.unwrap().unwrap();
    assert_eq!(
        t.metadata().snapshots().count(),
        WRITERS * COMMITS,
        "every commit is a snapshot"
    );
    for w in 0..WRITERS {
        assert_eq!(
            t.summary_property(&format!("medallion.writer-{w}")),
            Some(COMMITS.to_string().as_str()),
            "writer {w}'s properties carried through every other writer's commits"
        );
    }
    eprintln!("{} commits took {attempts} attempts", WRITERS * COMMITS);
    // The snapshot chain is linear: each parent is the previous snapshot.
    let mut n = 0;
    let mut cur = t.current_snapshot().cloned();
    while let Some(s) = cur {
        n += 1;
        cur = s
            .parent_snapshot_id()
            .and_then(|p| t.metadata().snapshot_by_id(p).cloned());
    }
    assert_eq!(n, WRITERS * COMMITS, "one linear history");
}
