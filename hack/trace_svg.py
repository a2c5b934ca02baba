"""Draw one trace from a Jaeger query API as an SVG waterfall (for docs/observability.md).

    .venv/bin/python hack/trace_svg.py http://127.0.0.1:16686 TRACE_ID > docs/img/trace.svg
    .venv/bin/python hack/trace_svg.py saved-trace.json > docs/img/trace.svg

Reads `/api/traces/<id>` (or a file holding that JSON), orders the spans as
their tree (each span under its parent, siblings by start time) and draws one
bar per span: where it starts, how long it lasts, its service's colour. A
Jaeger built from source (`make jaeger`) serves this API but not the web UI;
this is how the docs show what the UI would.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from html import escape
from typing import Any

COLOURS = {
    "synod-gateway": "#8e6c8a",
    "synod-planner": "#4e79a7",
    "synod-researcher": "#59a14f",
    "synod-coder": "#f28e2b",
    "synod-reviewer": "#e15759",
    "synod-consensus": "#76b7b2",
    "synod-supervisor": "#bab0ac",
}
ROW, LABEL_W, BAR_W = 18, 430, 760


def load(source: str, trace_id: str | None) -> dict[str, Any]:
    if trace_id is None:
        with open(source) as handle:
            doc: dict[str, Any] = json.load(handle)
    else:
        with urllib.request.urlopen(f"{source}/api/traces/{trace_id}", timeout=10) as response:
            doc = json.loads(response.read())
    trace: dict[str, Any] = doc["data"][0]
    return trace


def tree_order(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    by_id = {s["spanID"]: s for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans:
        parents = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
        if parents and parents[0] in by_id:
            children.setdefault(parents[0], []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[int, dict[str, Any]]] = []
    stack = [(0, s) for s in sorted(roots, key=lambda s: s["startTime"], reverse=True)]
    while stack:
        depth, span = stack.pop()
        ordered.append((depth, span))
        kids = sorted(children.get(span["spanID"], []), key=lambda s: s["startTime"], reverse=True)
        stack.extend((depth + 1, kid) for kid in kids)
    return ordered


def svg(trace: dict[str, Any]) -> str:
    spans = trace["spans"]
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    start = min(s["startTime"] for s in spans)
    end = max(s["startTime"] + s["duration"] for s in spans)
    scale = BAR_W / max(1, end - start)
    rows = tree_order(spans)
    height = ROW * (len(rows) + 3)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + BAR_W + 20}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="4" y="13" font-weight="bold">trace {trace["traceID"]}: {len(spans)} spans, '
        f"{(end - start) / 1e6:.2f} s, {len(set(services.values()))} services</text>",
    ]
    for i, (depth, span) in enumerate(rows):
        y = ROW * (i + 1) + 6
        service = services[span["processID"]]
        colour = COLOURS.get(service, "#999999")
        x = LABEL_W + (span["startTime"] - start) * scale
        width = max(2.0, span["duration"] * scale)
        # "send demo1a2b3c.synod.task-events" -> "send task-events": the prefix is noise here.
        name = re.sub(r"\S*\bsynod\.", "", span["operationName"])
        label = f"{service.removeprefix('synod-')}: {name}"
        out.append(
            f'<text x="{4 + depth * 8}" y="{y + 11}" fill="#333">{escape(label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 2}" width="{width:.1f}" height="{ROW - 5}" '
            f'fill="{colour}"><title>{escape(span["operationName"])} '
            f"{span['duration'] / 1000:.1f} ms</title></rect>"
        )
    legend_y = ROW * (len(rows) + 2) + 4
    for i, (service, colour) in enumerate(COLOURS.items()):
        if service in services.values():
            x = 4 + i * 130
            out.append(
                f'<rect x="{x}" y="{legend_y}" width="10" height="10" fill="{colour}"/>'
                f'<text x="{x + 14}" y="{legend_y + 9}">{service}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    trace = load(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    sys.stdout.write(svg(trace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
