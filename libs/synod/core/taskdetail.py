"""A task as the web console draws it: DAG, attempts, timeline, ballots, verdict, cost.

`TaskView` (synod.core.taskview) folds a task into the status clients poll;
this module reads the same envelopes (and the task's votes, which live on
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

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from synod.wire.messages import (
    AnswerVerified,
    Decision,
    Envelope,
    LeaseGranted,
    PlanProposed,
    StepCancelled,
    StepClaimed,
    StepCompleted,
    StepFailed,
    StepReassigned,
    StepRequested,
    StepRetrying,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    Usage,
    Vote,
    VoteRequested,
)

from .taskview import TaskView, add_usage

# A candidate's text is shown in full on the ballot; beyond this it is cut.
CANDIDATE_CHARS = 2_000
# Vector-clock ordering compares every pair; above this many events the causal
# order uses causes and Lamport time only.
VCLOCK_PAIR_LIMIT = 2_000


def task_detail(view: TaskView, votes: Iterable[Envelope[Any]] = ()) -> dict[str, Any]:
    """Everything the console's task page shows, as one JSON-ready document."""
    status = view.to_json()
    status.pop("events", None)
    envelopes = view.envelopes()
    entries = view.entries()
    vote_envelopes = _unique(votes)
    return {
        "task": status,
        "mode": _mode(status),
        "trace_id": trace_id_of(envelopes),
        "dag": dag(status["steps"]),
        "attempts": attempts(envelopes),
        "timeline": timeline(entries),
        "ballots": ballots(envelopes, vote_envelopes),
        "tests": verdict_of_tests(envelopes),
        "cost": cost_of(envelopes),
    }


def _unique(envelopes: Iterable[Envelope[Any]]) -> list[Envelope[Any]]:
    seen: dict[str, Envelope[Any]] = {}
    for env in envelopes:
        seen.setdefault(env.message_id, env)
    return list(seen.values())


def _mode(status: Mapping[str, Any]) -> dict[str, str]:
    request = status.get("request") or {}
    return {
        "consistency": request.get("consistency", ""),
        "partition_mode": request.get("partition_mode", ""),
        "policy": request.get("policy", ""),
    }


def trace_id_of(envelopes: Iterable[Envelope[Any]]) -> str | None:
    """The W3C trace id the task's messages carry, when tracing put one there."""
    for env in envelopes:
        parts = env.trace.traceparent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            return parts[1]
    return None


# ---------------------------------------------------------------- the DAG


