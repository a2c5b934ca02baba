"""The task's blackboard of facts: folded from its log, handed to steps by consistency.

Researchers publish facts (`FactPublished`) on the task's log before their
StepCompleted; the fold merges them into `TaskState.board`, the task's
observed-remove CRDT (`synod.core.blackboard`). What a step is given depends
on the task's `consistency` (the same field that rules its workspace files):

- `strong`: a step sees only decided facts, those of an accepted attempt of
  a completed step, and the planner holds a step back until every researcher
  step before it in the plan's topological order is done. The researchers
  thus write in one order, each reading the facts of the ones before it, so a
  fact replaces what its writer read and there is no conflict to reconcile.
- `eventual`: a step is requested as soon as the plan's dependencies allow and
  reads the merged board as it is, facts of steps still running included.
  Concurrent researchers write the same key without seeing each other (a
  conflict the CRDT keeps), and a step may have read a board that later
  facts changed (a stale read). Before the answer is voted on, the planner
  runs one reconcile step (`reconcile:blackboard`, a researcher) that reads
  the whole board and publishes one fact per key in conflict, replacing every
  value it read; reviewers vote on the answer with the reconciled board.

Every request lists the facts it was given (`StepRequested.facts`), which is
what `synod check` holds a `strong` step to (docs/blackboard.md).
"""

from __future__ import annotations

from typing import Any

from synod.core.blackboard import (
    RECONCILE_STEP,
    Blackboard,
    Fact,
    fact_of,
    render,
    resolved_values,
)
from synod.core.task.state import TaskState
from synod.wire import Envelope, StepCompleted, StepFailed, StepRequested
from synod.wire.messages import Consistency

BOARD_INPUT = "blackboard"  # the key of StepRequested.inputs a step reads the board in


def fold(s: TaskState, envelope: Envelope[Any]) -> bool:
    """Fold the blackboard side of a record; True if it is the reconcile step's (no DAG step)."""
    body = envelope.body
    found = fact_of(envelope)
    if found is not None:
        s.fact_ops.append(found)
        s.board = s.board.add(*found)
        return True
    s.seq += 1
    if isinstance(body, StepRequested):
        s.read_facts[(body.step_id, envelope.attempt)] = frozenset(body.facts)
        s.requested_seq.setdefault((body.step_id, envelope.attempt), s.seq)
    if isinstance(body, StepCompleted):
        s.done_seq.setdefault((body.step_id, envelope.attempt), s.seq)
    if not isinstance(body, StepRequested | StepCompleted | StepFailed):
        return False
    if body.step_id != RECONCILE_STEP:
        return False
    if isinstance(body, StepRequested):
        s.reconcile_requested = max(s.reconcile_requested, envelope.attempt)
    else:
        s.reconcile_finished = max(s.reconcile_finished, envelope.attempt)
        if isinstance(body, StepCompleted):
            s.reconciled = s.reconciled or body
        else:
            s.reconcile_failures.append(body)
    return True


def consistency(s: TaskState) -> Consistency:
    return s.submitted.body.consistency if s.submitted is not None else "strong"


def decided(s: TaskState, fact: Fact) -> bool:
    """A fact is decided once the attempt that published it is its step's accepted one
    (a reconcile step's fact, once the reconcile step completed)."""
    if fact.step_id == RECONCILE_STEP:
        return s.reconciled is not None and fact.attempt == s.reconcile_finished
    return fact.step_id in s.completed and s.completed_attempt.get(fact.step_id) == fact.attempt


def decided_board(s: TaskState) -> Blackboard:
    board = Blackboard()
    for fact, observed in s.fact_ops:
        if decided(s, fact):
            board = board.add(fact, observed)
    return board


def view(s: TaskState) -> Blackboard:
    """The board a step requested now is given."""
    return decided_board(s) if consistency(s) == "strong" else s.board


def with_board(s: TaskState, body: StepRequested) -> StepRequested:
    """The request with the board it reads (nothing when the board is empty)."""
    board = view(s)
    if not len(board):
        return body
    inputs = {**body.inputs, BOARD_INPUT: render(board.live())}
    return body.model_copy(update={"inputs": inputs, "facts": sorted(board.ids())})


