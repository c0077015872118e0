#!/usr/bin/env bash
# Tests airflow/dags/cdc_pipeline_dag.py with real Apache Airflow:
#   1. a DagBag import test: no import error, DAG ids, ingest >> every silver task >> gold in
#      cdc_pipeline, maintain_bronze >> maintain_silver >> maintain_gold in cdc_maintenance;
#   2. `airflow dags test cdc_pipeline`, then `airflow dags test cdc_maintenance`, end to end
#      against the local stack.
#
# The local stack must already run, with its connectors (the caller starts them):
#   export CARGO_TARGET_DIR=/path/to/target   # where target/debug/medallion is
#   ./run.sh start && ./run.sh connectors
#   airflow/test_dag.sh
#
# Airflow lives in its own venv, .medallion/airflow-venv (created on the first run), with its
# state in .medallion/airflow-home. AIRFLOW_VERSION (2.10.5) and AIRFLOW_CONSTRAINTS (the official
# constraints file for that version and this Python; a URL or a local file) can be overridden.
# SKIP_DAGS_TEST=1 runs only the import test (no stack needed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

AIRFLOW_VERSION="${AIRFLOW_VERSION:-2.10.5}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
PY_MINOR="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
# The versions this repository was tested with (pip freeze of a working venv; GitHub, where the
# official constraints live, is not reachable from every CI machine), else the official file.
VENDORED="$ROOT/airflow/constraints-$AIRFLOW_VERSION-py$PY_MINOR.txt"
if [ -f "$VENDORED" ]; then DEFAULT_CONSTRAINTS="$VENDORED"; else
  DEFAULT_CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-$PY_MINOR.txt"
fi
AIRFLOW_CONSTRAINTS="${AIRFLOW_CONSTRAINTS:-$DEFAULT_CONSTRAINTS}"
VENV="$ROOT/.medallion/airflow-venv"
DAGS="$ROOT/airflow/dags"
DAG_ID="cdc_pipeline"
MAINTENANCE_DAG_ID="cdc_maintenance"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
took() { say "$1 took $(( $(date +%s) - $2 )) s"; }

mkdir -p "$ROOT/.medallion"

# --- the Airflow venv -------------------------------------------------------------------------
t=$(date +%s)
if ! "$VENV/bin/python" -c "import airflow, sys; sys.exit(airflow.__version__ != '$AIRFLOW_VERSION')" 2>/dev/null; then
  say "installing apache-airflow==$AIRFLOW_VERSION into $VENV (log: .medallion/airflow-pip.log)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed"
  "$VENV/bin/pip" install --quiet --upgrade pip >"$ROOT/.medallion/airflow-pip.log" 2>&1 || true
  constraint=()
  if [ -f "$AIRFLOW_CONSTRAINTS" ]; then
    constraint=(--constraint "$AIRFLOW_CONSTRAINTS")
  elif curl -fsS -m 20 -o "$ROOT/.medallion/airflow-constraints.txt" "$AIRFLOW_CONSTRAINTS" 2>/dev/null; then
    constraint=(--constraint "$ROOT/.medallion/airflow-constraints.txt")
  else
    say "WARNING: cannot fetch $AIRFLOW_CONSTRAINTS; installing without the constraints file"
  fi
  "$VENV/bin/pip" install "apache-airflow==$AIRFLOW_VERSION" "${constraint[@]}" \
    >>"$ROOT/.medallion/airflow-pip.log" 2>&1 || die "pip install failed; see .medallion/airflow-pip.log"
  took "installing Airflow" "$t"
else
  say "reusing $VENV (Airflow $AIRFLOW_VERSION)"
fi
export PATH="$VENV/bin:$PATH"

# --- Airflow's home: sqlite metadata database, our DAG folder only ----------------------------
export AIRFLOW_HOME="$ROOT/.medallion/airflow-home"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$DAGS"
export AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH=10
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
mkdir -p "$AIRFLOW_HOME"

