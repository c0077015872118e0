#!/usr/bin/env bash
# Static checks of terraform/ without a terraform binary or AWS access:
#   1. every terraform/*.tf (and terraform.tfvars.example) parses as HCL2 (python-hcl2), and
#      every IAM policy document is least privilege (no wildcard actions, "*" resources only
#      for the few actions AWS cannot scope; see STAR_RESOURCE_OK);
#   2. checkov (--framework terraform) passes with no failed check at all. Without a Prisma
#      API key checkov reports no severities, so "no HIGH or CRITICAL failure" cannot be
#      told apart from "no failure": every failure counts, and every suppression must be an
#      inline `#checkov:skip=CKV_...:reason` in its resource, with a reason.
# Tools live in their own venv, $ROOT/.medallion/tf-venv (checkov's exact pins would clash
# with the project's .venv). Prints one summary line at the end; exits non-zero on any finding.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
STATE="$ROOT/.medallion"
VENV="$STATE/tf-venv"
PIP_LOG="$STATE/tf-pip.log"

CHECKOV_VERSION="3.3.30"
PYTHON_HCL2_VERSION="8.1.4"
# checkov depends on bc-python-hcl2, a fork that installs the same `hcl2` module as
# python-hcl2; so python-hcl2 goes into a folder of its own inside the venv and only the parse
# step puts it first on sys.path.
HCL2_DIR="$VENV/python-hcl2-$PYTHON_HCL2_VERSION"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'terraform check: %s\n' "$*" >&2; exit 1; }

start=$(date +%s)
mkdir -p "$STATE"

