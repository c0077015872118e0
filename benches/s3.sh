#!/usr/bin/env bash
# Benchmark: the whole pipeline (file -> bronze -> silver -> gold) on the embedded default and
# on S3 + Glue (SeaweedFS and moto server on this machine, as `./run.sh test` starts them), same
# events, same run: wall time, throughput and peak RSS of each stage, and the S3 + Glue / local
# ratio. Local servers hide network latency; the ratio shows what the object-store path costs
# in CPU and requests. Not a test: nothing is asserted about time.
#
# Usage: benches/s3.sh MEDALLION PYTHON [EVENTS]   (needs the MEDALLION_TEST_* variables)
set -euo pipefail
bin="$1"; py="$2"
events="${3:-1000000}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/medallion-s3-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
. "$here/common.sh"
: "${MEDALLION_TEST_S3_ENDPOINT:?start the test servers: ./run.sh bench s3 does}"

"$bin" --log warn generate --keys $((events / 4)) --events "$events" --partitions 3 --seed 9 \
  --out "$work/events.jsonl" >/dev/null
echo "== $events generated events ($(du -m "$work/events.jsonl" | cut -f1) MB of Kafka-dump JSONL)"

declare -A wall rss
for backend in local s3; do
  w="$work/$backend"; config "$w" "$backend"
  printf '[gold]\nmodels = "%s"\n' "$here/../sql/gold" >>"$w/job.toml"
  for stage in ingest silver gold; do
    args=("$stage")
    [ "$stage" = ingest ] && args+=(--from "$work/events.jsonl")
    sync
    measure "$bin" --config "$w/job.toml" --log warn "${args[@]}" >/dev/null
    read -r wall["$backend.$stage"] rss["$backend.$stage"] <"$work/last"
  done
done

echo
printf '%-8s %9s %11s %9s %13s %14s %12s\n' stage "local s" "S3+Glue s" ratio "local RSS MB" "S3 RSS MB" "S3 records/s"
for stage in ingest silver gold; do
  l="${wall[local.$stage]}"; s="${wall[s3.$stage]}"
  rate="-"; [ "$stage" = ingest ] && rate=$("$py" -c "print(f'{$events / $s:,.0f}')")
  printf '%-8s %9s %11s %9s %13s %14s %12s\n' "$stage" "$l" "$s" \
    "$("$py" -c "print(f'{$s / $l:.2f}x')")" "${rss[local.$stage]}" "${rss[s3.$stage]}" "$rate"
done
