"""The plan DAG, its scheduling bounds and the plan-run state machine (pure cores).

- `dag`: `Plan` (validated, immutable) and `load_project` for the paper's format.
- `bounds`: parallel fraction, Amdahl's bound, the graph bound, the clairvoyant
  list schedule.
- `scheduler`: `Scheduler`, the run of one plan as events in, commands out.
- `sim`: `simulate`, the scheduler driven in virtual time.
- `modes`: the team modes `central`, `claim`, `synod` as engines with one
  vocabulary (import from `synod.core.plan.modes`; names overlap `scheduler`'s).
"""

from synod.core.plan.bounds import (
    Bounds,
    ScheduledStep,
    amdahl_bound,
    bounds,
    clairvoyant_makespan,
    graph_bound,
    list_schedule,
    parallel_fraction,
)
from synod.core.plan.dag import Chain, Plan, PlanError, Problem, ProblemKind, load_project
from synod.core.plan.scheduler import (
    Cancel,
    Dispatch,
    Event,
    Hedge,
    Ignored,
    IgnoreReason,
    Output,
    PlanDone,
    PlanFailed,
    Scheduler,
    SchedulerConfig,
    SchedulerStats,
    StepDispatched,
    StepFailed,
    StepFinished,
    StepStatus,
    Tick,
)
from synod.core.plan.sim import POLICIES, Policy, SimulationResult, run_simulation, simulate

__all__ = [
    "POLICIES",
    "Bounds",
    "Cancel",
    "Chain",
    "Dispatch",
    "Event",
    "Hedge",
    "IgnoreReason",
    "Ignored",
    "Output",
    "Plan",
    "PlanDone",
    "PlanError",
    "PlanFailed",
    "Policy",
    "Problem",
    "ProblemKind",
    "ScheduledStep",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerStats",
    "SimulationResult",
    "StepDispatched",
    "StepFailed",
    "StepFinished",
    "StepStatus",
    "Tick",
    "amdahl_bound",
    "bounds",
    "clairvoyant_makespan",
    "graph_bound",
    "list_schedule",
    "load_project",
    "parallel_fraction",
    "run_simulation",
    "simulate",
]