setup() {
  if [ -x "$VENV/bin/checkov" ] && [ -f "$HCL2_DIR/.installed" ] \
    && [ "$("$VENV/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; then
    return
  fi
  command -v python3 >/dev/null 2>&1 || die "python3 is needed"
  say "installing checkov $CHECKOV_VERSION and python-hcl2 $PYTHON_HCL2_VERSION into $VENV (log: $PIP_LOG)"
  : >"$PIP_LOG"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >>"$PIP_LOG" 2>&1 \
    || die "python3 -m venv failed (install python3-venv); see $PIP_LOG"
  "$VENV/bin/pip" install --disable-pip-version-check --upgrade pip >>"$PIP_LOG" 2>&1 || true
  "$VENV/bin/pip" install --disable-pip-version-check "checkov==$CHECKOV_VERSION" >>"$PIP_LOG" 2>&1 \
    || die "pip install checkov failed; see $PIP_LOG"
  rm -rf "$HCL2_DIR"
  "$VENV/bin/pip" install --disable-pip-version-check --target "$HCL2_DIR" \
    "python-hcl2==$PYTHON_HCL2_VERSION" >>"$PIP_LOG" 2>&1 \
    || die "pip install python-hcl2 failed; see $PIP_LOG"
  touch "$HCL2_DIR/.installed"
}

parse_hcl() {
  say "parsing terraform/*.tf with python-hcl2 $PYTHON_HCL2_VERSION"
  PYTHONPATH="$HCL2_DIR" "$VENV/bin/python" - "$HERE" "$PYTHON_HCL2_VERSION" <<'PY'
import glob, os, sys
from importlib.metadata import version

here, want = sys.argv[1], sys.argv[2]
import hcl2  # python-hcl2 from its own folder (PYTHONPATH), not checkov's fork

got = version("python-hcl2")
if got != want:
    sys.exit(f"expected python-hcl2 {want}, imported {got}")
files = sorted(glob.glob(os.path.join(here, "*.tf"))) + [os.path.join(here, "terraform.tfvars.example")]
if len(files) < 2:
    sys.exit(f"no .tf files in {here}")
blocks = 0
for path in files:
    name = os.path.relpath(path, os.path.dirname(here))
    try:
        with open(path, encoding="utf-8") as f:
            doc = hcl2.load(f)
    except Exception as e:  # the parser's own exception types vary between versions
        sys.exit(f"parse error in {name}: {type(e).__name__}: {e}")
    blocks += sum(len(v) if isinstance(v, list) else 1 for v in doc.values())
print(f"{len(files)} files, {blocks} top-level blocks parsed", file=sys.stderr)

# Least privilege of the IAM policies (aws_iam_policy_document), checked here because checkov
# cannot evaluate documents whose lists are built with for-expressions and silently passes
# over them: no wildcard in any allowed action, no NotAction/NotResource, and "*" as a
# resource only for actions that AWS does not scope to any resource.
STAR_RESOURCE_OK = {
    "ecr:GetAuthorizationToken",   # registry-wide login token
    "athena:ListWorkGroups",       # Athena console listings
    "athena:ListDataCatalogs",
    "athena:ListEngineVersions",
    "ecs:DescribeTaskDefinition",  # Airflow reattach
}
unq = lambda v: v[1:-1] if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"' else v
docs = {}
local_values = {}
for path in files:
    if not path.endswith(".tf"):
        continue
    with open(path, encoding="utf-8") as f:
        doc = hcl2.load(f)
    for block in doc.get("locals", []):
        local_values.update({k: v for k, v in block.items() if not k.startswith("__")})
    for block in doc.get("data", []):
        for typ, named in block.items():
            if unq(typ) == "aws_iam_policy_document":
                for name, body in named.items():
                    docs[f"{os.path.basename(path)}: {unq(name)}"] = body

def resolve(value):
    if isinstance(value, str) and value.startswith("${local.") and value.endswith("}"):
        return local_values.get(value[len("${local."):-1], value)
    return value

bad, statements = [], 0
for where, body in sorted(docs.items()):
    for st in body.get("statement", []):
        statements += 1
        sid = unq(st.get("sid", "(no sid)"))
        if unq(st.get("effect", '"Allow"')) == "Deny":
            continue
        for key in ("not_actions", "not_resources", "not_principals"):
            if key in st:
                bad.append(f"{where} {sid}: {key} is not allowed")
        actions = resolve(st.get("actions", []))
        if not isinstance(actions, list):
            bad.append(f"{where} {sid}: actions must be a literal list or a local holding one")
            continue
        actions = [unq(a) for a in actions]
        for a in actions:
            if "*" in a:
                bad.append(f"{where} {sid}: wildcard action {a}")
        if "principals" in st:
            continue  # a trust policy: its resource is the role itself
        resources = resolve(st.get("resources", []))
        if isinstance(resources, str):  # an expression (for, concat): no literal "*" in it
            resources = ['"*"'] if '"*"' in resources else [resources]
        if not resources:
            bad.append(f"{where} {sid}: needs explicit resources")
            continue
        if any(unq(r) == "*" for r in resources):
            extra = sorted(set(actions) - STAR_RESOURCE_OK)
            if extra:
                bad.append(f"{where} {sid}: resource \"*\" for actions AWS can scope: {', '.join(extra)}")
for b in bad:
    print(f"IAM: {b}", file=sys.stderr)
if bad:
    sys.exit(f"{len(bad)} IAM policy finding(s)")
print(f"IAM: {len(docs)} policy documents, {statements} statements: no wildcard actions, "
      f"\"*\" resources only for unscoped actions", file=sys.stderr)
PY
}

run_checkov() {
  say "checkov $CHECKOV_VERSION --framework terraform"
  local out="$STATE/tf-checkov"
  rm -rf "$out"
  # No Prisma key: nothing is downloaded or uploaded. The full JSON report (passed, failed and
  # skipped checks) goes to $out/results_json.json; the verdict and a compact listing of
  # failures and suppressions come from it below, so checkov's own exit code is ignored.
  "$VENV/bin/checkov" --directory "$HERE" --framework terraform --compact \
    --skip-download --soft-fail --download-external-modules false \
    --output json --output-file-path "$out" >"$STATE/tf-checkov.log" 2>&1 \
    || { cat "$STATE/tf-checkov.log" >&2; die "checkov did not run"; }
  [ -f "$out/results_json.json" ] || { cat "$STATE/tf-checkov.log" >&2; die "checkov wrote no report"; }
  "$VENV/bin/python" - "$out/results_json.json" "$start" <<'PY'
import json, sys, time

report, start = sys.argv[1], int(sys.argv[2])
with open(report) as f:
    data = json.load(f)
runs = data if isinstance(data, list) else [data]
passed = failed = skipped = resources = 0
problems, skips = [], []
for run in runs:
    s = run.get("summary", {})
    passed += s.get("passed", 0)
    failed += s.get("failed", 0)
    skipped += s.get("skipped", 0)
    resources += s.get("resource_count", 0)
    if s.get("parsing_errors"):
        problems.append(f"checkov could not parse {s['parsing_errors']} file(s)")
    results = run.get("results", {})
    for c in results.get("skipped_checks", []):
        reason = ((c.get("check_result") or {}).get("suppress_comment") or "").strip()
        where = f"{c.get('resource')} ({c.get('file_path', '').lstrip('/')})"
        if not reason or reason == "No comment provided":
            problems.append(f"SKIPPED WITHOUT REASON {c['check_id']}: {where}")
        skips.append(f"  skip {c['check_id']} {where}: {reason}")
    for c in results.get("failed_checks", []):
        lines = "-".join(str(n) for n in c.get("file_line_range", []))
        problems.append(f"FAILED {c['check_id']} {c.get('check_name')}: {c.get('resource')} "
                        f"({c.get('file_path', '').lstrip('/')}:{lines})")
    if skipped and not results.get("skipped_checks"):
        problems.append("the report lists no skipped checks, so their reasons cannot be verified")
print("suppressions (inline #checkov:skip):", file=sys.stderr)
for line in skips:
    print(line, file=sys.stderr)
for p in problems:
    print(p, file=sys.stderr)
secs = int(time.time()) - start
print(f"terraform check: checkov passed={passed} failed={failed} skipped={skipped} "
      f"({resources} resources), every .tf file parses; {secs}s")
sys.exit(1 if problems or failed else 0)
PY
}

setup
parse_hcl
run_checkov
