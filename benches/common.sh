# Shared by the benchmark scripts: a workspace config, and timing a command. Source it after
# setting bin (the medallion binary), py (a Python), here (benches/) and work (a scratch folder).

config() { # $1: workspace folder; $2: "s3" for S3 + Glue (the test servers' MEDALLION_TEST_*)
  mkdir -p "$1"
  if [ "${2:-}" = s3 ]; then
    local p="b$(date +%s%N)"
    cat >"$1/job.toml" <<TOML
[catalog]
kind = "glue"
region = "us-east-1"
endpoint = "$MEDALLION_TEST_GLUE_ENDPOINT"
[warehouse]
location = "s3://$MEDALLION_TEST_BUCKET/$p"
[warehouse.s3]
endpoint = "$MEDALLION_TEST_S3_ENDPOINT"
region = "us-east-1"
path_style = true
[namespaces]
bronze = "${p}_bronze"
silver = "${p}_silver"
gold = "${p}_gold"
TOML
  else
    cat >"$1/job.toml" <<TOML
[catalog]
kind = "sql"
path = "$1/catalog.db"
[warehouse]
location = "$1/warehouse"
[namespaces]
bronze = "bench_bronze"
silver = "bench_silver"
gold = "bench_gold"
TOML
  fi
  cat >>"$1/job.toml" <<TOML
[source]
kind = "file"
[bronze]
max_rows = 1000000
max_bytes = "256MiB"
[[bronze.route]]
topic = '[^.]+\.[^.]+\.([^.]+)'
table = "\$1"
TOML
  # The demo's column types for the generated (schema-less) events (not its expectations: the
  # benchmark measures silver itself).
  awk '/^\[/ { keep = ($0 ~ /^\[silver\.tables\.[a-z_]+\.columns\]$/) } keep' \
    "$here/../jobs/local.toml" >>"$1/job.toml"
}

# Runs a command, prints its output (also kept in $work/out), and writes
# "<wall seconds> <peak RSS MB>" to $work/last.
measure() {
  "$py" - "$work" "$@" <<'PY'
import os, subprocess, sys, time
work, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
text = p.stdout.read()
_, status, usage = os.wait4(p.pid, 0)
wall = time.monotonic() - t
assert status == 0, f"{cmd} failed: {status}"
print(text, end="")
open(f"{work}/out", "w").write(text)
open(f"{work}/last", "w").write(f"{wall:.3f} {usage.ru_maxrss / 1024:.0f}\n")
PY
}

# medallion on a workspace: m FOLDER ARGS...
m() { "$bin" --config "$1/job.toml" --log warn "${@:2}"; }

# A silver of KEYS generated rows, and CHANGES change events after them left in
# FOLDER/changes.jsonl (not ingested): silver_then_changes FOLDER KEYS CHANGES SEED
silver_then_changes() {
  m "$1" generate --keys "$2" --events "$(($2 + $3))" --partitions 3 --seed "$4" --out "$1/all.jsonl"
  head -n "$2" "$1/all.jsonl" >"$1/snapshot.jsonl"
  tail -n +"$(($2 + 1))" "$1/all.jsonl" >"$1/changes.jsonl"
  rm "$1/all.jsonl"
  m "$1" ingest --from "$1/snapshot.jsonl" | head -1
  m "$1" silver | grep -v '^  time' || true
  rm "$1/snapshot.jsonl"
}