t=$(date +%s)
say "airflow db migrate ($AIRFLOW_HOME)"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -40 "$AIRFLOW_HOME/db-migrate.log" >&2; die "airflow db migrate failed"; }
took "airflow db migrate" "$t"

# --- 1. the DagBag import test ----------------------------------------------------------------
t=$(date +%s)
say "DagBag import test"
DAGS="$DAGS" DAG_ID="$DAG_ID" MAINTENANCE_DAG_ID="$MAINTENANCE_DAG_ID" python - <<'PY'
import os, sys
from airflow.models import DagBag

bag = DagBag(dag_folder=os.environ["DAGS"], include_examples=False)
if bag.import_errors:
    for path, error in bag.import_errors.items():
        print(f"import error in {path}:\n{error}", file=sys.stderr)
    sys.exit(1)
dag_id = os.environ["DAG_ID"]
assert dag_id in bag.dags, f"DAG {dag_id!r} not found; found {sorted(bag.dags)}"
dag = bag.dags[dag_id]

ids = set(dag.task_dict)
ingest = dag.get_task("ingest")
silver = sorted(t for t in ids if t.startswith("silver_"))
gold = sorted(t for t in ids if t == "gold" or t.startswith("gold_"))
assert silver, "no silver tasks"
assert gold, "no gold tasks"
expected = {"silver_users", "silver_products", "silver_orders"}
if not os.environ.get("MEDALLION_SILVER_TABLES") and not os.environ.get("AIRFLOW_VAR_MEDALLION_SILVER_TABLES"):
    assert set(silver) == expected, f"silver tasks {silver}, expected {sorted(expected)}"

assert ingest.upstream_task_ids == set(), f"ingest has upstream tasks {ingest.upstream_task_ids}"
# ingest directly upstream of every silver task, every silver task upstream of gold
# (directly of the single gold task, or of the first wave of per-model tasks)
for s in silver:
    task = dag.get_task(s)
    assert task.upstream_task_ids == {"ingest"}, f"{s} upstream {task.upstream_task_ids}"
roots = [g for g in gold if not (dag.get_task(g).upstream_task_ids - set(silver))]
assert roots, "no gold task directly after silver"
for g in roots:
    assert dag.get_task(g).upstream_task_ids == set(silver), f"{g} upstream {dag.get_task(g).upstream_task_ids}"
for g in gold:
    ancestors = {t.task_id for t in dag.get_task(g).get_flat_relatives(upstream=True)}
    assert set(silver) | {"ingest"} <= ancestors, f"{g} does not follow every silver task"

for t in dag.tasks:
    assert t.retries > 0 and t.retry_exponential_backoff, f"{t.task_id}: no exponential retries"
    assert t.execution_timeout is not None, f"{t.task_id}: no execution_timeout"

# cdc_maintenance: maintain_bronze >> maintain_silver >> maintain_gold, one run at a time, daily
maintenance_id = os.environ["MAINTENANCE_DAG_ID"]
assert maintenance_id in bag.dags, f"DAG {maintenance_id!r} not found; found {sorted(bag.dags)}"
maintenance = bag.dags[maintenance_id]
layers = ["bronze", "silver", "gold"]
expected = [f"maintain_{layer}" for layer in layers]
assert sorted(maintenance.task_dict) == sorted(expected), f"{maintenance_id} tasks {sorted(maintenance.task_dict)}, expected {expected}"
for before, task_id, layer in zip([None, *expected], expected, layers):
    task = maintenance.get_task(task_id)
    want = {before} if before else set()
    assert task.upstream_task_ids == want, f"{task_id} upstream {task.upstream_task_ids}, expected {want or '-'}"
    assert type(task).__name__ == "MedallionOperator", f"{task_id}: {type(task).__name__}, not MedallionOperator"
    assert f" maintain --layer {layer}" in task.bash_command, f"{task_id}: {task.bash_command!r}"
    assert task.retries > 0 and task.retry_exponential_backoff, f"{task_id}: no exponential retries"
    assert task.execution_timeout is not None, f"{task_id}: no execution_timeout"
