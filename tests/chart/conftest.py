"""Shared helpers for the chart tests: find helm, render the chart.

helm comes from `make tools` (.tools/helm). If it is missing the tests fail,
never skip, so a green `make chart-test` always means the chart was checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "synod"
KUBE_VERSION = "1.31.0"
VALUES_FILES = [None, *sorted((CHART / "ci").glob("*-values.yaml"))]


def helm_path() -> str:
    local = ROOT / ".tools" / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if found is None:
        pytest.fail("helm not found in .tools/ or on PATH: run `make tools`", pytrace=False)
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_path(), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc


def render(values: Path | None, *extra: str) -> list[dict[str, Any]]:
    args = ["template", "synod-ci", str(CHART), "--kube-version", KUBE_VERSION, *extra]
    if values is not None:
        args += ["-f", str(values)]
    out = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def values_id(values: Path | None) -> str:
    return "default" if values is None else values.name
