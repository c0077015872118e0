//! The analysts' queries: every `sql/athena/*.sql` runs unchanged in `medallion query` over the
//! demo's three layers and returns rows, and every query file (those and the gold models) is
//! Trino SQL, Athena's dialect, by `tests/trino_sql_check.py` (sqlglot's Trino parser plus the
//! constructs Athena rejects or reads differently).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pyiceberg::python;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        if f.is_dir() {
            copy_dir(&f, &to.join(f.file_name().unwrap()));
        } else {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn the_athena_examples_run_in_medallion_query_over_the_demo() {
    // The demo as the README runs it, in a copy of the repository's jobs/ and sql/.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("jobs"), &dir.path().join("jobs"));
    copy_dir(&repo().join("sql"), &dir.path().join("sql"));
    let medallion = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_medallion"))
            .current_dir(dir.path())
            .args(["--config", "jobs/local.toml", "--log", "warn"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = medallion(&["demo"]);
    assert!(ok, "{out}\n{err}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("sql/athena"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let layers = ["bronze_", "silver_", "gold_"];
    for layer in layers {
        assert!(
            files
                .iter()
                .any(|f| f.file_name().unwrap().to_str().unwrap().starts_with(layer)),
            "no sql/athena/{layer}*.sql example"
        );
    }
    for f in &files {
        let (ok, out, err) =
            medallion(&["query", "--format", "csv", "--file", f.to_str().unwrap()]);
        assert!(ok, "{}: {err}", f.display());
        assert!(
            out.lines().count() >= 2,
            "{} returned no rows on the demo:\n{out}",
            f.display()
        );
    }
    // The text itself works too (a leading `-- ` comment is not an option).
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let (ok, _, err) = medallion(&["query", &text]);
    assert!(ok, "{err}");
}

#[test]
fn every_query_file_is_trino_sql() {
    let out = Command::new(python())
        .arg(repo().join("tests/trino_sql_check.py"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every gold model and example was checked.
    for dir in ["sql/gold", "sql/athena"] {
        for f in std::fs::read_dir(repo().join(dir)).unwrap() {
            let name = f.unwrap().file_name();
            let name = name.to_str().unwrap();
            assert!(
                stdout
                    .lines()
                    .any(|l| l.starts_with("ok") && l.contains(name)),
                "{name} was not checked:\n{stdout}"
            );
        }
    }
    // The checker's own rules catch what they should.
    let out = Command::new(python())
        .arg(repo().join("tests/trino_sql_check.py"))
        .arg("--self-test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}
