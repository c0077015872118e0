//! Running the Kafka source into bronze, as one member of a consumer group.
//!
//! The reader thread polls the consumer, batches records and hands batches to the committer
//! task (see [`super::ingest`]). Rebalances are settled inside the consumer's callbacks:
//!
//! - on **assign**, the bronze watermarks of the new partitions are read from the catalog
//!   (another worker may have moved them) and the consumer starts exactly there;
//! - on **revoke**, the open batch is sent, and the callback waits until every batch sent so
//!   far is committed and the group offsets are committed, before the partitions move on.
//!
//! So two workers never both commit a partition's records; if one is killed mid-batch, its
//! uncommitted records are read again by the next owner from the bronze watermark. Should a
//! late commit still race a new owner, the commit-time check (watermark above the batch's
//! first offset) refuses it rather than land a record twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::BronzeError;
use super::batch::Batcher;
use super::dlq::DlqTopic;
use super::ingest::{
    CommitterTx, Handoff, IngestReport, Progress, Reading, batcher, finish_run, load_watermarks,
    spawn_committer,
};
use crate::config::{Config, KafkaConfig};
use crate::lake::Lake;
use crate::metrics::Metrics;
use crate::source::kafka::{Assignments, KafkaSource};
use crate::source::{Partition, SourceError, SourceItem};

/// How long `ingest` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until every assigned partition reached the high watermark seen at start.
    UntilCaughtUp,
    /// Until `stop` is set (SIGTERM, Ctrl-C).
    Follow,
}

/// What the reader loop and the rebalance callbacks share.
struct Pipeline {
    batcher: Batcher,
    tx: CommitterTx,
    /// Next offsets of committed batches, from the committer.
    done: std::sync::mpsc::Receiver<BTreeMap<Partition, i64>>,
    /// Committed next offsets not yet committed to the Kafka group.
    group_offsets: BTreeMap<Partition, i64>,
    /// Where consumption of each assigned partition stands (next offset), when known.
    position: HashMap<Partition, i64>,
    /// The committer stopped (a commit failed): nothing more can be committed.
    committer_gone: bool,
    /// When the first record arrived (after joining the group).
    first_record_at: Option<Instant>,
    lake: Lake,
    namespace: String,
    runtime: tokio::runtime::Handle,
}

impl Pipeline {
    fn drain_done(&mut self) {
        while let Ok(next) = self.done.try_recv() {
            for (p, n) in next {
                let e = self.group_offsets.entry(p).or_insert(n);
                *e = (*e).max(n);
            }
        }
    }

    /// Hands the open batch to the committer if it is due (or `force`) and the committer is
    /// free. Returns whether a due batch waits for the committer.
    fn offer(&mut self, force: bool) -> Result<bool, BronzeError> {
        let due =
            force || self.batcher.is_due() || self.batcher.due_in().is_some_and(|d| d.is_zero());
        if !due {
            return Ok(false);
        }
        let batcher = &mut self.batcher;
        match self.tx.try_flush(|| batcher.take())? {
            Handoff::Sent | Handoff::Nothing => Ok(false),
            Handoff::Busy => Ok(true),
            Handoff::Gone => {
                self.committer_gone = true;
                Ok(false)
            }
        }
    }

    /// Sends everything open and waits until it is committed: after this, bronze holds every
    /// record read so far, and `group_offsets` holds what the Kafka group should be told.
    fn settle(&mut self) -> Result<(), BronzeError> {
        if self.committer_gone {
            return Err(BronzeError::Stopped("committer"));
        }
        if let Some(f) = self.batcher.take()?
            && !self.tx.flush_blocking(f)
        {
            self.committer_gone = true;
        }
        if !self.tx.barrier_blocking() {
            self.committer_gone = true;
        }
        self.drain_done();
        if self.committer_gone {
            return Err(BronzeError::Stopped("committer"));
        }
        Ok(())
    }
}

/// The rebalance callbacks of the consumer, acting on the shared pipeline.
struct Hooks(Arc<Mutex<Pipeline>>);

impl Assignments for Hooks {
    fn assigned(&self, partitions: &[Partition]) -> Result<Vec<Option<i64>>, String> {
        let mut p = self.0.lock().expect("pipeline lock");
        let committed = p
            .runtime
            .block_on(load_watermarks(&p.lake, &p.namespace))
            .map_err(|e| e.to_string())?;
        p.batcher.refresh(partitions, &committed);
        let starts: Vec<Option<i64>> = partitions
            .iter()
            .map(|x| p.batcher.resume_offset(x))
            .collect();
        for (x, s) in partitions.iter().zip(&starts) {
            match s {
                Some(n) => {
                    p.position.insert(x.clone(), *n);
                }
                None => {
                    p.position.remove(x);
                }
            }
        }
        Ok(starts)
    }

