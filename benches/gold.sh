#!/usr/bin/env bash
# Benchmark: the shipped gold models (sql/gold) over a silver of ORDERS orders (default 1M), on
# the embedded default. Not a test: nothing is asserted about time.
#
# 1. The first build (every model in full, incremental ones too): wall time, peak RSS, and each
#    model's time from the report.
# 2. A second full build (--full-refresh), the steady cost of a full refresh.
# 3. CHANGES change events (default 10k) through bronze and silver, then `medallion gold`:
#    the incremental models (daily_revenue, user_ltv) rebuild only the keys the changes touch;
#    the table models rebuild in full.
#
# Usage: benches/gold.sh MEDALLION PYTHON [ORDERS [CHANGES]]
set -euo pipefail
bin="$1"; py="$2"
orders="${3:-1000000}"; changes="${4:-10000}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/medallion-gold-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
. "$here/common.sh"

w="$work/g"; config "$w"
printf '[gold]\nmodels = "%s"\n' "$here/../sql/gold" >>"$w/job.toml"
# The generator's snapshot is 3/4 orders, 1/5 users, 1/20 products.
keys=$((orders * 4 / 3))
echo "== silver of about $orders orders ($keys keys), then $changes changes"
silver_then_changes "$w" "$keys" "$changes" 5
m "$w" query "SELECT (SELECT count(*) FROM silver.orders) AS orders, (SELECT count(*) FROM silver.users) AS users, (SELECT count(*) FROM silver.products) AS products"
sync

run() { # $1: label, then gold's arguments
  local label="$1"; shift
  echo
  echo "== $label"
  measure "$bin" --config "$w/job.toml" --log warn gold "$@"
  read -r wall rss <"$work/last"
  echo "$label: ${wall}s wall, peak RSS ${rss} MB"
}
run "1. first build (all models in full)"
run "2. full refresh" --full-refresh
m "$w" ingest --from "$w/changes.jsonl" | head -1
m "$w" silver | grep -v '^  time' || true
sync
run "3. after $changes changes (incremental models rebuild the changed keys)"
