"""cp waits then names who it could not reach; ap decides provisionally, then reconciles."""

from __future__ import annotations

from synod.core.consensus import (
    NO_QUORUM,
    Candidate,
    Decided,
    Majority,
    Proposal,
    ProposalMachine,
    Reachable,
    Reconciled,
    RequestVotes,
    Tick,
    Vote,
    VoteReceived,
)


def proposal(mode: str, max_ballots: int = 1) -> Proposal:
    return Proposal(
        proposal_id="p",
        task_id="t",
        ballot=1,
        candidates=(Candidate("A"),),
        electorate=("r0", "r1", "r2"),
        policy=Majority(),
        deadline=10.0,
        mode=mode,  # type: ignore[arg-type]
        max_ballots=max_ballots,
        ballot_timeout=10.0,
    )


def vote(voter: str, choice: str | None = "A") -> VoteReceived:
    kind = "choice" if choice else "reject"
    return VoteReceived(Vote("p", 1, voter, kind, choice))  # type: ignore[arg-type]


def partitioned(mode: str, **kw: int) -> ProposalMachine:
    machine, _ = ProposalMachine.open(proposal(mode, **kw))
    machine.step(vote("r0"))
    # In the service this report arrives on the deadline marker, just before its Tick.
    machine.step(Reachable(frozenset({"r0"})))
    machine.step(Tick(10.0))
    return machine


def test_cp_gives_up_at_the_deadline_that_shows_the_quorum_out_of_reach() -> None:
    # Only r0 of 3 is reachable and a majority needs 2: a second ballot would only wait.
    machine = partitioned("cp", max_ballots=3)
    decision = machine.decision
    assert decision is not None
    assert (decision.outcome, decision.ballot, decision.provisional) == (NO_QUORUM, 1, False)
    assert decision.unreachable == ("r1", "r2")


def test_cp_tries_another_ballot_while_a_quorum_is_reachable() -> None:
    machine, _ = ProposalMachine.open(proposal("cp", max_ballots=2))
    machine.step(vote("r0"))
    machine.step(Reachable(frozenset({"r0", "r1"})))  # r1 reachable, only slow
    machine.step(Tick(10.0))
    assert machine.decision is None  # ballot 2 is open
    machine.step(VoteReceived(Vote("p", 2, "r0", "choice", "A")))
    machine.step(Reachable(frozenset({"r0"})))
    machine.step(Tick(20.0))
    decision = machine.decision
    assert decision is not None
    assert (decision.outcome, decision.ballot) == (NO_QUORUM, 2)
    assert decision.unreachable == ("r1", "r2")


def test_cp_without_a_reachability_report_waits_out_every_ballot() -> None:
    machine, _ = ProposalMachine.open(proposal("cp", max_ballots=2))
    machine.step(vote("r0"))
    machine.step(Tick(10.0))
    assert machine.decision is None  # nobody says the others are cut off: ask again
    machine.step(Tick(20.0))
    decision = machine.decision
    assert decision is not None
    assert (decision.outcome, decision.ballot) == (NO_QUORUM, 2)


def test_ap_decides_provisionally_with_the_reachable_voters_and_asks_the_rest() -> None:
    machine, _ = ProposalMachine.open(proposal("ap"))
    machine.step(vote("r0"))
    outputs = machine.step(Reachable(frozenset({"r0"})))
    decided = [o for o in outputs if isinstance(o, Decided)]
    assert len(decided) == 1
    decision = decided[0].decision
    assert (decision.outcome, decision.provisional) == ("A", True)
    assert decision.unreachable == ("r1", "r2")
    assert machine.reconciling
    # Every member of the electorate was asked in the ballot (majority asks all).
    asked = {v for o in outputs if isinstance(o, RequestVotes) for v in o.voters}
    assert asked <= {"r1", "r2"}


def test_the_healed_jurors_confirm_a_provisional_decision() -> None:
    machine = partitioned("ap")
    out = machine.step(vote("r1"))
    [reconciled] = [o for o in out if isinstance(o, Reconciled)]
    assert reconciled.confirmed
    assert reconciled.outcome == "A"
    assert not machine.reconciling
    assert machine.step(vote("r2")) == [Decided(machine.decision)]  # type: ignore[arg-type]


def test_the_healed_jurors_overturn_a_provisional_decision() -> None:
    machine = partitioned("ap")
    assert machine.step(vote("r1", None)) == []  # one reject: 1-1, r2 still out
    out = machine.step(vote("r2", None))
    [reconciled] = [o for o in out if isinstance(o, Reconciled)]
    assert not reconciled.confirmed
    assert reconciled.outcome == "rejected"
    assert reconciled.decision.outcome == "A"


def test_ap_without_a_reachability_report_counts_who_was_heard_at_the_deadline() -> None:
    machine, _ = ProposalMachine.open(proposal("ap"))
    machine.step(vote("r0"))
    assert machine.decision is None  # before the deadline nobody is known unreachable
    machine.step(Tick(10.0))
    assert machine.decision is not None
    assert (machine.decision.outcome, machine.decision.provisional) == ("A", True)
    assert machine.decision.unreachable == ("r1", "r2")
