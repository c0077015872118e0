//! How fast the broker hands out records to a bare librdkafka consumer, with nothing done to
//! them: the ceiling for `ingest` from that broker. Used by `benches/kafka_ingest.sh`.
//!
//! Usage: kafka_consume_rate BOOTSTRAP TOPIC_REGEX N [librdkafka.key=value ...]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: kafka_consume_rate BOOTSTRAP TOPIC_REGEX N [key=value ...]");
        std::process::exit(2);
    }
    let n: u64 = args[3].parse().expect("N must be a number");
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &args[1])
        .set("group.id", format!("consume-rate-{}", std::process::id()))
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for kv in &args[4..] {
        let (k, v) = kv.split_once('=').expect("properties are key=value");
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create().expect("consumer");
    consumer.subscribe(&[&args[2]]).expect("subscribe");
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < n && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                count += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
            }
            Some(Err(e)) => eprintln!("error: {e}"),
            None => {}
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "consume_rate: {count} records, {:.0} MB in {secs:.2}s: {:.0} records/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        count as f64 / secs.max(1e-9),
        bytes as f64 / 1e6 / secs.max(1e-9)
    );
}
