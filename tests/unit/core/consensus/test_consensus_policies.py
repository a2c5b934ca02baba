"""Deterministic unit tests: each policy's quorum and stop rule, ballots, AP, the router."""

from __future__ import annotations

import math
from typing import Any

import pytest

from synod.core.consensus import (
    NO_QUORUM,
    REJECTED,
    Adaptive,
    Candidate,
    ConfidenceWeighted,
    Consensus,
    Decided,
    Decision,
    EquivocationDetected,
    InvalidProposal,
    Majority,
    NewBallot,
    Open,
    Output,
    Policy,
    Proposal,
    ProposalMachine,
    Reachable,
    RequestVotes,
    Supermajority,
    Tick,
    Unanimity,
    Vote,
    VoteIgnored,
    VoteReceived,
    replay,
)
from synod.core.consensus.posterior import leader_confidence, regularized_beta


def voters(n: int) -> tuple[str, ...]:
    return tuple(f"v{i}" for i in range(n))


def proposal(policy: Policy, n: int = 5, **kw: Any) -> Proposal:
    fields: dict[str, Any] = {
        "proposal_id": "p",
        "task_id": "t",
        "ballot": 0,
        "candidates": (Candidate("A"), Candidate("B"), Candidate("C")),
        "electorate": voters(n),
        "policy": policy,
        "deadline": 100.0,
    }
    fields.update(kw)
    return Proposal(**fields)


def choice(voter: str, option: str, ballot: int = 0, confidence: float = 1.0) -> VoteReceived:
    return VoteReceived(Vote("p", ballot, voter, "choice", option, confidence))


def reject(voter: str, ballot: int = 0) -> VoteReceived:
    return VoteReceived(Vote("p", ballot, voter, "reject"))


def abstain(voter: str, ballot: int = 0) -> VoteReceived:
    return VoteReceived(Vote("p", ballot, voter, "abstain"))


def feed(machine: ProposalMachine, *events: object) -> list[Output]:
    outputs: list[Output] = []
    for event in events:
        outputs.extend(machine.step(event))  # type: ignore[arg-type]
    return outputs


def decided(outputs: list[Output]) -> list[Decision]:
    return [o.decision for o in outputs if isinstance(o, Decided)]


# Majority


def test_majority_requests_everyone_and_decides_at_a_majority_of_the_electorate() -> None:
    machine, first = ProposalMachine.open(proposal(Majority()))
    assert first == [RequestVotes("p", 0, voters(5), 100.0)]
    assert decided(feed(machine, choice("v0", "A"), choice("v1", "A"), choice("v2", "B"))) == []
    out = feed(machine, choice("v3", "A"))
    (d,) = decided(out)
    assert (d.outcome, d.quorum, d.votes_counted, d.provisional) == ("A", 3, 4, False)
    assert d.tally_dict() == {"A": 3.0, "B": 1.0, "C": 0.0, REJECTED: 0.0}
    assert d.decision_id == "p/decision"


def test_majority_counts_abstentions_as_participation_only() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority(), max_ballots=1))
    out = feed(machine, choice("v0", "A"), choice("v1", "A"), abstain("v2"), abstain("v3"))
    assert decided(out) == []  # A can still reach 3 with v4
    (d,) = decided(feed(machine, abstain("v4")))
    assert d.outcome == NO_QUORUM
    assert d.votes_counted == 5


def test_majority_of_rejects_rejects_every_candidate() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority()))
    (d,) = decided(feed(machine, reject("v0"), choice("v1", "A"), reject("v2"), reject("v3")))
    assert d.outcome == REJECTED


def test_hopeless_split_starts_the_next_ballot_at_once_then_gives_no_quorum() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority(), n=4, max_ballots=2))
    out = feed(machine, choice("v0", "A"), choice("v1", "A"), choice("v2", "B"))
    assert out == []
    out = feed(machine, choice("v3", "B"))
    assert out == [
        NewBallot("p", 1, voters(4), 160.0, "hopeless"),
        RequestVotes("p", 1, voters(4), 160.0),
    ]
    out = feed(machine, *(choice(v, o, ballot=1) for v, o in zip(voters(4), "ABAB", strict=True)))
    (d,) = decided(out)
    assert (d.outcome, d.ballot) == (NO_QUORUM, 1)


