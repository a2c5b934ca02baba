"""The team engines' shared vocabulary: events in, actions out, stats, config, list order.

Every mode (`synod.core.plan.modes`, `synod.core.teamsim.SynodEngine`) speaks
it; `synod.core.plan.modes` re-exports every name here, and its docstring
explains the protocol.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from synod.core.plan.dag import Plan
from synod.errors import ConfigError, ErrorClass

Mode = Literal["central", "claim", "synod"]
MODES: tuple[Mode, ...] = ("central", "claim", "synod")

# ---------------------------------------------------------------- events in


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class ClaimAttempted:
    """Claim mode: `agent`'s claim of `step_id` reached the shared list (log order = arrival)."""

    agent: str
    step_id: str
    now: float


@dataclass(frozen=True)
class AttemptStarted:
    """An agent took an attempt. Needed only for `Run(agent=None)`, where the pool picks."""

    step_id: str
    attempt: int
    agent: str
    now: float


@dataclass(frozen=True)
class AttemptFinished:
    """An attempt produced a result; `ok=False` means it was not acceptable (a failed attempt)."""

    step_id: str
    attempt: int
    agent: str
    now: float
    ok: bool = True


@dataclass(frozen=True)
class AttemptFailed:
    step_id: str
    attempt: int
    agent: str
    now: float
    error_class: ErrorClass = "transient"
    reason: str = ""


TeamEvent = Tick | ClaimAttempted | AttemptStarted | AttemptFinished | AttemptFailed

# ---------------------------------------------------------------- actions out


@dataclass(frozen=True)
class Run:
    """Work on `step_id` now. `agent=None`: any free agent of the pool (synod mode)."""

    step_id: str
    attempt: int
    agent: str | None


@dataclass(frozen=True)
class Hedge:
    """Run `attempt` of a step on any free agent while attempt `straggler` still runs."""

    step_id: str
    attempt: int
    straggler: int


@dataclass(frozen=True)
class Cancel:
    step_id: str
    attempt: int
    agent: str | None


@dataclass(frozen=True)
class ClaimGranted:
    agent: str
    step_id: str
    blocked_on: tuple[str, ...]  # dependencies not done when the claim landed


@dataclass(frozen=True)
class ClaimLost:
    agent: str
    step_id: str
    winner: str


@dataclass(frozen=True)
class TeamDone:
    now: float
    makespan: float


@dataclass(frozen=True)
class TeamFailed:
    step_id: str
    reason: str
    now: float


Action = Run | Hedge | Cancel | ClaimGranted | ClaimLost | TeamDone | TeamFailed


@dataclass(frozen=True)
class EngineStats:
    """What an engine counted over a run; fields a mode cannot produce stay 0."""

    runs: int = 0  # Run actions (first attempts and retries)
    hedges: int = 0
    cancels: int = 0
    retries: int = 0
    duplicates: int = 0  # results for a step already done (a hedge loser, a redelivery)
    claims: int = 0  # claim attempts that reached the list
    concurrent_claims: int = 0  # claims that lost to an earlier claim of the same step
    blocked_claims: int = 0  # claims won while a dependency was not done
    waits: int = 0  # central: an agent became free but the next step on its list was not ready


class TeamEngine(Protocol):
    """What every mode offers its adapter."""

    mode: Mode
    plan: Plan

    def handle(self, events: Iterable[TeamEvent]) -> tuple[Action, ...]: ...

    def next_deadline(self) -> float | None:
        """When to send the next Tick even if nothing else happens; None: no need."""
        ...

    @property
    def outcome(self) -> TeamDone | TeamFailed | None: ...

    @property
    def stats(self) -> EngineStats: ...


@dataclass(frozen=True)
class EngineConfig:
    """Settings shared by the modes; the hedge settings only matter in synod mode.

    They are the task core's (`synod.core.task.TaskConfig`, whose defaults these
    repeat; a test holds them equal): stragglers are hedged past the observed
    nearest-rank p95 of finished steps; in the plan's tail (every unfinished
    step already out, agents idle) the observed p25, up to two copies. The rule
    itself is `synod.core.task.hedging`; docs/teams.md has the numbers.
    """

    max_attempts: int = 3
    hedge: bool = True  # synod mode
    hedge_quantile: float = 0.95
    hedge_min_samples: int = 5
    max_hedges: int = 1
    tail_hedge_quantile: float | None = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0.0 < self.hedge_quantile <= 1.0:
            raise ConfigError(f"hedge_quantile must be in (0, 1], got {self.hedge_quantile}")
        if self.hedge_min_samples < 1:
            raise ConfigError(f"hedge_min_samples must be >= 1, got {self.hedge_min_samples}")
        tail = self.tail_hedge_quantile
        if tail is not None and not 0.0 < tail <= 1.0:
            raise ConfigError(f"tail_hedge_quantile must be in (0, 1], got {tail}")
        if self.max_hedges < 1:
            raise ConfigError(f"max_hedges must be >= 1, got {self.max_hedges}")


def list_order(plan: Plan) -> tuple[str, ...]:
    """The shared list as agents read it: priority first, plan order next, deps always first.

    A topological order with (priority, position) as the tie-break. In the
    paper's files priority restates the depth, so this is just sorting by
    priority; for other files it keeps both pre-assignment and top-of-list
    claiming free of deadlock (every step's dependencies come before it).
    """
    waiting = {sid: len(plan.depends_on(sid)) for sid in plan.ids}
    heap = [(plan.step(s).priority, plan.position(s), s) for s, k in waiting.items() if k == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, _, sid = heapq.heappop(heap)
        out.append(sid)
        for c in plan.dependents(sid):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, (plan.step(c).priority, plan.position(c), c))
    return tuple(out)


def _check_agents(agents: Sequence[str]) -> tuple[str, ...]:
    names = tuple(agents)
    if not names:
        raise ConfigError("a team needs at least one agent")
    if len(set(names)) != len(names):
        raise ConfigError(f"agent names must be unique, got {list(names)}")
    return names
