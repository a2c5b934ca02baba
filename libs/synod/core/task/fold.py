"""The fold: one record of the task's log at a time, in log order, into `TaskState`.

Folding a record twice is harmless (`seen`), so a restarted planner folds its
partitions from the beginning and reaches the same state.
"""

from __future__ import annotations

from typing import Any

from synod.core.plan.dag import Plan, PlanError
from synod.core.plan.teampolicy import SharedList
from synod.core.task import budget, escalation, knowledge, retries, workspace
from synod.core.task.actions import key_of
from synod.core.task.phase import settle
from synod.core.task.state import TaskState, round_of
from synod.wire import (
    AnswerVerified,
    Decision,
    Envelope,
    PlanProposed,
    Reconciled,
    StepCompleted,
    StepFailed,
    StepRequested,
    TaskCompleted,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import StepCancelled, StepClaimed, StepReassigned, StepRetrying


def fold(s: TaskState, envelope: Envelope[Any]) -> bool:
    """Fold one message of the task's log; False if it was already folded."""
    if envelope.message_id in s.seen:
        return False
    s.seen.add(envelope.message_id)
    if not workspace.fold(s, envelope) and not knowledge.fold(s, envelope):
        _fold_body(s, envelope)
        escalation.fold(s, envelope)
    budget.fold(s, envelope)  # merge steps' usage too: every usage on the log counts
    settle_phase(s)
    return True


def settle_phase(s: TaskState) -> None:
    dag = s.dag
    s.phase = settle(
        submitted=s.submitted is not None,
        planned=s.plan is not None,
        outcome=s.outcome is not None,
        steps_left=dag is None or len(s.completed) < len(dag),
        merging=workspace.merging(s),
    )


def _fold_body(s: TaskState, envelope: Envelope[Any]) -> None:
    body = envelope.body
    if isinstance(body, TaskSubmitted):
        if s.submitted is None:
            s.submitted = envelope
    elif isinstance(body, PlanProposed):
        if s.plan is None:
            s.plan = body
            try:
                s.dag = Plan.from_steps(body.steps)
            except PlanError as exc:
                s.plan_error = str(exc)
            _start_shared_list(s)
    elif isinstance(body, StepRequested):
        _fold_request(s, body, envelope)
    elif isinstance(body, StepCompleted):
        valid = envelope.attempt >= s.revision_floor.get(body.step_id, 0)
        if valid and body.step_id not in s.completed:
            s.completed_attempt[body.step_id] = envelope.attempt
            s.completed[body.step_id] = body
            if s.shared_list is not None:
                s.shared_list.finished(body.step_id, s.completed)
    elif isinstance(body, StepFailed):
        s.failures.setdefault(body.step_id, []).append(body)
        s.failed_attempts.setdefault(body.step_id, set()).add(envelope.attempt)
    elif isinstance(body, VoteRequested):
        if s.vote is None or round_of(body.proposal_id) > round_of(s.vote.proposal_id):
            s.vote, s.decision = body, None
    elif isinstance(body, Decision):
        if s.vote is not None and body.proposal_id == s.vote.proposal_id:
            s.decision = s.decision or body
    elif isinstance(body, TaskCompleted | TaskFailed):
        s.outcome = s.outcome or body
    elif isinstance(body, Reconciled):
        _fold_reconciled(s, body)
    elif isinstance(body, StepReassigned):
        if not retries.parked_then(s, body, envelope.created_at):
            retries.reassign(s, body)
    elif isinstance(body, AnswerVerified):
        runs = s.test_runs.setdefault(body.proposal_id, {})
        if body.voter not in runs or body.ballot >= runs[body.voter].ballot:
            runs[body.voter] = body
    elif isinstance(body, StepClaimed):
        s.claims_logged.add(body.step_id)
    elif isinstance(body, StepCancelled):
        s.cancels_logged.add(body.step_id)
    elif isinstance(body, StepRetrying):
        retries.park(s, body, envelope.attempt)


def _fold_reconciled(s: TaskState, body: Reconciled) -> None:
    """The reconcile rule (docs/cap.md): a confirmed provisional decision stands; an
    overturned one reopens the task from the full electorate's decision, as if that
    had been the decision: the next round revises or votes again, then a new outcome."""
    if body.decision_id in s.verdicts:
        return
    s.verdicts[body.decision_id] = body
    current = s.decision
    if body.confirmed or current is None or current.decision_id != body.decision_id:
        return
    s.overturned.append(body.decision_id)
    s.outcome = None
    s.decision = Decision(
        decision_id=f"{body.decision_id}/reconciled",
        proposal_id=body.proposal_id,
        ballot=body.ballot,
        outcome=body.outcome,
        tally=body.tally,
        quorum=0,
        votes_counted=body.votes_counted,
    )


def _fold_request(s: TaskState, body: StepRequested, envelope: Envelope[Any]) -> None:
    step_id = body.step_id
    s.requested[step_id] = max(envelope.attempt, s.requested.get(step_id, -1))
    s.attempt_at.setdefault((step_id, envelope.attempt), envelope.created_at)
    s.keys.setdefault((step_id, envelope.attempt), key_of(envelope))
    if envelope.attempt == s.requested[step_id]:
        s.requested_at[step_id] = envelope.created_at
    if body.prompt_variant == "hedge":
        s.hedged[step_id] = s.hedged.get(step_id, 0) + 1
    revision = retries.revision_of(body.prompt_variant)
    if revision and revision > s.revised_in.get(step_id, 1):
        # The rejected output no longer counts; only the revision's will.
        s.revised_in[step_id] = revision
        s.revision_floor[step_id] = envelope.attempt
        s.completed.pop(step_id, None)


def _start_shared_list(s: TaskState) -> None:
    """A claim team's first claims, as soon as the plan is known (one per slot)."""
    if s.dag is None or s.submitted is None:
        return
    mode, n = s.team()
    if mode == "claim" and n is not None:
        s.shared_list = SharedList(s.dag, n)
        s.shared_list.start()
