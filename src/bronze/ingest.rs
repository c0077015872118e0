//! Running a source into bronze: a reader thread decodes and batches records while the async
//! committer writes and commits the previous batch, so parsing and Parquet encoding overlap.
//!
//! The reader hands batches to the committer through a channel of one: a second finished
//! batch waits (the file reader blocks; the Kafka reader pauses its partitions and keeps
//! serving the group), so memory stays bounded whatever the backlog.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::batch::{Batcher, Counts, Flush, Limits};
use super::dlq::DlqTopic;
use super::offsets::{OFFSETS_PROPERTY, Watermarks};
use super::route::Router;
use super::writer::Committer;
use super::{BronzeError, schema};
use crate::catalog::TableName;
use crate::config::Config;
use crate::lake::{Lake, LakeError};
use crate::metrics::Metrics;
use crate::source::Partition;
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
    /// Time the reader spent waiting for records from the source (Kafka: empty polls).
    pub source_waited: Option<Duration>,
    /// Time spent writing files and committing.
    pub committing: Duration,
    /// When the first record arrived (Kafka: after joining the group and being assigned).
    pub first_record_after: Option<Duration>,
}

impl IngestReport {
    pub fn records_per_second(&self) -> f64 {
        self.counts.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Records per second from the first record to the end (leaves out the group join).
    pub fn streaming_records_per_second(&self) -> f64 {
        let t = self.elapsed - self.first_record_after.unwrap_or_default();
        self.counts.read as f64 / t.as_secs_f64().max(1e-9)
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

/// What a reader sends the committer.
enum ToCommitter {
    /// A batch, with the one permit to have a batch at the committer (released once committed).
    Flush(Flush, OwnedSemaphorePermit),
    /// Answered once everything sent before it is committed (or the committer stopped).
    Barrier(std::sync::mpsc::SyncSender<()>),
}

/// The reader's end of the committer. At most one batch is at the committer at a time (being
/// committed, or queued for it), so a run holds at most two batches in memory: that one and
/// the one being read. A reader that is faster than the committer waits (file source) or
/// pauses its partitions (Kafka) with a full batch open.
pub(super) struct CommitterTx {
    tx: Option<mpsc::Sender<ToCommitter>>,
    slot: Arc<Semaphore>,
}

/// What became of a batch offered to the committer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handoff {
    Sent,
    /// Nothing was open.
    Nothing,
    /// The committer has a batch already: the open batch stays open; try again later.
    Busy,
    /// The committer stopped (a commit failed, or it was closed).
    Gone,
}

impl CommitterTx {
    /// Hands over the batch `take` produces if the committer is free; `take` is not called
    /// otherwise.
    pub(super) fn try_flush(
        &self,
        take: impl FnOnce() -> Result<Option<Flush>, BronzeError>,
    ) -> Result<Handoff, BronzeError> {
        let Some(tx) = &self.tx else {
            return Ok(Handoff::Gone);
        };
        let Ok(permit) = self.slot.clone().try_acquire_owned() else {
            return Ok(Handoff::Busy);
        };
        let Some(flush) = take()? else {
            return Ok(Handoff::Nothing);
        };
        // With the permit the channel has room but for a barrier, which is answered promptly.
        Ok(match tx.blocking_send(ToCommitter::Flush(flush, permit)) {
            Ok(()) => Handoff::Sent,
            Err(_) => Handoff::Gone,
        })
    }

    /// Hands over a batch, waiting until the committer is free. `false`: the committer is gone.
    pub(super) fn flush_blocking(&self, flush: Flush) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        let Ok(permit) = futures::executor::block_on(self.slot.clone().acquire_owned()) else {
            return false;
        };
        tx.blocking_send(ToCommitter::Flush(flush, permit)).is_ok()
    }

    /// Waits until everything handed over before is committed. `false`: the committer is gone.
    pub(super) fn barrier_blocking(&self) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        let (ack, acked) = std::sync::mpsc::sync_channel(1);
        tx.blocking_send(ToCommitter::Barrier(ack)).is_ok() && acked.recv().is_ok()
    }

    /// No more batches: the committer finishes once it has committed what it holds.
    pub(super) fn close(&mut self) {
        self.tx = None;
    }
}

/// What the committer did.
pub(super) struct CommitterReport {
    commits: u64,
    files: u64,
    committing: Duration,
}

/// The committer task of a run.
pub(super) type CommitterTask = tokio::task::JoinHandle<(CommitterReport, Result<(), BronzeError>)>;

/// What a reader thread did.
pub(super) struct Reading {
    pub counts: Counts,
    /// Time spent waiting for the committer.
    pub waited: Duration,
    /// Time spent waiting for the source (Kafka only).
    pub source_waited: Option<Duration>,
    pub first_record_after: Option<Duration>,
}

