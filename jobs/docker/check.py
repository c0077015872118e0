"""Keeps docker-compose's Debezium connector and the local stack's (jobs/stack/debezium_postgres.py)
saying the same things: every setting they share must be equal. Run by ./run.sh check-compose."""

import ast
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2]
docker = json.loads((root / "jobs/docker/postgres-connector.json").read_text())
src = (root / "jobs/stack/debezium_postgres.py").read_text()
# The `props = {...}` literal of the local stack's connector (values that are expressions are
# command-line options there, e.g. the database host: those differ on purpose).
node = next(n for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "props")
local = {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
         if isinstance(v, ast.Constant)}
shared = ["connector.class", "plugin.name", "slot.name", "publication.name",
          "publication.autocreate.mode", "snapshot.mode", "tombstones.on.delete",
          "skipped.operations"]
bad = [(k, local.get(k), docker.get(k)) for k in shared if local.get(k) != docker.get(k)]
for prefix in ("key.converter", "value.converter"):
    if docker.get(f"{prefix}.replace.null.with.default") != local.get(f"{prefix}.replace.null.with.default"):
        bad.append((f"{prefix}.replace.null.with.default", local.get(f"{prefix}.replace.null.with.default"),
                    docker.get(f"{prefix}.replace.null.with.default")))
if docker.get("topic.prefix") != "shop" or docker.get("database.dbname") != "shop":
    bad.append(("topic.prefix/database.dbname", "shop", (docker.get("topic.prefix"), docker.get("database.dbname"))))
if bad:
    sys.exit("the compose connector and the local stack's differ:\n" + "\n".join(f"  {k}: stack {a!r}, compose {b!r}" for k, a, b in bad))
print(f"compose check: docker-compose.yml is valid and its connector matches the local stack's ({len(shared) + 3} settings)")
