//! The Kafka source: a consumer-group member on librdkafka (`rdkafka`).
//!
//! Bronze, not Kafka, is the source of truth for positions. On every assignment the consumer
//! asks its [`Assignments`] owner where each partition starts (the offsets recorded in bronze)
//! and assigns exactly those; partitions never seen follow `auto_offset_reset`. Before
//! partitions are taken away the owner commits or abandons what it holds of them, inside the
//! rebalance callback, so that the next owner starts from a settled position. Offsets are also
//! committed to the Kafka group after each bronze commit, for lag tools only.
//!
//! High watermarks come from fetch responses (librdkafka statistics, `hi_offset`), not from
//! ListOffsets, which some Kafka-protocol brokers answer wrongly for `latest`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::{Partition, SourceError, SourceRecord};
use crate::config::KafkaConfig;

/// What the owner of the consumer does when partitions come and go. Both run inside `poll`,
/// on the polling thread, before the group moves on.
pub trait Assignments: Send + Sync {
    /// Where each newly assigned partition starts (`None`: never seen, use the reset policy).
    fn assigned(&self, partitions: &[Partition]) -> Result<Vec<Option<i64>>, String>;
    /// The partitions are about to be taken away: commit or abandon what is held of them.
    /// Returns the committed next offsets still to be committed to the Kafka group, which the
    /// consumer commits before it lets the partitions go.
    fn revoking(&self, partitions: &[Partition]) -> BTreeMap<Partition, i64>;
}

/// Per-partition numbers from the latest librdkafka statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    /// High watermark from the latest fetch response.
    pub high: i64,
    /// Log start offset from the latest fetch response.
    pub low: i64,
}

#[derive(Default)]
struct Shared {
    assignment: BTreeSet<Partition>,
    /// Bumped on every assignment change.
    generation: u64,
    joined: bool,
    /// The assignment generation of the latest statistics that found the group steady.
    steady_at: Option<u64>,
    stats: HashMap<(String, i32), PartitionStats>,
    /// First broker error since the last sign of health, and the latest one.
    outage: Option<(Instant, String)>,
    fatal: Option<String>,
}

/// The consumer's context: rebalance handling, statistics and error bookkeeping.
pub struct Ctx {
    hooks: Arc<dyn Assignments>,
    reset: String,
    shared: Mutex<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let mut s = self.shared.lock().expect("kafka context lock");
        let steady = statistics
            .cgrp
            .as_ref()
            .is_some_and(|g| g.state == "up" && g.join_state == "steady");
        s.steady_at = steady.then_some(s.generation);
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                if *id < 0 {
                    continue; // the internal UA partition
                }
                s.stats.insert(
                    (topic.clone(), *id),
                    PartitionStats {
                        high: p.hi_offset,
                        low: p.lo_offset,
                    },
                );
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, "kafka client error");
        self.note_trouble(format!("{error}: {reason}"));
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{log_message}"),
            L::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| Partition {
            topic: Arc::from(e.topic()),
            partition: e.partition(),
        })
        .collect()
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts = partitions_of(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.hooks.assigned(&parts) {
                    Ok(starts) => {
                        for (p, start) in parts.iter().zip(starts) {
                            let offset = match (start, self.reset.as_str()) {
                                (Some(n), _) => Offset::Offset(n),
                                (None, "latest") => Offset::End,
                                (None, "error") => {
                                    self.fail(format!(
                                        "partition {p} has no offsets in bronze and source.kafka.auto_offset_reset = \"error\"; \
                                         set it to \"earliest\" or \"latest\" to start it"
                                    ));
                                    Offset::End
                                }
                                (None, _) => Offset::Beginning,
                            };
                            if let Err(e) = tpl.set_partition_offset(&p.topic, p.partition, offset)
                            {
                                self.fail(format!("cannot set the start offset of {p}: {e}"));
                            }
                            tracing::info!(partition = %p, start = ?offset, "assigned");
                        }
                    }
                    Err(e) => self.fail(format!(
                        "cannot read the bronze offsets for the assigned partitions: {e}"
                    )),
                }
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    self.fail(format!("cannot assign partitions: {e}"));
                }
                let mut s = self.shared.lock().expect("kafka context lock");
                if !cooperative {
                    s.assignment.clear();
                }
                s.assignment.extend(parts);
                s.generation += 1;
                s.joined = true;
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = parts.len(), "partitions revoked");
                let offsets = self.hooks.revoking(&parts);
                commit_group(consumer, &offsets);
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "unassign failed");
                }
                let mut s = self.shared.lock().expect("kafka context lock");
                for p in &parts {
                    s.assignment.remove(p);
                }
                s.generation += 1;
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                tracing::error!(error = %code, "rebalance failed; giving up all partitions");
                self.hooks.revoking(&parts);
                let _ = consumer.unassign();
                let mut s = self.shared.lock().expect("kafka context lock");
                s.assignment.clear();
                s.generation += 1;
            }
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            // Bronze holds the truth; the group offsets only feed lag tools.
            tracing::debug!(error = %e, "kafka group offset commit failed");
        }
    }
}

