"""Voting policies: who has won a ballot, when a ballot is hopeless, what to ask next.

A policy is a frozen config dataclass with four pure methods over a `TallyView`
(the counted votes of one ballot). The state machine in `machine.py` owns all
bookkeeping (ballots, duplicates, equivocators, deadlines); a policy only reads
numbers, so each rule fits on a screen and can be checked by hand.

Options are the candidate ids plus "rejected" (a reject vote is a vote for
"rejected"). Abstentions count as participation: an abstainer is no longer
outstanding, but adds to no option. Quorums are always computed on the whole
electorate of the ballot, never on the votes that happened to arrive, so
silence, abstention or exclusion can never lower the bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from synod.core.bugs import planted
from synod.core.consensus.posterior import leader_confidence


@dataclass(frozen=True, slots=True)
class TallyView:
    """The counted votes of one ballot, as the policies see them.

    `counts` and `weights` are aligned with `options`; `weights` are sums of the
    voters' confidences. `outstanding` is the number of electorate members who
    may still vote in this ballot (not yet voted, not excluded).
    """

    options: tuple[str, ...]
    counts: tuple[int, ...]
    weights: tuple[float, ...]
    electorate_size: int
    voted: int
    outstanding: int


def _top_two(values: tuple[int, ...]) -> tuple[int, int, int]:
    """Index of the unique maximum (or -1 on a tie), the maximum, the second value."""
    best_index, best, second = -1, -1, -1
    for index, value in enumerate(values):
        if value > best:
            best_index, best, second = index, value, best
        elif value > second:
            second = value
    if second == best:
        best_index = -1
    return best_index, best, max(second, 0)


def _count_winner(view: TallyView, quorum: int) -> str | None:
    if planted("quorum_minus_one"):
        quorum -= 1
    for option, count in zip(view.options, view.counts, strict=True):
        if count >= quorum:
            return option
    return None


def _count_hopeless(view: TallyView, quorum: int) -> bool:
    return max(view.counts) + view.outstanding < quorum


@dataclass(frozen=True, slots=True)
class Majority:
    """An option wins with votes from more than half of the electorate.

    Two options cannot both hold more than half of one electorate, so the rule
    is safe against crashes; it is not safe against voters that lie.
    """

    weighted = False

    def min_electorate(self) -> int:
        return 1

    def quorum(self, electorate_size: int) -> int:
        return electorate_size // 2 + 1

    def winner(self, view: TallyView) -> str | None:
        return _count_winner(view, self.quorum(view.electorate_size))

    def hopeless(self, view: TallyView) -> bool:
        return _count_hopeless(view, self.quorum(view.electorate_size))

    def wanted(self, view: TallyView) -> int:
        return view.outstanding


@dataclass(frozen=True, slots=True)
class Supermajority:
    """Byzantine quorum: an option wins with 2f+1 votes of an electorate of 3f+1.

    Up to `f` voters may lie (vote for anything, or send different votes to
    different places). Why 2f+1 of 3f+1 is safe:

    - Any 2f+1 agreeing votes contain at least f+1 honest ones, so liars alone
      (at most f) can never carry an option; a decided option is backed by a
      majority of the 2f+1 honest voters.
    - Two quorums of 2f+1 in 3f+1 voters share at least f+1 voters, at least one
      of them honest; an honest voter votes once per ballot, so two observers of
      the same ballot can never see two different options reach quorum.
    - With f voters silent, the 2f+1 honest ones can still form a quorum, so
      liars cannot block a decision by withholding votes either.

    For a larger electorate n >= 3f+1 the quorum is floor((n+f)/2)+1, which is
    2f+1 at n = 3f+1 and keeps both properties.
    """

    f: int = 1
    weighted = False

    def __post_init__(self) -> None:
        if self.f < 0:
            raise ValueError(f"Supermajority needs f >= 0, got {self.f}")

    def min_electorate(self) -> int:
        return 3 * self.f + 1

    def quorum(self, electorate_size: int) -> int:
        return (electorate_size + self.f) // 2 + 1

    def winner(self, view: TallyView) -> str | None:
        return _count_winner(view, self.quorum(view.electorate_size))

    def hopeless(self, view: TallyView) -> bool:
        return _count_hopeless(view, self.quorum(view.electorate_size))

    def wanted(self, view: TallyView) -> int:
        return view.outstanding


@dataclass(frozen=True, slots=True)
class Unanimity:
    """An option wins only if every member of the electorate votes for it.

    One dissent, abstention, rejection or excluded equivocator makes the ballot
    hopeless.
    """

    weighted = False

    def min_electorate(self) -> int:
        return 1

    def quorum(self, electorate_size: int) -> int:
        return electorate_size

    def winner(self, view: TallyView) -> str | None:
        return _count_winner(view, self.quorum(view.electorate_size))

    def hopeless(self, view: TallyView) -> bool:
        return _count_hopeless(view, self.quorum(view.electorate_size))

    def wanted(self, view: TallyView) -> int:
        return view.outstanding


@dataclass(frozen=True, slots=True)
class ConfidenceWeighted:
    """An option wins when its voters' summed confidence exceeds threshold * n.

    Each voter weighs at most 1.0, so with threshold >= 0.5 two options cannot
    both pass the bar (their weights would sum to more than n). `quorum` is the
    fewest votes that could carry that weight: floor(threshold * n) + 1.
    """

    threshold: float = 0.5
    weighted = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.threshold < 1.0:
            raise ValueError(
                f"ConfidenceWeighted threshold must be in [0.5, 1), got {self.threshold}"
            )

    def min_electorate(self) -> int:
        return 1

    def quorum(self, electorate_size: int) -> int:
        return math.floor(self.threshold * electorate_size) + 1

    def winner(self, view: TallyView) -> str | None:
        bar = self.threshold * view.electorate_size
        for option, weight in zip(view.options, view.weights, strict=True):
            if weight > bar:
                return option
        return None

    def hopeless(self, view: TallyView) -> bool:
        return max(view.weights) + view.outstanding <= self.threshold * view.electorate_size

    def wanted(self, view: TallyView) -> int:
        return view.outstanding


@dataclass(frozen=True, slots=True)
class Adaptive:
    """Ask a few voters at a time; stop as soon as more votes could not help.

    The electorate is the budget (at most one vote per member). The leader
    (unique most-voted option, with at least `min_agree` votes) wins as soon as

    1. it can no longer be overtaken: leader > runner-up + outstanding; this is
       exact and covers the leader reaching a majority of the electorate; or
    2. the posterior is sure: P(leader's share > runner-up's) >= `threshold`
       under a Dirichlet(`prior`) prior (see `posterior.py`).

    The ballot is hopeless once no option can reach a majority of the
    electorate any more (that is when fixed-N majority gives up too) or every
    member has voted without a winner.

    `wanted` asks only for the fewest further votes that could end the ballot
    (all of them going to the leader, or all elsewhere for hopelessness), so a
    round never asks for a vote that could not change what happens next.
    """

    threshold: float = 0.95
    prior: float = 1.0
    min_agree: int = 2
    weighted = False

    def __post_init__(self) -> None:
        if not 0.5 < self.threshold <= 1.0:
            raise ValueError(f"Adaptive threshold must be in (0.5, 1], got {self.threshold}")
        if self.prior <= 0.0:
            raise ValueError(f"Adaptive prior must be > 0, got {self.prior}")
        if self.min_agree < 1:
            raise ValueError(f"Adaptive min_agree must be >= 1, got {self.min_agree}")

    def min_electorate(self) -> int:
        return 1

    def quorum(self, electorate_size: int) -> int:
        return min(self.min_agree, electorate_size)

    def _stops(self, leader: int, runner_up: int, outstanding: int, quorum: int) -> bool:
        if leader < quorum or leader <= runner_up:
            return False
        if leader > runner_up + outstanding:
            return True
        return leader_confidence(leader, runner_up, self.prior) >= self.threshold

    def winner(self, view: TallyView) -> str | None:
        index, leader, runner_up = _top_two(view.counts)
        if index < 0:
            return None
        if self._stops(leader, runner_up, view.outstanding, self.quorum(view.electorate_size)):
            return view.options[index]
        return None

    def hopeless(self, view: TallyView) -> bool:
        majority = view.electorate_size // 2 + 1
        return view.outstanding == 0 or max(view.counts) + view.outstanding < majority

    def wanted(self, view: TallyView) -> int:
        outstanding = view.outstanding
        if outstanding == 0:
            return 0
        _, leader, runner_up = _top_two(view.counts)
        majority = view.electorate_size // 2 + 1
        quorum = self.quorum(view.electorate_size)
        # After this many votes that all go elsewhere, no majority is possible.
        until_hopeless = max(1, leader + outstanding - majority + 1)
        limit = min(outstanding, until_hopeless)
        for more in range(1, limit):
            if self._stops(leader + more, runner_up, outstanding - more, quorum):
                return more
        return limit


Policy = Majority | Supermajority | Unanimity | ConfidenceWeighted | Adaptive
