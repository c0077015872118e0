#!/usr/bin/env bash
# Benchmark: bronze -> silver on the embedded default. Not a test: nothing is asserted about time.
#
# 1. EVENTS generated change events over KEYS keys (default 10M over 1M) landed in bronze, then
#    `medallion silver`: wall time, peak RSS and the time of each stage. In the same run, the
#    same keep-the-latest-per-key dedupe over the same bronze Parquet files with Polars and
#    DuckDB (PyPI), timed the same way, and the ratios.
# 2. Cost follows changes, not table size: CHANGES changes (default 10k) into a silver table of
#    SMALL rows (1M) and of LARGE rows (10M); the ratio of the median silver runs (5 rounds).
# 3. The cost of data quality: the run of 1. again, with five expectations and without, from the
#    same bronze (alternating, 3 rounds each); the ratio of the medians.
#
# Usage: benches/silver.sh MEDALLION PYTHON [EVENTS [KEYS [CHANGES [SMALL [LARGE]]]]]
# PYTHON must have polars and duckdb (run.sh bench installs them).
set -euo pipefail
bin="$1"; py="$2"
events="${3:-10000000}"; keys="${4:-1000000}"; changes="${5:-10000}"
small="${6:-1000000}"; large="${7:-10000000}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/medallion-silver-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

. "$here/common.sh"

echo "== 1. $events change events over $keys keys: bronze -> silver"
a="$work/a"; config "$a"
m "$a" generate --keys "$keys" --events "$events" --fixed-keys --partitions 3 --seed 1 --out "$a/events.jsonl"
m "$a" ingest --from "$a/events.jsonl" | head -1
rm "$a/events.jsonl"
cp "$a/catalog.db" "$a/catalog.db.bronze" # bronze only, for 3.
sync # measure silver, not the kernel writing back what ingest wrote
measure "$bin" --config "$a/job.toml" --log warn silver
read -r wall rss <"$work/last"
echo "silver: ${wall}s wall, peak RSS ${rss} MB (goal: at most 15 s and 2 GB)"
ours="$(grep -o '[0-9.]*s reading bronze' "$work/out" | "$py" -c 'import sys; print(sum(float(l.split("s")[0]) for l in sys.stdin))')"
"$py" "$here/silver_dedupe.py" "$a/warehouse/bench_bronze" "$wall" "$rss" "$ours"

echo
echo "== 2. $changes changes into a silver table of $small rows vs $large rows"
# Both tables are built first, then the same change run is measured on each, alternating,
# $rounds times (the catalog is restored before each run): the medians are compared, so one
# noisy run on this shared machine does not decide the ratio.
rounds=5
for rows in "$small" "$large"; do
  w="$work/t$rows"; config "$w"
  silver_then_changes "$w" "$rows" "$changes" 2
  m "$w" ingest --from "$w/changes.jsonl" | head -1
  cp "$w/catalog.db" "$w/catalog.db.before"
done
sync
for round in $(seq "$rounds"); do
  for rows in "$small" "$large"; do
    w="$work/t$rows"
    cp "$w/catalog.db.before" "$w/catalog.db"
    measure "$bin" --config "$w/job.toml" --log warn silver >"$work/round.out"
    [ "$round" = 1 ] && cat "$work/round.out"
    read -r wall rss <"$work/last"
    echo "$rows-row silver, round $round: $changes changes applied in ${wall}s wall, peak RSS ${rss} MB"
    echo "$wall" >>"$work/changes-$rows"
  done
done
"$py" - "$work/changes-$small" "$work/changes-$large" "$small" "$large" <<'PY'
import statistics, sys
s = statistics.median(float(x) for x in open(sys.argv[1]))
l = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"median of the rounds: {s:.3f}s ({sys.argv[3]} rows), {l:.3f}s ({sys.argv[4]} rows)")
print(f"ratio {sys.argv[4]} rows / {sys.argv[3]} rows: {l / s:.2f} (goal: at most 1.5)")
PY

echo
echo "== 3. the run of 1. with five expectations vs none"
cp "$a/job.toml" "$a/job-dq.toml"
cat >>"$a/job-dq.toml" <<'TOML'
[[silver.tables.orders.expectations]]
name = "quantity_positive"
expr = "quantity > 0"
action = "warn"
[[silver.tables.orders.expectations]]
name = "price_in_range"
expr = "unit_price BETWEEN 0 AND 100000"
action = "warn"
[[silver.tables.orders.expectations]]
name = "status_known"
expr = "status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')"
action = "warn"
[[silver.tables.orders.expectations]]
name = "has_user"
expr = "user_id IS NOT NULL AND user_id > 0"
action = "drop"
[[silver.tables.users.expectations]]
name = "email_valid"
expr = "email LIKE '%@%'"
action = "quarantine"
TOML
for round in 1 2 3; do
  for kind in none dq; do
    job="$a/job.toml"; [ "$kind" = dq ] && job="$a/job-dq.toml"
    cp "$a/catalog.db.bronze" "$a/catalog.db"
    rm -rf "$a/warehouse/bench_silver"
    sync
    measure "$bin" --config "$job" --log warn silver >"$work/round.out"
    read -r wall rss <"$work/last"
    echo "expectations: $kind, round $round: ${wall}s wall, peak RSS ${rss} MB"
    echo "$wall" >>"$work/dq-$kind"
  done
done
grep -h 'warned\|dropped' "$work/round.out" | head -3 || true
"$py" - "$work/dq-none" "$work/dq-dq" <<'PY'
import statistics, sys
n = statistics.median(float(x) for x in open(sys.argv[1]))
d = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"median: {n:.2f}s without expectations, {d:.2f}s with five")
print(f"overhead of five expectations: {100 * (d / n - 1):.1f}% (goal: at most 15%)")
PY