impl Ctx {
    /// Something went wrong talking to the brokers: the start of an outage, unless the next
    /// probe finds them answering (see [`KafkaSource::outage`]).
    fn note_trouble(&self, text: String) {
        let mut s = self.shared.lock().expect("kafka context lock");
        match &mut s.outage {
            Some((_, last)) => *last = text,
            None => s.outage = Some((Instant::now(), text)),
        }
    }

    fn fail(&self, message: String) {
        tracing::error!("{message}");
        let mut s = self.shared.lock().expect("kafka context lock");
        s.fatal.get_or_insert(message);
    }
}

/// A consumer-group member subscribed to the configured topics.
pub struct KafkaSource {
    consumer: BaseConsumer<Ctx>,
    servers: String,
    topics: Vec<Arc<str>>,
}

/// librdkafka settings medallion sets unless the configuration overrides them.
const DEFAULTS: &[(&str, &str)] = &[
    ("statistics.interval.ms", "1000"),
    // Bound the prefetch queue (memory) while keeping fetches large.
    ("queued.max.messages.kbytes", "16384"),
    // When the prefetch queue is full librdkafka waits this long before fetching again
    // (default 1 s): a reader that drains 16 MB in ~0.1 s would then sit idle for most of
    // every second (measured: 65k records/s instead of 128k/s with 1 KB events).
    ("fetch.queue.backoff.ms", "10"),
    ("fetch.wait.max.ms", "100"),
];

