"""The whole CDC test on the local stack (`./run.sh test` runs it after `./run.sh start` and
`./run.sh connectors`): real PostgreSQL → real Debezium → Kafka → bronze → silver → gold.

1. A pipeline of its own (fresh namespaces and consumer group, so the stack's own tables are
   untouched) catches up with everything Debezium has captured so far.
2. Changes in PostgreSQL: inserts, updates (NULLs included), deletes, a delete and re-insert of
   the same key, an ALTER TABLE ADD COLUMN with a default, then a marker row.
3. ingest --until-caught-up and silver until the marker is in silver (at most --timeout s).
4. Every source table, `SELECT *`, equals its silver table read with PyIceberg (GlueCatalog on
   the stack's S3 and Glue), cell by cell in one normal form; silver's own `_` columns and
   columns the source no longer has are ignored.
5. gold: rebuilt after the changes; user_ltv has one row per source user and orders_by_status
   counts every source order.

Usage: cdc_test.py --medallion BIN --glue-endpoint URL --s3-endpoint URL
(PG* and AWS_* from `./run.sh env`). Exit status 1 on any difference.
"""

import argparse
import datetime as dt
import decimal
import json
import os
import subprocess
import sys
import time
import uuid

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from catalogs import open_catalog  # noqa: E402

TABLES = ["users", "products", "orders"]


