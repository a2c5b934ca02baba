"""Hedging: a straggler is requested again; the first result wins, the rest are cancelled.

The rule (tasks given with a plan, synod mode; the paper's central and claim
teams did not hedge):

- A step whose newest attempt has been out at least the nearest-rank
  `hedge_quantile` (p95) of the durations of the task's finished steps, once
  `hedge_min_samples` have finished, is requested once more.
- In the plan's tail (every unfinished step has an attempt out) of a team of
  known size, an agent that is free has nothing else it could do: the
  threshold drops to `tail_hedge_quantile` (p25) when that is lower, measured
  from the step's oldest live attempt, and up to `max_hedges` copies go out.
- Hedges only take room the ready steps left (`team.agents`).
- A copy's key is picked so it lands on a partition of the step topic that a
  live worker other than the owners of the step's live attempts holds
  (lanes.py), when the workers' heartbeats say who holds what; else it keeps
  a key of its own, `<step>/<attempt>`, wherever that hashes.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from synod.core.task.actions import Publish
from synod.core.task.lanes import default_lane, hedge_lane
from synod.core.task.records import publish, request_id, step_body
from synod.core.task.state import TaskState
from synod.core.task.steps import attempt_due
from synod.core.task.workspace import request
from synod.wire import StepRequested
from synod.wire.messages import StepCancelled


def nearest_rank(durations: list[float], q: float) -> float:
    """The nearest-rank q-quantile: always one of the measured durations."""
    ordered = sorted(durations)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _applies(s: TaskState) -> bool:
    if not s.config.hedge or s.outcome is not None or s.submitted is None or s.dag is None:
        return False
    return bool(s.submitted.body.plan) and s.team()[0] == "synod"


def in_tail(s: TaskState) -> bool:
    """Every unfinished step of the plan has an attempt out: nothing waits or is ready."""
    return all(
        x in s.completed or (x in s.requested and attempt_due(s, x) is None) for x in s.rank()
    )


def _rule(s: TaskState) -> tuple[float, int, bool] | None:
    """(threshold in seconds, copies per step, tail?) now; None: no hedging yet."""
    if not _applies(s):
        return None
    done = [c.duration_s for c in s.completed.values()]
    if len(done) < s.config.hedge_min_samples:
        return None
    limit = nearest_rank(done, s.config.hedge_quantile)
    tail_q = s.config.tail_hedge_quantile
    if tail_q is not None and s.team_size() is not None and in_tail(s):
        return min(limit, nearest_rank(done, tail_q)), s.config.max_hedges, True
    return limit, 1, False


def _candidates(s: TaskState, copies: int, tail: bool) -> list[tuple[str, int, datetime]]:
    """(step, newest attempt, the time it is measured from), critical path first."""
    assert s.dag is not None
    rank = s.rank()
    found = []
    for step_id in sorted(s.requested_at, key=lambda x: rank.get(x, len(rank))):
        if step_id not in rank or step_id in s.completed:
            continue
        newest, hedges = s.requested[step_id], s.hedged.get(step_id, 0)
        if hedges >= copies or newest in s.failed_attempts.get(step_id, ()):
            continue  # hedged enough, or a retry is due instead
        since = s.requested_at[step_id]
        if tail and hedges:  # copies go out together: the oldest live attempt counts
            since = min(since, s.attempt_at.get((step_id, newest - hedges), since))
        found.append((step_id, newest, since))
    return found


def hedges(s: TaskState, left: int | None) -> list[Publish]:
    """Another request for each straggler, within `left` free agents (None: uncapped)."""
    rule = _rule(s)
    if rule is None or s.now is None:
        return []
    limit, copies, tail = rule
    actions: list[Publish] = []
    for step_id, newest, since in _candidates(s, copies, tail):
        if (s.now - since).total_seconds() < limit:
            continue
        for k in range(1, copies - s.hedged.get(step_id, 0) + 1):
            if left is not None:
                if left <= 0:
                    return actions  # hedge only when an agent is free
                left -= 1
            body = step_body(s, step_id).model_copy(update={"prompt_variant": "hedge"})
            lane = _lane(s, step_id, body.role, newest + k, actions)
            if lane:
                body = body.model_copy(update={"lane": lane})
            actions.append(request(s, body, f"step/{step_id}/{newest + k}", newest + k))
    return actions


def _lane(s: TaskState, step_id: str, role: str, attempt: int, chosen: list[Publish]) -> str:
    """The copy's lane: away from every worker that holds one of the step's attempts
    not known to have failed (the straggler, earlier copies, those going out now)."""
    failed = s.failed_attempts.get(step_id, set())
    keys = [k for (sid, a), k in sorted(s.keys.items()) if sid == step_id and a not in failed]
    for action in chosen:
        body = action.body
        if isinstance(body, StepRequested) and body.step_id == step_id:
            keys.append(f"{s.task_id}/{body.lane or default_lane(step_id, action.attempt)}")
    return hedge_lane(
        s.task_id, step_id, attempt, s.owners.get(role), keys, s.now, s.config.owner_fresh_s
    )


def next_hedge_at(s: TaskState) -> datetime | None:
    """The earliest future time a hedge could fire: when to tick next."""
    rule = _rule(s)
    if rule is None:
        return None
    limit, copies, tail = rule
    times = [since + timedelta(seconds=limit) for _, _, since in _candidates(s, copies, tail)]
    future = [t for t in times if s.now is None or t > s.now]
    return min(future, default=None)


def cancels(s: TaskState) -> list[Publish]:
    """Stop the losing attempts of each hedged step that has a winner.

    The first completion won (the fold keeps it); the other attempts (the
    straggler or its copies) still run on some coder. Their request ids go out
    in a StepCancelled that every worker reads; their writes are left out of
    the workspace by `fold(winners=...)` in any case.
    """
    actions: list[Publish] = []
    for step_id in sorted(s.hedged):
        won = s.completed_attempt.get(step_id)
        if step_id not in s.completed or won is None or step_id in s.cancels_logged:
            continue
        newest = s.requested[step_id]
        # The copies are the newest attempts and the straggler the one before them.
        first = newest - s.hedged[step_id]
        losers = [
            a
            for a in range(max(0, first), newest + 1)
            if a != won and a not in s.failed_attempts.get(step_id, ())
        ]
        if not losers:
            continue
        body = StepCancelled(
            step_id=step_id,
            request_ids=[request_id(s, step_id, a) for a in losers],
            attempts=losers,
            reason="hedge_lost",
        )
        actions.append(publish(s, body, f"cancel/{step_id}"))
    return actions