def test_votes_from_outside_the_electorate_or_for_unknown_candidates_are_reported() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority()))
    outsider = Vote("p", 0, "mallory", "choice", "A")
    unknown = Vote("p", 0, "v0", "choice", "Z")
    other = Vote("q", 0, "v0", "choice", "A")
    out = feed(machine, VoteReceived(outsider), VoteReceived(unknown), VoteReceived(other))
    assert out == [
        VoteIgnored(outsider, "not_in_electorate"),
        VoteIgnored(unknown, "unknown_candidate"),
        VoteIgnored(other, "unknown_proposal"),
    ]


# Supermajority


def test_supermajority_needs_2f_plus_1_of_3f_plus_1() -> None:
    assert [Supermajority(f).quorum(3 * f + 1) for f in range(5)] == [1, 3, 5, 7, 9]
    assert Supermajority(1).quorum(7) == 5  # larger electorates keep quorum intersection > f
    machine, _ = ProposalMachine.open(proposal(Supermajority(f=1), n=4))
    assert decided(feed(machine, choice("v0", "A"), choice("v1", "A"), choice("v2", "B"))) == []
    (d,) = decided(feed(machine, choice("v3", "A")))
    assert (d.outcome, d.quorum) == ("A", 3)


def test_supermajority_rejects_an_electorate_smaller_than_3f_plus_1() -> None:
    with pytest.raises(InvalidProposal, match="at least 7"):
        proposal(Supermajority(f=2), n=6)
    with pytest.raises(ValueError, match="f >= 0"):
        Supermajority(f=-1)


# Unanimity


def test_unanimity_decides_only_when_every_member_agrees() -> None:
    machine, _ = ProposalMachine.open(proposal(Unanimity(), n=3))
    (d,) = decided(feed(machine, choice("v0", "B"), choice("v1", "B"), choice("v2", "B")))
    assert (d.outcome, d.quorum) == ("B", 3)


@pytest.mark.parametrize("dissent", [choice("v1", "A"), abstain("v1"), reject("v1")])
def test_one_dissent_makes_unanimity_hopeless(dissent: VoteReceived) -> None:
    machine, _ = ProposalMachine.open(proposal(Unanimity(), n=3, max_ballots=1))
    (d,) = decided(feed(machine, choice("v0", "B"), dissent))
    assert d.outcome == NO_QUORUM


# ConfidenceWeighted


def test_confidence_weighted_lets_sure_voters_outweigh_unsure_ones() -> None:
    machine, _ = ProposalMachine.open(proposal(ConfidenceWeighted(0.5), n=4, max_ballots=1))
    unsure = [choice(v, "A", confidence=0.3) for v in voters(3)]
    # A has 3 of 4 votes but weighs 0.9; even a sure 4th vote cannot lift it past 2.0.
    (d,) = decided(feed(machine, *unsure))
    assert d.outcome == NO_QUORUM
    assert d.tally_dict()["A"] == pytest.approx(0.9)
    machine, _ = ProposalMachine.open(proposal(ConfidenceWeighted(0.5), n=4))
    out = feed(
        machine,
        choice("v0", "B", confidence=1.0),
        choice("v1", "B", confidence=0.9),
        choice("v2", "B", confidence=0.2),
    )
    (d,) = decided(out)
    assert d.outcome == "B"
    assert d.tally_dict()["B"] == pytest.approx(2.1)
    assert d.quorum == 3


def test_confidence_weighted_threshold_must_keep_two_winners_impossible() -> None:
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        ConfidenceWeighted(0.4)


# Adaptive


