"""Checking a plan's steps before a `Plan` exists: the problems, cycles, topological order.

`synod.core.plan.dag` builds a `Plan` with these and re-exports `Problem`,
`ProblemKind` and `PlanError`, where importers find them. Validation collects
every problem before raising (see `dag`'s docstring for why).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from synod.core.workspace.paths import normalise_path
from synod.errors import SynodError
from synod.wire.messages import PlanStep

ProblemKind = Literal[
    "empty",
    "malformed",
    "duplicate_id",
    "unknown_dependency",
    "self_dependency",
    "cycle",
    "invalid_file",
    "file_conflict",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan; `steps` names the steps involved."""

    kind: ProblemKind
    steps: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


class PlanError(SynodError):
    """A plan that cannot be run. Permanent: the same plan will fail again."""

    error_class = "permanent"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        n = len(self.problems)
        lines = "".join(f"\n- {p.message}" for p in self.problems)
        super().__init__(f"invalid plan: {n} problem{'s' if n != 1 else ''}:{lines}")


# ---------------------------------------------------------------- validation


def _malformed(position: int, raw: object, e: ValidationError) -> Problem:
    sid = raw.get("step_id") if isinstance(raw, Mapping) else None
    who = f"step '{sid}'" if isinstance(sid, str) and sid else f"step #{position}"
    details = "; ".join(
        f"{'.'.join(str(x) for x in err['loc']) or 'step'}: {err['msg']}" for err in e.errors()
    )
    return Problem("malformed", (sid,) if isinstance(sid, str) else (), f"{who}: {details}")


def _validate(steps: tuple[PlanStep, ...]) -> list[Problem]:
    if not steps:
        return [Problem("empty", (), "the plan has no steps")]
    problems: list[Problem] = []

    positions: dict[str, list[int]] = {}
    for i, s in enumerate(steps, start=1):
        positions.setdefault(s.step_id, []).append(i)
    for sid, where in positions.items():
        if len(where) > 1:
            at = " and ".join(f"#{i}" for i in where)
            problems.append(Problem("duplicate_id", (sid,), f"duplicate step id '{sid}' ({at})"))

    # The first definition of a duplicated id stands in for the graph checks, so
    # one duplicate does not hide the other problems.
    first: dict[str, PlanStep] = {}
    for s in steps:
        first.setdefault(s.step_id, s)
    graph: dict[str, tuple[str, ...]] = {}
    for sid, s in first.items():
        kept: list[str] = []
        for d in dict.fromkeys(s.depends_on):
            if d == sid:
                msg = f"step '{sid}' depends on itself"
                problems.append(Problem("self_dependency", (sid,), msg))
            elif d not in first:
                msg = f"step '{sid}' depends on unknown step '{d}'"
                problems.append(Problem("unknown_dependency", (sid, d), msg))
            else:
                kept.append(d)
        graph[sid] = tuple(kept)

    for cycle in _cycles(graph):
        path = " -> ".join([*cycle, cycle[0]])
        msg = f"dependency cycle: {path} (each step depends on the next)"
        problems.append(Problem("cycle", tuple(cycle), msg))

    writers: dict[str, list[str]] = {}
    for sid, s in first.items():
        for f in dict.fromkeys(s.files):
            norm = normalise_path(f)
            if norm is None:
                msg = f"step '{sid}' writes '{f}', which is not a relative path inside the project"
                problems.append(Problem("invalid_file", (sid,), msg))
            elif sid not in writers.setdefault(norm, []):
                writers[norm].append(sid)
    reach = _Reachability(graph)
    for f, ws in writers.items():
        for i, a in enumerate(ws):
            for b in ws[i + 1 :]:
                if not (reach.depends(a, b) or reach.depends(b, a)):
                    msg = (
                        f"steps '{a}' and '{b}' both write '{f}' "
                        "with no dependency path between them"
                    )
                    problems.append(Problem("file_conflict", (a, b), msg))
    return problems


class _Reachability:
    """`depends(a, b)`: is there a dependency path from a down to b? Memoised per a."""

    def __init__(self, graph: Mapping[str, tuple[str, ...]]) -> None:
        self._graph = graph
        self._ancestors: dict[str, set[str]] = {}

    def depends(self, a: str, b: str) -> bool:
        if a not in self._ancestors:
            seen: set[str] = set()
            stack = list(self._graph[a])
            while stack:
                x = stack.pop()
                if x not in seen:
                    seen.add(x)
                    stack.extend(self._graph[x])
            self._ancestors[a] = seen
        return b in self._ancestors[a]


def _cycles(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component that has one.

    A component with a cycle can hold many; naming one per component is enough
    to fix the plan step by step and keeps the report small and deterministic.
    """
    order = list(graph)
    pos = {s: i for i, s in enumerate(order)}
    cycles: list[list[str]] = []
    for comp in _strongly_connected(graph, order):
        if len(comp) < 2:
            continue
        members = set(comp)
        start = min(comp, key=pos.__getitem__)
        # Breadth-first from `start` back to `start` inside the component.
        parent: dict[str, str] = {}
        frontier = [start]
        found: str | None = None
        while frontier and found is None:
            nxt: list[str] = []
            for x in frontier:
                for d in graph[x]:
                    if d == start:
                        found = x
                        break
                    if d in members and d not in parent:
                        parent[d] = x
                        nxt.append(d)
                if found is not None:
                    break
            frontier = nxt
        assert found is not None  # a component of size >= 2 has a cycle through any member
        path = [found]
        while path[-1] != start:
            path.append(parent[path[-1]])
        cycles.append(list(reversed(path)))
    return cycles


def _strongly_connected(graph: Mapping[str, tuple[str, ...]], order: list[str]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so that a long chain cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = graph[v]
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                result.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return result


def _kahn(
    steps: tuple[PlanStep, ...],
    deps: Mapping[str, tuple[str, ...]],
    children: Mapping[str, list[str]],
    index: Mapping[str, int],
) -> tuple[str, ...]:
    waiting = {s.step_id: len(deps[s.step_id]) for s in steps}
    heap = [index[sid] for sid, n in waiting.items() if n == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        sid = steps[heapq.heappop(heap)].step_id
        out.append(sid)
        for c in children[sid]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, index[c])
    return tuple(out)
