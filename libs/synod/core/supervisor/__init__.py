"""The supervisor's core (sans-I/O): config, events, actions, `Supervisor`; may import cores.

- `vocabulary`: `SupervisorConfig`, the events in and the actions out.
- `engine`: `Supervisor`, which turns events and time into actions, and
  `phi_is_finite`; its docstring says what it detects and how it answers.

Every name is re-exported here, so `synod.core.supervisor` is where importers
find them. May import the other pure cores only (`synod.core.resilience`).
"""

from synod.core.supervisor.engine import Supervisor, phi_is_finite
from synod.core.supervisor.vocabulary import (
    Action,
    DecisionSeen,
    Escalate,
    Event,
    HeartbeatSeen,
    Quarantine,
    Reassign,
    Release,
    Restart,
    StepCompletedSeen,
    StepFailedSeen,
    StepParkedSeen,
    StepRequestedSeen,
    SupervisorConfig,
    TaskEnded,
    ViewSeen,
    VoteSeen,
)

__all__ = [
    "Action",
    "DecisionSeen",
    "Escalate",
    "Event",
    "HeartbeatSeen",
    "Quarantine",
    "Reassign",
    "Release",
    "Restart",
    "StepCompletedSeen",
    "StepFailedSeen",
    "StepParkedSeen",
    "StepRequestedSeen",
    "Supervisor",
    "SupervisorConfig",
    "TaskEnded",
    "ViewSeen",
    "VoteSeen",
    "phi_is_finite",
]