def test_adaptive_starts_with_the_fewest_votes_that_could_decide() -> None:
    # Beta(1+4, 1) puts 1 - 2**-5 = 0.969 >= 0.95 on the leader: 4 votes could do.
    _, first = ProposalMachine.open(proposal(Adaptive(), n=31))
    assert first == [RequestVotes("p", 0, voters(4), 100.0)]
    # With 3 voters, 2 agreeing votes already cannot be overtaken.
    _, first = ProposalMachine.open(proposal(Adaptive(), n=3))
    assert first == [RequestVotes("p", 0, voters(2), 100.0)]


def test_adaptive_stops_on_the_posterior_before_the_leader_is_safe() -> None:
    machine, _ = ProposalMachine.open(proposal(Adaptive(), n=31))
    (d,) = decided(feed(machine, *(choice(v, "A") for v in voters(4))))
    assert (d.outcome, d.votes_counted, d.quorum) == ("A", 4, 2)


def test_adaptive_asks_more_only_when_needed_and_prefers_reachable_voters() -> None:
    machine, _ = ProposalMachine.open(proposal(Adaptive(), n=31))
    out = feed(machine, Reachable(frozenset(voters(31)) - {"v4", "v5"}))
    assert out == []  # reachability alone changes no need
    out = feed(machine, choice("v0", "A"), choice("v1", "B"))
    # A or B now needs 6 votes to 1 (Beta(7, 2) = 0.965); 2 are in flight.
    assert out == [RequestVotes("p", 0, ("v6", "v7", "v8"), 100.0)]


def test_adaptive_wins_when_the_leader_cannot_be_overtaken() -> None:
    machine, _ = ProposalMachine.open(proposal(Adaptive(threshold=1.0), n=7))
    out = feed(machine, *(choice(v, o) for v, o in zip(voters(5), "AAABC", strict=True)))
    assert decided(out) == []  # 3 vs 1 with 2 outstanding: B could still tie
    (d,) = decided(feed(machine, reject("v5")))
    assert (d.outcome, d.votes_counted, d.quorum) == ("A", 6, 2)  # 3 of 7: no majority needed


def test_adaptive_gives_up_when_no_majority_is_possible() -> None:
    machine, _ = ProposalMachine.open(proposal(Adaptive(), n=5, max_ballots=1))
    out = feed(machine, choice("v0", "A"), choice("v1", "B"), choice("v2", "C"))
    out += feed(machine, reject("v3"))
    (d,) = decided(out)
    assert (d.outcome, d.votes_counted) == (NO_QUORUM, 4)


def test_adaptive_plurality_winner_at_the_end_of_the_budget() -> None:
    machine, _ = ProposalMachine.open(proposal(Adaptive(), n=5))
    out = feed(machine, choice("v0", "A"), choice("v1", "A"), choice("v2", "B"), choice("v3", "C"))
    assert decided(out) == []
    (d,) = decided(feed(machine, reject("v4")))
    assert (d.outcome, d.votes_counted) == ("A", 5)


def test_posterior_matches_closed_forms() -> None:
    for leader in range(8):
        assert leader_confidence(leader, 0, 1.0) == pytest.approx(1 - 0.5 ** (leader + 1))
    # Integer Beta CDF = binomial tail: I_x(a, b) = P(Binomial(a+b-1, x) >= a).
    for a, b in [(3, 2), (7, 2), (9, 3), (5, 5)]:
        tail = sum(math.comb(a + b - 1, k) for k in range(a, a + b)) / 2 ** (a + b - 1)
        assert regularized_beta(0.5, a, b) == pytest.approx(tail, abs=1e-12)
    assert leader_confidence(3, 3, 0.5) == pytest.approx(0.5)
    assert leader_confidence(4.5, 1.5, 0.5) > leader_confidence(4.5, 2.5, 0.5)


# Ballots, deadlines, equivocation


