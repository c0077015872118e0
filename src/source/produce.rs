//! Producing raw records to Kafka: `generate --to-kafka`, `produce` (replaying a Kafka-dump
//! file into a cluster) and load tests. Records keep their topic, partition, key, value and
//! headers byte for byte; the broker assigns new offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

use super::{SourceError, SourceRecord};
use crate::config::KafkaConfig;

fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> SourceError {
    let what = what.into();
    move |e| SourceError::Kafka {
        what,
        message: e.to_string(),
    }
}

/// Client settings shared by the producer and admin client: connection and security only.
fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in &config.properties {
        // Consumer-only settings would make librdkafka warn on every producer.
        if !k.starts_with("session.")
            && !k.starts_with("heartbeat.")
            && !k.starts_with("max.poll.")
            && !k.starts_with("partition.assignment")
            && !k.starts_with("fetch.")
            && !k.starts_with("queued.")
        {
            cc.set(k, v);
        }
    }
    for (k, v) in &config.secret_properties {
        cc.set(k, v.expose());
    }
    cc.set("bootstrap.servers", &config.bootstrap_servers);
    cc
}

/// Creates the topics that do not exist yet (some brokers do not auto-create them).
pub async fn ensure_topics(
    config: &KafkaConfig,
    topics: &BTreeMap<String, i32>,
) -> Result<(), SourceError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(config)
        .create()
        .map_err(kafka_err("create an admin client"))?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, n)| NewTopic::new(t, (*n).max(1), TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(kafka_err("create topics"))?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = t, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(SourceError::Kafka {
                    what: format!("create topic {t}"),
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Delivery {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct SinkContext(Arc<Delivery>);

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                use rdkafka::message::Message;
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_error.lock().expect("delivery lock");
                first.get_or_insert_with(|| format!("{}[{}]: {e}", m.topic(), m.partition()));
            }
        }
    }
}

/// Produces records as they are, to the partition they name.
pub struct KafkaSink {
    producer: BaseProducer<SinkContext>,
    delivery: Arc<Delivery>,
    servers: String,
}

impl KafkaSink {
    pub fn connect(config: &KafkaConfig) -> Result<KafkaSink, SourceError> {
        let delivery = Arc::new(Delivery::default());
        let mut cc = client_config(config);
        cc.set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("message.max.bytes", "16000000");
        let producer = cc
            .create_with_context(SinkContext(delivery.clone()))
            .map_err(kafka_err(format!(
                "create a producer for {}",
                config.bootstrap_servers
            )))?;
        Ok(KafkaSink {
            producer,
            delivery,
            servers: config.bootstrap_servers.clone(),
        })
    }

    /// Queues one record to its own topic and partition, waiting while the producer's queue is
    /// full.
    pub fn send(&self, r: &SourceRecord) -> Result<(), SourceError> {
        self.send_to(&r.topic, Some(r.partition), r)
    }

    /// Queues one record to `topic`, to `partition` or (`None`) to the one its key hashes to.
    pub fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        r: &SourceRecord,
    ) -> Result<(), SourceError> {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        loop {
            let mut rec: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(ts) = r.timestamp_ms {
                rec = rec.timestamp(ts);
            }
            if !r.headers.is_empty() {
                rec = rec.headers(headers.clone());
            }
            match self.producer.send(rec) {
                Ok(()) => {
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    return Err(SourceError::Kafka {
                        what: format!("produce to {}[{}]", r.topic, r.partition),
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// Waits until every queued record is delivered; fails if any was not.
    pub fn finish(&self) -> Result<u64, SourceError> {
        self.producer
            .flush(Duration::from_secs(120))
            .map_err(kafka_err(format!("deliver to {}", self.servers)))?;
        let failed = self.delivery.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .delivery
                .first_error
                .lock()
                .expect("delivery lock")
                .clone()
                .unwrap_or_default();
            return Err(SourceError::Kafka {
                what: format!("deliver {failed} records to {}", self.servers),
                message: first,
            });
        }
        Ok(self.delivery.delivered.load(Ordering::Relaxed))
    }
}
