#!/usr/bin/env bash
# Benchmark: Kafka broker -> committed bronze on the embedded default, with ~1 KB events.
# Starts its own tansu broker on a free port, produces N generated records with
# `medallion generate --to-kafka`, then times `medallion ingest --until-caught-up` and reports
# records/s (from the first record, i.e. without the group join) and the ingest's peak RSS.
# With CONSUME_RATE (examples/kafka_consume_rate) it first reports how fast a bare consumer
# reads the same records from this broker: the ceiling for ingest on this machine.
# Not a test: nothing is asserted about time.
# Usage: benches/kafka_ingest.sh MEDALLION TANSU [N [CONSUME_RATE]]
set -euo pipefail
bin="$1"; tansu="$2"; n="${3:-1000000}"; consume_rate="${4:-}"
work="$(mktemp -d)"
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
broker=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
cat >"$work/job.toml" <<TOML
[catalog]
kind = "sql"
path = "$work/catalog.db"
[warehouse]
location = "$work/warehouse"
[source]
kind = "kafka"
[source.kafka]
bootstrap_servers = "127.0.0.1:$port"
topic_pattern = '^bench\\.public\\..*'
group_id = "bench"
[source.kafka.properties]
"session.timeout.ms" = "6000"
[[bronze.route]]
topic = '[^.]+\.[^.]+\.([^.]+)'
table = "\$1"
TOML
# Runs a command and writes its peak RSS (MB) to $work/rss.
peak_rss() {
  python3 - "$work/rss" "$@" <<'PY'
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))
sys.exit(code)
PY
}
SECONDS=0
"$bin" -c "$work/job.toml" --log warn generate --to-kafka --topic-prefix bench --keys $((n / 10)) \
  --events "$n" --event-size 1024 --partitions 4
echo "produced $n records in ${SECONDS}s (generator + producer, same machine)"
if [ -n "$consume_rate" ]; then
  "$consume_rate" "127.0.0.1:$port" '^bench\.public\..*' "$n"
fi
peak_rss "$bin" -c "$work/job.toml" --log warn ingest --until-caught-up | tee "$work/report"
rate=$(sed -n 's/.*; \([0-9]*\) records\/s from there/\1/p' "$work/report")
echo "kafka_ingest: $n records of ~1 KB broker -> bronze: $rate records/s (from the first record); peak RSS $(cat "$work/rss") MB"
