"""medallion's CDC pipeline as Airflow DAGs: ingest -> silver (one task per table) -> gold, and
the tables' maintenance in a DAG of its own.

cdc_pipeline (every 5 minutes):

    ingest --until-caught-up ──┬── silver --table users    ──┬── gold (all models, in dependency order)
                               ├── silver --table products ──┤
                               └── silver --table orders   ──┘

cdc_maintenance (daily):

    maintain --layer bronze ── maintain --layer silver ── maintain --layer gold

Each task runs the `medallion` binary with a BashOperator, so this file needs nothing but Airflow
(no medallion Python package). Every medallion command is safe to interrupt and re-run: ingest
resumes from the offsets committed in bronze, silver from its bronze watermark, gold rebuilds.

Configuration: an Airflow Variable, else an environment variable of the worker, else a default.

    Variable                  environment              default
    medallion_bin             MEDALLION_BIN            medallion (on PATH)
    medallion_config          MEDALLION_CONFIG         unset: medallion's own default, jobs/local.toml
    medallion_workdir         MEDALLION_WORKDIR        unset: Airflow's temporary directory; set it to
                                                       the folder that holds `sql/gold` when the
                                                       config's `gold.models` is a relative path
    medallion_silver_tables   MEDALLION_SILVER_TABLES  users,products,orders
    medallion_schedule        MEDALLION_SCHEDULE       */5 * * * *  (cron, a preset such as @hourly,
                                                       or "none" for manual runs only)
    medallion_gold_waves      MEDALLION_GOLD_WAVES     unset: one `medallion gold` task; see below
    medallion_maintenance_schedule, MEDALLION_MAINTENANCE_SCHEDULE:
                                                       @daily  (schedule of cdc_maintenance: cron,
                                                       a preset such as @weekly, or "none")
    medallion_maintain_args   MEDALLION_MAINTAIN_ARGS  unset: extra arguments of every maintain task,
                                                       split like a shell would, e.g.
                                                       "--remove-orphans-older-than 7d" or "--dry-run"

The tables list, the schedules and the gold waves shape the DAGs, so they are read when the file is
parsed; the other settings are read then too (changing a Variable takes effect at the next parse).

Environment: the tasks inherit the worker's whole environment (BashOperator `append_env=True`), so
`MEDALLION__SECTION__KEY` overrides, `AWS_*` credentials and `PG*` settings reach medallion as they
are. They are deliberately not copied into the operator's `env`: Airflow renders and stores
templated fields (Rendered Template in the UI, the metadata database), which would expose secrets.
Only MEDALLION_CONFIG (a path) is set explicitly.

Gold per model (optional): `medallion gold` already builds every model in dependency order and
skips the models that read a failed one. For one Airflow task per model, set medallion_gold_waves
to the waves `medallion gold --plan` prints: models of one wave separated by commas, waves by
semicolons, e.g. "daily_revenue,orders_by_status,product_performance,user_ltv;user_segments".
Each model then runs as `medallion gold --model M`, all of a wave at once, after the wave before.
Keep it in step with sql/gold when models are added (a model missing from the list is not built).

Retries and exit codes: medallion exits 0 on success, 1 on failure, 2 on bad configuration or
usage, 75 (EX_TEMPFAIL) on a temporary failure (catalog busy, storage or Kafka unreachable, lost
commit races beyond its own retry budget). A BashOperator fails on any non-zero exit code, and the
task retries with exponential backoff; that is exactly what 75 asks for. Exit code 2 is raised as
AirflowFailException instead, which fails the task at once without retrying (fix the config).
Exit code 99 is BashOperator's default skip code; medallion never uses it.

Maintenance (DAG cdc_maintenance): `medallion maintain --layer L` compacts small files and files
thinned by deletes, expires old snapshots and deletes orphan files, with each layer's defaults from
`[maintain.bronze]`, `[maintain.silver]` and `[maintain.gold]` in the job config (`medallion tables`
shows when it is due). It is a separate DAG so that it never delays the 5-minute freshness path; one
task per layer, bronze, then silver, then gold, one layer at a time (2 hours' timeout each, the same
retries and exit-code handling as the pipeline; a layer that still fails after its retries leaves the
layers after it for the next run, or clear it). One maintenance run at a time, no catch-up.
It is safe while the pipeline runs (cdc_pipeline or the ECS ingest service): its commits retry and
rebase on concurrent commits, so no ingest, silver or gold commit is lost, and it never expires the
snapshots ingest resumes from, silver last applied or gold last read. Orphan cleanup deletes files
that no snapshot references once they are older than `remove_orphans_older_than` (default 3 days):
keep that well above the longest any job may run (a commit in flight looks orphaned until it lands).
Extra arguments for every maintain task: medallion_maintain_args, e.g. "--dry-run" to try it, or
"--compact" for compaction only.

Running the same tasks on AWS (ECS Fargate, terraform/): the task definitions
`<name>-silver`, `<name>-gold` and `<name>-maintain` (terraform output `task_definition_families`)
run the medallion image with the deployment's environment already set; Airflow only overrides the
command. Ingest runs there as the long-lived ECS service `ingest --follow`, so the AWS DAG has no
ingest task. Replace `medallion_task` with (Amazon provider, `apache-airflow-providers-amazon`):

    from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator

    NET = {"awsvpcConfiguration": {                  # terraform output task_network_configuration
        "subnets": ["subnet-..."], "securityGroups": ["sg-..."], "assignPublicIp": "DISABLED"}}

    def ecs_task(task_id, job, command, spot=False):   # job: silver | gold | maintain
        return EcsRunTaskOperator(
            task_id=task_id,
            cluster="cdc-prod",                           # terraform output ecs_cluster_name
            task_definition=f"cdc-prod-{job}",            # task_definition_families[job]
            launch_type=None if spot else "FARGATE",
            capacity_provider_strategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}] if spot else None,
            network_configuration=NET,
            overrides={"containerOverrides": [{"name": "medallion", "command": command}]},
            awslogs_group=f"/ecs/cdc-prod/{job}",        # terraform output log_groups[job]
            awslogs_stream_prefix=f"{job}/medallion",
            awslogs_region="eu-west-1",
            reattach=True,                                # a restarted task re-attaches, no duplicate
            execution_timeout=..., **RETRY,               # same retries and timeouts as here
        )

    silver = [ecs_task(f"silver_{t}", "silver", ["silver", "--table", t], spot=True) for t in TABLES]
    gold = ecs_task("gold", "gold", ["gold"])
    silver >> gold

    # in the cdc_maintenance DAG (the maintain task role may rewrite and delete in all layers)
    maintain = [ecs_task(f"maintain_{l}", "maintain", ["maintain", "--layer", l, *MAINTAIN_ARGS])
                for l in ("bronze", "silver", "gold")]
    maintain[0] >> maintain[1] >> maintain[2]

The container's entry point is medallion itself, so `command` is the argument list without the
binary. The Airflow execution role needs the `airflow_policy_arn` policy (terraform/README.md,
"Airflow / MWAA"). An ECS task's exit code does not reach Airflow as such: a non-zero exit fails
the task (and the failed-job EventBridge rule e-mails the code), and the retries apply as here.
"""

