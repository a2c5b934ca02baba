"""What goes into the consensus core and what comes out.

Inputs carry everything the core may depend on, time included (`Tick`), so a
log of inputs is enough to rebuild any state. Outputs are instructions and
reports for the caller: send these requests, publish this decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from synod.core.consensus.types import Decision, Proposal, Vote

# Inputs


@dataclass(frozen=True, slots=True)
class Open:
    """Put a proposal to its electorate (only the `Consensus` router takes this)."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class VoteReceived:
    vote: Vote


@dataclass(frozen=True, slots=True)
class Tick:
    """The caller's clock reading; ballots whose deadline has passed end now."""

    now: float


@dataclass(frozen=True, slots=True)
class Reachable:
    """The voters currently reachable (the whole set, not a change), e.g. from the
    supervisor's failure detector. AP proposals decide provisionally with them."""

    voters: frozenset[str]


Event = VoteReceived | Tick | Reachable
LogEvent = Open | VoteReceived | Tick | Reachable

# Outputs

BallotEndReason = Literal["deadline", "hopeless"]
"""Why a ballot ended undecided: its deadline passed, or no quorum was possible any more."""

IgnoreReason = Literal[
    "unknown_proposal",
    "stale_ballot",
    "future_ballot",
    "not_in_electorate",
    "unknown_candidate",
    "duplicate",
    "equivocator",
]


@dataclass(frozen=True, slots=True)
class RequestVotes:
    """Ask these voters for a vote in this ballot (one LLM call each)."""

    proposal_id: str
    ballot: int
    voters: tuple[str, ...]
    deadline: float


@dataclass(frozen=True, slots=True)
class NewBallot:
    """The previous ballot ended without a decision; `reason` says why."""

    proposal_id: str
    ballot: int
    electorate: tuple[str, ...]
    deadline: float
    reason: BallotEndReason


@dataclass(frozen=True, slots=True)
class Decided:
    decision: Decision


@dataclass(frozen=True, slots=True)
class Reconciled:
    """A provisional decision met the full electorate (after a heal): `outcome` is what
    the full electorate decided, `confirmed` whether it is the provisional outcome."""

    decision: Decision
    outcome: str
    confirmed: bool
    tally: tuple[tuple[str, float], ...]
    votes_counted: int


@dataclass(frozen=True, slots=True)
class EquivocationDetected:
    """`voter` sent two different votes in one ballot; it is excluded from the proposal."""

    proposal_id: str
    ballot: int
    voter: str
    votes: tuple[Vote, Vote]


@dataclass(frozen=True, slots=True)
class VoteIgnored:
    vote: Vote
    reason: IgnoreReason


Output = RequestVotes | NewBallot | Decided | Reconciled | EquivocationDetected | VoteIgnored
