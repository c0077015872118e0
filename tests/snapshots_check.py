"""Reads every snapshot of every table of a namespace with PyIceberg (time travel), so that a
file some kept snapshot references but that is gone (deleted by expiry or orphan cleanup) fails
loudly. Prints one line per table: `<namespace>.<table>: <snapshots> snapshots, rows <r1>,<r2>,…`
(oldest first). Also fails if a table has no snapshot.

Usage: snapshots_check.py (--catalog-db FILE --warehouse DIR | --glue-endpoint URL --s3-endpoint URL)
                          --namespace NS
"""

import argparse
import sys

from catalogs import add_catalog_args, open_catalog


def main():
    ap = argparse.ArgumentParser()
    add_catalog_args(ap)
    ap.add_argument("--namespace", required=True)
    a = ap.parse_args()
    catalog = open_catalog(a)
    failures = 0
    for ident in sorted(catalog.list_tables(a.namespace)):
        table = catalog.load_table(ident)
        snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
        name = ".".join(ident)
        if not snapshots:
            print(f"{name}: no snapshot")
            failures += 1
            continue
        rows = []
        for s in snapshots:
            try:
                rows.append(table.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows)
            except Exception as e:  # a missing file, a broken manifest
                print(f"{name}: snapshot {s.snapshot_id} cannot be read: {e}")
                failures += 1
                break
        else:
            print(f"{name}: {len(snapshots)} snapshots, rows {','.join(map(str, rows))}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