def test_deadline_opens_a_widened_ballot_and_old_votes_go_stale() -> None:
    p = proposal(Majority(), n=3, widen=("w0", "w1"), ballot_timeout=10.0)
    machine, _ = ProposalMachine.open(p)
    assert feed(machine, choice("v0", "A"), Tick(99.0)) == []
    out = feed(machine, Tick(130.0))
    electorate = (*voters(3), "w0", "w1")
    assert out == [
        NewBallot("p", 1, electorate, 140.0, "deadline"),
        RequestVotes("p", 1, electorate, 140.0),
    ]
    late = Vote("p", 0, "v1", "choice", "A")
    early = Vote("p", 2, "v1", "choice", "A")
    assert feed(machine, VoteReceived(late), VoteReceived(early)) == [
        VoteIgnored(late, "stale_ballot"),
        VoteIgnored(early, "future_ballot"),
    ]
    out = feed(machine, *(choice(v, "A", ballot=1) for v in ("w0", "v1", "w1")))
    (d,) = decided(out)
    assert (d.outcome, d.ballot, d.quorum) == ("A", 1, 3)


def test_last_deadline_without_quorum_decides_no_quorum() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority(), max_ballots=2, ballot_timeout=5.0))
    feed(machine, Tick(100.0))
    assert machine.ballot == 1
    assert machine.deadline == 105.0
    (d,) = decided(feed(machine, choice("v0", "A", ballot=1), Tick(105.0)))
    assert (d.outcome, d.ballot, d.provisional) == (NO_QUORUM, 1, False)


def test_equivocator_is_reported_excluded_and_cannot_lower_the_quorum() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority(), n=5, max_ballots=2))
    first, second = Vote("p", 0, "v0", "choice", "A"), Vote("p", 0, "v0", "choice", "B")
    out = feed(machine, VoteReceived(first), choice("v1", "A"), VoteReceived(second))
    assert out == [EquivocationDetected("p", 0, "v0", (first, second))]
    again = Vote("p", 0, "v0", "choice", "A")
    assert feed(machine, VoteReceived(again)) == [VoteIgnored(again, "equivocator")]
    assert decided(feed(machine, choice("v2", "A"))) == []  # v0's A no longer counts
    (d,) = decided(feed(machine, choice("v3", "A")))
    assert (d.outcome, d.quorum, d.excluded) == ("A", 3, ("v0",))


def test_excluded_voter_is_not_asked_again_in_later_ballots() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority(), n=3))
    feed(machine, choice("v0", "A"), choice("v0", "B"))
    out = feed(machine, Tick(100.0))
    assert RequestVotes("p", 1, ("v1", "v2"), 160.0) in out


def test_redelivered_vote_counts_once_even_with_another_rationale() -> None:
    machine, _ = ProposalMachine.open(proposal(Majority()))
    vote = Vote("p", 0, "v0", "choice", "A", 0.9, "first try")
    redo = Vote("p", 0, "v0", "choice", "A", 0.4, "second try")
    out = feed(machine, VoteReceived(vote), VoteReceived(vote), VoteReceived(redo))
    assert out == [VoteIgnored(vote, "duplicate"), VoteIgnored(redo, "duplicate")]


# AP mode


def test_ap_decides_provisionally_with_the_reachable_electorate_cp_waits() -> None:
    events = [
        Reachable(frozenset({"v0", "v1", "v2"})),
        choice("v0", "A"),
        choice("v1", "A"),
    ]
    cp, _ = ProposalMachine.open(proposal(Majority(), n=5, mode="cp"))
    ap, _ = ProposalMachine.open(proposal(Majority(), n=5, mode="ap"))
    assert decided(feed(cp, *events, choice("v2", "B"))) == []
    (d,) = decided(feed(ap, *events, choice("v2", "B")))
    assert (d.outcome, d.provisional, d.quorum) == ("A", True, 2)
    out = feed(cp, Tick(100.0))
    assert isinstance(out[0], NewBallot)


