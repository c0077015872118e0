//! A reader we did not write: PyIceberg's `SqlCatalog` opens our sqlite catalog and reads every
//! bronze table (data and DLQ) with the same rows as `medallion query`.

use std::path::PathBuf;
use std::process::Command;

use medallion::bronze::ingest::ingest_files;

use crate::support::{Workspace, fixture_event_files};

/// The Python with PyIceberg: `MEDALLION_PYTHON`, else the project's `.venv` made by
/// `./run.sh test`. Missing is a failure, not a skip.
pub fn python() -> PathBuf {
    let p = std::env::var_os("MEDALLION_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        p.exists(),
        "PyIceberg's Python is missing at {}: run `./run.sh setup` (or set MEDALLION_PYTHON)",
        p.display()
    );
    p
}

/// Runs `tests/<script>` with PyIceberg's Python on a workspace's catalog, warehouse and
/// `namespace`, plus `args`.
pub fn run_check(
    script: &str,
    ws: &Workspace,
    namespace: &str,
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    crate::watchdog::step(format!("python {script} on {namespace} {args:?}"));
    Command::new(python())
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .args(ws.catalog_args())
        .arg("--namespace")
        .arg(namespace)
        .args(args)
        .output()
        .unwrap()
}

/// Exports every table of the namespace with `medallion query --format json` and has PyIceberg
/// compare.
pub fn check_with_pyiceberg(ws: &Workspace, namespace: &str, layer: &str, tables: &[String]) {
    let export = ws.root().join(format!("export-{layer}"));
    std::fs::create_dir_all(&export).unwrap();
    for t in tables {
        crate::watchdog::step(format!("medallion query {layer}.{t}"));
        let out = ws
            .medallion()
            .args(["query", "--format", "json"])
            .arg(format!("SELECT * FROM {layer}.{t}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "query {t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(export.join(format!("{t}.jsonl")), &out.stdout).unwrap();
    }
    let out = run_check(
        "pyiceberg_check.py",
        ws,
        namespace,
        &[std::ffi::OsStr::new("--export"), export.as_os_str()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "PyIceberg disagrees:\n{stdout}\n{stderr}"
    );
    for t in tables {
        assert!(
            stdout.contains(&format!("{namespace}.{t}: ")),
            "{t} not checked:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_every_bronze_table_like_we_do() {
    let ws = Workspace::new("[bronze]\nmax_rows = 300\n");
    let config = ws.config();
    let lake = ws.lake();
    let mut files: Vec<PathBuf> = fixture_event_files().into_iter().map(|(_, p)| p).collect();
    // A few dead letters too, so the DLQ table is checked as well.
    let bad = ws.root().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"topic\":\"x.y.z\",\"partition\":0,\"offset\":0,\"key\":\"{}\",\"value\":\"{\\\"op\\\":\\\"q\\\"}\"}\nnot json at all\n",
    )
    .unwrap();
    files.push(bad);
    ingest_files(&lake, &config, files).await.unwrap();
    let tables = ws.tables("test_bronze").await;
    assert!(tables.len() >= 6, "{tables:?}");
    assert!(tables.contains(&"_dlq".to_string()));
    check_with_pyiceberg(&ws, "test_bronze", "bronze", &tables);
}
