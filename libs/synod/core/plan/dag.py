"""The plan: a DAG of steps, validated once and read-only afterwards.

A `Plan` is built from wire `PlanStep`s (or from a project file in the paper's
format, `load_project`) and refuses to exist if anything about the graph is
wrong. Validation collects every problem before raising, because a planner
(human or LLM) fixing a plan one error per round trip is slow and expensive.

Everything here is a pure function of the steps. Durations, where a function
takes them, are a mapping step id -> seconds; `None` means "every step takes
1", which is what the paper's projects assume (20 one-file tasks of similar
size) and what the planner knows before anything has run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synod.core.plan.dagcheck import (  # re-exported: importers find them here
    PlanError,
    Problem,
    ProblemKind,
    _kahn,
    _malformed,
    _validate,
)
from synod.wire.messages import PlanStep

__all__ = ["Chain", "Plan", "PlanError", "Problem", "ProblemKind", "load_project"]


@dataclass(frozen=True)
class Chain:
    """A dependency chain in execution order and its length (count or weighted)."""

    steps: tuple[str, ...]
    length: float


@dataclass(frozen=True)
class Plan:
    """An immutable, validated plan DAG. Constructing one validates it.

    Steps are deep-copied, so changing the caller's `PlanStep` lists later does
    not change the plan. Ties everywhere are broken by position in `steps`, so
    every answer is deterministic.
    """

    steps: tuple[PlanStep, ...]
    name: str = ""
    description: str = ""
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _deps: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _topo: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        steps = tuple(s.model_copy(deep=True) for s in self.steps)
        problems = _validate(steps)
        if problems:
            raise PlanError(problems)
        index = {s.step_id: i for i, s in enumerate(steps)}
        deps = {s.step_id: tuple(dict.fromkeys(s.depends_on)) for s in steps}
        children: dict[str, list[str]] = {s.step_id: [] for s in steps}
        for s in steps:
            for d in deps[s.step_id]:
                children[d].append(s.step_id)
        # Frozen dataclass: derived fields are set once, here, and never again.
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_deps", deps)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})
        object.__setattr__(self, "_topo", _kahn(steps, deps, children, index))

    @classmethod
    def from_steps(
        cls,
        steps: Iterable[PlanStep | Mapping[str, Any]],
        *,
        name: str = "",
        description: str = "",
    ) -> Plan:
        """A plan from wire steps or plain mappings with `PlanStep`'s fields."""
        parsed: list[PlanStep] = []
        malformed: list[Problem] = []
        for i, raw in enumerate(steps, start=1):
            if isinstance(raw, PlanStep):
                parsed.append(raw)
                continue
            try:
                parsed.append(PlanStep.model_validate(raw))
            except ValidationError as e:
                malformed.append(_malformed(i, raw, e))
        if malformed:
            raise PlanError(malformed)
        return cls(tuple(parsed), name=name, description=description)

    # ------------------------------------------------------------ structure

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.step_id for s in self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[PlanStep]:
        return iter(self.steps)

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._index

    def step(self, step_id: str) -> PlanStep:
        return self.steps[self._index[step_id]]

    def position(self, step_id: str) -> int:
        """Where the step appears in the plan; the tie-break everywhere."""
        return self._index[step_id]

    def depends_on(self, step_id: str) -> tuple[str, ...]:
        return self._deps[step_id]

    def dependents(self, step_id: str) -> tuple[str, ...]:
        return self._children[step_id]

    def topological_order(self) -> tuple[str, ...]:
        """Every step after its dependencies; among ready steps, plan order first."""
        return self._topo

    def ready(self, done: Collection[str]) -> tuple[str, ...]:
        """Steps not in `done` whose dependencies all are, in plan order."""
        return tuple(
            s.step_id
            for s in self.steps
            if s.step_id not in done and all(d in done for d in self._deps[s.step_id])
        )

    # ------------------------------------------------------------ weights

    def weights(self, durations: Mapping[str, float] | None = None) -> dict[str, float]:
        """Durations checked against the plan: one finite, non-negative value per step."""
        if durations is None:
            return {sid: 1.0 for sid in self._index}
        missing = [sid for sid in self._index if sid not in durations]
        unknown = sorted(k for k in durations if k not in self._index)
        bad = [sid for sid, d in durations.items() if not (math.isfinite(d) and d >= 0)]
        if missing or unknown or bad:
            raise ValueError(
                f"durations must give one finite value >= 0 per step: missing {missing}, "
                f"unknown {unknown}, invalid {sorted(bad)}"
            )
        return {sid: float(durations[sid]) for sid in self._index}

    def total_work(self, durations: Mapping[str, float] | None = None) -> float:
        return math.fsum(self.weights(durations).values())

    def bottom_levels(self, durations: Mapping[str, float] | None = None) -> dict[str, float]:
        """Per step, the longest path from its start to the end of the plan, itself included.

        This is the critical-path priority: a step with a larger bottom level has
        more work waiting behind it, so starting it early shortens the makespan.
        """
        w = self.weights(durations)
        level: dict[str, float] = {}
        for sid in reversed(self._topo):
            below = max((level[c] for c in self._children[sid]), default=0.0)
            level[sid] = w[sid] + below
        return level

    def longest_chain(self, durations: Mapping[str, float] | None = None) -> Chain:
        """The critical path: by step count when `durations` is None, else weighted."""
        level = self.bottom_levels(durations)
        roots = [sid for sid in self._topo if not self._deps[sid]]
        cur = max(roots, key=lambda s: (level[s], -self._index[s]))
        chain = [cur]
        while self._children[cur]:
            cur = max(self._children[cur], key=lambda s: (level[s], -self._index[s]))
            chain.append(cur)
        return Chain(tuple(chain), level[chain[0]])

    def critical_path_rank(self, durations: Mapping[str, float] | None = None) -> dict[str, int]:
        """Dispatch rank (0 first): larger bottom level, then lower `priority`, then plan order.

        `priority` comes second because in the paper's files it only restates the
        depth (1 for a root), so it never overrides the critical path.
        """
        level = self.bottom_levels(durations)
        order = sorted(
            self._index,
            key=lambda s: (-level[s], self.steps[self._index[s]].priority, self._index[s]),
        )
        return {sid: rank for rank, sid in enumerate(order)}


# ---------------------------------------------------------------- project files


def load_project(source: Mapping[str, Any] | str | PathLike[str]) -> Plan:
    """A plan from a project in the paper's format, given as a dict or a JSON file path.

    `{project, description, tasks: [{id, title, description, dependencies, files,
    priority}]}`; other keys (status, owner, ...) are ignored. Every task becomes
    a `coder` step. Reading the file is the only I/O in this package.
    """
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise PlanError([Problem("malformed", (), f"{path}: not JSON: {e}")]) from e
    if not isinstance(data, Mapping) or not isinstance(data.get("tasks"), list):
        raise PlanError([Problem("malformed", (), "a project is an object with a 'tasks' list")])
    steps: list[dict[str, Any]] = []
    for task in data["tasks"]:
        if not isinstance(task, Mapping):
            steps.append({"step_id": task})  # fails validation with a useful message
            continue
        steps.append(
            {
                "step_id": task.get("id"),
                "role": "coder",
                "title": task.get("title") or "",
                "description": task.get("description") or "",
                "depends_on": task.get("dependencies") or [],
                "files": task.get("files") or [],
                "priority": task.get("priority") or 0,
            }
        )
    name = data.get("project")
    description = data.get("description")
    return Plan.from_steps(
        steps,
        name=name if isinstance(name, str) else "",
        description=description if isinstance(description, str) else "",
    )
