"""Reads every table of a namespace with PyIceberg (SqlCatalog, or GlueCatalog on S3) and compares it, row for row,
with the JSON-lines export `medallion query --format json` wrote for it.

Usage: pyiceberg_check.py (--catalog-db FILE --warehouse DIR | --glue-endpoint URL --s3-endpoint URL)
                          --namespace NS --export DIR
Exit status 1 on any difference. Values are compared in one normal form: timestamps as epoch
microseconds, binary as hex, everything else as JSON values; row order is ignored.
"""

import argparse
import base64
import datetime as dt
import decimal
import math
import struct
import json
import pathlib
import sys

import pyarrow as pa

from catalogs import add_catalog_args, open_catalog


def canon_float(value, typ):
    """Floats by value at their width (arrow-json prints a float32 in its shortest form);
    NaN as the string "NaN" so that it equals itself."""
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if typ == pa.float32():
        x = struct.unpack("f", struct.pack("f", x))[0]
    return x


def null_list_of_structs(value, typ):
    """PyIceberg 0.12 reads a null list<struct<...>> as [] (apache/iceberg-python#3833, open;
    pyarrow shows the null in the file itself). Both sides map [] of such a column to None, so
    that known reader bug does not hide every other difference."""
    return (
        value == []
        and (pa.types.is_list(typ) or pa.types.is_large_list(typ))
        and pa.types.is_struct(typ.value_type)
    )


def norm_py(value, typ):
    """A PyIceberg/pyarrow value in the normal form."""
    if value is None or null_list_of_structs(value, typ):
        return None
    if pa.types.is_timestamp(typ):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if pa.types.is_date(typ):
        return value.isoformat()
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return value.hex()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return [norm_py(v, typ.value_type) for v in value]
    if pa.types.is_struct(typ):
        return {f.name: norm_py(value.get(f.name), f.type) for f in typ}
    if pa.types.is_decimal(typ):
        return canon_decimal(value)
    if pa.types.is_floating(typ):
        return canon_float(value, typ)
    return value


def canon_decimal(value):
    """A decimal by value: 970.70 and 970.7 are the same number."""
    d = decimal.Decimal(str(value))
    return format(d.normalize(), "f") if d != 0 else "0"


def norm_rs(value, typ):
    """A value of arrow-json's output in the normal form."""
    if value is None or null_list_of_structs(value, typ):
        return None
    if pa.types.is_timestamp(typ):
        s = value.replace("Z", "+00:00")
        t = dt.datetime.fromisoformat(s)
        return norm_py(t, typ)
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        # arrow-json writes binary as hex; accept base64 too.
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            return base64.b64decode(value).hex()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return [norm_rs(v, typ.value_type) for v in value]
    if pa.types.is_struct(typ):
        return {f.name: norm_rs(value.get(f.name), f.type) for f in typ}
    if pa.types.is_decimal(typ):
        return canon_decimal(value)
    if pa.types.is_floating(typ):
        return canon_float(value, typ)
    return value


def main():
    ap = argparse.ArgumentParser()
    add_catalog_args(ap)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--export", required=True)
    a = ap.parse_args()
    catalog = open_catalog(a)
    failures = 0
    for ident in sorted(catalog.list_tables(a.namespace)):
        name = ident[-1]
        export = pathlib.Path(a.export) / f"{name}.jsonl"
        if not export.exists():
            continue
        table = catalog.load_table((a.namespace, name))
        arrow = table.scan().to_arrow()
        schema = arrow.schema
        ours = []
        with open(export) as f:
            for line in f:
                if line.strip():
                    # Decimals exactly (a float would round 38-digit values).
                    row = json.loads(line, parse_float=decimal.Decimal)
                    ours.append({fld.name: norm_rs(row.get(fld.name), fld.type) for fld in schema})
        theirs = [
            {fld.name: norm_py(row[fld.name], fld.type) for fld in schema}
            for row in arrow.to_pylist()
        ]
        key = lambda r: json.dumps(r, sort_keys=True, default=str)
        a_sorted = sorted(ours, key=key)
        b_sorted = sorted(theirs, key=key)
        if a_sorted == b_sorted:
            print(f"{a.namespace}.{name}: {len(theirs)} rows, {len(schema)} columns identical")
        else:
            failures += 1
            print(f"{a.namespace}.{name}: DIFFERENT: medallion {len(ours)} rows, PyIceberg {len(theirs)} rows")
            for x, y in zip(a_sorted, b_sorted):
                if x != y:
                    for k in x:
                        if x[k] != y.get(k):
                            print(f"  first difference in column {k}: medallion {x[k]!r} PyIceberg {y.get(k)!r}")
                    break
        snap = table.current_snapshot()
        if snap is None and theirs:
            failures += 1
            print(f"{a.namespace}.{name}: rows but no snapshot")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