    fn revoking(&self, partitions: &[Partition]) -> BTreeMap<Partition, i64> {
        let mut p = self.0.lock().expect("pipeline lock");
        let t = Instant::now();
        match p.settle() {
            Ok(()) => tracing::info!(
                partitions = partitions.len(),
                ms = t.elapsed().as_millis() as u64,
                "committed everything read before giving partitions up"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "could not commit before giving partitions up; the next owner re-reads them from bronze"
            ),
        }
        for x in partitions {
            p.position.remove(x);
        }
        std::mem::take(&mut p.group_offsets)
    }
}

/// Runs the configured Kafka source into bronze until `mode` says stop (or `stop` is set).
pub async fn ingest_kafka(
    lake: &Lake,
    config: &Config,
    mode: RunMode,
    stop: Arc<AtomicBool>,
    metrics: Metrics,
) -> Result<IngestReport, BronzeError> {
    let started = Instant::now();
    let kafka: KafkaConfig = config.source.kafka.clone().ok_or_else(|| {
        BronzeError::Source(SourceError::Kafka {
            what: "start".into(),
            message: "source.kafka is not configured".into(),
        })
    })?;
    let batcher = batcher(lake, config).await?;
    let dlq_topic = match &kafka.dlq_topic {
        Some(t) => Some(DlqTopic::connect(&kafka, t).await?),
        None => None,
    };
    let (tx, done_rx, committer) = spawn_committer(lake, config, &metrics, dlq_topic);
    let pipeline = Arc::new(Mutex::new(Pipeline {
        batcher,
        tx,
        done: done_rx,
        group_offsets: BTreeMap::new(),
        position: HashMap::new(),
        committer_gone: false,
        first_record_at: None,
        lake: lake.clone(),
        namespace: config.namespaces.bronze.clone(),
        runtime: tokio::runtime::Handle::current(),
    }));
    let hooks = Arc::new(Hooks(pipeline.clone()));
    let reader = tokio::task::spawn_blocking(move || {
        let mut source = KafkaSource::subscribe(&kafka, hooks)?;
        let mut times = LoopTimes::default();
        let r = read_loop(
            &mut source,
            &pipeline,
            &kafka,
            (mode, &stop),
            &metrics,
            &mut times,
        );
        // Leave the group: the revoke callback commits what is open.
        source.close();
        let mut p = pipeline.lock().expect("pipeline lock");
        let settled = p.settle();
        // Closing the channel lets the committer finish.
        p.tx.close();
        let counts = p.batcher.counts.clone();
        metrics.set_counts(&counts);
        r.and(settled).map(|()| Reading {
            counts,
            waited: times.paused,
            source_waited: Some(times.idle),
            first_record_after: p.first_record_at.map(|t| t - started),
        })
    });
    finish_run(started, reader, committer).await
}

/// Records polled and pushed in a row before the loop looks after batches, backpressure, lag
/// and stop conditions again.
const BURST: usize = 512;

/// Where the reader's time went.
#[derive(Default)]
struct LoopTimes {
    /// Partitions paused because the committer was behind.
    paused: Duration,
    /// Polls that returned nothing (waiting for the broker).
    idle: Duration,
}

