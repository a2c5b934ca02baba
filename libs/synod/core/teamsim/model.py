"""The simulated team's model: settings, step durations, acknowledged writes, results."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from synod.core.plan.dag import Plan
from synod.core.plan.modes import EngineConfig, EngineStats, Mode
from synod.core.workspace import VersionVector, Workspace
from synod.errors import ConfigError

Consistency = Literal["strong", "eventual"]
BOARD = ".synod/board"


@dataclass(frozen=True)
class SimConfig:
    """How the simulated team behaves. Defaults are the bench's."""

    sigma: float = 0.5
    consistency: Consistency = "strong"
    claim_latency_s: float = 0.05  # reading the list to the claim landing on it
    tokens_per_s: float = 1000.0
    lease_ttl_s: float = 60.0
    failure_rate: float = 0.0  # chance that an attempt fails (transient) instead of writing
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate < 1.0:
            raise ConfigError(f"failure_rate must be in [0, 1), got {self.failure_rate}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ConfigError(f"sigma must be finite and >= 0, got {self.sigma}")
        if self.consistency not in ("strong", "eventual"):
            raise ConfigError(f"consistency must be strong or eventual, got {self.consistency}")
        if not self.claim_latency_s >= 0:
            raise ConfigError(f"claim_latency_s must be >= 0, got {self.claim_latency_s}")
        if not self.lease_ttl_s > 0:
            raise ConfigError(f"lease_ttl_s must be > 0, got {self.lease_ttl_s}")


def draw_duration(
    seed: int, step_id: str, attempt: int, mean: float = 1.0, sigma: float = 0.5, stream: str = ""
) -> float:
    """Attempt `attempt` of `step_id` under `seed`: lognormal with this mean and sigma.

    `stream` (the project's name) keeps projects with the same step ids apart.
    """
    if not (math.isfinite(mean) and mean > 0):
        raise ConfigError(f"a step's mean duration must be > 0, got {mean} for '{step_id}'")
    mu = math.log(mean) - sigma * sigma / 2  # E[lognormal] = exp(mu + sigma^2 / 2)
    return random.Random(f"{seed}/{stream}/{step_id}/{attempt}").lognormvariate(mu, sigma)


def step_durations(
    plan: Plan, seed: int, sigma: float = 0.5, estimates: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Every step's first-attempt duration under `seed`: the durations the bounds use."""
    est = estimates or {}
    return {s: draw_duration(seed, s, 1, est.get(s, 1.0), sigma, plan.name) for s in plan.ids}


def load_estimates(source: Mapping[str, Any] | str | PathLike[str]) -> dict[str, float] | None:
    """Per-task `estimate_s` from a project (dict or JSON file); None if no task has one.

    The paper's files carry none; a project that does gets lognormal means from
    them (tasks without one keep 1.0) and synod mode ranks by them.
    """
    if isinstance(source, Mapping):
        data: Any = source
    else:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    tasks = data.get("tasks") if isinstance(data, Mapping) else None
    out: dict[str, float] = {}
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, Mapping) or "estimate_s" not in task:
            continue
        value = task["estimate_s"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"task '{task.get('id')}': estimate_s must be a number, got {value!r}"
            )
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"task '{task.get('id')}': estimate_s must be > 0, got {value}")
        out[str(task.get("id"))] = float(value)
    return out or None


@dataclass(frozen=True)
class Ack:
    """An acknowledged (accepted) workspace write."""

    write_id: str
    path: str
    content: str
    version: VersionVector


@dataclass(frozen=True)
class LostWrite:
    ack: Ack
    reason: str


def lost_writes(workspace: Workspace, acks: Sequence[Ack]) -> tuple[LostWrite, ...]:
    """Acknowledged writes the final workspace no longer holds, and not on record as discarded.

    A write is kept when its file's final version covers its version (it, or
    something that read it, is there). A final version must also carry the
    content of the write that made it, so a store that kept the version but
    changed the bytes is caught too.
    """
    discarded = {w for c in workspace.conflicts() for w in c.discarded}
    by_id = {a.write_id: a for a in acks}
    out: list[LostWrite] = []
    for ack in acks:
        view = workspace.read(ack.path)
        if ack.write_id in discarded:
            continue
        if not view.version.covers(ack.version):
            out.append(LostWrite(ack, f"final version {view.version} does not cover {ack.version}"))
    for path in workspace.paths():
        for sib in workspace.read(path).siblings:
            mine = by_id.get(sib.write_id)
            if mine is not None and mine.content != sib.content:
                out.append(LostWrite(mine, f"{path} holds other content under its write id"))
    return tuple(out)


@dataclass(frozen=True)
class StepTime:
    """The winning attempt of a step."""

    step_id: str
    attempt: int
    agent: str
    start: float
    finish: float


@dataclass(frozen=True)
class TeamRun:
    """One simulated run: what happened and what it cost."""

    mode: Mode
    n: int
    seed: int
    makespan: float
    durations: dict[str, float]  # first-attempt durations: the run's measured step durations
    steps: tuple[StepTime, ...]
    stats: EngineStats
    messages: dict[str, int]
    tokens: int
    writes: int
    concurrent_writes: int  # writes the workspace detected as concurrent (rejected or siblings)
    lost: tuple[LostWrite, ...]
    outputs_per_step: dict[str, int]  # accepted writes of each step's files: 1 per file expected
    workspace: Workspace
