"""The ballots of a task (candidates, votes, decision) and what the tests said."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from synod.wire.messages import (
    AnswerVerified,
    Decision,
    Envelope,
    TaskCompleted,
    TaskFailed,
    Vote,
    VoteRequested,
)

# A candidate's text is shown in full on the ballot; beyond this it is cut.
CANDIDATE_CHARS = 2_000


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
