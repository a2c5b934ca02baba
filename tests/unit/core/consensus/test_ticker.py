"""The deadline ticker the consensus service and synod.sim share: which ballots get a
marker at a given time, once per owner, carrying the reachable electorate."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from synod.core.consensus import wiremap
from synod.core.consensus.fold import PartitionFold
from synod.core.consensus.ticker import ReachabilityView, Ticker
from synod.wire import (
    BallotDeadline,
    Candidate,
    Envelope,
    Reachability,
    Sender,
    Vote,
    VoteRequested,
)

PLANNER = Sender(role="planner", instance="planner-1")
CONSENSUS = Sender(role="consensus", instance="consensus-1")
SUPERVISOR = Sender(role="supervisor", instance="supervisor-1")
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
S0 = T0.timestamp()
VOTERS = ["r1", "r2", "r3"]


def _open(task: str, deadline_s: float = 10.0, at: float = 0.0) -> Envelope[Any]:
    body = VoteRequested(
        proposal_id=f"{task}/answer",
        candidates=[Candidate(candidate_id="a")],
        electorate=VOTERS,
        policy="majority",
        deadline_s=deadline_s,
    )
    return Envelope.new(body, sender=PLANNER, task_id=task, created_at=T0 + timedelta(seconds=at))


def _vote(task: str, voter: str, at: float) -> Envelope[Any]:
    body = Vote(proposal_id=f"{task}/answer", ballot=1, voter=voter, kind="choice", choice="a")
    return Envelope.new(
        body,
        sender=Sender(role="reviewer", instance=voter),
        task_id=task,
        created_at=T0 + timedelta(seconds=at),
    )


def _report(reachable: list[str], at: float, role: str = "supervisor") -> Envelope[Any]:
    body = Reachability(observer="supervisor-1", reachable=reachable)
    return Envelope.new(
        body, sender=Sender(role=role, instance="x-1"), created_at=T0 + timedelta(seconds=at)
    )


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"id-{next(counter)}"


def test_a_ballot_gets_one_marker_once_its_deadline_passed_oldest_first() -> None:
    ticker = Ticker(PartitionFold(CONSENSUS))
    ticker.apply(_open("t2", deadline_s=8.0, at=1.0))  # deadline 9
    ticker.apply(_open("t1", deadline_s=5.0))  # deadline 5
    assert ticker.due(S0 + 4.9, CONSENSUS) == []
    [first] = ticker.due(S0 + 5.0, CONSENSUS, new_id=_ids())
    assert first.key == ("t1/answer", 1)
    body = first.envelope.body
    assert isinstance(body, BallotDeadline)
    assert (body.proposal_id, body.ballot, body.reachable) == ("t1/answer", 1, None)
    assert first.envelope.task_id == "t1"
    assert first.envelope.sender == CONSENSUS
    assert first.envelope.message_id == "id-0"
    # Written late, it is stamped now; never before the deadline it ends.
    assert first.envelope.created_at == T0 + timedelta(seconds=5)
    assert ticker.due(S0 + 6.0, CONSENSUS) == []  # marked: not again
    late = ticker.due(S0 + 20.0, CONSENSUS, new_id=_ids())
    assert [m.key for m in late] == [("t2/answer", 1)]
    assert late[0].envelope.created_at == T0 + timedelta(seconds=20)
    assert ticker.marked == {("t1/answer", 1), ("t2/answer", 1)}


def test_the_marker_once_folded_opens_the_next_ballot_which_gets_its_own() -> None:
    ticker = Ticker(PartitionFold(CONSENSUS))
    ticker.apply(_open("t1", deadline_s=5.0))
    [m1] = ticker.due(S0 + 5.0, CONSENSUS)
    # Until the fold reaches the marker the ballot stays open, but is marked.
    assert ticker.due(S0 + 7.0, CONSENSUS) == []
    ended = ticker.apply(m1.envelope)
    assert [nb.ballot for nb in ended.new_ballots] == [2]
    [m2] = ticker.due(S0 + 10.0, CONSENSUS)
    assert m2.key == ("t1/answer", 2)


def test_a_failed_marker_is_written_again_and_a_decision_forgets_the_marks() -> None:
    ticker = Ticker(PartitionFold(CONSENSUS))
    ticker.apply(_open("t1", deadline_s=5.0))
    [marker] = ticker.due(S0 + 6.0, CONSENSUS, new_id=_ids())
    ticker.failed(marker)
    [again] = ticker.due(S0 + 6.5, CONSENSUS, new_id=_ids())
    assert again.key == marker.key
    for voter in ("r1", "r2"):
        result = ticker.apply(_vote("t1", voter, at=1.0))
    assert result.decided is not None
    assert ticker.marked == set()
    assert ticker.due(S0 + 100.0, CONSENSUS) == []


def test_a_marker_names_the_electorate_the_freshest_supervisor_report_hears() -> None:
    view = ReachabilityView(fresh_s=5.0)
    assert not view.heard(_report(["r1"], at=0.0, role="planner"))  # not a supervisor's
    assert view.heard(_report(["r1", "r3", "planner-1"], at=3.0))
    assert view.heard(_report(["r2"], at=2.0))  # older: ignored
    assert view.voters(VOTERS, S0 + 8.0) == ["r1", "r3"]
    assert view.voters(VOTERS, S0 + 8.5) is None  # stale: says nothing about now
    ticker = Ticker(PartitionFold(CONSENSUS))
    ticker.apply(_open("t1", deadline_s=5.0))
    [marker] = ticker.due(S0 + 6.0, CONSENSUS, view)
    assert isinstance(marker.envelope.body, BallotDeadline)
    assert marker.envelope.body.reachable == ["r1", "r3"]


def test_two_tickers_fed_the_same_records_write_the_same_markers() -> None:
    records = [_open("t1", deadline_s=5.0), _open("t2", deadline_s=3.0, at=1.0)]
    written = []
    for _ in range(2):
        ticker = Ticker(PartitionFold(CONSENSUS))
        for r in records:
            ticker.apply(r)
        markers = ticker.due(S0 + 30.0, CONSENSUS, ReachabilityView(), _ids())
        written.append([m.envelope for m in markers])
    assert written[0] == written[1]
    assert [wiremap.marker_target(e.body) for e in written[0]] == [
        ("t2/answer", 1),
        ("t1/answer", 1),
    ]
