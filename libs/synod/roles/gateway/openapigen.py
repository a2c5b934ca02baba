"""Write schemas/openapi.json: `python -m synod.roles.gateway.openapigen [--check]`.

The document of a gateway with no tokens, from `create_app`'s own routes (see
`synod.roles.gateway.openapi`). `--check` writes nothing and exits 1 if the
committed file differs: `make lint` runs it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synod.wire.generated import document_main, document_path

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
    return document_path("openapi.json", root)


def main(argv: list[str] | None = None) -> int:
    return document_main("synod.roles.gateway.openapigen", "openapi.json", text, argv)


if __name__ == "__main__":
    sys.exit(main())
