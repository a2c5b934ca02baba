"""The per-proposal state machine: events in, outputs out, no I/O, no clock.

One `ProposalMachine` runs the ballots of one proposal. It owns the safety
rules that hold for every policy:

- decide at most once; after that every vote is answered with the same decision;
- count a voter once per ballot (a re-delivered vote is a duplicate);
- report and exclude, for the rest of the proposal, a voter that sends two
  different votes in one ballot;
- ignore votes for any ballot but the current one, from voters outside the
  ballot's electorate, and for unknown candidates;
- decide only with the policy's quorum over the whole electorate, except in
  AP mode, where a decision may be taken over the reachable electorate and is
  then marked provisional;
- after a provisional decision, keep counting the decided ballot's votes (the
  missing jurors', once the partition heals) and report, once, what the full
  electorate decides: `Reconciled`, confirmed or overturned (docs/cap.md);
- in CP mode, end with no quorum at the first deadline whose reachability report
  leaves too few voters for the next ballot's quorum, not after the last ballot.

Everything it does is a function of the proposal and the ordered events, so
`replay` of a log always gives the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from synod.core.consensus.events import (
    BallotEndReason,
    Decided,
    EquivocationDetected,
    Event,
    IgnoreReason,
    NewBallot,
    Output,
    Reachable,
    Reconciled,
    RequestVotes,
    Tick,
    VoteIgnored,
    VoteReceived,
)
from synod.core.consensus.policies import TallyView
from synod.core.consensus.types import NO_QUORUM, Decision, Proposal, Vote, decision_id_for


class ProposalMachine:
    """Runs the ballots of one proposal. Create it with `ProposalMachine.open`."""

    def __init__(self, proposal: Proposal) -> None:
        self._proposal = proposal
        self._options = proposal.options
        self._option_index = {option: i for i, option in enumerate(self._options)}
        self._candidates = frozenset(proposal.candidate_ids)
        self._excluded: list[str] = []
        self._reachable: frozenset[str] | None = None
        self._now = -math.inf
        self._decision: Decision | None = None
        self._ballot = proposal.ballot
        self._deadline = proposal.deadline
        self._electorate = proposal.electorate_for(self._ballot)
        self._members = frozenset(self._electorate)
        self._votes: dict[str, Vote] = {}
        self._requested: list[str] = []
        self._reconciling = False
        self._reconciled: Reconciled | None = None

    @classmethod
    def open(cls, proposal: Proposal) -> tuple[ProposalMachine, list[Output]]:
        """A machine for `proposal` and its first outputs (the first vote requests)."""
        machine = cls(proposal)
        outputs: list[Output] = []
        machine._advance(outputs)
        return machine, outputs

    @property
    def proposal(self) -> Proposal:
        return self._proposal

    @property
    def ballot(self) -> int:
        return self._ballot

    @property
    def electorate(self) -> tuple[str, ...]:
        return self._electorate

    @property
    def deadline(self) -> float:
        return self._deadline

    @property
    def excluded(self) -> tuple[str, ...]:
        return tuple(self._excluded)

    @property
    def decision(self) -> Decision | None:
        return self._decision

    @property
    def reconciling(self) -> bool:
        """Provisionally decided, still waiting for the rest of the electorate."""
        return self._reconciling

    @property
    def reconciled(self) -> Reconciled | None:
        return self._reconciled

    def step(self, event: Event) -> list[Output]:
        if self._decision is not None and self._reconciling:
            return self._reconcile(event)
        if self._decision is not None:
            # Decide once: a late vote learns the decision, never a new one.
            return [Decided(self._decision)] if isinstance(event, VoteReceived) else []
        outputs: list[Output] = []
        if isinstance(event, VoteReceived):
            self._on_vote(event.vote, outputs)
        elif isinstance(event, Reachable):
            self._reachable = event.voters
        elif isinstance(event, Tick):
            self._now = max(self._now, event.now)
            if self._now >= self._deadline:
                self._end_ballot("deadline", outputs)
                return outputs
        self._advance(outputs)
        return outputs

    def _reconcile(self, event: Event) -> list[Output]:
        """A provisional decision stands; the full electorate's votes may confirm or
        overturn it. Deadlines do not end this wait: the jurors vote when they can."""
        assert self._decision is not None
        outputs: list[Output] = []
        if not isinstance(event, VoteReceived):
            return outputs
        self._on_vote(event.vote, outputs)
        view = self._view(self._electorate)
        policy = self._proposal.policy
        winner = policy.winner(view)
        if winner is None and view.outstanding > 0 and not policy.hopeless(view):
            return outputs
        outcome = winner if winner is not None else NO_QUORUM
        weights = view.weights if policy.weighted else tuple(float(c) for c in view.counts)
        self._reconciling = False
        self._reconciled = Reconciled(
            decision=self._decision,
            outcome=outcome,
            confirmed=outcome == self._decision.outcome,
            tally=tuple(zip(self._options, weights, strict=True)),
            votes_counted=view.voted,
        )
        outputs.append(self._reconciled)
        return outputs

    def _unreachable(self) -> tuple[str, ...]:
        """Members not heard this ballot and, when a report says who is reachable, not in it."""
        heard = set(self._votes) | set(self._excluded)
        reachable = self._reachable
        return tuple(
            m
            for m in self._electorate
            if m not in heard and (reachable is None or m not in reachable)
        )

    # Votes

    def _on_vote(self, vote: Vote, outputs: list[Output]) -> None:
        reason = self._reject_reason(vote)
        if reason is not None:
            outputs.append(VoteIgnored(vote, reason))
            return
        previous = self._votes.get(vote.voter)
        if previous is None:
            self._votes[vote.voter] = vote
        elif previous.same_answer(vote):
            outputs.append(VoteIgnored(vote, "duplicate"))
        else:
            # Neither vote can be trusted, and keeping the first would let the
            # order of delivery pick which lie counts.
            del self._votes[vote.voter]
            self._excluded.append(vote.voter)
            outputs.append(
                EquivocationDetected(
                    self._proposal.proposal_id, self._ballot, vote.voter, (previous, vote)
                )
            )

    def _reject_reason(self, vote: Vote) -> IgnoreReason | None:
        if vote.proposal_id != self._proposal.proposal_id:
            return "unknown_proposal"
        if vote.ballot < self._ballot:
            return "stale_ballot"
        if vote.ballot > self._ballot:
            return "future_ballot"
        if vote.voter not in self._members:
            return "not_in_electorate"
        if vote.voter in self._excluded:
            return "equivocator"
        if vote.kind == "choice" and vote.choice not in self._candidates:
            return "unknown_candidate"
        return None

    # Tallies

    def _view(self, members: Iterable[str]) -> TallyView:
        counts = [0] * len(self._options)
        confidences: list[list[float]] = [[] for _ in self._options]
        for vote in self._votes.values():
            option = vote.option
            if option is not None:
                index = self._option_index[option]
                counts[index] += 1
                confidences[index].append(vote.confidence)
        excluded = set(self._excluded)
        size = 0
        outstanding = 0
        for member in members:
            size += 1
            if member not in self._votes and member not in excluded:
                outstanding += 1
        return TallyView(
            options=self._options,
            counts=tuple(counts),
            # fsum is exact, so the weight does not depend on the order of votes.
            weights=tuple(math.fsum(c) for c in confidences),
            electorate_size=size,
            voted=len(self._votes),
            outstanding=outstanding,
        )

    def _reachable_members(self) -> list[str] | None:
        """The AP electorate: members reported reachable or heard from this ballot.

        None when nobody is known to be unreachable (then AP changes nothing) or
        nobody is known to be reachable.
        """
        reachable = self._reachable if self._reachable is not None else frozenset()
        heard = set(self._votes) | set(self._excluded)
        members = [m for m in self._electorate if m in reachable or m in heard]
        # An empty electorate would make some quorums zero: a decision from no votes.
        return members if 0 < len(members) < len(self._electorate) else None

    # Progress

    def _advance(self, outputs: list[Output]) -> None:
        policy = self._proposal.policy
        view = self._view(self._electorate)
        winner = policy.winner(view)
        if winner is not None:
            self._decide(winner, view, provisional=False, outputs=outputs)
            return
        if self._proposal.mode == "ap" and self._reachable is not None:
            members = self._reachable_members()
            if members is not None:
                ap_view = self._view(members)
                # Before the deadline, only once everyone reachable has answered.
                ap_winner = policy.winner(ap_view) if ap_view.outstanding == 0 else None
                if ap_winner is not None:
                    self._decide(ap_winner, ap_view, provisional=True, outputs=outputs)
                    return
        if policy.hopeless(view):
            self._end_ballot("hopeless", outputs)
            return
        self._request_more(view, outputs)

    def _request_more(self, view: TallyView, outputs: list[Output]) -> None:
        excluded = set(self._excluded)
        in_flight = sum(1 for v in self._requested if v not in self._votes and v not in excluded)
        more = self._proposal.policy.wanted(view) - in_flight
        if more <= 0:
            return
        asked = set(self._requested)
        pool = [
            m
            for m in self._electorate
            if m not in asked and m not in self._votes and m not in excluded
        ]
        if self._reachable is not None:
            reachable = self._reachable
            pool.sort(key=lambda m: m not in reachable)  # stable: electorate order otherwise
        chosen = tuple(pool[:more])
        if chosen:
            self._requested.extend(chosen)
            outputs.append(
                RequestVotes(self._proposal.proposal_id, self._ballot, chosen, self._deadline)
            )

    def _end_ballot(self, reason: BallotEndReason, outputs: list[Output]) -> None:
        policy = self._proposal.policy
        # A hopeless ballot failed on disagreement, which waiting out a partition
        # would not fix; only a deadline lets AP settle for the reachable voters.
        if reason == "deadline" and self._proposal.mode == "ap":
            members = self._reachable_members()
            if members is not None:
                ap_view = self._view(members)
                ap_winner = policy.winner(ap_view)
                if ap_winner is not None:
                    self._decide(ap_winner, ap_view, provisional=True, outputs=outputs)
                    return
        if self._ballot >= self._proposal.last_ballot or (
            reason == "deadline" and self._quorum_out_of_reach()
        ):
            self._decide(
                NO_QUORUM, self._view(self._electorate), provisional=False, outputs=outputs
            )
            return
        self._ballot += 1
        self._deadline = max(self._deadline, self._now) + self._proposal.ballot_timeout
        self._electorate = self._proposal.electorate_for(self._ballot)
        self._members = frozenset(self._electorate)
        self._votes = {}
        self._requested = []
        outputs.append(
            NewBallot(
                self._proposal.proposal_id, self._ballot, self._electorate, self._deadline, reason
            )
        )
        self._advance(outputs)

    def _quorum_out_of_reach(self) -> bool:
        """cp, at a deadline: the supervisor's report says too few of the next ballot's
        electorate can vote for it to reach a quorum, so another ballot would only wait
        again (docs/cap.md). Without a report nothing is known, and the ballots go on."""
        if self._proposal.mode != "cp" or self._reachable is None:
            return False
        following = self._proposal.electorate_for(self._ballot + 1)
        able = self._reachable | set(self._votes)
        reachable = sum(1 for m in following if m in able)
        return reachable < self._proposal.policy.quorum(len(following))

    def _decide(
        self, outcome: str, view: TallyView, *, provisional: bool, outputs: list[Output]
    ) -> None:
        policy = self._proposal.policy
        weights = view.weights if policy.weighted else tuple(float(c) for c in view.counts)
        self._decision = Decision(
            decision_id=decision_id_for(self._proposal.proposal_id),
            proposal_id=self._proposal.proposal_id,
            task_id=self._proposal.task_id,
            ballot=self._ballot,
            outcome=outcome,
            tally=tuple(zip(self._options, weights, strict=True)),
            quorum=policy.quorum(view.electorate_size),
            votes_counted=view.voted,
            provisional=provisional,
            excluded=tuple(self._excluded),
            unreachable=self._unreachable() if provisional or outcome == NO_QUORUM else (),
        )
        outputs.append(Decided(self._decision))
        if provisional:
            self._reconciling = True
            # The missing jurors vote on this ballot once they can: ask any not asked yet.
            asked = set(self._requested)
            missing = tuple(m for m in self._electorate if m not in asked and m not in self._votes)
            if missing:
                self._requested.extend(missing)
                outputs.append(
                    RequestVotes(self._proposal.proposal_id, self._ballot, missing, self._deadline)
                )


def replay(proposal: Proposal, events: Iterable[Event]) -> Decision | None:
    """The decision `events` lead to, computed offline; None if still undecided."""
    machine, _ = ProposalMachine.open(proposal)
    for event in events:
        machine.step(event)
    return machine.decision
