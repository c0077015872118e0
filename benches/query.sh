#!/usr/bin/env bash
# Benchmark: SQL reads (`medallion query`, through src/lake/scan.rs) of a silver table with many
# data files and position deletes that apply to all of them, on the embedded default. Not a
# test: nothing is asserted about time. Prints wall time and peak RSS per query (median of 3).
#
# Usage: benches/query.sh MEDALLION PYTHON [KEYS [ROUNDS]]
#   COMPARE_WITH=/path/to/other/medallion also runs every query with that binary, alternating.
#   KEYS generated keys (default 300k) go to silver first; then ROUNDS (default 20) rounds of
#   KEYS/20 changes each go through bronze and silver, each round adding data and delete files.
set -euo pipefail
bin="$1"; py="$2"
keys="${3:-300000}"; rounds="${4:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/medallion-query-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
. "$here/common.sh"

w="$work/q"; config "$w"
per=$((keys / 20))
echo "== silver of $keys keys, then $rounds rounds of $per changes"
m "$w" generate --keys "$keys" --events "$((keys + rounds * per))" --partitions 3 --seed 7 --out "$w/all.jsonl" >/dev/null
head -n "$keys" "$w/all.jsonl" >"$w/round.jsonl"
m "$w" ingest --from "$w/round.jsonl" >/dev/null
m "$w" silver >/dev/null
for r in $(seq 1 "$rounds"); do
  sed -n "$((keys + (r - 1) * per + 1)),$((keys + r * per))p" "$w/all.jsonl" >"$w/round.jsonl"
  m "$w" ingest --from "$w/round.jsonl" >/dev/null
  m "$w" silver >/dev/null
done
m "$w" tables | grep -E "silver|orders" | head -8

for sql in \
  "SELECT count(*) FROM silver.orders" \
  "SELECT status, count(*), sum(quantity * unit_price) FROM silver.orders GROUP BY status ORDER BY status" \
  "SELECT * FROM silver.orders WHERE id < 1000 ORDER BY id LIMIT 5"; do
  for b in "$bin" ${COMPARE_WITH:+"$COMPARE_WITH"}; do
    times=()
    for _ in 1 2 3; do
      measure "$b" --config "$w/job.toml" --log warn query --format csv "$sql" >/dev/null
      times+=("$(cat "$work/last")")
    done
    median="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)"
    echo "query ($b): $sql"
    echo "  median wall $(echo "$median" | cut -d' ' -f1) s, peak RSS $(echo "$median" | cut -d' ' -f2) MB (runs: ${times[*]})"
  done
done
