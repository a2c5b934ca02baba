"""What goes into the task core and what comes out of it (its whole interface).

Events in (`TaskMachine.step`):

    Logged(envelope, replayed)   a record of the task's own log, in log order;
                                 replayed=True while a restarted planner folds
                                 its partitions again (fold only, forward nothing)
    Tick(now)                    time passes; the only clock the core has
    Quarantined(reviewers)       the supervisor's quarantine, as it stands now
    PlanMade / PlanningFailed    the answer to a RequestPlan
    WorkspaceChecked             the answer to a CheckWorkspace
    Owners(maps)                 who holds each partition of the step topics, from
                                 the workers' heartbeats (lanes.py): where a hedge
                                 copy's key must land to reach another worker

Actions out (`TaskMachine.ready`), each to carry out in order:

    Publish        append a record to the task's log (key: the task id)
    GrantLease     log a lease on `synod.workspace` before the request under it goes out
    Forward        a record of the log goes on to its topic, with its key (lane)
    RequestPlan    ask the planner model for a plan; answer with PlanMade/PlanningFailed
    CheckWorkspace fold the task's workspace; answer with WorkspaceChecked

plus `Ready.wake_at`, when to send the next Tick if nothing else happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from synod.core.task.lanes import OwnerMap
from synod.core.workspace import Sibling
from synod.wire import (
    Body,
    Envelope,
    PlanStep,
    Reconciled,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TraceContext,
    VoteRequested,
)
from synod.wire.messages import EscalationRaised, LeaseGranted, StepCancelled

Destination = Literal[
    "steps.researcher", "steps.coder", "steps.cancel", "votes", "results", "escalations"
]

# ---------------------------------------------------------------- events in


@dataclass(frozen=True)
class Logged:
    envelope: Envelope[Any]
    replayed: bool = False


@dataclass(frozen=True)
class Tick:
    now: datetime


@dataclass(frozen=True)
class Quarantined:
    reviewers: frozenset[str]


@dataclass(frozen=True)
class PlanMade:
    steps: list[PlanStep]
    rationale: str


@dataclass(frozen=True)
class PlanningFailed:
    reason: str
    error_class: Any


@dataclass(frozen=True)
class WorkspaceChecked:
    """The task's workspace folded with `winners`: the files still in conflict."""

    winners: Mapping[str, str]
    conflicted: Mapping[str, tuple[Sibling, ...]]


@dataclass(frozen=True)
class Owners:
    """The step topics' owner maps as the heartbeats stand now, by worker role
    ("coder", "researcher"); a role left out has no map (hedges keep today's lane)."""

    maps: Mapping[str, OwnerMap]


Event = Logged | Tick | Quarantined | PlanMade | PlanningFailed | WorkspaceChecked | Owners

# ---------------------------------------------------------------- actions out


@dataclass(frozen=True)
class Publish:
    """Append `body`, with this id, to the task's log (keyed by the task id)."""

    body: Body
    message_id: str
    attempt: int = 0
    causes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GrantLease:
    """Log `grant` on synod.workspace (its key is the workspace record's own)."""

    grant: LeaseGranted
    message_id: str
    attempt: int
    causes: tuple[str, ...]
    trace: TraceContext | None


@dataclass(frozen=True)
class Forward:
    """Send a record of the task's log on to `destination`, under Kafka key `key`."""

    envelope: Envelope[Any]
    destination: Destination
    key: str

    @property
    def message_id(self) -> str:
        return f"forward/{self.envelope.message_id}"


@dataclass(frozen=True)
class RequestPlan:
    """Ask the planner model for a plan (the adapter's one call out)."""

    attempt: int

    @property
    def message_id(self) -> str:
        return f"plan-request/{self.attempt}"


@dataclass(frozen=True)
class CheckWorkspace:
    """Fold the task's workspace with these winners and report its conflicts."""

    winners: Mapping[str, str]

    @property
    def message_id(self) -> str:
        return "workspace-check/" + ",".join(f"{s}={w}" for s, w in sorted(self.winners.items()))


Action = Publish | GrantLease | Forward | RequestPlan | CheckWorkspace


@dataclass(frozen=True)
class Ready:
    """What the machine wants done now; hand it back to `advance` once done."""

    actions: tuple[Action, ...] = ()
    wake_at: datetime | None = None


def action_id(action: Action) -> str:
    if isinstance(action, GrantLease):
        return f"lease/{action.message_id}"
    return action.message_id


# ---------------------------------------------------------------- keys


def forward_to(envelope: Envelope[Any]) -> Destination | None:
    """Where a record of the task's log goes next, once it is in the log.

    The log is the planner's outbox: a step request, a vote request or an
    outcome reaches its topic only from the log, so a crash between the two
    writes cannot lose it (the log record is handled again, and forwarded
    again with the same id).
    """
    body = envelope.body
    if isinstance(body, Reconciled) and envelope.sender.role == "consensus":
        return "results"  # clients learn there that a provisional outcome stands or fell
    if envelope.sender.role != "planner":
        return None
    if isinstance(body, StepRequested):
        return "steps.coder" if body.role == "coder" else "steps.researcher"
    if isinstance(body, StepCancelled):
        return "steps.cancel"
    if isinstance(body, VoteRequested):
        return "votes"
    if isinstance(body, TaskCompleted | TaskFailed):
        return "results"
    if isinstance(body, EscalationRaised):
        return "escalations"  # where people and their tools learn of it
    return None


def key_of(envelope: Envelope[Any]) -> str:
    """The Kafka key a forwarded record travels under: its lane.

    Steps of one task need no order among them: a key per step lets the pool
    run a task's ready steps in parallel. A team slot's steps (central, claim)
    share a key: one coder runs its list. A hedge gets a key of its own: on its
    straggler's key it would wait in that key's lane until the straggler
    finished; the planner may have picked that key so it reaches another worker
    than the straggler's (`body.lane`, lanes.py). Everything else keeps the
    task's key (one order per task).
    """
    task_id = envelope.task_id or ""
    body = envelope.body
    if not isinstance(body, StepRequested):
        return task_id
    lane = body.step_id if body.agent is None else f"agent-{body.agent}"
    if body.prompt_variant == "hedge":
        lane = f"{body.step_id}/{envelope.attempt}"
    if body.lane:
        lane = body.lane
    return f"{task_id}/{lane}"