assert maintenance.max_active_runs == 1, f"{maintenance_id}: max_active_runs {maintenance.max_active_runs}"
assert not maintenance.catchup, f"{maintenance_id}: catchup on"
if not os.environ.get("MEDALLION_MAINTENANCE_SCHEDULE") and not os.environ.get("AIRFLOW_VAR_MEDALLION_MAINTENANCE_SCHEDULE"):
    summary = maintenance.timetable.summary  # "@daily" is stored as its cron expression
    assert summary in ("@daily", "0 0 * * *"), f"{maintenance_id}: schedule {summary!r}, expected @daily"

print(f"DagBag OK: {len(bag.dags)} DAG(s), no import errors")
for d in (dag, maintenance):
    print(f"{d.dag_id}: schedule {d.timetable.summary!r}, max_active_runs {d.max_active_runs}")
    for t in sorted(d.tasks, key=lambda t: t.task_id):
        print(f"  {t.task_id:<22} after {sorted(t.upstream_task_ids) or '-'}: {t.bash_command}")
PY
took "DagBag import test" "$t"

[ "${SKIP_DAGS_TEST:-0}" = 1 ] && { say "SKIP_DAGS_TEST=1: not running airflow dags test"; exit 0; }

# --- 2. airflow dags test against the local stack ---------------------------------------------
export MEDALLION_BIN="$CARGO_TARGET_DIR/debug/medallion"
[ -x "$MEDALLION_BIN" ] || die "$MEDALLION_BIN is missing: build medallion first (cargo build)"
eval "$(./run.sh env)"
# gold.models (sql/gold) is relative to the working directory.
export MEDALLION_WORKDIR="$ROOT"
kafka="${MEDALLION__SOURCE__KAFKA__BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
python - "$kafka" <<'PY' || die "Kafka does not answer at $kafka: start the local stack first (./run.sh start && ./run.sh connectors)"
import socket, sys
host, port = sys.argv[1].split(",")[0].rsplit(":", 1)
socket.create_connection((host, int(port)), timeout=5).close()
PY

logical_date="$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"

# dags_test DAG_ID: `airflow dags test` of one DAG at $logical_date, then check its run.
dags_test() {
  local dag_id="$1" log="$AIRFLOW_HOME/dags-test-$1.log" t rc=0
  t=$(date +%s)
  say "airflow dags test $dag_id $logical_date (MEDALLION_BIN=$MEDALLION_BIN, MEDALLION_CONFIG=$MEDALLION_CONFIG)"
  airflow dags test "$dag_id" "$logical_date" 2>&1 | tee "$log" || rc=$?
  took "airflow dags test $dag_id" "$t"
  [ "$rc" = 0 ] || die "airflow dags test $dag_id exited $rc; see $log"

  # `airflow dags test` can exit 0 with failed tasks: check every task instance of the run.
  DAG_ID="$dag_id" LOGICAL_DATE="$logical_date" python - <<'PY' || die "airflow dags test $dag_id: not every task succeeded; see $log"
import os, sys
from airflow.models import DagRun
from airflow.utils.session import create_session
import pendulum

when = pendulum.parse(os.environ["LOGICAL_DATE"])
with create_session() as session:
    runs = DagRun.find(dag_id=os.environ["DAG_ID"], execution_date=when, session=session)
    assert runs, f"no run of {os.environ['DAG_ID']} at {when}"
    run = runs[0]
    states = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
    for task_id, state in sorted(states.items()):
        print(f"  {task_id:<22} {state}")
    print(f"run {run.run_id}: {run.state}")
    bad = {k: v for k, v in states.items() if v != "success"}
    if run.state != "success" or bad:
        sys.exit(f"dags test: run {run.state}, tasks not successful: {bad}")
PY
  say "airflow dags test $dag_id: every task succeeded"
}

# The pipeline first, then its maintenance over the tables it wrote.
dags_test "$DAG_ID"
dags_test "$MAINTENANCE_DAG_ID"
