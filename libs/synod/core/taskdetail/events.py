"""The timeline: every event in log order, one line each, and their causal order."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from synod.wire.messages import (
    AnswerVerified,
    Decision,
    Envelope,
    LeaseGranted,
    PlanProposed,
    StepCancelled,
    StepCompleted,
    StepFailed,
    StepReassigned,
    StepRequested,
    StepRetrying,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Vote,
    VoteRequested,
)

# Vector-clock ordering compares every pair; above this many events the causal
# order uses causes and Lamport time only.
VCLOCK_PAIR_LIMIT = 2_000


def describe(env: Envelope[Any]) -> str:
    """One line saying what an event is about, for the timeline."""
    body = env.body
    if isinstance(body, TaskSubmitted):
        return body.goal[:120]
    if isinstance(body, PlanProposed):
        return f"plan {body.plan_id}: {len(body.steps)} steps"
    if isinstance(body, StepRequested):
        extra = f" ({body.prompt_variant})" if body.prompt_variant else ""
        return f"{body.step_id} -> {body.role}, attempt {env.attempt}{extra}"
    if isinstance(body, StepCompleted):
        return f"{body.step_id} done in {body.duration_s:.2f}s"
    if isinstance(body, StepFailed):
        return f"{body.step_id} failed ({body.error_class}): {body.error[:80]}"
    if isinstance(body, StepRetrying):
        return f"{body.step_id} retry {body.retry}: {body.reason}"
    if isinstance(body, StepReassigned):
        return f"{body.step_id} reassigned after attempt {body.after_attempt}: {body.reason}"
    if isinstance(body, StepCancelled):
        return f"{body.step_id} attempts cancelled: {body.reason}"
    if isinstance(body, VoteRequested):
        return (
            f"ballot {body.ballot} on {body.subject} {body.proposal_id}: "
            f"{len(body.candidates)} candidates, {len(body.electorate)} voters"
        )
    if isinstance(body, Vote):
        return f"{body.voter}: {body.kind} {body.choice or ''}".strip()
    if isinstance(body, AnswerVerified):
        return f"{body.voter} ran the tests: {_passed_word(body.passed)}"
    if isinstance(body, Decision):
        word = "provisional" if body.provisional else "decided"
        return f"{word} {body.outcome} (ballot {body.ballot}, {body.votes_counted} votes)"
    if isinstance(body, LeaseGranted):
        return f"lease {body.token} on {body.path} for {body.step_id}"
    if isinstance(body, TaskCompleted):
        return f"completed, {body.steps_completed} steps"
    if isinstance(body, TaskFailed):
        return f"failed: {body.reason[:100]}"
    return ""


def _passed_word(passed: bool | None) -> str:
    return "passed" if passed else "no tests" if passed is None else "failed"


def timeline(entries: list[tuple[Envelope[Any], int | None]]) -> dict[str, Any]:
    """The events in log order, and the permutation that puts them in causal order."""
    events = [
        {
            "index": i,
            "log_offset": offset,
            "type": env.type,
            "message_id": env.message_id,
            "sender": env.sender.model_dump(mode="json"),
            "created_at": env.created_at.isoformat(),
            "lamport": env.lamport,
            "vclock": dict(env.vclock),
            "causes": list(env.causes),
            "attempt": env.attempt,
            "summary": describe(env),
        }
        for i, (env, offset) in enumerate(entries)
    ]
    envelopes = [env for env, _ in entries]
    return {
        "events": events,
        "causal_order": causal_order(envelopes),
        "vclocks": any(env.vclock for env in envelopes),
    }


def happened_before(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """Vector clocks: `a` happened before `b` (a <= b everywhere and a != b)."""
    if not a or not b:
        return False
    keys = set(a) | set(b)
    return all(a.get(k, 0) <= b.get(k, 0) for k in keys) and any(
        a.get(k, 0) < b.get(k, 0) for k in keys
    )


def causal_order(envelopes: list[Envelope[Any]]) -> list[int]:
    """Indices of `envelopes` (log order) sorted so every event follows what it
    happened after: its causes, and events with a smaller vector clock.

    A topological sort that among the ready events takes the lowest Lamport
    time, then the earliest in the log, so with no causal links it is log order.
    """
    n = len(envelopes)
    position = {env.message_id: i for i, env in enumerate(envelopes)}
    before: list[set[int]] = [set() for _ in range(n)]
    for i, env in enumerate(envelopes):
        for cause in env.causes:
            j = position.get(cause)
            if j is not None and j != i:
                before[i].add(j)
    if n <= VCLOCK_PAIR_LIMIT:
        clocked = [i for i, env in enumerate(envelopes) if env.vclock]
        for i in clocked:
            for j in clocked:
                if i != j and happened_before(envelopes[j].vclock, envelopes[i].vclock):
                    before[i].add(j)
    after: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(b) for b in before]
    for i, deps in enumerate(before):
        for j in deps:
            after[j].append(i)
    ready = [(envelopes[i].lamport, i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for k in after[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, (envelopes[k].lamport, k))
    if len(order) < n:  # a cycle in the causes (a bug somewhere): keep the rest in log order
        placed = set(order)
        order.extend(i for i in range(n) if i not in placed)
    return order
