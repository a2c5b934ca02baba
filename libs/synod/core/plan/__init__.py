"""The plan DAG, scheduling bounds, the team policies; may import cores, wire, errors, ids.

Pure cores.

- `dag`: `Plan` (validated, immutable) and `load_project` for the paper's format;
  `dagcheck`: the checks a plan passes before it exists (`Problem`, `PlanError`).
- `bounds`: parallel fraction, Amdahl's bound, the graph bound, the clairvoyant
  list schedule.
- `modes`: the paper's `central` and `claim` teams as engines; `teamvocab`: the
  vocabulary every mode speaks (re-exported by `modes`); `teampolicy`: the same
  two policies over a task's log.
- `report`, `verdicts`: a team run's report, the jurors' test verdicts.

Synod mode's scheduler is the task core (`synod.core.task`); the simulator
that runs every mode is `synod.core.teamsim`. May import the wire models,
`synod.ids` and `synod.errors` only.
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

__all__ = [
    "Bounds",
    "Chain",
    "Plan",
    "PlanError",
    "Problem",
    "ProblemKind",
    "ScheduledStep",
    "amdahl_bound",
    "bounds",
    "clairvoyant_makespan",
    "graph_bound",
    "list_schedule",
    "load_project",
    "parallel_fraction",
]