fn read_loop(
    source: &mut KafkaSource,
    pipeline: &Mutex<Pipeline>,
    kafka: &KafkaConfig,
    (mode, stop): (RunMode, &AtomicBool),
    metrics: &Metrics,
    times: &mut LoopTimes,
) -> Result<(), BronzeError> {
    let mut progress = Progress::new(metrics.clone());
    let mut last_lag = Instant::now();
    let mut last_check = Instant::now();
    let mut last_outage_check = Instant::now();
    // Paused partitions, the assignment generation they were paused in, and since when.
    let mut paused: Option<(u64, BTreeSet<Partition>, Instant)> = None;
    let mut targets: HashMap<Partition, i64> = HashMap::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("stop requested: committing what is open");
            return Ok(());
        }
        if let Some(message) = source.fatal() {
            return Err(BronzeError::Source(SourceError::Kafka {
                what: "consume".into(),
                message,
            }));
        }
        // Hand the waiting batch over; pause while the committer is behind.
        let (waiting, due_in) = {
            let mut p = pipeline.lock().expect("pipeline lock");
            let waiting = p.offer(false)?;
            if p.committer_gone {
                return Err(BronzeError::Stopped("committer"));
            }
            p.drain_done();
            if !p.group_offsets.is_empty() {
                let offsets = std::mem::take(&mut p.group_offsets);
                source.commit_group_offsets(&offsets);
            }
            progress.tick(&p.batcher.counts);
            (waiting, p.batcher.due_in())
        };
        let (assignment, generation, joined) = source.assignment();
        if last_lag.elapsed() >= Duration::from_secs(1) {
            last_lag = Instant::now();
            let p = pipeline.lock().expect("pipeline lock");
            for x in &assignment {
                // Lag against what this process has read (not the group's committed offset).
                if let (Some(s), Some(next)) =
                    (source.stats(x).filter(|s| s.high >= 0), p.position.get(x))
                {
                    metrics.set_lag(&x.topic, x.partition, (s.high - next).max(0));
                }
            }
            drop(p);
            metrics.retain_lag(|t, n| {
                assignment
                    .iter()
                    .any(|x| &*x.topic == t && x.partition == n)
            });
            metrics.set_paused(paused.is_some());
        }
        match (&paused, waiting) {
            (None, true) => {
                tracing::debug!(partitions = assignment.len(), "committer behind: pausing");
                source.set_paused(&assignment, true);
                paused = Some((generation, assignment.clone(), Instant::now()));
            }
            (Some((g, _, since)), true) if *g != generation => {
                source.set_paused(&assignment, true);
                paused = Some((generation, assignment.clone(), *since));
            }
            (Some((_, parts, since)), false) => {
                tracing::debug!(ms = since.elapsed().as_millis() as u64, "resuming");
                times.paused += since.elapsed();
                source.set_paused(parts, false);
                paused = None;
            }
            _ => {}
        }
        // Wake up for the batch interval; while a due batch waits for the committer, check
        // back soon (the partitions are paused, polling serves callbacks only).
        let timeout = if waiting {
            Duration::from_millis(5)
        } else {
            due_in
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100))
        };
        // The hot path: a burst of records, one poll and one push each, without the
        // housekeeping above. Rebalance callbacks run inside `poll` and take the pipeline lock,
        // so it is never held across a poll.
        let polled = Instant::now();
        for n in 0..BURST {
            match source.poll(if n == 0 { timeout } else { Duration::ZERO }) {
                Some(Ok(record)) => {
                    let mut p = pipeline.lock().expect("pipeline lock");
                    if n == 0 {
                        p.first_record_at.get_or_insert(polled);
                    }
                    let (part, next) = (record.partition_id(), record.offset + 1);
                    p.batcher.push(SourceItem::Record(record));
                    match p.position.get_mut(&part) {
                        Some(e) => *e = (*e).max(next),
                        None => {
                            p.position.insert(part, next);
                        }
                    }
                    if p.batcher.is_due() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    break;
                }
                None if n == 0 => {
                    if !waiting {
                        times.idle += polled.elapsed();
                    }
                    break;
                }
                None => break,
            }
        }
        if last_outage_check.elapsed() >= Duration::from_secs(5) {
            last_outage_check = Instant::now();
            if let Some((down_for, last_error)) = source.outage() {
                if down_for >= kafka.max_outage.0 {
                    return Err(BronzeError::Source(SourceError::Outage {
                        brokers: source.servers().to_string(),
                        down_for_s: down_for.as_secs(),
                        last_error,
                    }));
                }
                tracing::warn!(
                    brokers = source.servers(),
                    down_for_s = down_for.as_secs(),
                    error = %last_error,
                    "kafka brokers unreachable; retrying"
                );
            }
        }
        if mode == RunMode::UntilCaughtUp && last_check.elapsed() >= Duration::from_millis(200) {
            last_check = Instant::now();
            if joined && caught_up(source, pipeline, &assignment, &mut targets) {
                tracing::info!(partitions = assignment.len(), "caught up");
                return Ok(());
            }
        }
    }
}

/// Whether every assigned partition reached the high watermark first seen for it. With no
/// partitions, only once the group is steady (this member has nothing to do), not in the
/// middle of a rebalance.
fn caught_up(
    source: &KafkaSource,
    pipeline: &Mutex<Pipeline>,
    assignment: &BTreeSet<Partition>,
    targets: &mut HashMap<Partition, i64>,
) -> bool {
    if assignment.is_empty() {
        return source.settled();
    }
    let p = pipeline.lock().expect("pipeline lock");
    let mut all = true;
    for x in assignment {
        let stats = source.stats(x);
        let target = match targets.get(x) {
            Some(t) => *t,
            None => match stats.filter(|s| s.high >= 0) {
                Some(s) => {
                    tracing::info!(partition = %x, high_watermark = s.high, "target");
                    targets.insert(x.clone(), s.high);
                    s.high
                }
                None => {
                    all = false;
                    continue;
                }
            },
        };
        let reached = match p.position.get(x) {
            Some(next) => *next >= target,
            // Nothing read and no bronze offsets: caught up once the log holds nothing below
            // the target.
            None => stats.is_some_and(|s| s.low >= target),
        };
        all &= reached;
    }
    all
}
