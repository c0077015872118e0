//! Test workspaces: a temporary folder with its own catalog, warehouse and config file.

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use medallion::config::Config;
use medallion::lake::Lake;

use crate::watchdog::{Watchdog, default_limit};

/// The shared Debezium fixtures; a missing folder fails the test.
pub fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/debezium");
    assert!(
        dir.is_dir(),
        "the Debezium fixtures are missing: expected {} (the shared/ folder beside the repository)",
        dir.display()
    );
    dir
}

/// Every `events.jsonl.gz` under the fixtures, with a short scenario name.
pub fn fixture_event_files() -> Vec<(String, PathBuf)> {
    let root = fixtures_dir();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "events.jsonl.gz") {
                let name = p
                    .parent()
                    .unwrap()
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string();
                out.push((name, p));
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 5,
        "expected at least 5 fixture scenarios, found {}",
        out.len()
    );
    out
}

/// A seeded xorshift: `rand(n)` is in `0..n`. Seeded, so a failure can be replayed.
pub fn seeded_rand(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// Where a workspace keeps its tables: the embedded default (sqlite catalog + local folder) or
/// S3 + Glue (SeaweedFS and moto server, started by `./run.sh test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    S3Glue,
}

/// The S3 and Glue test servers `./run.sh test` starts, from the environment. Missing fails the
/// test with what to do.
pub struct AwsServices {
    pub s3_endpoint: String,
    pub glue_endpoint: String,
    pub bucket: String,
}

pub fn aws_services() -> AwsServices {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the S3 + Glue tests need SeaweedFS and moto server, which \
                 `./run.sh test` starts (or `./run.sh test-services` for a plain `cargo test`)"
            )
        })
    };
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        var(v);
    }
    AwsServices {
        s3_endpoint: var("MEDALLION_TEST_S3_ENDPOINT"),
        glue_endpoint: var("MEDALLION_TEST_GLUE_ENDPOINT"),
        bucket: var("MEDALLION_TEST_BUCKET"),
    }
}

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub backend: Backend,
    /// The namespaces are `<prefix>_bronze`, `<prefix>_silver`, `<prefix>_gold`.
    prefix: String,
    /// Past its limit, a workspace still in use is a hung test: stacks are printed, it fails.
    watchdog: Watchdog,
}

impl Workspace {
    /// A workspace with the embedded catalog and a file source; `extra` is appended to the
    /// config file.
    pub fn new(extra: &str) -> Self {
        Self::with_source("[source]\nkind = \"file\"\n", extra)
    }

    /// A workspace whose source is `source` (a `[source]` section in TOML).
    pub fn with_source(source: &str, extra: &str) -> Self {
        Self::on(Backend::Embedded, source, extra)
    }

    /// A workspace on `backend` with a file source.
    pub fn on_backend(backend: Backend, extra: &str) -> Self {
        Self::on(backend, "[source]\nkind = \"file\"\n", extra)
    }

    /// A workspace on `backend` whose source is `source`; `extra` is appended.
    pub fn on(backend: Backend, source: &str, extra: &str) -> Self {
        let ws = Self::bare(backend);
        let text = format!(
            r#"
{storage}

{source}

[[bronze.route]]
topic = '[^.]+\.[^.]+\.([^.]+)'
table = "$1"
{extra}
"#,
            storage = ws.storage_sections()
        );
        std::fs::write(&ws.config_path, text).unwrap();
        ws
    }

    fn bare(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("job.toml");
        let prefix = match backend {
            Backend::Embedded => "test".to_string(),
            // One moto server and one bucket serve every test: unique names keep them apart.
            Backend::S3Glue => format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        };
        Workspace {
            dir,
            config_path,
            backend,
            prefix,
            watchdog: Watchdog::start(default_limit()),
        }
    }

    /// For the few tests that take longer than `MEDALLION_TEST_TIMEOUT` by design: this
    /// workspace's watchdog restarts with `limit`.
    pub fn time_limit(&mut self, limit: std::time::Duration) {
        self.watchdog = Watchdog::start(limit);
    }

