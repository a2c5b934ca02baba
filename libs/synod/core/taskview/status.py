"""The status of a task as JSON: the pydantic models clients read."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from synod.errors import ErrorClass
from synod.wire.messages import Sender, TaskSubmitted, Usage

TaskState = Literal["submitted", "planning", "running", "voting", "completed", "failed"]
StepState = Literal["pending", "requested", "completed", "failed"]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed"})


# ---------------------------------------------------------------- the status (JSON)


class _Status(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventRef(_Status):
    """One event of the task's log, without its body."""

    type: str
    message_id: str
    sender: Sender
    created_at: datetime
    log_offset: int | None = None
    # Causal order (docs/ordering.md): what the event names as its causes, its clocks,
    # and the causes it was shown without (after the causal buffer's time bound).
    causes: list[str] = []
    vclock: dict[str, int] = {}
    lamport: int = 0
    hlc: int = 0
    causal_gap: list[str] = []


class StepStatus(_Status):
    step_id: str
    role: str = ""
    title: str = ""
    depends_on: list[str] = Field(default_factory=list)
    status: StepState = "pending"
    attempts: int = 0
    duration_s: float | None = None
    output_preview: str = ""
    output_chars: int = 0
    error: str = ""
    error_class: ErrorClass | None = None
    usage: Usage = Field(default_factory=Usage)
    requested_at: datetime | None = None
    finished_at: datetime | None = None


class DecisionStatus(_Status):
    decision_id: str
    proposal_id: str
    ballot: int
    outcome: str
    tally: dict[str, float] = Field(default_factory=dict)
    quorum: int
    votes_counted: int = 0
    provisional: bool = False
    equivocators: list[str] = Field(default_factory=list)
    decided_at: datetime


class VoteStatus(_Status):
    proposal_id: str
    ballot: int = 1
    subject: str = "answer"
    candidates: list[str] = Field(default_factory=list)
    electorate: list[str] = Field(default_factory=list)
    policy: str = ""
    partition_mode: str = ""
    requested_at: datetime | None = None
    votes_seen: int = 0
    decision: DecisionStatus | None = None


class FailureStatus(_Status):
    reason: str
    error_class: ErrorClass
    failed_step: str | None = None


class BlackboardStatus(_Status):
    """The task's blackboard of facts (docs/blackboard.md): how consistent, what it holds."""

    consistency: str = "strong"
    facts: int = 0  # live facts (added and not replaced)
    published: int = 0  # FactPublished records folded
    conflicts: list[str] = Field(default_factory=list)  # keys with concurrent values
    reconciled: bool = False  # an eventual task's reconcile step completed
    values: dict[str, str] = Field(default_factory=dict)  # key -> the resolved value


class TaskStatus(_Status):
    """What `GET /v1/tasks/{id}` and `synod status --json` return."""

    task_id: str
    state: TaskState
    goal: str = ""
    request: TaskSubmitted | None = None
    plan_id: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    votes: list[VoteStatus] = Field(default_factory=list)
    decision: DecisionStatus | None = None
    result: str | None = None
    failure: FailureStatus | None = None
    usage: Usage = Field(default_factory=Usage)
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    events: list[EventRef] = Field(default_factory=list)
    # `strong` or `eventual` (the request's), and its blackboard of facts.
    consistency: str = "strong"
    blackboard: BlackboardStatus | None = None
    # Partitions (docs/cap.md): the task's CAP choice, and where its outcome stands:
    # "" (final when decided), "provisional", "confirmed" or "overturned" (reopened).
    partition_mode: str = ""
    settlement: str = ""
    # The provisional decisions the full electorate overturned, oldest first: each
    # reopened the task, so a later outcome stands on the one after them.
    overturned: list[str] = Field(default_factory=list)
