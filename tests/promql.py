"""The series names the chart's alert rules and dashboards use, and those the code registers.

PromQL names are read by pattern (every `synod_*` identifier), which is all
these expressions need: they only ever name Synod's own series. Registered
names expand a metric family the way Prometheus exposes it (a counter's
`_total`, a histogram's `_bucket`, `_count` and `_sum`).
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
from collections.abc import Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "synod"
SERIES = re.compile(r"\bsynod_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
}


def alert_expressions() -> dict[str, str]:
    doc = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    return {r["alert"]: r["expr"] for group in doc["groups"] for r in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    found = {}
    for path in sorted((CHART / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found[f"{path.name}: {panel['title']} ({target['refId']})"] = target["expr"]
    return found


def names_in(expressions: Iterable[str]) -> set[str]:
    return {name for expr in expressions for name in SERIES.findall(expr)}


def names_in_chart() -> set[str]:
    return names_in([*alert_expressions().values(), *dashboard_expressions().values()])


def expand(name: str, kind: str) -> set[str]:
    """The series a family of this name and type exposes."""
    base = name.removesuffix("_total") if kind == "counter" else name
    return {base + suffix for suffix in SUFFIXES.get(kind, ("",))}


@functools.cache
def registered_names() -> frozenset[str]:
    """Every series the library's modules register in the default registry, once imported."""
    from prometheus_client import REGISTRY

    import synod

    for module in pkgutil.walk_packages(synod.__path__, "synod."):
        importlib.import_module(module.name)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= expand(family.name, family.type)
    return frozenset(names)


def scraped_names(exposition: str) -> set[str]:
    """The series a /metrics page declares (its `# TYPE` lines, expanded by type)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        names |= expand(name, kind)
    return names
