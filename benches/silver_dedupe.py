"""The keep-the-latest-per-key dedupe of silver, done by Polars and DuckDB over the same bronze
Parquet files, each in its own process (wall time and peak RSS), for comparison with
`medallion silver`. Not a test.

Usage: silver_dedupe.py BRONZE_NAMESPACE_DIR OUR_WALL_SECONDS OUR_PEAK_RSS_MB OUR_DEDUPE_SECONDS

Per bronze table: change events (not tombstones, not truncates), keep per record_key the one
with the highest (pg_lsn, kafka_partition, kafka_offset), with its raw value, materialized.
"""

import glob
import json
import os
import subprocess
import sys
import time

POLARS = """
import glob, sys, polars as pl
n = 0
for files in sys.argv[1:]:
    files = files.split(",")
    df = (pl.scan_parquet(files)
          .filter((pl.col("kind") == "change") & (pl.col("op") != "t"))
          .select(["record_key", "record_value", "op", "pg_lsn", "kafka_partition", "kafka_offset"])
          .sort(["pg_lsn", "kafka_partition", "kafka_offset"])
          .unique(subset=["record_key"], keep="last")
          .collect())
    n += df.height
print(n)
"""

DUCKDB = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
n = 0
for files in sys.argv[1:]:
    files = files.split(",")
    con.execute(
        "CREATE OR REPLACE TABLE latest AS SELECT * FROM (SELECT record_key, record_value, op, pg_lsn, "
        "kafka_partition, kafka_offset, row_number() OVER (PARTITION BY record_key ORDER BY pg_lsn DESC, "
        "kafka_partition DESC, kafka_offset DESC) AS rn FROM read_parquet(?) WHERE kind = 'change' AND op <> 't') "
        "WHERE rn = 1", [files])
    n += con.execute("SELECT count(*) FROM latest").fetchone()[0]
print(n)
"""


def run(code, tables):
    """Wall time, the child's own peak RSS (wait4), and its output."""
    t = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", code, *tables], stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    assert status == 0, f"failed: {status}"
    return wall, usage.ru_maxrss / 1024, int(out.strip().splitlines()[-1])


def main():
    root, our_wall, our_rss, our_dedupe = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    tables = []
    for t in sorted(glob.glob(f"{root}/*/")):
        files = sorted(glob.glob(f"{t}data/**/*.parquet", recursive=True))
        if files and not t.rstrip("/").endswith("_dlq"):
            tables.append(",".join(files))
    results = {}
    for name, code in (("polars", POLARS), ("duckdb", DUCKDB)):
        wall, rss, rows = run(code, tables)
        results[name] = (wall, rss)
        print(f"{name}: dedupe in {wall:.2f}s wall, peak RSS {rss:.0f} MB ({rows} keys kept)")
    pw, prss = results["polars"]
    dw, drss = results["duckdb"]
    print(f"medallion's dedupe step (reading bronze, keeping the latest per key): {our_dedupe:.2f}s = "
          f"{our_dedupe / pw:.2f}x Polars, {our_dedupe / dw:.2f}x DuckDB (goal: no slower than Polars)")
    print(f"medallion's whole silver run (+ typed decode, merge, commit): {our_wall:.2f}s, {our_rss:.0f} MB = "
          f"{our_wall / pw:.2f}x Polars' dedupe time, {our_rss / prss:.2f}x its memory")
    print(json.dumps({"silver_wall_s": our_wall, "silver_rss_mb": our_rss, "silver_dedupe_s": our_dedupe,
                      "polars": results["polars"], "duckdb": results["duckdb"]}))


if __name__ == "__main__":
    main()