def norm(v):
    """One normal form for both sides: UTC epoch microseconds for instants, ISO for dates,
    strings for decimals (scale kept), plain values otherwise."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return round(v.timestamp() * 1_000_000)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v


class Pipeline:
    def __init__(self, binary, run_id):
        self.binary = binary
        self.env = dict(os.environ)
        for layer in ("bronze", "silver", "gold"):
            self.env[f"MEDALLION__NAMESPACES__{layer.upper()}"] = f"cdc{run_id}_{layer}"
        self.env["MEDALLION__SOURCE__KAFKA__GROUP_ID"] = f"medallion-cdc-test-{run_id}"
        self.ns = {l: f"cdc{run_id}_{l}" for l in ("bronze", "silver", "gold")}

    def run(self, *args):
        t = time.monotonic()
        p = subprocess.run([self.binary, "--log", "warn", *args], env=self.env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"medallion {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        print(f"  medallion {' '.join(args)}: {time.monotonic() - t:.1f}s", flush=True)
        return p.stdout

    def query(self, sql):
        out = self.run("query", "--format", "json", sql)
        return [json.loads(l) for l in out.splitlines() if l.strip()]


def source_rows(cur, table):
    cur.execute(f"SELECT * FROM {table}")
    cols = [d[0] for d in cur.description]
    return cols, {r[0]: dict(zip(cols, map(norm, r))) for r in cur.fetchall()}


def silver_rows(catalog, ns, table, cols):
    arrow = catalog.load_table((ns, table)).scan().to_arrow()
    missing = [c for c in cols if c not in arrow.column_names]
    if missing:
        return None, f"silver.{table} lacks source columns {missing}"
    rows = arrow.select(cols).to_pylist()
    return {r["id"]: {c: norm(r[c]) for c in cols} for r in rows}, None


def changes(cur, marker):
    """The changes under test; returns a description of each."""
    done = []

    def do(what, sql, *args):
        cur.execute(sql, args or None)
        done.append(what)

    do("insert a user", "INSERT INTO users (email, full_name, country) VALUES ('cdc.new@example.com', 'New Person', 'NZ')")
    do("update with a NULL", "UPDATE users SET country = NULL, full_name = 'Null Country' WHERE id = (SELECT min(id) FROM users)")
    do("update many orders", "UPDATE orders SET status = 'paid' WHERE status = 'pending' AND id % 7 = 0")
    do("delete orders", "DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 5)")
    do("delete and re-insert a key",
       "WITH d AS (DELETE FROM products WHERE id = (SELECT max(id) FROM products) RETURNING *) "
       "INSERT INTO products SELECT id, sku, name || ' (again)', category, price + 1, stock, description FROM d")
    do("update a numeric and a date", "UPDATE orders SET unit_price = unit_price + 0.01, shipped_on = date '2026-01-02' WHERE id = (SELECT min(id) FROM orders)")
    do("add a column with a default", "ALTER TABLE users ADD COLUMN IF NOT EXISTS loyalty_points int NOT NULL DEFAULT 7")
    do("update the new column", "UPDATE users SET loyalty_points = 42 WHERE id = (SELECT max(id) FROM users)")
    do("insert after the schema change", "INSERT INTO users (email, loyalty_points) VALUES ('cdc.after@example.com', 3)")
    do("the marker", "INSERT INTO users (email, full_name) VALUES (%s, 'marker')", marker)
    return done


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medallion", required=True)
    ap.add_argument("--glue-endpoint", required=True)
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    a.catalog_name, a.catalog_db, a.warehouse = "glue", None, None
    run_id = uuid.uuid4().hex[:8]
    pipe = Pipeline(a.medallion, run_id)
    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()

    print(f"cdc test {run_id}: 1. a fresh pipeline catches up with what Debezium captured", flush=True)
    pipe.run("ingest", "--until-caught-up")
    pipe.run("silver")
    pipe.run("gold")
    gold_before = pipe.query("SELECT count(*) AS n FROM gold.user_ltv")[0]["n"]

    marker = f"cdc.marker.{run_id}@example.com"
    print("cdc test: 2. changes in PostgreSQL", flush=True)
    for what in changes(cur, marker):
        print(f"  {what}", flush=True)

    print("cdc test: 3. ingest and silver until the marker is in silver", flush=True)
    start = time.monotonic()
    while True:
        pipe.run("ingest", "--until-caught-up")
        pipe.run("silver")
        if pipe.query(f"SELECT count(*) AS n FROM silver.users WHERE email = '{marker}'")[0]["n"] == 1:
            break
        if time.monotonic() - start > a.timeout:
            sys.exit(f"the marker did not reach silver within {a.timeout:.0f}s: is `./run.sh connectors` running? "
                     f"(log: .medallion/stack/debezium.log)")
        time.sleep(1)
    print(f"  the changes reached silver after {time.monotonic() - start:.1f}s", flush=True)

    print("cdc test: 4. silver equals SELECT * of every source table (PyIceberg)", flush=True)
    catalog = open_catalog(a)
    problems = []
    for table in TABLES:
        cols, src = source_rows(cur, table)
        got, err = silver_rows(catalog, pipe.ns["silver"], table, cols)
        if err:
            problems.append(err)
            continue
        missing = sorted(set(src) - set(got))
        extra = sorted(set(got) - set(src))
        diff = [(k, c, src[k][c], got[k][c]) for k in sorted(set(src) & set(got))
                for c in cols if src[k][c] != got[k][c]]
        for what, items in (("missing in silver", missing), ("not in the source", extra),
                            ("different cells", diff)):
            if items:
                problems.append(f"{table}: {len(items)} {what}, e.g. {items[:3]}")
        print(f"  {table}: {len(src)} rows, {len(cols)} columns compared"
              f"{'' if not (missing or extra or diff) else ' -- DIFFERENT'}", flush=True)

    print("cdc test: 5. gold reflects the changes", flush=True)
    pipe.run("gold")
    cur.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders)")
    users, orders = cur.fetchone()
    ltv = pipe.query("SELECT count(*) AS n FROM gold.user_ltv")[0]["n"]
    by_status = pipe.query("SELECT CAST(sum(orders) AS BIGINT) AS n FROM gold.orders_by_status")[0]["n"]
    if ltv != users or ltv == gold_before:
        problems.append(f"gold.user_ltv has {ltv} rows (before the changes {gold_before}), the source {users} users")
    if by_status != orders:
        problems.append(f"gold.orders_by_status counts {by_status} orders, the source has {orders}")
    print(f"  user_ltv {gold_before} -> {ltv} rows (source users {users}); orders_by_status {by_status} orders", flush=True)

    # Leave the source as it was for the next run: the column goes (a schema change too).
    cur.execute("ALTER TABLE users DROP COLUMN IF EXISTS loyalty_points")
    if problems:
        print("cdc test: FAILED")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print("cdc test: silver equals the source and gold is refreshed: PASS")


if __name__ == "__main__":
    main()