def knowledge_ready(s: TaskState, step_id: str) -> bool:
    """Whether a `strong` task may request `step_id`: every researcher step before it
    in the topological order is done, so its facts are decided. Always True in
    `eventual`, and for plans with at most one researcher step."""
    if consistency(s) != "strong" or s.dag is None:
        return True
    for earlier in s.dag.topological_order():
        if earlier == step_id:
            return True
        if s.dag.step(earlier).role == "researcher" and earlier not in s.completed:
            return False
    return True


def read_view(s: TaskState, step_id: str, attempt: int) -> Blackboard:
    """The board an attempt of a step was handed: the facts its request named."""
    given = s.read_facts.get((step_id, attempt), frozenset())
    board = Blackboard()
    for fact, observed in s.fact_ops:
        if fact.fact_id in given:
            board = board.add(fact, observed)
    return board


def stale_steps(s: TaskState) -> list[str]:
    """Completed plan steps that worked without a fact another step was writing at the
    same time: a fact not their own, not in what they were handed, whose attempt was
    requested before theirs completed. In `strong` none can exist (a step waits for the
    researchers before it); in `eventual` this is the work the reconcile step revisits."""
    out = []
    for step_id, attempt in sorted(s.completed_attempt.items()):
        done_at = s.done_seq.get((step_id, attempt))
        if step_id not in s.completed or done_at is None:
            continue
        given = s.read_facts.get((step_id, attempt), frozenset())
        known = _replaced_by(s, given)
        for fact, _ in s.fact_ops:
            if fact.step_id in (step_id, RECONCILE_STEP) or fact.fact_id in known:
                continue
            started = s.requested_seq.get((fact.step_id, fact.attempt))
            if started is not None and started < done_at:
                out.append(step_id)
                break
    return out


def _replaced_by(s: TaskState, given: frozenset[str]) -> set[str]:
    """`given` and every fact they replaced, transitively: a reader of a fact knew of
    what its writer had read."""
    observed_by = {f.fact_id: observed for f, observed in s.fact_ops}
    known, todo = set(given), list(given)
    while todo:
        for tag in observed_by.get(todo.pop(), ()):
            if tag not in known:
                known.add(tag)
                todo.append(tag)
    return known


def needs_reconcile(s: TaskState) -> bool:
    """An `eventual` task reconciles its board before the vote when concurrent facts
    conflict or a step read a board that changed since."""
    if consistency(s) != "eventual" or not len(s.board) or s.reconciled is not None:
        return False
    return bool(s.board.conflicts()) or bool(stale_steps(s))


def reconcile_body(s: TaskState) -> StepRequested:
    conflicts = s.board.conflicts()
    stale = stale_steps(s)
    keys = ", ".join(sorted(conflicts)) or "none"
    return StepRequested(
        step_id=RECONCILE_STEP,
        plan_id=s.plan.plan_id if s.plan else "",
        role="researcher",
        title="Reconcile the task's blackboard",
        instructions=(
            "Researchers of this task wrote facts concurrently, without seeing each "
            f"other's. Keys with conflicting values: {keys}. For each such key, "
            "publish one fact with the value the task should go on with (the best "
            "supported one) and say why. Steps that worked from an older blackboard: "
            f"{', '.join(stale) or 'none'}; say what in their outputs the final facts change."
        ),
        inputs={
            BOARD_INPUT: render(s.board.live()),
            **{x: s.completed[x].output for x in stale if x in s.completed},
        },
        deadline_s=s.config.step_deadline_s,
        facts=sorted(s.board.ids()),
    )


def answer_section(s: TaskState) -> str:
    """What reviewers and the result see of the board: each key's value, and how it came."""
    board = view(s)
    if not len(board):
        return ""
    mode = consistency(s)
    how: str = mode
    if mode == "eventual" and s.reconciled is not None:
        how = f"eventual, reconciled by {RECONCILE_STEP}"
    lines = [f"## Blackboard ({how})"]
    lines += [f"- {k} = {v}" for k, v in resolved_values(board).items()]
    left = board.conflicts()
    if left:
        lines.append(f"Still in conflict: {', '.join(sorted(left))}")
    return "\n".join(lines)