    /// The `[catalog]`, `[warehouse]` and `[namespaces]` sections of this workspace.
    fn storage_sections(&self) -> String {
        let storage = match self.backend {
            Backend::Embedded => format!(
                r#"
[catalog]
kind = "sql"
path = "{root}/catalog.db"
name = "medallion"

[warehouse]
location = "{root}/warehouse"
"#,
                root = self.root().display()
            ),
            Backend::S3Glue => {
                let aws = aws_services();
                format!(
                    r#"
[catalog]
kind = "glue"
region = "us-east-1"
endpoint = "{glue}"

[warehouse]
location = "s3://{bucket}/{prefix}/warehouse"

[warehouse.s3]
endpoint = "{s3}"
region = "us-east-1"
path_style = true
"#,
                    glue = aws.glue_endpoint,
                    bucket = aws.bucket,
                    prefix = self.prefix,
                    s3 = aws.s3_endpoint,
                )
            }
        };
        format!(
            "{storage}\n[namespaces]\nbronze = \"{p}_bronze\"\nsilver = \"{p}_silver\"\ngold = \"{p}_gold\"\n",
            p = self.prefix
        )
    }

    /// Generated events (`medallion generate --keys K --events N --seed S`) cut into `rounds`
    /// Kafka-dump files of about equal size, in order: each round's changes.
    pub fn generated_rounds(
        &self,
        keys: u32,
        events: u32,
        seed: u32,
        rounds: usize,
    ) -> Vec<PathBuf> {
        let all = self.root().join("events.jsonl");
        let (code, _, err) = self.run(&[
            "generate",
            "--keys",
            &keys.to_string(),
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            all.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(&all).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(lines.len().div_ceil(rounds))
            .enumerate()
            .map(|(round, part)| {
                let file = self.root().join(format!("part{round}.jsonl"));
                std::fs::write(&file, part.join("\n") + "\n").unwrap();
                file
            })
            .collect()
    }

    /// The namespace of a layer (`bronze`, `silver`, `gold`).
    pub fn ns(&self, layer: &str) -> String {
        format!("{}_{layer}", self.prefix)
    }

    /// The arguments that point `tests/catalogs.py` (PyIceberg) at this workspace's catalog.
    pub fn catalog_args(&self) -> Vec<std::ffi::OsString> {
        match self.backend {
            Backend::Embedded => vec![
                "--catalog-db".into(),
                self.root().join("catalog.db").into(),
                "--warehouse".into(),
                self.root().join("warehouse").into(),
            ],
            Backend::S3Glue => {
                let aws = aws_services();
                vec![
                    "--glue-endpoint".into(),
                    aws.glue_endpoint.into(),
                    "--s3-endpoint".into(),
                    aws.s3_endpoint.into(),
                ]
            }
        }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap()
    }

    pub fn lake(&self) -> Lake {
        Lake::open(&self.config()).unwrap()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the medallion binary with this workspace's config, logging warnings only.
    pub fn medallion(&self) -> Command {
        self.medallion_logging("warn")
    }

    /// Runs the medallion binary to the end: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.medallion().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the medallion binary with this workspace's config and a log filter.
    pub fn medallion_logging(&self, filter: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_medallion"));
        c.arg("--config")
            .arg(&self.config_path)
            .arg("--log")
            .arg(filter);
        c
    }

    pub async fn query(&self, sql: &str) -> Vec<RecordBatch> {
        let config = self.config();
        let lake = Lake::open(&config).unwrap();
        let ctx = medallion::query::session(&lake, &config).await.unwrap();
        medallion::query::run(&ctx, sql).await.unwrap()
    }

    /// A single i64 from a one-row, one-column query.
    pub async fn count(&self, sql: &str) -> i64 {
        let b = self.query(sql).await;
        let col = b[0].column(0);
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64).unwrap();
        let v = col.as_primitive::<Int64Type>();
        assert!(!v.is_null(0), "{sql} returned null");
        v.value(0)
    }

    pub async fn tables(&self, namespace: &str) -> Vec<String> {
        self.lake().catalog().list_tables(namespace).await.unwrap()
    }
}
