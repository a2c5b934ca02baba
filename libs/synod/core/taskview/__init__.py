"""A task as its clients see it: its envelopes folded into a status; may import wire, errors.

The gateway and the CLI read a task's own log (`synod.task-events`) and its
outcome (`synod.results`) and fold what they read into a `TaskView`: state,
plan and per-step progress, votes and the decision, the result or the failure,
usage, and the ordered list of events. Pure: no I/O and no clock; every time in
a view comes from the envelopes.

Order. Envelopes arrive from two topics in any interleaving, but are applied in
the task's log order: an envelope read from `synod.task-events` carries its
offset there (`log_offset`) and is ordered by it. One seen only elsewhere (the
outcome on `synod.results`, or a submission the caller made itself) has no
offset yet; it is ordered after every logged event (outcomes close a task's
log) by `created_at`, then Lamport time, then arrival. When its copy turns up in
the log (same message id), it takes the copy's place. An envelope that arrives
before one it follows in the log is inserted where it belongs and the view is
folded again, so the result never depends on arrival order.

Duplicates (same message id) change nothing: at-least-once delivery, a planner
re-emitting after a crash and the outcome sitting on two topics all bring
copies.
"""

from synod.core.taskview.fold import PREVIEW_CHARS, add_usage
from synod.core.taskview.index import DEFAULT_CAPACITY, TaskIndex
from synod.core.taskview.status import (
    TERMINAL_STATES,
    DecisionStatus,
    EventRef,
    FailureStatus,
    StepState,
    StepStatus,
    TaskState,
    TaskStatus,
    VoteStatus,
)
from synod.core.taskview.view import TaskView

__all__ = [
    "DEFAULT_CAPACITY",
    "PREVIEW_CHARS",
    "TERMINAL_STATES",
    "DecisionStatus",
    "EventRef",
    "FailureStatus",
    "StepState",
    "StepStatus",
    "TaskIndex",
    "TaskState",
    "TaskStatus",
    "TaskView",
    "VoteStatus",
    "add_usage",
]