from __future__ import annotations

import os
import re
import shlex
from datetime import datetime, timedelta, timezone

from airflow import DAG
from airflow.exceptions import AirflowException, AirflowFailException

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

DAG_ID = "cdc_pipeline"
MAINTENANCE_DAG_ID = "cdc_maintenance"

# medallion's exit code for bad configuration or usage: retrying cannot help.
EXIT_BAD_CONFIG = 2
# medallion's exit code for a temporary failure (EX_TEMPFAIL): retried with backoff.
EXIT_RETRYABLE = 75

RETRY = {
    "retries": 4,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,  # 30 s, ~1 min, ~2 min, ~4 min (Airflow adds jitter)
    "max_retry_delay": timedelta(minutes=10),
}
TIMEOUT = {
    "ingest": timedelta(minutes=20),
    "silver": timedelta(minutes=20),
    "gold": timedelta(minutes=30),
    "maintain": timedelta(hours=2),  # per layer; compaction of a large backlog takes a while
}
# Maintained one after the other: bronze first (its compaction only rewrites what silver applied).
MAINTAIN_LAYERS = ["bronze", "silver", "gold"]


def setting(variable: str, env: str, default: str | None = None) -> str | None:
    """An Airflow Variable, else the environment variable `env`, else `default`."""
    value = None
    try:
        from airflow.models import Variable

        value = Variable.get(variable, default_var=None)
    except TypeError:  # Airflow 3's Variable.get takes `default`
        try:
            from airflow.sdk import Variable as SdkVariable

            value = SdkVariable.get(variable, default=None)
        except Exception:
            value = None
    except Exception:  # no metadata database while parsing (e.g. a bare import check)
        value = None
    if value is None or str(value).strip() == "":
        value = os.environ.get(env)
    if value is None or str(value).strip() == "":
        return default
    return str(value).strip()


def split_list(text: str, sep: str = ",") -> list[str]:
    return [item.strip() for item in text.split(sep) if item.strip()]


def schedule_setting(variable: str, env: str, default: str) -> str | None:
    """A schedule setting: cron or preset; "none" (or "null", "manual") for manual runs only."""
    value = setting(variable, env, default)
    return None if value.lower() in ("none", "null", "manual") else value


