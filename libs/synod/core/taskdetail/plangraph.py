"""The plan as a graph: nodes with depth, edges, the critical path."""

from __future__ import annotations

from typing import Any


def dag(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Nodes (with depth for layout), edges and the critical path of the plan."""
    by_id = {s["step_id"]: s for s in steps}
    depth: dict[str, int] = {}

    def depth_of(step_id: str, trail: frozenset[str] = frozenset()) -> int:
        if step_id in depth:
            return depth[step_id]
        if step_id in trail:  # a cycle (a bad plan): cut it here
            return 0
        deps = [d for d in by_id[step_id]["depends_on"] if d in by_id]
        found = 1 + max((depth_of(d, trail | {step_id}) for d in deps), default=-1)
        depth[step_id] = found
        return found

    for step_id in by_id:
        depth_of(step_id)
    critical = critical_path(steps)
    nodes = [
        {
            "step_id": s["step_id"],
            "role": s["role"],
            "title": s["title"],
            "state": s["status"],
            "attempts": s["attempts"],
            "duration_s": s["duration_s"],
            "depth": depth[s["step_id"]],
            "critical": s["step_id"] in critical,
        }
        for s in steps
    ]
    edges = [
        {"from": d, "to": s["step_id"], "critical": d in critical and s["step_id"] in critical}
        for s in steps
        for d in s["depends_on"]
        if d in by_id
    ]
    return {"nodes": nodes, "edges": edges, "critical_path": critical}


def critical_path(steps: list[dict[str, Any]]) -> list[str]:
    """The chain of dependent steps with the longest total duration (then most steps).

    Unfinished steps count zero seconds, so while a plan runs the path is the
    longest chain so far; before any step finished it is the longest by count.
    """
    by_id = {s["step_id"]: s for s in steps}
    best: dict[str, tuple[float, int, list[str]]] = {}

    def longest(step_id: str, trail: frozenset[str] = frozenset()) -> tuple[float, int, list[str]]:
        if step_id in best:
            return best[step_id]
        own = float(by_id[step_id].get("duration_s") or 0.0)
        chains = [
            longest(d, trail | {step_id})
            for d in by_id[step_id]["depends_on"]
            if d in by_id and d not in trail and d != step_id
        ]
        before = max(chains, key=lambda c: (c[0], c[1]), default=(0.0, 0, []))
        found = (before[0] + own, before[1] + 1, [*before[2], step_id])
        best[step_id] = found
        return found

    ends = [longest(step_id) for step_id in by_id]
    if not ends:
        return []
    return max(ends, key=lambda c: (c[0], c[1]))[2]
