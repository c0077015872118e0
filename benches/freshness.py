"""Freshness of the continuous pipeline on the local stack: the time from a committed PostgreSQL
change to its visibility in silver, over N changes (default 1,000).

Each change writes a marker into orders.notes (an insert, or an update of an existing order),
and its commit time is taken when COMMIT returns. A watcher follows silver.orders with PyIceberg:
for every new silver snapshot, in order, it reads the markers that snapshot holds; a marker's
visibility time is the commit timestamp of the first snapshot that has it (not the time the
watcher looked, so polling adds no error). Prints p50, p90, p99 and max.

Needs the stack, Debezium and `./run.sh pipeline` running (`./run.sh bench freshness` does it).
Usage: freshness.py --glue-endpoint URL --s3-endpoint URL --namespace NS [--changes N] [--rate R]
"""

import argparse
import os
import random
import sys
import threading
import time
import uuid

import psycopg2
import pyarrow.compute as pc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from catalogs import open_catalog  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-endpoint", required=True)
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--namespace", required=True, help="the silver namespace")
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    a.catalog_name, a.catalog_db, a.warehouse = "glue", None, None
    run = uuid.uuid4().hex[:8]
    prefix = f"fresh:{run}:"
    catalog = open_catalog(a)

    committed = {}  # marker -> commit time (epoch ms)
    visible = {}  # marker -> visibility time (epoch ms)
    done = threading.Event()

    # Snapshots from before the run hold no marker of this run.
    seen = {s.snapshot_id for s in catalog.load_table((a.namespace, "orders")).snapshots()}

    def watch():
        while not (done.is_set() and len(visible) >= len(committed)):
            table = catalog.load_table((a.namespace, "orders"))
            for snap in sorted(table.snapshots(), key=lambda s: s.sequence_number):
                if snap.snapshot_id in seen:
                    continue
                seen.add(snap.snapshot_id)
                notes = table.scan(snapshot_id=snap.snapshot_id, selected_fields=("notes",)).to_arrow()["notes"]
                for m in pc.filter(notes, pc.starts_with(notes, prefix)).to_pylist():
                    visible.setdefault(m, snap.timestamp_ms)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    conn = psycopg2.connect("")
    cur = conn.cursor()
    rnd = random.Random(7)
    cur.execute("SELECT id FROM orders ORDER BY id")
    ids = [r[0] for r in cur.fetchall()]
    rnd.shuffle(ids)
    conn.commit()
    watcher.start()
    print(f"freshness: {a.changes} changes at {a.rate}/s, markers {prefix}*", flush=True)
    start = time.monotonic()
    for i in range(a.changes):
        marker = f"{prefix}{i}"
        if rnd.random() < 0.5 and ids:
            # Each order is updated once, so no marker is overwritten before silver sees it.
            cur.execute("UPDATE orders SET notes = %s WHERE id = %s", (marker, ids.pop()))
        else:
            cur.execute("INSERT INTO orders (user_id, product_id, quantity, unit_price, notes) "
                        "VALUES (1, 1, 1, 9.99, %s) RETURNING id", (marker,))
            cur.fetchone()
        conn.commit()
        committed[marker] = time.time() * 1000
        delay = start + (i + 1) / a.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    done.set()
    deadline = time.monotonic() + a.timeout
    # An update can be overwritten by a later update of the same order before silver sees it:
    # only markers still in the source can become visible.
    cur.execute("SELECT notes FROM orders WHERE notes LIKE %s", (prefix + "%",))
    expected = {r[0] for r in cur.fetchall()}
    while not expected <= set(visible) and time.monotonic() < deadline:
        time.sleep(0.5)
    missing = expected - set(visible)
    lat = sorted(visible[m] - committed[m] for m in expected if m in visible)
    if not lat:
        sys.exit("freshness: no change reached silver: is ./run.sh pipeline running?")

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] / 1000

    print(f"freshness: {len(lat)} of {a.changes} changes measured "
          f"({sum(1 for m in expected if m in visible)} reached silver)")
    print(f"freshness: commit -> visible in silver: p50 {pct(50):.2f}s, p90 {pct(90):.2f}s, "
          f"p99 {pct(99):.2f}s, max {lat[-1] / 1000:.2f}s")
    if missing:
        sys.exit(f"freshness: {len(missing)} changes never reached silver within {a.timeout:.0f}s")


if __name__ == "__main__":
    main()