impl KafkaSource {
    /// Connects (lazily, like every librdkafka client) and subscribes.
    pub fn subscribe(
        config: &KafkaConfig,
        hooks: Arc<dyn Assignments>,
    ) -> Result<KafkaSource, SourceError> {
        let mut cc = ClientConfig::new();
        for (k, v) in DEFAULTS {
            cc.set(*k, *v);
        }
        for (k, v) in &config.properties {
            cc.set(k, v);
        }
        for (k, v) in &config.secret_properties {
            cc.set(k, v.expose());
        }
        // What exactly-once needs, whatever the properties say.
        cc.set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match config.auto_offset_reset.as_str() {
                    "latest" => "latest",
                    "error" => "error",
                    _ => "earliest",
                },
            );
        let ctx = Ctx {
            hooks,
            reset: config.auto_offset_reset.clone(),
            shared: Mutex::default(),
        };
        let consumer: BaseConsumer<Ctx> =
            cc.create_with_context(ctx)
                .map_err(|e| SourceError::Kafka {
                    what: format!("create a consumer for {}", config.bootstrap_servers),
                    message: e.to_string(),
                })?;
        let patterns: Vec<String> = match &config.topic_pattern {
            // librdkafka treats a subscription starting with ^ as a regex.
            Some(p) if p.starts_with('^') => vec![p.clone()],
            Some(p) => vec![format!("^.*{p}")],
            None => config.topics.clone(),
        };
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(|e| SourceError::Kafka {
            what: format!("subscribe to {}", patterns.join(", ")),
            message: e.to_string(),
        })?;
        Ok(KafkaSource {
            consumer,
            servers: config.bootstrap_servers.clone(),
            topics: Vec::new(),
        })
    }

    /// The next message or error, waiting at most `timeout`; rebalance callbacks run inside.
    pub fn poll(&mut self, timeout: Duration) -> Option<Result<SourceRecord, KafkaError>> {
        let m = match self.consumer.poll(timeout)? {
            Ok(m) => m,
            Err(e) => {
                self.ctx().note_trouble(e.to_string());
                return Some(Err(e));
            }
        };
        let topic = match self.topics.iter().find(|t| ***t == *m.topic()) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(m.topic());
                if self.topics.len() < 4096 {
                    self.topics.push(t.clone());
                }
                t
            }
        };
        // A record is no sign of health: it may come from the prefetch queue after the brokers
        // went away. Only a successful probe ends an outage.
        Some(Ok(record_of(&m, topic)))
    }

    fn ctx(&self) -> &Ctx {
        self.consumer.context()
    }

    /// The partitions assigned now, and a counter that changes with every assignment change.
    pub fn assignment(&self) -> (BTreeSet<Partition>, u64, bool) {
        let s = self.ctx().shared.lock().expect("kafka context lock");
        (s.assignment.clone(), s.generation, s.joined)
    }

    /// Whether the group was steady (joined, not rebalancing) in statistics taken since the
    /// latest assignment change. Between the revocation and the next assignment of an eager
    /// rebalance this process holds nothing, but it is not done.
    pub fn settled(&self) -> bool {
        let s = self.ctx().shared.lock().expect("kafka context lock");
        s.joined && s.steady_at == Some(s.generation)
    }

    /// Latest statistics of a partition (watermarks from fetch responses).
    pub fn stats(&self, p: &Partition) -> Option<PartitionStats> {
        let s = self.ctx().shared.lock().expect("kafka context lock");
        s.stats.get(&(p.topic.to_string(), p.partition)).copied()
    }

    /// A fatal problem found in a callback (a reset policy of "error", a failed assign).
    pub fn fatal(&self) -> Option<String> {
        self.ctx()
            .shared
            .lock()
            .expect("kafka context lock")
            .fatal
            .clone()
    }

    /// How long the brokers have been failing, with the latest error, if they are. Probes the
    /// cluster (a metadata request) to find out whether it is back; only that ends an outage.
    pub fn outage(&self) -> Option<(Duration, String)> {
        let (since, last) = {
            let s = self.ctx().shared.lock().expect("kafka context lock");
            s.outage.clone()?
        };
        // One topic's metadata, not the whole cluster's (slow on large clusters).
        let topic = self.topics.first().map(|t| t.to_string());
        if self
            .consumer
            .fetch_metadata(topic.as_deref(), Duration::from_secs(5))
            .is_ok()
        {
            self.ctx().shared.lock().expect("kafka context lock").outage = None;
            return None;
        }
        Some((since.elapsed(), last))
    }

    pub fn servers(&self) -> &str {
        &self.servers
    }

    /// Stops or restarts fetching from partitions (backpressure).
    pub fn set_paused(&self, partitions: &BTreeSet<Partition>, paused: bool) {
        if partitions.is_empty() {
            return;
        }
        let tpl = tpl_of(partitions.iter().map(|p| (p, None)));
        let r = if paused {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, paused, "pause/resume failed");
        }
    }

    /// Commits next offsets to the Kafka group (for lag tools; bronze holds the truth).
    pub fn commit_group_offsets(&self, next: &BTreeMap<Partition, i64>) {
        commit_group(&self.consumer, next);
    }

    /// Leaves the group: partitions are revoked through the callback first (up to 5 s), then
    /// the consumer is closed, which also waits for the group offset commits in flight (up to
    /// 5 s).
    pub fn close(self) {
        self.consumer.unsubscribe();
        // Serve the revoke callback that unsubscribing queues.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !self.assignment().0.is_empty() {
            let _ = self.consumer.poll(Duration::from_millis(50));
        }
        // rdkafka's Drop waits without limit for librdkafka to finish closing, which never
        // happens while the brokers are unreachable (found by the outage test: the process hung
        // after reporting the outage). Close with a deadline here; past it, leave the client to
        // the process exit rather than hang.
        let deadline = Instant::now() + Duration::from_secs(5);
        if self.consumer.close_queue().is_ok() {
            while !self.consumer.closed() && Instant::now() < deadline {
                let _ = self.consumer.poll(Duration::from_millis(20));
            }
        }
        if !self.consumer.closed() {
            tracing::warn!(
                brokers = %self.servers,
                "could not leave the consumer group cleanly (brokers unreachable?); the group will expire this member"
            );
            std::mem::forget(self.consumer);
        }
    }
}

/// Commits next offsets to the group, asynchronously: librdkafka's synchronous commit waits
/// without limit for a coordinator, which hung the revoke callback (and so the whole process)
/// when the brokers were gone. Closing the consumer waits for the commits in flight.
fn commit_group(consumer: &BaseConsumer<Ctx>, next: &BTreeMap<Partition, i64>) {
    if next.is_empty() {
        return;
    }
    let tpl = tpl_of(next.iter().map(|(p, n)| (p, Some(*n))));
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "kafka group offset commit failed");
    }
}

fn tpl_of<'a>(parts: impl Iterator<Item = (&'a Partition, Option<i64>)>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in parts {
        match offset {
            Some(n) => {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(n));
            }
            None => {
                tpl.add_partition(&p.topic, p.partition);
            }
        }
    }
    tpl
}

/// Copies a Kafka message into a source record: raw bytes, untouched.
fn record_of(m: &BorrowedMessage<'_>, topic: Arc<str>) -> SourceRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    SourceRecord {
        topic,
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}
