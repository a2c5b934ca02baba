"""The team's answer: put to the vote, revised when rejected, concluded on a decision.

An answer the reviewers reject is not the end while answer rounds are left:
the steps that produced it run again as a revision (a new attempt, so a new
sample, told that it was rejected) and round 2 votes on the new answer. A vote
that found no quorum is put again as is. Each round is its own proposal
(`<task>/answer`, then `<task>/answer-2`, ...), so the consensus service needs
no notion of rounds.
"""

from __future__ import annotations

from synod.core.blackboard import resolved_values
from synod.core.task import escalation, knowledge
from synod.core.task.actions import Publish
from synod.core.task.records import (
    fail,
    outcome_key,
    publish,
    step_body,
    tests_verdict,
    usage,
)
from synod.core.task.state import ANSWER, TaskState, revision_round, round_of
from synod.core.task.workspace import request, winners
from synod.wire import Body, Candidate, TaskCompleted, Verification, VoteRequested


def electorate(size: int, quarantined: frozenset[str]) -> list[str]:
    """`size` reviewers by index, skipping quarantined ones (the next index stands in)."""
    picked = [f"reviewer-{i}" for i in range(size + len(quarantined))]
    return [r for r in picked if r not in quarantined][:size]


def decide(s: TaskState) -> list[Publish]:
    """What the VOTING phase does next: a vote, a revote, a revision or the outcome."""
    if s.vote is None:
        return [vote(s, 1)]
    voted = round_of(s.vote.proposal_id)
    if revision_round(s) > voted:
        return [vote(s, voted + 1)]
    if s.guidance is not None and s.guidance[1] > revision_round(s):
        return revise(s, s.guidance[1], s.guidance[0])  # a person's rejection: one round
    if s.decision is None:
        return []
    if _partitioned_cp(s):
        # No quorum was within reach; another round would only wait again. A person
        # may still decide (approve, or reject with guidance) if the task escalates.
        if escalation.wants_escalation(s):
            return [escalation.raise_for(s, "partition", _unreachable_reason(s))]
        return [conclude(s)]
    if s.decision.outcome != ANSWER and voted < s.config.max_answer_rounds:
        if s.decision.outcome == "no_quorum":
            return [vote(s, voted + 1)]  # nobody judged it: ask again
        return revise(s, voted + 1)
    asked = escalation.undecided(s)
    return [asked] if asked is not None else [conclude(s)]


def _partitioned_cp(s: TaskState) -> bool:
    """A `cp` task whose vote found no quorum because voters were unreachable."""
    assert s.decision is not None
    assert s.submitted is not None
    return (
        s.submitted.body.partition_mode == "cp"
        and s.decision.outcome == "no_quorum"
        and bool(s.decision.unreachable)
    )


def answer_steps(s: TaskState) -> list[str]:
    """The last coder steps (code is the deliverable); with no coder step, the
    steps nothing depends on."""
    dag = s.dag
    assert dag is not None
    coders = [x for x in dag.ids if dag.step(x).role == "coder"]
    if coders:
        return [x for x in coders if not any(d in coders for d in dag.dependents(x))]
    return [x for x in dag.ids if not dag.dependents(x)]


def _answer(s: TaskState) -> tuple[str, str]:
    """The answer's text (with the blackboard it stands on, if any) and its authors."""
    last = answer_steps(s)
    parts = [s.completed[x].output for x in last]
    board = knowledge.answer_section(s)
    return "\n\n".join([*parts, board] if board else parts), ",".join(last)


def vote(s: TaskState, round_: int) -> Publish:
    assert s.submitted is not None
    task = s.submitted.body
    content, authors = _answer(s)
    suffix = "" if round_ == 1 else f"-{round_}"
    body = VoteRequested(
        proposal_id=f"{s.task_id}/{ANSWER}{suffix}",
        ballot=1,
        subject="answer",
        candidates=[Candidate(candidate_id=ANSWER, content=content, author=authors)],
        electorate=electorate(task.reviewers, s.quarantined),
        policy=task.policy,
        partition_mode=task.partition_mode,
        deadline_s=s.config.vote_deadline_s,
        verify=_verification(s),
    )
    return publish(s, body, f"vote/{round_}")


def _verification(s: TaskState) -> Verification | None:
    """The task's tests, on the workspace of the attempts the answer comes from."""
    assert s.submitted is not None
    tests = s.submitted.body.tests
    if not tests:
        return None
    # Write ids derive from the request that wrote them: naming the winning
    # request of each step (merge steps included) pins the workspace version.
    return Verification(tests=tests, winners=winners(s))


def revise(s: TaskState, round_: int, guidance: str | None = None) -> list[Publish]:
    """Run the steps behind a rejected answer again, as round `round_`'s candidates;
    `guidance`: a person's rejection, what to change."""
    why = (
        f"A person reviewing the previous answer rejected it and asks: {guidance}"
        if guidance is not None or s.decision is None
        else f"The reviewers did not accept the previous answer (outcome "
        f"{s.decision.outcome}, tally {dict(s.decision.tally)})."
    )
    actions: list[Publish] = []
    for step_id in answer_steps(s):
        attempt = s.requested.get(step_id, 0) + 1
        # The revision rewrites the step's files (the plain request's): the next
        # answer, and the tests the reviewers run on it, is the workspace with them.
        body = step_body(s, step_id)
        body = body.model_copy(
            update={
                "instructions": f"{body.instructions}\n\n{why} Revise it.",
                "prompt_variant": f"revise-{round_}",
            }
        )
        actions.append(request(s, body, f"step/{step_id}/{attempt}", attempt))
    return actions


def _unreachable_reason(s: TaskState) -> str:
    assert s.decision is not None
    return (
        "no quorum (cp): the ballot's deadline passed without a quorum of the full "
        f"electorate; unreachable voters: {', '.join(s.decision.unreachable)}"
    )


def conclude(s: TaskState) -> Publish:
    assert s.decision is not None
    passed, summary = tests_verdict(s)
    if s.decision.outcome == ANSWER:
        content, _ = _answer(s)
        body: Body = TaskCompleted(
            result=content,
            plan_id=s.plan.plan_id if s.plan else "",
            decision_id=s.decision.decision_id,
            steps_completed=len(s.completed),
            usage=usage(s),
            duration_s=0.0,
            tests_passed=passed,
            tests_summary=summary,
            consistency=knowledge.consistency(s),
            blackboard=resolved_values(knowledge.view(s)),
            provisional=s.decision.provisional,
            partition_mode=s.submitted.body.partition_mode if s.submitted else "cp",
        )
        return publish(s, body, outcome_key(s))
    tests = f"; tests: {summary}" if summary else ""
    if _partitioned_cp(s):
        failed = fail(
            s, _unreachable_reason(s) + tests, "transient", unreachable=list(s.decision.unreachable)
        )
    else:
        failed = fail(
            s,
            f"the reviewers did not accept the answer: {s.decision.outcome} "
            f"(tally {dict(s.decision.tally)}, quorum {s.decision.quorum}){tests}",
            "permanent",
        )
    # The failure rests on this decision: if it was provisional, a Reconciled that
    # overturns it reopens the task (docs/cap.md), and the log must say so.
    body = failed.body.model_copy(
        update={"decision_id": s.decision.decision_id, "provisional": s.decision.provisional}
    )
    return Publish(body, failed.message_id, failed.attempt, failed.causes)
