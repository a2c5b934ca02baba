"""Static checks of the Dockerfile (no Docker engine here)."""

from __future__ import annotations

import re

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def test_multi_stage_on_python_311_slim() -> None:
    froms = [i.split()[1] for i in INSTRUCTIONS if i.upper().startswith("FROM ")]
    assert len(froms) >= 2
    assert all(f == "python:3.11-slim" for f in froms)
    assert any(i.upper().startswith("COPY --FROM=") for i in INSTRUCTIONS)


def test_no_latest_or_untagged_images() -> None:
    for i in INSTRUCTIONS:
        if i.upper().startswith("FROM "):
            image = i.split()[1]
            assert ":" in image, i
            assert not image.endswith(":latest"), i


def test_runs_as_non_root() -> None:
    users = [i.split()[1] for i in INSTRUCTIONS if i.upper().startswith("USER ")]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_schemas_and_install() -> None:
    assert re.search(r"COPY schemas/ (\S+)", DOCKERFILE)
    assert "SYNOD_SCHEMA_DIR=" in DOCKERFILE
    assert "pip install ." in DOCKERFILE
