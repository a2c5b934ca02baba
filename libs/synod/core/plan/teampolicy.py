"""Who works on what next in the paper's two teams, over a task's log (pure).

The planner's `TaskMachine` runs a project given with a plan in one of three
modes (label `team.mode`, team size `team.agents` = N slots):

- `central`, the paper's pre-assigned team: before anything runs, the steps
  are dealt to N slots round-robin in list order (`list_order`: priority,
  then plan order, dependencies first). Each slot works through its own list
  one step at a time; when its next step still waits for a dependency, the
  slot waits too (idle), even if another slot's step is ready.
- `claim`, the paper's decentralized team: a free slot claims the first
  unclaimed step of the shared list, ready or not. A claim of a step whose
  dependencies are unfinished is a *blocked claim*: the slot holds it and
  waits. The planner is the list, so claims never race (no concurrent claims
  over Kafka, unlike the simulator's agents).
- `synod`: ready steps only, critical path first, hedged (the task core's
  own dispatch; nothing here).

The order and the dealing are `synod.core.plan.modes`'s (the simulator's engines),
so the Kafka teams and bench/teams.py run the same policy. What differs is
state: here everything is a fold of the task's log, so a restarted planner
makes the same claims again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from synod.core.plan.dag import Plan
from synod.core.plan.modes import list_order

TeamMode = Literal["central", "claim", "synod"]
TEAM_MODES: tuple[TeamMode, ...] = ("central", "claim", "synod")


class TeamLabelError(ValueError):
    """The task's team labels do not describe a team (says which label to fix)."""


def team_of(labels: Mapping[str, str]) -> tuple[TeamMode, int | None]:
    """(mode, slots) from a task's labels; no `team.mode` is synod mode.

    Central and claim teams need `team.agents` (their slots); synod mode uses it
    only as a cap on attempts in flight.
    """
    mode = labels.get("team.mode", "synod")
    agents = labels.get("team.agents", "")
    n = int(agents) if agents.isdigit() and int(agents) > 0 else None
    if mode == "synod":
        return "synod", n
    for team in ("central", "claim"):
        if mode == team:
            if n is None:
                raise TeamLabelError(
                    f"label team.mode={mode} needs team.agents set to a positive integer, "
                    f"got {agents!r}"
                )
            return team, n
    raise TeamLabelError(f"label team.mode={mode!r} is not one of {', '.join(TEAM_MODES)}")


def _ready(plan: Plan, step_id: str, done: Collection[str]) -> bool:
    return all(d in done for d in plan.depends_on(step_id))


def central_lists(plan: Plan, n: int) -> tuple[tuple[str, ...], ...]:
    """Slot i's steps: items i, i+n, i+2n, ... of the shared list (the paper's dealing)."""
    order = list_order(plan)
    return tuple(order[i::n] for i in range(n))


def central_next(
    plan: Plan, lists: tuple[tuple[str, ...], ...], done: Collection[str]
) -> list[tuple[int, str]]:
    """(slot, step) for each slot whose next unfinished step is ready now.

    A slot whose next step waits for a dependency is left out: it idles. Each
    list is in dependency order, so a slot's next step is its first unfinished.
    """
    picks = []
    for slot, mine in enumerate(lists):
        step_id = next((s for s in mine if s not in done), None)
        if step_id is not None and _ready(plan, step_id, done):
            picks.append((slot, step_id))
    return picks


def central_waiting(
    plan: Plan, lists: tuple[tuple[str, ...], ...], done: Collection[str]
) -> list[int]:
    """Slots idle now although steps are left on their list (their next step is not ready)."""
    waiting = []
    for slot, mine in enumerate(lists):
        step_id = next((s for s in mine if s not in done), None)
        if step_id is not None and not _ready(plan, step_id, done):
            waiting.append(slot)
    return waiting


def central_waits(plan: Plan, n: int, finished: Sequence[str]) -> int:
    """Times a central slot started idling on its own unready next step.

    `finished` is the order steps completed in (the log's); a slot counts once
    per stretch of waiting, as the simulator's `CentralEngine` counts `waits`.
    """
    lists = central_lists(plan, n)
    done: set[str] = set()
    waiting = set(central_waiting(plan, lists, done))
    count = len(waiting)
    for step_id in finished:
        done.add(step_id)
        now = set(central_waiting(plan, lists, done))
        count += len(now - waiting)
        waiting = now
    return count


@dataclass(frozen=True)
class Claim:
    step_id: str
    agent: int
    blocked_on: tuple[str, ...]  # dependencies unfinished when the claim was made


@dataclass
class SharedList:
    """The claim team's shared list, folded: claims in the order they were made.

    `start` when the plan is known; `finished` on each step's first completion.
    Both are called in log order by the task core's fold, so the claims are a
    function of the log.
    """

    plan: Plan
    n: int
    order: tuple[str, ...] = ()
    claims: list[Claim] = field(default_factory=list)
    owner: dict[str, int] = field(default_factory=dict)  # step -> slot that claimed it
    held: dict[int, str] = field(default_factory=dict)  # slot -> step it works on or waits for

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a claim team needs at least one slot, got {self.n}")
        self.order = list_order(self.plan)

    def start(self) -> None:
        for slot in range(self.n):
            self._claim(slot, ())

    def finished(self, step_id: str, done: Collection[str]) -> None:
        """`step_id` completed: its slot is free and claims the next step of the list."""
        slot = self.owner.get(step_id)
        if slot is None or self.held.get(slot) != step_id:
            return  # a revision's completion: the slot moved on long ago
        del self.held[slot]
        self._claim(slot, done)

    def _claim(self, slot: int, done: Collection[str]) -> None:
        if slot in self.held or len(self.owner) == len(self.order):
            return
        # Claims always take the first unclaimed step, so the claimed steps are
        # a prefix of the list and the next one is at its end.
        step_id = self.order[len(self.owner)]
        blocked = tuple(d for d in self.plan.depends_on(step_id) if d not in done)
        self.owner[step_id] = slot
        self.held[slot] = step_id
        self.claims.append(Claim(step_id, slot, blocked))

    def runnable(self, done: Collection[str]) -> list[tuple[int, str]]:
        """(slot, step) for each held claim whose dependencies are all done, by slot."""
        return [
            (slot, step_id)
            for slot, step_id in sorted(self.held.items())
            if step_id not in done and _ready(self.plan, step_id, done)
        ]

    @property
    def blocked_claims(self) -> int:
        return sum(1 for c in self.claims if c.blocked_on)
