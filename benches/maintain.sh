#!/usr/bin/env bash
# Benchmark: silver's incremental run on a table with many accumulated delete files, before and
# after `medallion maintain --compact`. Not a test: nothing is asserted about time.
#
# A silver of KEYS generated rows, then CHANGES change events landed in bronze in ROUNDS small
# commits and applied by silver one bronze file per step (silver.max_step_bytes = 1 byte), so
# silver's orders table gathers about ROUNDS position-delete files (one per step), as a pipeline
# running silver every second does (users and products are brought up to date in one step).
# Then the orders among 1,000 more changes are applied by one `silver --table orders` run on that
# table, and on the same table compacted; alternating, RUNS times each (the catalog is restored
# before each run), medians compared. Also the compaction's own time and peak RSS.
#
# Usage: benches/maintain.sh MEDALLION PYTHON [KEYS [CHANGES [ROUNDS [RUNS]]]]
set -euo pipefail
bin="$1"; py="$2"
keys="${3:-200000}"; changes="${4:-60000}"; rounds="${5:-1000}"; runs="${6:-5}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/medallion-maintain-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

. "$here/common.sh"

w="$work/w"; config "$w"
echo "== a silver of $keys rows, then $changes changes in $rounds bronze commits and silver steps"
m "$w" generate --keys "$keys" --events "$((keys + changes + 1000))" --partitions 1 --seed 9 --out "$w/all.jsonl"
head -n "$keys" "$w/all.jsonl" >"$w/snapshot.jsonl"
sed -n "$((keys + 1)),$((keys + changes))p" "$w/all.jsonl" >"$w/changes.jsonl"
tail -n 1000 "$w/all.jsonl" >"$w/last.jsonl"
m "$w" ingest --from "$w/snapshot.jsonl" | head -1
m "$w" silver >/dev/null
# One bronze commit per round (records spread over the three tables).
MEDALLION__BRONZE__MAX_ROWS="$((changes / rounds))" MEDALLION__BRONZE__MAX_INTERVAL=1h \
  m "$w" ingest --from "$w/changes.jsonl" | head -1
MEDALLION__SILVER__MAX_STEP_BYTES=1 m "$w" silver --table orders >/dev/null
m "$w" silver >/dev/null # users and products in one step each
m "$w" ingest --from "$w/last.jsonl" | head -1
m "$w" silver --table users >/dev/null
m "$w" silver --table products >/dev/null
m "$w" tables --layer silver | grep -E '^  orders '
cp "$w/catalog.db" "$w/catalog.db.before"

echo
echo "== compaction (maintain --compact --layer silver)"
measure "$bin" --config "$w/job.toml" --log warn maintain --compact --layer silver
read -r wall rss <"$work/last"
echo "compaction: ${wall}s wall, peak RSS ${rss} MB"
cp "$w/catalog.db" "$w/catalog.db.after"
m "$w" tables --layer silver | grep -E '^  orders '

echo
echo "== the orders among 1,000 more changes applied by one silver run, $runs rounds each, alternating"
for round in $(seq "$runs"); do
  for state in before after; do
    cp "$w/catalog.db.$state" "$w/catalog.db"
    measure "$bin" --config "$w/job.toml" --log warn silver --table orders >"$work/round.out"
    read -r wall rss <"$work/last"
    echo "$state compaction, round $round: ${wall}s wall, peak RSS ${rss} MB"
    echo "$wall" >>"$work/runs-$state"
  done
done
"$py" - "$work/runs-before" "$work/runs-after" <<'PY'
import statistics, sys
b = statistics.median(float(x) for x in open(sys.argv[1]))
a = statistics.median(float(x) for x in open(sys.argv[2]))
print(f"median silver run: {b:.3f}s with the delete files, {a:.3f}s after compaction: {b / a:.1f}x faster")
PY
