"""The task core: one task's life as one state machine; may import cores, wire, errors, ids.

May import the other cores (`synod.core.plan`, `synod.core.workspace`), the
wire models, `synod.ids` and `synod.errors`; never an adapter (transport,
llm, roles, service).
"""

from synod.core.task.actions import (
    Action,
    CheckWorkspace,
    Destination,
    Event,
    Forward,
    GrantLease,
    Logged,
    Owners,
    PlanMade,
    PlanningFailed,
    Publish,
    Quarantined,
    Ready,
    RequestPlan,
    Tick,
    WorkspaceChecked,
    forward_to,
    key_of,
)
from synod.core.task.answer import electorate
from synod.core.task.machine import TaskMachine, forwards_of
from synod.core.task.phase import Phase
from synod.core.task.state import (
    ANSWER,
    MAX_MERGE_ROUNDS,
    MERGE_PREFIX,
    RESAMPLE_REASONS,
    TaskConfig,
)

__all__ = [
    "ANSWER",
    "MAX_MERGE_ROUNDS",
    "MERGE_PREFIX",
    "RESAMPLE_REASONS",
    "Action",
    "CheckWorkspace",
    "Destination",
    "Event",
    "Forward",
    "GrantLease",
    "Logged",
    "Owners",
    "Phase",
    "PlanMade",
    "PlanningFailed",
    "Publish",
    "Quarantined",
    "Ready",
    "RequestPlan",
    "TaskConfig",
    "TaskMachine",
    "Tick",
    "WorkspaceChecked",
    "electorate",
    "forward_to",
    "forwards_of",
    "key_of",
]
