"""Compares silver tables, read with PyIceberg, with a fixture's ground truth.

Usage: silver_check.py (--catalog-db FILE --warehouse DIR | --glue-endpoint URL --s3-endpoint URL) --namespace NS --fixture DIR --scenario NAME

The comparison is the one the fixtures' README defines ("Comparing silver with expected/"), using
the fixture's own replay_check.py for the normal form of the database side (from_db_json), the
logical type of each column (from the newest value schema and the scenario's configuration) and
equality (same). Each silver value is turned into the normal form from its Iceberg type here.
Cells marked unrecoverable/unrepresentable in expected_normalized/ must be null, with a
`_dq_issues` entry wherever replay_check raises a flag. No other cell may carry a flag.
Exit status 1 on any difference, with the differences printed.
"""

import argparse
import datetime as dt
import decimal
import importlib.util
import json
import pathlib
import sys


from catalogs import add_catalog_args, open_catalog


def load_replay_check(fixture_root):
    spec = importlib.util.spec_from_file_location("replay_check", fixture_root / "replay_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def normal(rc, v, lt):
    """A silver value (as PyIceberg returns it) in the normal form of logical type lt."""
    if v is None:
        return None
    if isinstance(lt, tuple) and lt[0] == "array":
        return [normal(rc, x, lt[1]) for x in v]
    if rc.is_decimal(lt):
        return rc.plain(decimal.Decimal(str(v)))
    if lt == "bytes":
        return bytes(v).hex()
    if lt == "date":
        return v.isoformat()
    if lt in ("ts_us", "ts_ms"):
        return v.isoformat(timespec="microseconds")
    if lt == "tstz":
        return v.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    if lt in ("float32", "float64"):
        return float(v)
    return v


def main():
    ap = argparse.ArgumentParser()
    add_catalog_args(ap)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--fixture-root", required=True)
    ap.add_argument("--scenario", required=True)
    a = ap.parse_args()

    root = pathlib.Path(a.fixture_root)
    rc = load_replay_check(root)
    cfg = rc.CONFIG[a.scenario]
    types = cfg.get("types", {})
    folder = root / a.scenario
    state, flags, newest, _stats = rc.replay(folder / "events.jsonl.gz", types)
    cat = open_catalog(a)
    exp_dir = folder / ("expected_normalized" if cfg.get("normalized") else "expected")
    problems = []
    checked_cells = 0
    for exp_file in sorted(exp_dir.glob("*.jsonl")):
        table = exp_file.stem.split(".")[-1]
        topic = next(t for t in state if t.endswith("." + exp_file.stem))
        fields = newest.get(topic, {})
        exp_rows = [json.loads(l, parse_float=decimal.Decimal)
                    for l in exp_file.read_text(encoding="utf-8").splitlines()]
        rows = cat.load_table((a.namespace, table)).scan().to_arrow().to_pylist()
        got_keys = state[topic]
        key_cols = list(json.loads(next(iter(got_keys)))) if got_keys else ["id"]
        kf = lambda r: json.dumps({c: (str(r[c]) if not isinstance(r[c], (int, str)) else r[c])
                                   for c in key_cols}, sort_keys=True)
        exp = {kf(r): r for r in exp_rows}
        got = {kf(r): r for r in rows}
        if len(got) != len(rows):
            problems.append(f"{table}: {len(rows) - len(got)} duplicate keys in silver")
        for k in sorted(set(exp) - set(got))[:5]:
            problems.append(f"{table}: missing key {k}")
        for k in sorted(set(got) - set(exp))[:5]:
            problems.append(f"{table}: extra key {k}")
        for k in sorted(set(exp) & set(got)):
            want_row, row = exp[k], got[k]
            issues = {i["column"]: i for i in (row.get("_dq_issues") or [])}
            replay_flags = flags[topic].get(json.dumps(
                {c: want_row[c] for c in key_cols}, sort_keys=True), {})
            for col, want in want_row.items():
                if col not in row:
                    problems.append(f"{table} {k}: silver has no column {col}")
                    continue
                lt = types.get(table, {}).get(col) or (rc.logical(fields[col]) if col in fields else "plain")
                have = normal(rc, row[col], lt)
                checked_cells += 1
                if isinstance(want, dict) and set(want) & set(rc.MARKERS):
                    if have is not None:
                        problems.append(f"{table} {k} {col}: unrecoverable cell is {have!r}, want null")
                    elif col in replay_flags and col not in issues:
                        problems.append(f"{table} {k} {col}: null without a _dq_issues flag ({replay_flags[col]})")
                    continue
                if not cfg.get("normalized"):
                    want = rc.from_db_json(want, lt)
                if not rc.same(have, want, lt):
                    problems.append(f"{table} {k} {col}: silver {str(have)[:80]!r}, expected {str(want)[:80]!r}")
                elif col in issues:
                    problems.append(f"{table} {k} {col}: flag on a recoverable value: {issues[col]}")
        print(f"{a.scenario} {table}: {len(rows)} silver rows, {len(exp)} expected")
    print(f"{checked_cells} cells compared")
    if problems:
        print(f"{len(problems)} differences:")
        for p in problems[:60]:
            print("  " + p)
        sys.exit(1)
    print("MATCH")


if __name__ == "__main__":
    main()
