"""Wire <-> core conversion (synod.core.consensus.wiremap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from synod.core.consensus import (
    Adaptive,
    ConfidenceWeighted,
    Decision,
    InvalidProposal,
    Majority,
    RequestVotes,
    Supermajority,
    Unanimity,
    Vote,
    wiremap,
)
from synod.wire import (
    BallotDeadline,
    Candidate,
    Codec,
    Envelope,
    Sender,
    Verification,
    VoteRequested,
)
from synod.wire import Vote as WireVote

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _request(**fields: object) -> VoteRequested:
    base: dict[str, object] = {
        "proposal_id": "t1/answer",
        "candidates": [Candidate(candidate_id="a", content="A", author="coder-1")],
        "electorate": ["r1", "r2", "r3", "r4"],
        "policy": "majority",
        "deadline_s": 30.0,
    }
    base.update(fields)
    return VoteRequested.model_validate(base)


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("majority", 3, Majority()),
        ("supermajority", 4, Supermajority(f=1)),
        ("supermajority", 6, Supermajority(f=1)),
        ("supermajority", 7, Supermajority(f=2)),
        ("supermajority", 3, Supermajority(f=0)),
        ("unanimity", 5, Unanimity()),
        ("confidence", 5, ConfidenceWeighted()),
        ("adaptive", 5, Adaptive()),
    ],
)
def test_policy_names_map_to_core_policies(name: str, size: int, expected: object) -> None:
    assert wiremap.policy_for(name, size) == expected  # type: ignore[arg-type]


def test_a_proposal_opens_at_the_planners_created_at() -> None:
    request = _request(ballot=2, partition_mode="ap", policy="supermajority")
    proposal = wiremap.proposal_from_wire(request, task_id="t1", opened_at=T0)
    assert proposal.deadline == T0.timestamp() + 30.0
    assert proposal.ballot_timeout == 30.0
    assert proposal.max_ballots == wiremap.MAX_BALLOTS
    assert proposal.ballot == 2
    assert proposal.mode == "ap"
    assert proposal.policy == Supermajority(f=1)
    assert proposal.candidate_ids == ("a",)
    assert proposal.electorate == ("r1", "r2", "r3", "r4")
    assert proposal.task_id == "t1"
    # A naive timestamp is UTC, as the envelope reads it.
    naive = wiremap.proposal_from_wire(request, task_id="t1", opened_at=T0.replace(tzinfo=None))
    assert naive.deadline == proposal.deadline


def test_a_proposal_no_ballot_could_decide_is_refused() -> None:
    with pytest.raises(InvalidProposal):
        wiremap.proposal_from_wire(
            _request(candidates=[Candidate(candidate_id="rejected")]), task_id="t", opened_at=T0
        )


def test_votes_and_decisions_round_trip() -> None:
    vote = Vote("p", 2, "r1", "choice", "a", 0.75, "because")
    assert wiremap.vote_from_wire(wiremap.vote_to_wire(vote)) == vote
    abstain = WireVote(proposal_id="p", voter="r2", kind="abstain", confidence=0.0)
    assert wiremap.vote_from_wire(abstain) == Vote("p", 1, "r2", "abstain", None, 0.0)
    decision = Decision(
        decision_id="p/decision",
        proposal_id="p",
        task_id="t",
        ballot=2,
        outcome="a",
        tally=(("a", 3.0), ("b", 1.0), ("rejected", 0.0)),
        quorum=3,
        votes_counted=4,
        provisional=False,
        excluded=("r4",),
    )
    body = wiremap.decision_to_wire(decision)
    assert body.equivocators == ["r4"]
    assert list(body.tally) == ["a", "b", "rejected"]
    assert wiremap.decision_from_wire(body, task_id="t") == decision


def test_a_round_request_asks_exactly_the_rounds_voters() -> None:
    opening = _request(policy="adaptive", subject="plan")
    asked = wiremap.round_request(
        opening, RequestVotes("t1/answer", 3, ("r2", "r4"), deadline=100.0), now=90.0
    )
    assert asked.electorate == ["r2", "r4"]
    assert asked.ballot == 3
    assert asked.deadline_s == 10.0
    assert (asked.subject, asked.policy, asked.candidates) == (
        "plan",
        "adaptive",
        opening.candidates,
    )
    late = wiremap.round_request(
        opening, RequestVotes("t1/answer", 3, ("r2",), deadline=100.0), now=120.0
    )
    assert late.deadline_s == wiremap.MIN_ROUND_DEADLINE_S


def test_a_round_request_carries_the_answer_s_tests_to_every_juror() -> None:
    check = Verification(tests={"test_a.py": "def test_a():\n    pass\n"}, winners={"s": "r"})
    opening = _request(verify=check)
    asked = wiremap.round_request(
        opening, RequestVotes("t1/answer", 2, ("r1",), deadline=100.0), now=90.0
    )
    assert asked.verify == check
    assert (
        wiremap.round_request(
            _request(), RequestVotes("t1/answer", 1, ("r1",), deadline=100.0), now=90.0
        ).verify
        is None
    )


def test_a_marker_survives_the_wire_and_ends_its_deadline() -> None:
    codec = Codec()
    sender = Sender(role="consensus", instance="consensus-1")
    for deadline in (T0.timestamp() + 0.4999996, T0.timestamp() + 1e-7, 1.7e9 + 1 / 3):
        env = Envelope.new(
            wiremap.deadline_marker("p", 2),
            sender=sender,
            task_id="t",
            created_at=wiremap.marker_time(deadline - 1e-6, deadline),
        )
        back = codec.decode(codec.encode(env))
        assert isinstance(back.body, BallotDeadline)
        assert wiremap.marker_target(back.body) == ("p", 2)
        assert wiremap.epoch_seconds(back.created_at) >= deadline
        assert back.created_at - datetime.fromtimestamp(deadline, UTC) < timedelta(microseconds=2)