/// Starts the committer task: the reader's end of it, the committed next offsets it reports,
/// and the task.
pub(super) fn spawn_committer(
    lake: &Lake,
    config: &Config,
    metrics: &Metrics,
    dlq_topic: Option<DlqTopic>,
) -> (
    CommitterTx,
    std::sync::mpsc::Receiver<BTreeMap<Partition, i64>>,
    CommitterTask,
) {
    let committer = Committer::new(
        lake.clone(),
        &config.namespaces.bronze,
        &config.bronze,
        metrics.clone(),
    )
    .with_dlq_topic(dlq_topic);
    let (tx, rx) = mpsc::channel(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let task = tokio::spawn(run_committer(committer, rx, done_tx, metrics.clone()));
    let tx = CommitterTx {
        tx: Some(tx),
        slot: Arc::new(Semaphore::new(1)),
    };
    (tx, done_rx, task)
}

/// Waits for the reader, then for the committer, and reports the run.
pub(super) async fn finish_run(
    started: Instant,
    reader: tokio::task::JoinHandle<Result<Reading, BronzeError>>,
    committer: CommitterTask,
) -> Result<IngestReport, BronzeError> {
    let read = reader.await.map_err(|_| BronzeError::Stopped("reader"));
    let (committed, commit_result) = committer
        .await
        .map_err(|_| BronzeError::Stopped("committer"))?;
    // A commit failure explains a stopped reader: report it first.
    commit_result?;
    let reading = read??;
    Ok(IngestReport {
        counts: reading.counts,
        commits: committed.commits,
        files_written: committed.files,
        elapsed: started.elapsed(),
        reader_waited: reading.waited,
        source_waited: reading.source_waited,
        committing: committed.committing,
        first_record_after: reading.first_record_after,
    })
}

/// Commits flushes in order until the channel closes or a commit fails; reports the next
/// offsets of every committed flush on `done`.
async fn run_committer(
    mut committer: Committer,
    mut rx: mpsc::Receiver<ToCommitter>,
    done: std::sync::mpsc::Sender<BTreeMap<Partition, i64>>,
    metrics: Metrics,
) -> (CommitterReport, Result<(), BronzeError>) {
    let mut committing = Duration::ZERO;
    let mut result = Ok(());
    while let Some(msg) = rx.recv().await {
        match msg {
            ToCommitter::Flush(flush, permit) => {
                let rows: usize = flush.parts.iter().map(|p| p.batch.num_rows()).sum();
                metrics.batch(rows as u64, flush.bytes as u64);
                let next = flush.next.clone();
                let t = Instant::now();
                let r = committer.commit(flush).await;
                committing += t.elapsed();
                if let Err(e) = r {
                    result = Err(e);
                    break;
                }
                tracing::info!(rows, ms = t.elapsed().as_millis() as u64, "committed batch");
                let _ = done.send(next);
                drop(permit);
            }
            ToCommitter::Barrier(ack) => {
                let _ = ack.send(());
            }
        }
    }
    let report = CommitterReport {
        commits: committer.commits,
        files: committer.files,
        committing,
    };
    (report, result)
}

/// Logs progress every 5 s and copies the counts into the metrics every second.
pub(super) struct Progress {
    last_log: Instant,
    last_metrics: Instant,
    metrics: Metrics,
}

impl Progress {
    pub(super) fn new(metrics: Metrics) -> Self {
        Progress {
            last_log: Instant::now(),
            last_metrics: Instant::now(),
            metrics,
        }
    }

    pub(super) fn tick(&mut self, c: &Counts) {
        if self.last_metrics.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_metrics = Instant::now();
        self.metrics.set_counts(c);
        if self.last_log.elapsed() >= Duration::from_secs(5) {
            self.last_log = Instant::now();
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

/// Ingests Kafka-dump files, in order, into bronze. Records already in bronze are skipped, so
/// running the same files again lands nothing twice.
pub async fn ingest_files(
    lake: &Lake,
    config: &Config,
    files: Vec<PathBuf>,
) -> Result<IngestReport, BronzeError> {
    ingest_files_with_metrics(lake, config, files, Metrics::default()).await
}

/// [`ingest_files`], reporting to `metrics`.
pub async fn ingest_files_with_metrics(
    lake: &Lake,
    config: &Config,
    files: Vec<PathBuf>,
    metrics: Metrics,
) -> Result<IngestReport, BronzeError> {
    let started = Instant::now();
    let mut batcher = batcher(lake, config).await?;
    let (tx, _done, committer) = spawn_committer(lake, config, &metrics, None);
    let reader = tokio::task::spawn_blocking(move || -> Result<Reading, BronzeError> {
        let mut progress = Progress::new(metrics.clone());
        let mut waited = Duration::ZERO;
        let mut send = |f| {
            let t = Instant::now();
            let sent = tx.flush_blocking(f);
            waited += t.elapsed();
            !sent
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
                progress.tick(&batcher.counts);
            }
        }
        if let Some(f) = batcher.take()?
            && send(f)
        {
            return Err(BronzeError::Stopped("committer"));
        }
        metrics.set_counts(&batcher.counts);
        Ok(Reading {
            counts: batcher.counts.clone(),
            waited,
            source_waited: None,
            first_record_after: None,
        })
    });
    finish_run(started, reader, committer).await
}
