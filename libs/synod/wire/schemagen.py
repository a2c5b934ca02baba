"""Write schemas/ from the wire models: `python -m synod.wire.schemagen [--check]`.

- schemas/avro/<Type>.avsc: the current Avro schema of each message type.
- schemas/avro/history/<Type>/<fingerprint>.avsc: every version ever written,
  so readers can still resolve old messages by fingerprint. Never pruned.
- schemas/json/tasks.schema.json: what a client may produce to synod.tasks.
- schemas/json/results.schema.json: what synod.results carries.

`--check` writes nothing and exits 1 if a file is missing or stale: CI runs it
so the committed schemas are always the ones the code speaks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, create_model
from pydantic.json_schema import models_json_schema

from synod.wire.avro import avro_schema, schema_fingerprint, schemas_dir
from synod.wire.messages import (
    BODY_TYPES,
    Envelope,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def _short_task_model() -> Any:
    """The short form of a task: TaskSubmitted's fields plus task_id at the top."""
    return create_model(
        "TaskSubmittedShortForm",
        __base__=TaskSubmitted,
        __doc__="A task as a flat object: a task id, a goal, and any TaskSubmitted field.",
        task_id=(str, Field(min_length=1, max_length=200)),
        message_id=(str | None, None),
    )


def _edge_schema(title: str, description: str, models: list[Any]) -> dict[str, Any]:
    refs, defs = models_json_schema([(m, "validation") for m in models])
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": title,
        "description": description,
        "anyOf": [refs[(m, "validation")] for m in models],
        **defs,
    }


def expected_files() -> dict[Path, str]:
    """Relative path -> content of every generated file."""
    files: dict[Path, str] = {}
    for type_name in BODY_TYPES:
        schema = avro_schema(type_name)
        text = _dump(schema)
        fp = schema_fingerprint(schema).hex()
        files[Path("avro") / f"{type_name}.avsc"] = text
        files[Path("avro") / "history" / type_name / f"{fp}.avsc"] = text
    files[Path("json") / "tasks.schema.json"] = _dump(
        _edge_schema(
            "synod.tasks message",
            "A TaskSubmitted envelope, or its short form: {task_id, goal, ...}. "
            "Fields not given take their defaults.",
            [Envelope[TaskSubmitted], _short_task_model()],
        )
    )
    files[Path("json") / "results.schema.json"] = _dump(
        _edge_schema(
            "synod.results message",
            "The outcome of a task: a TaskCompleted or a TaskFailed envelope.",
            [Envelope[TaskCompleted], Envelope[TaskFailed]],
        )
    )
    return files


def stale_files(root: Path) -> list[Path]:
    """Generated files that are missing or differ under root."""
    return [
        rel
        for rel, text in expected_files().items()
        if not (root / rel).exists() or (root / rel).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synod.wire.schemagen")
    parser.add_argument("--check", action="store_true", help="fail if schemas/ is stale")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.root or schemas_dir()
    stale = stale_files(root)
    if args.check:
        for rel in stale:
            print(f"stale: schemas/{rel} (run `make schemas` and commit)", file=sys.stderr)
        return 1 if stale else 0
    expected = expected_files()
    for rel in stale:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[rel])
        print(f"wrote schemas/{rel}")
    if not stale:
        print("schemas/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
