//! Running a source into bronze: a reader thread decodes and batches records while the async
//! committer writes and commits the previous batch, so parsing and Parquet encoding overlap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{Batcher, Counts, Limits};
use super::offsets::{OFFSETS_PROPERTY, Watermarks};
use super::route::Router;
use super::writer::Committer;
use super::{BronzeError, schema};
use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Lake, LakeError};
use crate::source::file::DumpReader;

/// What a run did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub counts: Counts,
    pub commits: u64,
    pub files_written: u64,
    pub elapsed: Duration,
    /// Time the reader spent waiting for the committer (backpressure).
    pub reader_waited: Duration,
    /// Time spent writing files and committing.
    pub committing: Duration,
}

impl IngestReport {
    pub fn records_per_second(&self) -> f64 {
        self.counts.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The offsets recorded in every table of the bronze namespace.
pub async fn load_watermarks(
    lake: &Lake,
    namespace: &str,
) -> Result<HashMap<Arc<str>, Watermarks>, BronzeError> {
    let mut out = HashMap::new();
    for table in lake
        .catalog()
        .list_tables(namespace)
        .await
        .map_err(LakeError::from)?
    {
        let name = TableName::new(namespace, table.clone());
        let Some(t) = lake.load(&name).await? else {
            continue;
        };
        if let Some(s) = t.summary_property(OFFSETS_PROPERTY) {
            let w = Watermarks::from_json(s).map_err(|message| LakeError::Invalid {
                table: name.to_string(),
                message,
            })?;
            out.insert(Arc::from(table), w);
        }
    }
    Ok(out)
}

/// Builds the batcher for a configuration, starting from the committed offsets.
pub async fn batcher(lake: &Lake, config: &Config) -> Result<Batcher, BronzeError> {
    let b = &config.bronze;
    let committed = load_watermarks(lake, &config.namespaces.bronze).await?;
    let data = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema::data_schema()).expect("static schema"),
    );
    let dlq = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema::dlq_schema()).expect("static schema"),
    );
    Ok(Batcher::new(
        Router::new(&b.routes),
        &b.dlq_table,
        Limits {
            max_rows: b.max_rows,
            max_bytes: b.max_bytes.0 as usize,
            max_interval: b.max_interval.0,
            max_record_bytes: b.max_record_bytes.0 as usize,
        },
        data,
        dlq,
        committed,
    ))
}

/// Ingests Kafka-dump files, in order, into bronze. Records already in bronze are skipped, so
/// running the same files again lands nothing twice.
pub async fn ingest_files(
    lake: &Lake,
    config: &Config,
    files: Vec<PathBuf>,
) -> Result<IngestReport, BronzeError> {
    let started = Instant::now();
    let mut batcher = batcher(lake, config).await?;
    let mut committer = Committer::new(lake.clone(), &config.namespaces.bronze, &config.bronze);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let reader = tokio::task::spawn_blocking(move || -> Result<(Counts, Duration), BronzeError> {
        let mut last_log = Instant::now();
        let mut waited = Duration::ZERO;
        let mut send = |f| {
            let t = Instant::now();
            let r = tx.blocking_send(f);
            waited += t.elapsed();
            r.is_err()
        };
        for path in &files {
            let mut r = DumpReader::open(path)?;
            tracing::info!(file = %path.display(), "reading");
            while let Some(item) = r.next_item()? {
                batcher.push(item);
                if batcher.is_due()
                    && let Some(f) = batcher.take()?
                    && send(f)
                {
                    return Err(BronzeError::Stopped("committer"));
                }
                if last_log.elapsed() >= Duration::from_secs(5) {
                    last_log = Instant::now();
                    let c = &batcher.counts;
                    tracing::info!(
                        read = c.read,
                        landed = c.landed,
                        dead_letters = c.dead_letters,
                        skipped = c.skipped,
                        "progress"
                    );
                }
            }
        }
        if let Some(f) = batcher.take()?
            && send(f)
        {
            return Err(BronzeError::Stopped("committer"));
        }
        Ok((batcher.counts.clone(), waited))
    });
    let mut commit_result = Ok(());
    let mut committing = Duration::ZERO;
    while let Some(flush) = rx.recv().await {
        let rows: usize = flush.parts.iter().map(|p| p.batch.num_rows()).sum();
        let t = Instant::now();
        let r = committer.commit(flush).await;
        committing += t.elapsed();
        if let Err(e) = r {
            commit_result = Err(e);
            break;
        }
        tracing::info!(rows, ms = t.elapsed().as_millis() as u64, "committed batch");
    }
    drop(rx);
    let counts = reader.await.map_err(|_| BronzeError::Stopped("reader"))?;
    commit_result?;
    let (counts, reader_waited) = counts?;
    Ok(IngestReport {
        counts,
        commits: committer.commits,
        files_written: committer.files,
        elapsed: started.elapsed(),
        reader_waited,
        committing,
    })
}