MEDALLION_BIN = setting("medallion_bin", "MEDALLION_BIN", "medallion")
MEDALLION_CONFIG = setting("medallion_config", "MEDALLION_CONFIG")
MEDALLION_WORKDIR = setting("medallion_workdir", "MEDALLION_WORKDIR")
SILVER_TABLES = split_list(
    setting("medallion_silver_tables", "MEDALLION_SILVER_TABLES", "users,products,orders")
)
SCHEDULE = schedule_setting("medallion_schedule", "MEDALLION_SCHEDULE", "*/5 * * * *")
MAINTENANCE_SCHEDULE = schedule_setting(
    "medallion_maintenance_schedule", "MEDALLION_MAINTENANCE_SCHEDULE", "@daily"
)
MAINTAIN_ARGS = shlex.split(setting("medallion_maintain_args", "MEDALLION_MAINTAIN_ARGS", ""))
GOLD_WAVES = [
    split_list(wave) for wave in split_list(setting("medallion_gold_waves", "MEDALLION_GOLD_WAVES", ""), ";")
]
GOLD_WAVES = [wave for wave in GOLD_WAVES if wave]

TASK_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
EXIT_CODE = re.compile(r"exit code (\d+)")


class MedallionOperator(BashOperator):
    """A BashOperator for one medallion command: fails without retries on exit code 2."""

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowFailException:
            raise
        except AirflowException as e:
            # "Bash command failed. The command returned a non-zero exit code 2."
            match = EXIT_CODE.search(str(e))
            if match and int(match.group(1)) == EXIT_BAD_CONFIG:
                raise AirflowFailException(
                    f"medallion exited {EXIT_BAD_CONFIG}: bad configuration or usage, not retried "
                    f"(fix it and clear the task); see the log above"
                ) from e
            raise


def medallion_task(task_id: str, args: list[str], timeout: timedelta) -> BashOperator:
    """One medallion command, e.g. ["silver", "--table", "users"]."""
    command = " ".join(shlex.quote(part) for part in [MEDALLION_BIN, *args])
    env = {"MEDALLION_CONFIG": MEDALLION_CONFIG} if MEDALLION_CONFIG else {}
    return MedallionOperator(
        task_id=task_id,
        bash_command=command,
        env=env,
        append_env=True,  # inherit MEDALLION__*, AWS_*, PG* ... from the worker, unrendered
        cwd=MEDALLION_WORKDIR,
        execution_timeout=timeout,
        **RETRY,
    )


with DAG(
    dag_id=DAG_ID,
    description="medallion CDC: Kafka -> bronze -> silver -> gold (Iceberg)",
    schedule=SCHEDULE,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    # One run at a time: the stages are incremental and each run catches up on everything new.
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    default_args={"owner": "medallion", "depends_on_past": False},
    tags=["medallion", "cdc", "iceberg"],
    doc_md=__doc__,
) as dag:
    ingest = medallion_task("ingest", ["ingest", "--until-caught-up"], TIMEOUT["ingest"])

    silver = [
        medallion_task(
            f"silver_{TASK_ID_UNSAFE.sub('_', table)}", ["silver", "--table", table], TIMEOUT["silver"]
        )
        for table in SILVER_TABLES
    ]
    ingest >> silver

    if not GOLD_WAVES:
        gold = medallion_task("gold", ["gold"], TIMEOUT["gold"])
        silver >> gold
    else:
        upstream = silver
        for wave in GOLD_WAVES:
            tasks = [
                medallion_task(
                    f"gold_{TASK_ID_UNSAFE.sub('_', model)}", ["gold", "--model", model], TIMEOUT["gold"]
                )
                for model in wave
            ]
            for task in upstream:
                task >> tasks
            upstream = tasks


with DAG(
    dag_id=MAINTENANCE_DAG_ID,
    description="medallion maintenance: compaction, snapshot expiry, orphan files (bronze, silver, gold)",
    schedule=MAINTENANCE_SCHEDULE,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    # One run at a time; the next waits rather than maintaining the same tables alongside it.
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=20),  # below a day: a stuck run does not block the next one
    default_args={"owner": "medallion", "depends_on_past": False},
    tags=["medallion", "iceberg", "maintenance"],
    doc_md=__doc__,
) as maintenance_dag:
    previous = None
    for layer in MAINTAIN_LAYERS:
        maintain = medallion_task(
            f"maintain_{layer}", ["maintain", "--layer", layer, *MAINTAIN_ARGS], TIMEOUT["maintain"]
        )
        if previous is not None:
            previous >> maintain
        previous = maintain
