"""The values the consensus core takes and gives: proposals, votes, decisions.

All are frozen (a decision handed out twice must be the same value) and
validated on construction, so the state machine never sees a malformed one;
the adapter that decodes wire messages turns a `ValueError` here into a dead
letter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from synod.core.consensus.policies import Policy
from synod.errors import SynodError

REJECTED = "rejected"
"""Outcome (and option) when a quorum rejects every candidate."""

NO_QUORUM = "no_quorum"
"""Outcome when the last allowed ballot ended without a quorum; the planner escalates."""

RESERVED_OUTCOMES = frozenset({REJECTED, NO_QUORUM})

Mode = Literal["cp", "ap"]
VoteKind = Literal["choice", "reject", "abstain"]


class InvalidProposal(SynodError, ValueError):
    """A proposal that no ballot could ever decide correctly (e.g. too few voters)."""

    error_class = "permanent"


def _unique(values: tuple[str, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise InvalidProposal(f"{what} has duplicates: {values!r}")


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate_id: str
    content: str = ""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A question put to an electorate.

    `ballot` is the first ballot number; ballots `ballot .. ballot+max_ballots-1`
    may be used. `deadline` (absolute seconds, the caller's clock) ends the
    first ballot; each later ballot ends `ballot_timeout` seconds after the
    previous deadline or the latest time seen, whichever is later. From the
    second ballot on, the electorate is `electorate + widen`.
    """

    proposal_id: str
    task_id: str
    ballot: int
    candidates: tuple[Candidate, ...]
    electorate: tuple[str, ...]
    policy: Policy
    deadline: float
    mode: Mode = "cp"
    max_ballots: int = 3
    widen: tuple[str, ...] = ()
    ballot_timeout: float = 60.0

    def __post_init__(self) -> None:
        ids = self.candidate_ids
        if not ids:
            raise InvalidProposal("a proposal needs at least one candidate")
        _unique(ids, "candidates")
        if RESERVED_OUTCOMES & set(ids):
            raise InvalidProposal(f"candidate ids {sorted(RESERVED_OUTCOMES)} are reserved")
        if not self.electorate:
            raise InvalidProposal("a proposal needs a non-empty electorate")
        _unique(self.electorate, "electorate")
        _unique(self.widen, "widen")
        if set(self.widen) & set(self.electorate):
            raise InvalidProposal("widen must only name voters outside the electorate")
        if self.mode not in ("cp", "ap"):
            raise InvalidProposal(f"mode must be 'cp' or 'ap', got {self.mode!r}")
        if self.ballot < 0 or self.max_ballots < 1:
            raise InvalidProposal("ballot must be >= 0 and max_ballots >= 1")
        if not (math.isfinite(self.deadline) and self.ballot_timeout > 0):
            raise InvalidProposal("deadline must be finite and ballot_timeout > 0")
        needed = self.policy.min_electorate()
        if len(self.electorate) < needed:
            raise InvalidProposal(
                f"{type(self.policy).__name__} needs an electorate of at least {needed}, "
                f"got {len(self.electorate)}"
            )

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        return tuple(c.candidate_id for c in self.candidates)

    @property
    def options(self) -> tuple[str, ...]:
        """What a vote can count for: the candidates, then "rejected"."""
        return (*self.candidate_ids, REJECTED)

    @property
    def last_ballot(self) -> int:
        return self.ballot + self.max_ballots - 1

    def electorate_for(self, ballot: int) -> tuple[str, ...]:
        return self.electorate if ballot == self.ballot else self.electorate + self.widen


@dataclass(frozen=True, slots=True)
class Vote:
    """One voter's answer in one ballot: a choice, a reject of all, or an abstention."""

    proposal_id: str
    ballot: int
    voter: str
    kind: VoteKind
    choice: str | None = None
    confidence: float = 1.0
    rationale: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("choice", "reject", "abstain"):
            raise ValueError(f"vote kind must be choice, reject or abstain, got {self.kind!r}")
        if (self.kind == "choice") != (self.choice is not None):
            raise ValueError("a vote has a choice exactly when its kind is 'choice'")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    @property
    def option(self) -> str | None:
        """The option this vote counts for; None for an abstention."""
        if self.kind == "choice":
            return self.choice
        return REJECTED if self.kind == "reject" else None

    def same_answer(self, other: Vote) -> bool:
        """Equal answers: a re-delivery, not an equivocation (rationale may differ)."""
        return self.kind == other.kind and self.choice == other.choice


def decision_id_for(proposal_id: str) -> str:
    """Derived, not random: a decision re-emitted after a crash keeps its id."""
    return f"{proposal_id}/decision"


@dataclass(frozen=True, slots=True)
class Decision:
    """The one outcome of a proposal.

    `outcome` is a candidate id, "rejected" or "no_quorum". `tally` lists
    (option, weight) for every option in proposal order: vote counts, or summed
    confidences under ConfidenceWeighted. `quorum` is the number of agreeing
    votes the policy required; `excluded` the equivocators.
    """

    decision_id: str
    proposal_id: str
    task_id: str
    ballot: int
    outcome: str
    tally: tuple[tuple[str, float], ...]
    quorum: int
    votes_counted: int
    provisional: bool
    excluded: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()

    def tally_dict(self) -> dict[str, float]:
        return dict(self.tally)