def test_ap_at_the_deadline_uses_the_voters_heard_from() -> None:
    ap, _ = ProposalMachine.open(proposal(Unanimity(), n=4, mode="ap"))
    (d,) = decided(feed(ap, choice("v0", "C"), choice("v1", "C"), Tick(100.0)))
    assert (d.outcome, d.provisional, d.quorum, d.votes_counted) == ("C", True, 2, 2)


def test_ap_never_decides_provisionally_when_everyone_is_reachable() -> None:
    ap, _ = ProposalMachine.open(proposal(Majority(), n=3, mode="ap", max_ballots=1))
    (d,) = decided(feed(ap, Reachable(frozenset(voters(3))), choice("v0", "A"), Tick(100.0)))
    assert (d.outcome, d.provisional) == (NO_QUORUM, False)


# Router and replay


def test_consensus_decides_once_and_answers_late_events_with_the_same_decision() -> None:
    consensus = Consensus()
    p = proposal(Majority(), n=3)
    assert consensus.step(Open(p)) == [RequestVotes("p", 0, voters(3), 100.0)]
    assert consensus.step(Open(p)) == []
    consensus.step(choice("v0", "A"))
    (d,) = decided(consensus.step(choice("v1", "A")))
    assert consensus.step(choice("v2", "B")) == [Decided(d)]
    assert consensus.step(Open(p)) == [Decided(d)]
    assert consensus.step(Tick(1e9)) == []
    assert consensus.decision("p") == d
    assert consensus.open_proposals == ()


def test_consensus_ignores_votes_for_unknown_proposals_and_ticks_every_open_one() -> None:
    consensus = Consensus()
    vote = Vote("nope", 0, "v0", "choice", "A")
    assert consensus.step(VoteReceived(vote)) == [VoteIgnored(vote, "unknown_proposal")]
    consensus.step(Open(proposal(Majority(), proposal_id="a", max_ballots=1)))
    consensus.step(Open(proposal(Majority(), proposal_id="b", max_ballots=1, deadline=200.0)))
    out = consensus.step(Tick(150.0))
    assert [d.proposal_id for d in decided(out)] == ["a"]
    assert consensus.open_proposals == ("b",)


def test_replay_and_from_log_rebuild_the_same_decision() -> None:
    p = proposal(Majority(), n=3)
    events = [choice("v0", "B"), choice("v1", "A"), choice("v2", "B")]
    expected = replay(p, events)
    assert expected is not None
    assert expected.outcome == "B"
    rebuilt = Consensus.from_log([Open(p), *events])
    assert rebuilt.decision("p") == expected


# Validation


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"candidates": ()}, "at least one candidate"),
        ({"candidates": (Candidate("A"), Candidate("A"))}, "duplicates"),
        ({"candidates": (Candidate(NO_QUORUM),)}, "reserved"),
        ({"electorate": ()}, "non-empty"),
        ({"electorate": ("v0", "v0")}, "duplicates"),
        ({"widen": ("v0",)}, "outside"),
        ({"max_ballots": 0}, "max_ballots"),
        ({"deadline": math.inf}, "finite"),
        ({"mode": "xp"}, "mode"),
    ],
)
def test_invalid_proposals_are_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidProposal, match=message):
        proposal(Majority(), **kw)


@pytest.mark.parametrize(
    ("kind", "option", "confidence"),
    [("choice", None, 1.0), ("reject", "A", 1.0), ("abstain", None, 1.5), ("maybe", None, 1.0)],
)
def test_malformed_votes_are_refused(kind: str, option: str | None, confidence: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Vote("p", 0, "v0", kind, option, confidence)  # type: ignore[arg-type]


def test_ap_never_decides_from_nobody() -> None:
    # Found by hypothesis: an empty reachable electorate made Unanimity's quorum 0.
    ap, _ = ProposalMachine.open(proposal(Unanimity(), n=1, mode="ap", max_ballots=1))
    (d,) = decided(feed(ap, Tick(100.0)))
    assert (d.outcome, d.provisional) == (NO_QUORUM, False)
