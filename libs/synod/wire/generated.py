"""One generated document under schemas/: write it if stale, or `--check` that it is current.

The AsyncAPI (`synod.transport.asyncapi`) and OpenAPI (`synod.roles.gateway.openapigen`)
documents share this entry; it sits in wire, the layer both may import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from synod.wire.avro import schemas_dir


def document_path(filename: str, root: Path | None = None) -> Path:
    return (root or schemas_dir()) / filename


def document_main(
    prog: str, filename: str, text: Callable[[], str], argv: list[str] | None = None
) -> int:
    """`python -m <prog> [--check] [--root DIR]`: 0 when current (or written), 1 if stale."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    target, want = document_path(filename, args.root), text()
    current = target.read_text() if target.exists() else None
    if args.check:
        if current != want:
            print(f"stale: schemas/{filename} (run `make schemas` and commit)", file=sys.stderr)
            return 1
        return 0
    if current != want:
        target.write_text(want)
        print(f"wrote schemas/{filename}")
    return 0
