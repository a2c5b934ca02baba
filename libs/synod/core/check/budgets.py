"""Budget invariants: a task spends within its budget, and its outcome says what it spent.

On a task's log (synod.task-events, one record per message id, log order):

- over_budget: the usage of every record on the log (StepCompleted, StepFailed,
  StepRetrying, UsageReported) sums past the budget in force (the task's, or
  the last raise answered before the outcome); `warn` budgets are not limits;
- usage_mismatch: the outcome's usage is not the log's sum at any point
  before it (the planner reports what its fold of the log had counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from synod.wire.messages import (
    Budget,
    EscalationAnswered,
    StepCompleted,
    StepFailed,
    StepRetrying,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Usage,
    UsageReported,
)

KINDS = {
    "over_budget": "a task's model usage on the log is past its budget",
    "usage_mismatch": "an outcome's usage is not what the log had recorded before it",
}

Flag = Callable[[str, Any, str], None]
USAGE_BODIES = (StepCompleted, StepFailed, StepRetrying, UsageReported)


def _key(u: Usage) -> tuple[int, int, int]:
    return (u.calls, u.input_tokens, u.output_tokens)


def check(logged: Sequence[Any], flag: Flag) -> int:
    """Check one task's records (first copy per message id, in log order); 1 if it had a budget."""
    budget: Budget | None = None
    totals = [(0, 0, 0)]
    calls = tokens = 0
    cost = 0.0
    last: Any = None
    outcome_checked = False
    for r in logged:
        body = r.envelope.body
        if (isinstance(body, TaskSubmitted) and budget is None) or (
            isinstance(body, EscalationAnswered)
            and body.action == "raise_budget"
            and body.budget is not None
        ):
            budget = body.budget
        elif isinstance(body, USAGE_BODIES):
            u = body.usage
            calls += u.calls
            tokens += u.input_tokens + u.output_tokens
            cost += u.cost_usd
            last = r
            running = (
                totals[-1][0] + u.calls,
                totals[-1][1] + u.input_tokens,
                totals[-1][2] + u.output_tokens,
            )
            totals.append(running)
        elif isinstance(body, TaskCompleted | TaskFailed) and not outcome_checked:
            outcome_checked = True
            if _key(body.usage) not in set(totals):
                flag(
                    "usage_mismatch",
                    r,
                    f"the outcome says {body.usage.calls} calls, {body.usage.input_tokens}+"
                    f"{body.usage.output_tokens} tokens; the log before it summed to "
                    f"{totals[-1][0]} calls, {totals[-1][1]}+{totals[-1][2]} tokens",
                )
    if budget is None or budget.on_exhausted == "warn" or last is None:
        return 0 if budget is None else 1
    over = []
    if budget.max_tokens is not None and tokens > budget.max_tokens:
        over.append(f"{tokens} tokens > max_tokens {budget.max_tokens}")
    if budget.max_model_calls is not None and calls > budget.max_model_calls:
        over.append(f"{calls} calls > max_model_calls {budget.max_model_calls}")
    if budget.max_cost_usd is not None and cost > budget.max_cost_usd + 1e-9:
        over.append(f"{cost:g} USD > max_cost_usd {budget.max_cost_usd:g}")
    if over:
        flag("over_budget", last, "; ".join(over))
    return 1
