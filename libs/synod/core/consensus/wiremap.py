"""Wire messages <-> consensus core values, for the consensus service and offline checks.

Pure functions of a message and nothing else: no clock, no I/O, no settings.
A decision must be a function of the vote log (docs/adr/0003), so everything
that feeds the core is taken from the log: a proposal opens at its planner
message's `created_at`, and time moves only with the service's deadline
markers, which are records on the same log.

The wire carries no ballot timeout and no ballot limit; every ballot lasts the
request's `deadline_s`, and a proposal gets `MAX_BALLOTS` ballots. These are
constants on purpose: two instances that disagreed on them would fold the same
log to different decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synod.core.consensus.events import Reconciled, RequestVotes
from synod.core.consensus.policies import (
    Adaptive,
    ConfidenceWeighted,
    Majority,
    Policy,
    Supermajority,
    Unanimity,
)
from synod.core.consensus.types import Candidate, Decision, Proposal, Vote
from synod.wire import messages as wire

MAX_BALLOTS = 3
"""Ballots per proposal; after the last one the outcome is `no_quorum`."""

MIN_ROUND_DEADLINE_S = 1.0
"""Least time a round request gives a juror, even when it is sent late in a ballot."""


def epoch_seconds(moment: datetime) -> float:
    """The core's clock: seconds since the epoch (a naive moment is read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def policy_for(name: wire.PolicyName, electorate_size: int) -> Policy:
    """The core policy a wire policy name stands for, for an electorate of this size."""
    if name == "majority":
        return Majority()
    if name == "supermajority":
        # The largest f the electorate can bear: n >= 3f+1.
        return Supermajority(f=max(0, (electorate_size - 1) // 3))
    if name == "unanimity":
        return Unanimity()
    if name == "confidence":
        return ConfidenceWeighted()
    if name == "adaptive":
        return Adaptive()
    raise ValueError(f"unknown policy {name!r}")


def proposal_from_wire(
    request: wire.VoteRequested, *, task_id: str, opened_at: datetime
) -> Proposal:
    """The core proposal a planner's VoteRequested opens.

    Raises `InvalidProposal` (a ValueError) when no ballot could decide it.
    """
    opened = epoch_seconds(opened_at)
    return Proposal(
        proposal_id=request.proposal_id,
        task_id=task_id,
        ballot=request.ballot,
        candidates=tuple(Candidate(c.candidate_id, c.content) for c in request.candidates),
        electorate=tuple(request.electorate),
        policy=policy_for(request.policy, len(request.electorate)),
        deadline=opened + request.deadline_s,
        mode=request.partition_mode,
        max_ballots=MAX_BALLOTS,
        ballot_timeout=request.deadline_s,
    )


def vote_from_wire(vote: wire.Vote) -> Vote:
    return Vote(
        proposal_id=vote.proposal_id,
        ballot=vote.ballot,
        voter=vote.voter,
        kind=vote.kind,
        choice=vote.choice,
        confidence=vote.confidence,
        rationale=vote.rationale,
    )


def vote_to_wire(vote: Vote) -> wire.Vote:
    return wire.Vote(
        proposal_id=vote.proposal_id,
        ballot=vote.ballot,
        voter=vote.voter,
        kind=vote.kind,
        choice=vote.choice,
        confidence=vote.confidence,
        rationale=vote.rationale,
    )


def round_request(
    opening: wire.VoteRequested, request: RequestVotes, *, now: float
) -> wire.VoteRequested:
    """The VoteRequested that asks `request.voters` for a vote in `request.ballot`.

    Everything but the round comes from the planner's opening request, so a
    juror sees the same question in every round. `now` is the log time of the
    event that led to the request; the juror gets the rest of the ballot.
    """
    return wire.VoteRequested(
        proposal_id=request.proposal_id,
        ballot=request.ballot,
        subject=opening.subject,
        candidates=list(opening.candidates),
        electorate=list(request.voters),
        policy=opening.policy,
        partition_mode=opening.partition_mode,
        deadline_s=max(request.deadline - now, MIN_ROUND_DEADLINE_S),
        verify=opening.verify,
        allowance=opening.allowance,  # each juror's share of the task's budget
    )


def decision_to_wire(decision: Decision) -> wire.Decision:
    return wire.Decision(
        decision_id=decision.decision_id,
        proposal_id=decision.proposal_id,
        ballot=decision.ballot,
        outcome=decision.outcome,
        tally=dict(decision.tally),
        quorum=decision.quorum,
        votes_counted=decision.votes_counted,
        provisional=decision.provisional,
        equivocators=list(decision.excluded),
        unreachable=list(decision.unreachable),
    )


def reconciled_to_wire(reconciled: Reconciled) -> wire.Reconciled:
    return wire.Reconciled(
        decision_id=reconciled.decision.decision_id,
        proposal_id=reconciled.decision.proposal_id,
        ballot=reconciled.decision.ballot,
        provisional_outcome=reconciled.decision.outcome,
        outcome=reconciled.outcome,
        confirmed=reconciled.confirmed,
        tally=dict(reconciled.tally),
        votes_counted=reconciled.votes_counted,
    )


def decision_from_wire(body: wire.Decision, *, task_id: str) -> Decision:
    return Decision(
        decision_id=body.decision_id,
        proposal_id=body.proposal_id,
        task_id=task_id,
        ballot=body.ballot,
        outcome=body.outcome,
        tally=tuple(body.tally.items()),
        quorum=body.quorum,
        votes_counted=body.votes_counted,
        provisional=body.provisional,
        excluded=tuple(body.equivocators),
        unreachable=tuple(body.unreachable),
    )


# Deadline markers.
#
# Time reaches the core only through records on the vote log, so a replay of
# the log sees the deadlines where the live service saw them. When a ballot's
# deadline passes on its clock, the consensus service appends a BallotDeadline
# to the task's partition of synod.votes; the ballot ends when the marker is
# folded, after every vote that reached the log before it. The envelope's
# `created_at` is the time the core sees.


def deadline_marker(
    proposal_id: str, ballot: int, reachable: list[str] | None = None
) -> wire.BallotDeadline:
    """`reachable`: who the supervisor saw as the marker was written (None: no report);
    the fold hands it to the ballot just before the deadline, so replays agree."""
    return wire.BallotDeadline(proposal_id=proposal_id, ballot=ballot, reachable=reachable)


def marker_target(body: wire.BallotDeadline) -> tuple[str, int]:
    """(proposal id, ballot) that this marker ends."""
    return body.proposal_id, body.ballot


def marker_time(now: float, deadline: float) -> datetime:
    """A `created_at` for a marker that ends the ballot with this deadline.

    At least the deadline after rounding to the microseconds the wire keeps, so
    that the Tick the marker becomes really does end the ballot.
    """
    moment = datetime.fromtimestamp(max(now, deadline), UTC)
    while epoch_seconds(moment) < deadline:
        moment += timedelta(microseconds=1)
    return moment


__all__ = [
    "MAX_BALLOTS",
    "MIN_ROUND_DEADLINE_S",
    "deadline_marker",
    "decision_from_wire",
    "decision_to_wire",
    "epoch_seconds",
    "marker_target",
    "marker_time",
    "policy_for",
    "proposal_from_wire",
    "round_request",
    "vote_from_wire",
    "vote_to_wire",
]
