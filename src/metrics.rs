//! Prometheus metrics of a running ingest, served as text at `GET /metrics` on
//! `--metrics-addr`.
//!
//! Counters come from the batcher's counts (copied in about once a second, so the hot path
//! pays nothing) and from the committer; gauges from the consumer's statistics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bronze::batch::Counts;

/// Upper bounds (seconds) of the commit-latency histogram buckets.
const COMMIT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct Inner {
    read_by_topic: BTreeMap<String, u64>,
    dlq_by_topic: BTreeMap<String, u64>,
    committed_rows: BTreeMap<String, u64>,
    commits: BTreeMap<String, u64>,
    last_commit: BTreeMap<String, f64>,
    commit_buckets: Vec<u64>,
    commit_sum: f64,
    commit_count: u64,
    batch_rows: u64,
    batch_bytes: u64,
    lag: BTreeMap<(String, i32), i64>,
    paused: bool,
}

/// The metrics of one process.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("metrics lock")
    }

    /// Copies the batcher's running counts.
    pub fn set_counts(&self, c: &Counts) {
        let mut m = self.lock();
        for (t, n) in &c.read_by_topic {
            m.read_by_topic.insert(t.to_string(), *n);
        }
        for (t, n) in &c.dlq_by_topic {
            m.dlq_by_topic.insert(t.to_string(), *n);
        }
    }

    /// One table's part of a batch was committed.
    pub fn committed(&self, table: &str, rows: u64, took: Duration) {
        let mut m = self.lock();
        *m.committed_rows.entry(table.to_string()).or_default() += rows;
        *m.commits.entry(table.to_string()).or_default() += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        m.last_commit.insert(table.to_string(), now);
        let secs = took.as_secs_f64();
        if m.commit_buckets.is_empty() {
            m.commit_buckets = vec![0; COMMIT_BUCKETS.len()];
        }
        for (i, b) in COMMIT_BUCKETS.iter().enumerate() {
            if secs <= *b {
                m.commit_buckets[i] += 1;
            }
        }
        m.commit_sum += secs;
        m.commit_count += 1;
    }

    /// The size of the batch just handed to the committer.
    pub fn batch(&self, rows: u64, bytes: u64) {
        let mut m = self.lock();
        m.batch_rows = rows;
        m.batch_bytes = bytes;
    }

    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lock().lag.insert((topic.to_string(), partition), lag);
    }

    /// Forgets the lag of partitions no longer assigned.
    pub fn retain_lag(&self, keep: impl Fn(&str, i32) -> bool) {
        self.lock().lag.retain(|(t, p), _| keep(t, *p));
    }

    pub fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (suffix_labels, value) in samples {
                let _ = writeln!(out, "{name}{suffix_labels} {value}");
            }
        };
        let by = |label: &str, map: &BTreeMap<String, u64>| -> Vec<(String, String)> {
            map.iter()
                .map(|(k, v)| (format!("{{{label}=\"{}\"}}", esc(k)), v.to_string()))
                .collect()
        };
        family(
            "medallion_records_consumed_total",
            "counter",
            "Records read from the source, per topic.",
            by("topic", &m.read_by_topic),
        );
        family(
            "medallion_dlq_records_total",
            "counter",
            "Records sent to the DLQ table, per topic.",
            by("topic", &m.dlq_by_topic),
        );
        family(
            "medallion_records_committed_total",
            "counter",
            "Rows committed to bronze, per table.",
            by("table", &m.committed_rows),
        );
        family(
            "medallion_commits_total",
            "counter",
            "Iceberg commits, per table.",
            by("table", &m.commits),
        );
        family(
            "medallion_last_commit_timestamp_seconds",
            "gauge",
            "Unix time of the last commit, per table.",
            m.last_commit
                .iter()
                .map(|(k, v)| (format!("{{table=\"{}\"}}", esc(k)), format!("{v:.3}")))
                .collect(),
        );
        family(
            "medallion_batch_rows",
            "gauge",
            "Rows in the last batch handed to the committer.",
            vec![(String::new(), m.batch_rows.to_string())],
        );
        family(
            "medallion_batch_bytes",
            "gauge",
            "Raw bytes in the last batch handed to the committer.",
            vec![(String::new(), m.batch_bytes.to_string())],
        );
        let mut hist: Vec<(String, String)> = COMMIT_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let c = m.commit_buckets.get(i).copied().unwrap_or(0);
                (format!("_bucket{{le=\"{b}\"}}"), c.to_string())
            })
            .collect();
        hist.push(("_bucket{le=\"+Inf\"}".into(), m.commit_count.to_string()));
        hist.push(("_sum".into(), format!("{:.6}", m.commit_sum)));
        hist.push(("_count".into(), m.commit_count.to_string()));
        family(
            "medallion_commit_seconds",
            "histogram",
            "Time to write and commit one table's part of a batch.",
            hist,
        );
        family(
            "medallion_partition_lag",
            "gauge",
            "Records behind the high watermark, per assigned partition (from fetch responses).",
            m.lag
                .iter()
                .map(|((t, p), v)| {
                    (
                        format!("{{topic=\"{}\",partition=\"{p}\"}}", esc(t)),
                        v.to_string(),
                    )
                })
                .collect(),
        );
        family(
            "medallion_paused",
            "gauge",
            "1 while partitions are paused because the committer is behind (backpressure).",
            vec![(String::new(), u8::from(m.paused).to_string())],
        );
        if let Some(rss) = resident_bytes() {
            family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the process.",
                vec![(String::new(), rss.to_string())],
            );
        }
        out
    }

    /// Serves `GET /metrics` on `addr` until the process ends. Returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let path = request.split_whitespace().nth(1).unwrap_or("");
                    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
                        ("200 OK", metrics.render())
                    } else {
                        ("404 Not Found", "see /metrics\n".to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                });
            }
        });
        Ok(bound)
    }
}

/// Escapes a label value.
/// The process's resident memory now, from `/proc/self/status` (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// [`resident_bytes`] in MiB, for logs.
pub fn resident_mib() -> u64 {
    resident_bytes().unwrap_or(0) >> 20
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_their_samples() {
        let m = Metrics::default();
        let mut c = Counts::default();
        c.read_by_topic.insert(Arc::from("a.b.c"), 7);
        m.set_counts(&c);
        m.committed("users", 5, Duration::from_millis(300));
        m.set_lag("a.b.c", 0, 12);
        let text = m.render();
        assert!(text.contains("medallion_records_consumed_total{topic=\"a.b.c\"} 7\n"));
        assert!(text.contains("medallion_records_committed_total{table=\"users\"} 5\n"));
        assert!(text.contains("medallion_commit_seconds_bucket{le=\"0.25\"} 0\n"));
        assert!(text.contains("medallion_commit_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("medallion_commit_seconds_count 1\n"));
        assert!(text.contains("medallion_partition_lag{topic=\"a.b.c\",partition=\"0\"} 12\n"));
        // Every sample follows its own TYPE line.
        let mut current = String::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                current = rest.split_whitespace().next().unwrap().to_string();
            } else if !l.starts_with('#') {
                assert!(l.starts_with(&current), "{l} outside {current}");
            }
        }
    }
}
