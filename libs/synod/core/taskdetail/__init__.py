"""The console's view of a task (DAG, attempts, timeline, ballots, cost); may import cores, wire.

`TaskView` (synod.core.taskview) folds a task into the status clients poll;
this package reads the same envelopes (and the task's votes, which live on
`synod.votes`, not in the task's log) into the richer document the console's
task page shows. Pure: no I/O, no clock; times come from the envelopes.

- `dag`: one node per step with its state and depth, edges from the plan,
  the critical path (the chain of dependent steps with the longest total
  duration; with no durations known yet, the longest chain by count).
- `attempts`: every request of each step (model, temperature, prompt variant,
  hedge, agent) matched to its outcome by the outcome's cause (the request's
  message id), plus retries, reassignments and cancelled hedges.
- `timeline`: every envelope in log order, with `causal_order`: the same
  events sorted so that each comes after everything that happened before it
  (its causes, and, where envelopes carry vector clocks, every event whose
  clock is below its own).
- `ballots`: per proposal and ballot number, the candidates, electorate,
  policy, every vote with its rationale, the test runs of reviewers, and the
  decision (provisional or confirmed).
"""

from synod.core.taskdetail.cost import cost_of, merge_cost
from synod.core.taskdetail.document import task_detail, trace_id_of
from synod.core.taskdetail.events import VCLOCK_PAIR_LIMIT as VCLOCK_PAIR_LIMIT
from synod.core.taskdetail.events import causal_order, describe, happened_before, timeline
from synod.core.taskdetail.plangraph import critical_path, dag
from synod.core.taskdetail.stepattempts import attempts
from synod.core.taskdetail.tasklist import matches, task_summary
from synod.core.taskdetail.voting import CANDIDATE_CHARS, ballots, verdict_of_tests

__all__ = [
    "CANDIDATE_CHARS",
    "attempts",
    "ballots",
    "causal_order",
    "cost_of",
    "critical_path",
    "dag",
    "describe",
    "happened_before",
    "matches",
    "merge_cost",
    "task_detail",
    "task_summary",
    "timeline",
    "trace_id_of",
    "verdict_of_tests",
]
