"""Data the Helm chart takes from the code, so the two cannot drift apart.

`python -m synod.dev.chartdata` writes charts/synod/files/topics.json from the
topic catalogue (the chart's Strimzi KafkaTopics and KEDA triggers read it)
and charts/synod/files/acls.json from the rights table
(`synod.transport.authorship.RIGHTS`; the chart's Strimzi KafkaUsers read it,
and `synod up --secure` grants the same ACLs); `--check` fails when either
file is stale (part of `make lint`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synod.transport.authorship import RIGHTS, acls_for
from synod.transport.topics import CATALOGUE

FILES = Path(__file__).resolve().parents[3] / "charts" / "synod" / "files"
TOPICS_FILE = FILES / "topics.json"
ACLS_FILE = FILES / "acls.json"


def topics_document() -> str:
    topics = [
        {"name": spec.name, "partitions": spec.partitions, "config": spec.config()}
        for spec in CATALOGUE
    ]
    return json.dumps({"topics": topics}, indent=2, sort_keys=True) + "\n"


def acls_document() -> str:
    """role -> ACLs in Strimzi's terms; names without the install's prefix (the chart adds it)."""
    roles = {
        role: [
            {
                "type": acl.resource,
                "name": acl.name,
                "patternType": "prefix" if acl.prefix else "literal",
                "operations": list(acl.operations),
            }
            for acl in acls_for(role)
        ]
        for role in RIGHTS
    }
    return json.dumps({"roles": roles}, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, wanted in ((TOPICS_FILE, topics_document()), (ACLS_FILE, acls_document())):
        current = path.read_text() if path.exists() else ""
        if args.check:
            if current != wanted:
                print(f"{path} is stale: run `make schemas`", file=sys.stderr)
                stale = 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
        print(f"wrote {path}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
