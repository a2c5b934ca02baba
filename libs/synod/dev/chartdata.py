"""Data the Helm chart takes from the code, so the two cannot drift apart.

`python -m synod.dev.chartdata` writes charts/synod/files/topics.json from the
topic catalogue (the chart's Strimzi KafkaTopics and KEDA triggers read it);
`--check` fails when the file is stale (part of `make lint`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synod.transport.topics import CATALOGUE

TOPICS_FILE = Path(__file__).resolve().parents[3] / "charts" / "synod" / "files" / "topics.json"


def topics_document() -> str:
    topics = [
        {"name": spec.name, "partitions": spec.partitions, "config": spec.config()}
        for spec in CATALOGUE
    ]
    return json.dumps({"topics": topics}, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    wanted = topics_document()
    current = TOPICS_FILE.read_text() if TOPICS_FILE.exists() else ""
    if args.check:
        if current != wanted:
            print(f"{TOPICS_FILE} is stale: run `make schemas`", file=sys.stderr)
            return 1
        return 0
    TOPICS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOPICS_FILE.write_text(wanted)
    print(f"wrote {TOPICS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
