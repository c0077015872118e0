"""The local stack's Glue endpoint: moto's server, with its Glue catalog kept in a JSON file
so that `./run.sh stop` and `start` keep every database and table (moto itself forgets
everything when it stops). The catalog is saved every few seconds and on SIGTERM, and loaded at
start.

Usage: glue_server.py --port N --state FILE
"""

import argparse
import json
import os
import signal
import threading
import time

import boto3
from moto.server import ThreadedMotoServer

TABLE_KEYS = ("Name", "Description", "Owner", "TableType", "Parameters", "StorageDescriptor",
              "PartitionKeys", "Retention")


def client(port):
    return boto3.client("glue", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="moto", aws_secret_access_key="moto")


def dump(glue):
    out = []
    for page in glue.get_paginator("get_databases").paginate():
        for db in page["DatabaseList"]:
            tables = [t for p in glue.get_paginator("get_tables").paginate(DatabaseName=db["Name"])
                      for t in p["TableList"]]
            out.append({
                "database": {k: db[k] for k in ("Name", "Description", "LocationUri", "Parameters") if k in db},
                "tables": [{k: t[k] for k in TABLE_KEYS if k in t} for t in tables],
            })
    return out


def load(glue, state):
    for db in state:
        glue.create_database(DatabaseInput=db["database"])
        for t in db["tables"]:
            glue.create_table(DatabaseName=db["database"]["Name"], TableInput=t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state", required=True)
    a = ap.parse_args()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=a.port)
    server.start()
    glue = client(a.port)
    if os.path.exists(a.state):
        with open(a.state) as f:
            state = json.load(f)
        load(glue, state)
        print(f"glue: loaded {sum(len(d['tables']) for d in state)} tables from {a.state}", flush=True)
    print(f"glue: serving on 127.0.0.1:{a.port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last = None
    while True:
        stopping = stop.wait(5)
        text = json.dumps(dump(glue), sort_keys=True)
        if text != last:
            tmp = a.state + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, a.state)  # atomic: a crash leaves the previous state
            last = text
        if stopping:
            break
    server.stop()
    print("glue: saved and stopped", flush=True)


if __name__ == "__main__":
    main()
