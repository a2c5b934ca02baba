"""Write schemas/openapi.json: `python -m synod.roles.gateway.openapigen [--check]`.

The document of a gateway with no tokens, from `create_app`'s own routes (see
`synod.roles.gateway.openapi`). `--check` writes nothing and exits 1 if the
committed file differs: `make lint` runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synod.wire.avro import schemas_dir

from .app import create_app
from .openapi import document
from .view import TaskFeed


class _NoPublisher:
    async def publish(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("the reference app publishes nothing")


def text() -> str:
    app = create_app(_NoPublisher(), TaskFeed())
    return json.dumps(document(app), indent=2) + "\n"


def path(root: Path | None = None) -> Path:
    return (root or schemas_dir()) / "openapi.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synod.roles.gateway.openapigen")
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    target, want = path(args.root), text()
    current = target.read_text() if target.exists() else None
    if args.check:
        if current != want:
            print("stale: schemas/openapi.json (run `make schemas` and commit)", file=sys.stderr)
            return 1
        return 0
    if current != want:
        target.write_text(want)
        print("wrote schemas/openapi.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