def dag(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Nodes (with depth for layout), edges and the critical path of the plan."""
    by_id = {s["step_id"]: s for s in steps}
    depth: dict[str, int] = {}

    def depth_of(step_id: str, trail: frozenset[str] = frozenset()) -> int:
        if step_id in depth:
            return depth[step_id]
        if step_id in trail:  # a cycle (a bad plan): cut it here
            return 0
        deps = [d for d in by_id[step_id]["depends_on"] if d in by_id]
        found = 1 + max((depth_of(d, trail | {step_id}) for d in deps), default=-1)
        depth[step_id] = found
        return found

    for step_id in by_id:
        depth_of(step_id)
    critical = critical_path(steps)
    nodes = [
        {
            "step_id": s["step_id"],
            "role": s["role"],
            "title": s["title"],
            "state": s["status"],
            "attempts": s["attempts"],
            "duration_s": s["duration_s"],
            "depth": depth[s["step_id"]],
            "critical": s["step_id"] in critical,
        }
        for s in steps
    ]
    edges = [
        {"from": d, "to": s["step_id"], "critical": d in critical and s["step_id"] in critical}
        for s in steps
        for d in s["depends_on"]
        if d in by_id
    ]
    return {"nodes": nodes, "edges": edges, "critical_path": critical}


def critical_path(steps: list[dict[str, Any]]) -> list[str]:
    """The chain of dependent steps with the longest total duration (then most steps).

    Unfinished steps count zero seconds, so while a plan runs the path is the
    longest chain so far; before any step finished it is the longest by count.
    """
    by_id = {s["step_id"]: s for s in steps}
    best: dict[str, tuple[float, int, list[str]]] = {}

    def longest(step_id: str, trail: frozenset[str] = frozenset()) -> tuple[float, int, list[str]]:
        if step_id in best:
            return best[step_id]
        own = float(by_id[step_id].get("duration_s") or 0.0)
        chains = [
            longest(d, trail | {step_id})
            for d in by_id[step_id]["depends_on"]
            if d in by_id and d not in trail and d != step_id
        ]
        before = max(chains, key=lambda c: (c[0], c[1]), default=(0.0, 0, []))
        found = (before[0] + own, before[1] + 1, [*before[2], step_id])
        best[step_id] = found
        return found

    ends = [longest(step_id) for step_id in by_id]
    if not ends:
        return []
    return max(ends, key=lambda c: (c[0], c[1]))[2]


# ---------------------------------------------------------------- attempts


def _usage_json(usage: Usage) -> dict[str, Any]:
    return usage.model_dump(mode="json")


def attempts(envelopes: list[Envelope[Any]]) -> dict[str, list[dict[str, Any]]]:
    """step id -> its attempts in log order, each with what became of it."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_request: dict[str, dict[str, Any]] = {}
    for env in envelopes:
        body = env.body
        attempt: dict[str, Any]
        if isinstance(body, StepRequested):
            attempt = {
                "request_id": env.message_id,
                "attempt": env.attempt,
                "requested_at": env.created_at.isoformat(),
                "model": body.model,
                "temperature": body.temperature,
                "prompt_variant": body.prompt_variant,
                "hedge": body.prompt_variant == "hedge",
                "agent": body.agent,
                "deadline_s": body.deadline_s,
                "outcome": "pending",
                "worker": None,
                "duration_s": None,
                "usage": None,
                "error": "",
                "error_class": None,
                "retries": [],
                "reassigned": None,
                "cancelled": None,
            }
            out[body.step_id].append(attempt)
            by_request[env.message_id] = attempt
        elif isinstance(body, StepCompleted | StepFailed):
            attempt = _attempt_for(env, by_request, out, body.step_id)
            attempt["outcome"] = "completed" if isinstance(body, StepCompleted) else "failed"
            attempt["worker"] = env.sender.instance
            attempt["duration_s"] = body.duration_s
            attempt["usage"] = _usage_json(body.usage)
            attempt["finished_at"] = env.created_at.isoformat()
            if isinstance(body, StepFailed):
                attempt["error"] = body.error
                attempt["error_class"] = body.error_class
        elif isinstance(body, StepRetrying):
            attempt = _attempt_for(env, by_request, out, body.step_id)
            attempt["retries"].append(
                {
                    "retry": body.retry,
                    "reason": body.reason,
                    "error": body.error,
                    "due_at": body.due_at.isoformat(),
                    "worker": env.sender.instance,
                }
            )
        elif isinstance(body, StepReassigned):
            for attempt in out.get(body.step_id, []):
                if attempt["attempt"] == body.after_attempt:
                    attempt["reassigned"] = {
                        "reason": body.reason,
                        "model": body.model,
                        "temperature": body.temperature,
                        "prompt_variant": body.prompt_variant,
                        "by": env.sender.instance,
                    }
        elif isinstance(body, StepCancelled):
            for request_id in body.request_ids:
                if request_id in by_request:
                    by_request[request_id]["cancelled"] = body.reason or "cancelled"
        elif isinstance(body, StepClaimed):
            for attempt in reversed(out.get(body.step_id, [])):
                if attempt["agent"] is None:
                    attempt["agent"] = body.agent
                break
    return dict(out)


def _attempt_for(
    env: Envelope[Any],
    by_request: dict[str, dict[str, Any]],
    out: dict[str, list[dict[str, Any]]],
    step_id: str,
) -> dict[str, Any]:
    """The attempt an outcome belongs to: its cause, else the one of the same number."""
    for cause in env.causes:
        if cause in by_request:
            return by_request[cause]
    same_number = [a for a in out.get(step_id, []) if a["attempt"] == env.attempt]
    if same_number:
        return same_number[-1]
    # An outcome whose request is not in this log (evicted, or logged elsewhere).
    orphan: dict[str, Any] = {
        "request_id": None,
        "attempt": env.attempt,
        "requested_at": None,
        "model": "",
        "temperature": None,
        "prompt_variant": "",
        "hedge": False,
        "agent": None,
        "deadline_s": None,
        "outcome": "pending",
        "worker": None,
        "duration_s": None,
        "usage": None,
        "error": "",
        "error_class": None,
        "retries": [],
        "reassigned": None,
        "cancelled": None,
    }
    out[step_id].append(orphan)
    return orphan


# ---------------------------------------------------------------- the timeline


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


# ---------------------------------------------------------------- ballots


def ballots(
    envelopes: list[Envelope[Any]], votes: Iterable[Envelope[Any]] = ()
) -> list[dict[str, Any]]:
    """Every ballot of the task, in the order it was asked for."""
    found: dict[tuple[str, int], dict[str, Any]] = {}

    def ballot(proposal_id: str, number: int) -> dict[str, Any]:
        key = (proposal_id, number)
        if key not in found:
            found[key] = {
                "proposal_id": proposal_id,
                "ballot": number,
                "subject": "",
                "policy": "",
                "partition_mode": "",
                "requested_at": None,
                "candidates": [],
                "electorate": [],
                "votes": [],
                "verifications": [],
                "decision": None,
                "status": "open",
            }
        return found[key]

    for env in [*envelopes, *votes]:
        body = env.body
        if isinstance(body, VoteRequested):
            b = ballot(body.proposal_id, body.ballot)
            b.update(
                subject=body.subject,
                policy=body.policy,
                partition_mode=body.partition_mode,
                requested_at=env.created_at.isoformat(),
                electorate=list(body.electorate),
                candidates=[
                    {
                        "candidate_id": c.candidate_id,
                        "author": c.author,
                        "content": c.content[:CANDIDATE_CHARS],
                        "content_chars": len(c.content),
                    }
                    for c in body.candidates
                ],
            )
        elif isinstance(body, Vote):
            b = ballot(body.proposal_id, body.ballot)
            if any(v["message_id"] == env.message_id for v in b["votes"]):
                continue
            b["votes"].append(
                {
                    "message_id": env.message_id,
                    "voter": body.voter,
                    "kind": body.kind,
                    "choice": body.choice,
                    "confidence": body.confidence,
                    "rationale": body.rationale,
                    "at": env.created_at.isoformat(),
                }
            )
        elif isinstance(body, AnswerVerified):
            ballot(body.proposal_id, body.ballot)["verifications"].append(
                {
                    "voter": body.voter,
                    "passed": body.passed,
                    "summary": body.summary,
                    "failed": list(body.failed),
                    "duration_s": body.duration_s,
                }
            )
        elif isinstance(body, Decision):
            b = ballot(body.proposal_id, body.ballot)
            b["decision"] = {
                "decision_id": body.decision_id,
                "outcome": body.outcome,
                "tally": dict(body.tally),
                "quorum": body.quorum,
                "votes_counted": body.votes_counted,
                "provisional": body.provisional,
                "equivocators": list(body.equivocators),
                "decided_at": env.created_at.isoformat(),
            }
            b["status"] = "provisional" if body.provisional else "confirmed"
    for b in found.values():
        b["votes"].sort(key=lambda v: (v["at"], v["voter"]))
    return list(found.values())


# ---------------------------------------------------------------- tests and cost


def verdict_of_tests(envelopes: list[Envelope[Any]]) -> dict[str, Any] | None:
    """What the project's tests said: the outcome's verdict and every reviewer's run."""
    runs = [
        {
            "voter": env.body.voter,
            "proposal_id": env.body.proposal_id,
            "ballot": env.body.ballot,
            "passed": env.body.passed,
            "summary": env.body.summary,
            "failed": list(env.body.failed),
            "duration_s": env.body.duration_s,
        }
        for env in envelopes
        if isinstance(env.body, AnswerVerified)
    ]
    outcome = next(
        (env.body for env in envelopes if isinstance(env.body, TaskCompleted | TaskFailed)), None
    )
    passed = outcome.tests_passed if outcome is not None else None
    summary = outcome.tests_summary if outcome is not None else ""
    if not runs and passed is None:
        return None
    return {"passed": passed, "summary": summary, "runs": runs}


def cost_of(envelopes: Iterable[Envelope[Any]]) -> dict[str, Any]:
    """Tokens and cost of the task's step outcomes, in total, by role and by model."""
    roles: dict[str, str] = {}
    total = Usage()
    by_role: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    for env in envelopes:
        body = env.body
        if isinstance(body, StepRequested):
            roles[body.step_id] = body.role
        elif isinstance(body, StepCompleted | StepFailed | StepRetrying):
            role = roles.get(body.step_id, env.sender.role)
            model = body.usage.model or "(unknown)"
            total = add_usage(total, body.usage)
            by_role[role] = add_usage(by_role.get(role, Usage()), body.usage)
            by_model[model] = add_usage(by_model.get(model, Usage()), body.usage)
    return {
        "total": _usage_json(total),
        "by_role": {k: _usage_json(v) for k, v in sorted(by_role.items())},
        "by_model": {k: _usage_json(v) for k, v in sorted(by_model.items())},
    }


def merge_cost(costs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several tasks' `cost_of` documents summed (the console's cost page)."""
    total = Usage()
    by_role: dict[str, Usage] = {}
    by_model: dict[str, Usage] = {}
    for cost in costs:
        total = add_usage(total, Usage.model_validate(cost["total"]))
        for name, usage in cost["by_role"].items():
            by_role[name] = add_usage(by_role.get(name, Usage()), Usage.model_validate(usage))
        for name, usage in cost["by_model"].items():
            by_model[name] = add_usage(by_model.get(name, Usage()), Usage.model_validate(usage))
    return {
        "total": _usage_json(total),
        "by_role": {k: _usage_json(v) for k, v in sorted(by_role.items())},
        "by_model": {k: _usage_json(v) for k, v in sorted(by_model.items())},
    }


def task_summary(view: TaskView) -> dict[str, Any]:
    """One row of the console's task list."""
    request = view.request
    status = view.status()
    return {
        "task_id": view.task_id,
        "state": status.state,
        "goal": status.goal[:200],
        "labels": dict(request.labels) if request else {},
        "consistency": request.consistency if request else "",
        "partition_mode": request.partition_mode if request else "",
        "submitted_at": status.submitted_at.isoformat() if status.submitted_at else None,
        "updated_at": status.updated_at.isoformat() if status.updated_at else None,
        "finished_at": status.finished_at.isoformat() if status.finished_at else None,
        "steps": len(status.steps),
        "steps_completed": sum(1 for s in status.steps if s.status == "completed"),
        "usage": _usage_json(status.usage),
        "version": view.version,
    }


def matches(summary: Mapping[str, Any], query: str = "", state: str = "", label: str = "") -> bool:
    """The task list's filter: `query` in the id or goal (any case), `state` exact,
    `label` as `key` (present) or `key=value`."""
    if state and summary["state"] != state:
        return False
    if query:
        needle = query.lower()
        labels = " ".join(f"{k}={v}" for k, v in summary["labels"].items())
        if not any(
            needle in text.lower() for text in (summary["task_id"], summary["goal"], labels)
        ):
            return False
    if label:
        key, has_value, value = label.partition("=")
        if key not in summary["labels"]:
            return False
        if has_value and summary["labels"][key] != value:
            return False
    return True


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
