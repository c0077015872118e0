//! Benchmark: file → bronze on the embedded default. Generates N records of about 1 KB, ingests
//! them, and prints records/s, MB/s and the peak RSS of this process. Not a test: no assertion
//! on time. Run: `cargo bench --bench bronze_ingest -- [RECORDS] [EVENT_SIZE]`.

use std::time::Instant;

use medallion::bronze::ingest::ingest_files;
use medallion::config::Config;
use medallion::lake::Lake;
use medallion::source::file::{DumpReader, write_record};
use medallion::source::generate::{GenerateOptions, Generator};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let records: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let event_size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let t = Instant::now();
    {
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap());
        let opts = GenerateOptions {
            keys: records / 10,
            events: records,
            event_size,
            seed: 1,
            partitions: 4,
            ..Default::default()
        };
        for r in Generator::new(opts) {
            write_record(&mut out, &r).unwrap();
        }
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    eprintln!(
        "generated {records} records ({:.0} MB, {:.0} B/record) in {:.1}s; peak RSS so far {:.0} MB",
        bytes as f64 / 1e6,
        bytes as f64 / records as f64,
        t.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    let config_text = format!(
        r#"
[catalog]
kind = "sql"
path = "{root}/catalog.db"
[warehouse]
location = "{root}/warehouse"
[source]
kind = "file"
[[bronze.route]]
topic = '[^.]+\.[^.]+\.([^.]+)'
table = "$1"
"#,
        root = dir.path().display()
    );
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MEDALLION__"))
        .collect();
    let config =
        Config::from_toml_str(&config_text, std::path::Path::new("bench.toml"), &env).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let lake = Lake::open(&config).unwrap();
        ingest_files(&lake, &config, vec![file.clone()])
            .await
            .unwrap()
    });
    let secs = report.elapsed.as_secs_f64();
    println!(
        "bronze_ingest: {} records ({:.0} MB) file -> bronze in {:.2}s: {:.0} records/s, {:.0} MB/s; {} commits; peak RSS {:.0} MB",
        report.counts.read,
        bytes as f64 / 1e6,
        secs,
        report.counts.read as f64 / secs,
        bytes as f64 / 1e6 / secs,
        report.commits,
        peak_rss_mb()
    );
    println!(
        "  reader waited for the committer {:.2}s; writing + committing took {:.2}s",
        report.reader_waited.as_secs_f64(),
        report.committing.as_secs_f64()
    );
    assert_eq!(report.counts.landed, records, "every record landed");

    // The reader stage alone (parse, decode, route, build Arrow batches; nothing written), best
    // of three runs: the ceiling of this pipeline while the writer keeps up.
    let best = (0..3)
        .map(|_| {
            let mut batcher = runtime
                .block_on(async {
                    let lake = Lake::open(&config).unwrap();
                    medallion::bronze::ingest::batcher(&lake, &config).await
                })
                .unwrap();
            let t = Instant::now();
            let mut r = DumpReader::open(&file).unwrap();
            while let Some(item) = r.next_item().unwrap() {
                batcher.push(item);
                if batcher.is_due() {
                    drop(batcher.take().unwrap());
                }
            }
            drop(batcher.take().unwrap());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "  reader stage alone (best of 3): {:.2}s, {:.0} records/s, {:.2} us/record",
        best,
        records as f64 / best,
        best * 1e6 / records as f64
    );
}
