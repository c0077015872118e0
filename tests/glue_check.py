"""Checks that every Glue table of the given databases is what Athena needs, with boto3 against
the Glue endpoint and S3 (credentials from the AWS_* environment variables):

- TableType EXTERNAL_TABLE; Parameters table_type=ICEBERG and metadata_location, which exists
  in S3 and is the table's current metadata; previous_metadata_location, when the table has
  history, is the newest entry of that metadata's metadata-log; a VersionId;
- StorageDescriptor.Location is the metadata's `location`;
- StorageDescriptor.Columns are the current schema's top-level fields, in order, each with the
  Athena type that README.md's type table (between the athena-types markers) gives, and with
  iceberg.field.id / iceberg.field.optional / iceberg.field.current parameters.

Usage: glue_check.py --glue-endpoint URL --s3-endpoint URL --readme README.md DB [DB ...]
Prints one line per table and `types: …` (the Iceberg types seen); exit status 1 on any problem.
"""

import argparse
import json
import os
import re
import sys
from urllib.parse import urlparse

import boto3


def readme_mapping(path):
    """{iceberg type: athena type} from README.md's table; placeholders stay as written."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- athena-types -->(.*?)<!-- /athena-types -->", text, re.S)
    if not m:
        raise SystemExit(f"{path}: no athena-types table")
    out = {}
    for line in m.group(1).splitlines():
        cells = re.findall(r"`([^`]+)`", line)
        if line.startswith("| `") and len(cells) >= 2:
            out[cells[0]] = cells[1]
    return out


class Mapper:
    def __init__(self, mapping):
        self.m = mapping
        self.seen = set()

    def athena(self, t):
        if isinstance(t, dict):
            kind = t["type"]
            self.seen.add(kind)
            if kind == "struct":
                assert self.m["struct<…>"] == "struct<name:type,…>", self.m["struct<…>"]
                inner = ",".join(f"{f['name']}:{self.athena(f['type'])}" for f in t["fields"])
                return f"struct<{inner}>"
            if kind == "list":
                assert self.m["list<…>"] == "array<type>", self.m["list<…>"]
                return f"array<{self.athena(t['element'])}>"
            if kind == "map":
                assert self.m["map<…>"] == "map<key type,value type>", self.m["map<…>"]
                return f"map<{self.athena(t['key'])},{self.athena(t['value'])}>"
            raise ValueError(f"unknown nested type {kind}")
        dec = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", t)
        if dec:
            self.seen.add("decimal")
            p, s = dec.groups()
            return self.m["decimal(P,S)"].replace("P", p).replace("S", s)
        if re.fullmatch(r"fixed\[\d+\]", t):
            self.seen.add("fixed")
            return self.m["fixed[L]"]
        self.seen.add(t)
        if t not in self.m:
            raise ValueError(f"the README's type table has no row for Iceberg type {t}")
        return self.m[t]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glue-endpoint", required=True)
    ap.add_argument("--s3-endpoint", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("databases", nargs="+")
    a = ap.parse_args()
    region = os.environ.get("AWS_REGION", "us-east-1")
    glue = boto3.client("glue", endpoint_url=a.glue_endpoint, region_name=region)
    s3 = boto3.client("s3", endpoint_url=a.s3_endpoint, region_name=region)
    mapper = Mapper(readme_mapping(a.readme))
    problems = []
    tables = 0

    def read_json(location):
        u = urlparse(location)
        body = s3.get_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["Body"].read()
        return json.loads(body)

    for db in a.databases:
        pages = glue.get_paginator("get_tables").paginate(DatabaseName=db)
        names = [t["Name"] for page in pages for t in page["TableList"]]
        if not names:
            problems.append(f"database {db} has no tables")
        for name in names:
            tables += 1
            t = glue.get_table(DatabaseName=db, Name=name)["Table"]
            where = f"{db}.{name}"
            bad = lambda msg: problems.append(f"{where}: {msg}")
            params = t.get("Parameters", {})
            if t.get("TableType") != "EXTERNAL_TABLE":
                bad(f"TableType {t.get('TableType')!r}")
            if params.get("table_type") != "ICEBERG":
                bad(f"table_type {params.get('table_type')!r}")
            if not t.get("VersionId"):
                bad("no VersionId")
            loc = params.get("metadata_location")
            if not loc:
                bad("no metadata_location")
                continue
            md = read_json(loc)
            sd = t.get("StorageDescriptor", {})
            if sd.get("Location") != md["location"]:
                bad(f"Location {sd.get('Location')!r} != metadata location {md['location']!r}")
            log = md.get("metadata-log", [])
            prev = params.get("previous_metadata_location")
            if log and prev != log[-1]["metadata-file"]:
                bad(f"previous_metadata_location {prev!r} is not the newest metadata-log entry {log[-1]['metadata-file']!r}")
            if not log and prev:
                bad(f"previous_metadata_location {prev!r} on a table without history")
            schema = next(s for s in md["schemas"] if s["schema-id"] == md["current-schema-id"])
            want = []
            for f in schema["fields"]:
                try:
                    want.append((f["name"], mapper.athena(f["type"]), str(f["id"]),
                                 str(not f["required"]).lower()))
                except (ValueError, AssertionError) as e:
                    bad(f"column {f['name']}: {e}")
            got = [(c["Name"], c["Type"], c.get("Parameters", {}).get("iceberg.field.id"),
                    c.get("Parameters", {}).get("iceberg.field.optional"))
                   for c in sd.get("Columns", [])]
            if got != want:
                bad(f"columns differ:\n  glue:     {got}\n  expected: {want}")
            if any(c.get("Parameters", {}).get("iceberg.field.current") != "true"
                   for c in sd.get("Columns", [])):
                bad("a column without iceberg.field.current=true")
            print(f"{where}: ok ({len(got)} columns, {len(log) + 1} metadata versions)")
    print("types: " + " ".join(sorted(mapper.seen)))
    if problems:
        print(f"{len(problems)} problem(s) in {tables} Glue tables:")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"all {tables} Glue tables are Athena-ready")


if __name__ == "__main__":
    main()
