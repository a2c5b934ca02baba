"""Teams of agents running a plan in virtual time (seeded); may import cores, wire, errors.

Every mode, with a real workspace.

May import the pure cores (`synod.core.plan`, `synod.core.task`,
`synod.core.workspace`), the wire models and `synod.errors`; nothing with I/O.
Synod mode runs the planner's own task core (`synod.core.task`), so what the
simulator and bench/teams.py measure is what the planner service does.
"""

from synod.core.teamsim.model import (
    BOARD,
    Ack,
    Consistency,
    LostWrite,
    SimConfig,
    StepTime,
    TeamRun,
    draw_duration,
    load_estimates,
    lost_writes,
    step_durations,
)
from synod.core.teamsim.run import simulate_team, team_report
from synod.core.teamsim.synod import SynodEngine, make_engine, task_config

__all__ = [
    "BOARD",
    "Ack",
    "Consistency",
    "LostWrite",
    "SimConfig",
    "StepTime",
    "SynodEngine",
    "TeamRun",
    "draw_duration",
    "load_estimates",
    "lost_writes",
    "make_engine",
    "simulate_team",
    "step_durations",
    "task_config",
    "team_report",
]
