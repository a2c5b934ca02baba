"""What every `synod` command shares: the --json and --bootstrap options and how
a command prints its one JSON document or fails (exit 1, or 2 for bad usage)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
BootstrapOption = Annotated[
    str | None,
    typer.Option("--bootstrap", "-b", help="Kafka bootstrap servers (default: SYNOD_BOOTSTRAP)"),
]


def emit(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def fail(message: str, as_json: bool, doc: Any = None) -> typer.Exit:
    """Exit status 1; with --json still exactly one document on stdout."""
    if as_json:
        emit(doc if doc is not None else {"error": {"message": message}})
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=1)
