"""The consensus service's fold of a synod.votes partition: outputs are a function
of the records, so a refold from any cut point republishes exactly what it should."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from synod.core.consensus import Decision, Event, Tick, VoteReceived, replay, wiremap
from synod.core.consensus.fold import PartitionFold, decision_message_id
from synod.wire import (
    BallotDeadline,
    Candidate,
    Codec,
    Envelope,
    Heartbeat,
    Sender,
    Vote,
    VoteRequested,
)
from synod.wire import Decision as WireDecision

PLANNER = Sender(role="planner", instance="planner-1")
CONSENSUS = Sender(role="consensus", instance="consensus-1")
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
VOTERS = ["r1", "r2", "r3", "r4"]


def _open(
    task: str, policy: str = "majority", deadline_s: float = 10.0, **kw: Any
) -> Envelope[Any]:
    body = VoteRequested(
        proposal_id=f"{task}/answer",
        candidates=[Candidate(candidate_id="a"), Candidate(candidate_id="b")],
        electorate=kw.pop("electorate", VOTERS),
        policy=policy,  # type: ignore[arg-type]
        deadline_s=deadline_s,
        **kw,
    )
    return Envelope.new(body, sender=PLANNER, task_id=task, created_at=T0)


def _vote(
    task: str, voter: str, choice: str | None, ballot: int = 1, at: float = 1.0, **kw: Any
) -> Envelope[Any]:
    kind = kw.pop("kind", "choice" if choice is not None else "abstain")
    body = Vote(
        proposal_id=f"{task}/answer", ballot=ballot, voter=voter, kind=kind, choice=choice, **kw
    )
    return Envelope.new(
        body,
        sender=Sender(role="reviewer", instance=voter),
        task_id=task,
        created_at=T0 + timedelta(seconds=at),
    )


def _marker(task: str, ballot: int, at: float) -> Envelope[Any]:
    return Envelope.new(
        wiremap.deadline_marker(f"{task}/answer", ballot),
        sender=CONSENSUS,
        task_id=task,
        created_at=T0 + timedelta(seconds=at),
    )


def _fold_all(records: list[Envelope[Any]]) -> tuple[PartitionFold, list[list[Any]]]:
    fold = PartitionFold(CONSENSUS)
    return fold, [fold.apply(r).publish for r in records]


def test_open_asks_the_electorate_and_votes_decide_once() -> None:
    fold = PartitionFold(CONSENSUS)
    opened = fold.apply(_open("t1"))
    [ask] = opened.publish
    assert ask.to == "votes"
    assert ask.envelope.sender.role == "consensus"
    assert ask.envelope.body.electorate == VOTERS
    assert ask.envelope.body.ballot == 1
    assert ask.envelope.body.deadline_s == 10.0
    assert fold.apply(_vote("t1", "r1", "a")).publish == []
    assert fold.apply(_vote("t1", "r2", "b")).publish == []
    assert fold.apply(_vote("t1", "r3", "a")).publish == []
    deciding = _vote("t1", "r4", "a", at=2.5)
    result = fold.apply(deciding)
    [out] = result.publish
    assert out.to == "task-events"
    body = out.envelope.body
    assert isinstance(body, WireDecision)
    assert (body.decision_id, body.outcome, body.quorum, body.votes_counted) == (
        "t1/answer/decision",
        "a",
        3,
        4,
    )
    assert body.tally == {"a": 3.0, "b": 1.0, "rejected": 0.0}
    # Derived from the deciding record, so a refold builds the same message.
    assert out.envelope.message_id == decision_message_id("t1/answer/decision")
    assert out.envelope.created_at == deciding.created_at
    assert out.envelope.causes == [deciding.message_id]
    assert out.envelope.task_id == "t1"
    # Decided: late votes and a re-delivered opening publish nothing.
    assert fold.apply(_vote("t1", "r4", "b", at=3.0)).publish == []
    assert fold.apply(_open("t1")).publish == []
    assert fold.open_proposals == ()


def test_a_marker_ends_its_ballot_and_only_its_ballot() -> None:
    fold = PartitionFold(CONSENSUS)
    fold.apply(_open("t1", policy="unanimity", deadline_s=5.0))
    fold.apply(_vote("t1", "r1", "a"))
    assert fold.apply(_marker("t1", 2, at=6.0)).publish == []  # not the current ballot
    ended = fold.apply(_marker("t1", 1, at=6.0))
    [ask] = ended.publish
    assert (ask.envelope.body.ballot, ask.envelope.body.electorate) == (2, VOTERS)
    assert ask.envelope.body.deadline_s == 5.0
    assert [nb.reason for nb in ended.new_ballots] == ["deadline"]
    # A second marker for the ballot that ended (another instance's) is stale.
    assert fold.apply(_marker("t1", 1, at=6.5)).publish == []
    machine = fold.machine("t1/answer")
    assert machine is not None
    assert (machine.ballot, machine.deadline) == (2, T0.timestamp() + 11.0)
    fold.apply(_marker("t1", 2, at=11.0))
    last = fold.apply(_marker("t1", 3, at=16.0))
    [out] = last.publish
    assert out.envelope.body.outcome == "no_quorum"
    assert out.envelope.body.ballot == 3


def test_the_first_record_with_a_message_id_wins() -> None:
    fold = PartitionFold(CONSENSUS)
    fold.apply(_open("t1"))
    first = _vote("t1", "r1", "a")
    # A juror re-run after a crash may answer differently under the same id:
    # that is a duplicate message, not an equivocation.
    rerun = first.model_copy(update={"body": first.body.model_copy(update={"choice": "b"})})
    fold.apply(first)
    assert fold.apply(rerun).equivocations == []
    fold.apply(_vote("t1", "r2", "a"))
    result = fold.apply(_vote("t1", "r3", "b"))
    assert result.decided is None or result.decided.outcome == "a"
    assert fold.apply(_vote("t1", "r4", "a")).decided is not None


def test_equivocators_are_reported_in_the_decision() -> None:
    fold = PartitionFold(CONSENSUS)
    fold.apply(_open("t1", policy="supermajority"))
    fold.apply(_vote("t1", "r4", "b"))
    caught = fold.apply(_vote("t1", "r4", "a"))
    assert [e.voter for e in caught.equivocations] == ["r4"]
    fold.apply(_vote("t1", "r1", "a"))
    fold.apply(_vote("t1", "r2", "a"))
    decided = fold.apply(_vote("t1", "r3", "a")).decided
    assert decided is not None
    assert decided.outcome == "a"
    assert decided.excluded == ("r4",)


def test_a_request_no_ballot_could_decide_is_reported_once() -> None:
    fold = PartitionFold(CONSENSUS)
    bad = _open("t1", electorate=["r1", "r1"])
    assert fold.apply(bad).invalid is not None
    assert fold.apply(bad).invalid is None
    assert fold.apply(_vote("t1", "r1", "a")).publish == []


def test_records_that_are_not_inputs_change_nothing() -> None:
    fold = PartitionFold(CONSENSUS)
    [ask] = fold.apply(_open("t1")).publish
    ours = ask.envelope  # our own round request, read back from the log
    client = _open("t2").model_copy(update={"sender": Sender(role="client", instance="x")})
    beat = Envelope.new(
        Heartbeat(instance="reviewer-1", role="reviewer", seq=1, in_flight=["t1/answer"]),
        sender=Sender(role="reviewer", instance="reviewer-1"),
        task_id="t1",
    )
    for record in (ours, client, beat):
        result = fold.apply(record)
        assert result.publish == []
        assert result.new_ballots == []
    assert fold.open_proposals == ("t1/answer",)


# ---------------------------------------------------------------- random logs


def _random_log(rng: random.Random, proposals: int) -> list[Envelope[Any]]:
    """Interleaved proposals with late, duplicate, re-run, equivocating and junk votes
    and deadline markers (some stale, some early)."""
    streams: list[list[Envelope[Any]]] = []
    policies = ["majority", "supermajority", "unanimity", "confidence", "adaptive"]
    for i in range(proposals):
        task = f"t{i}"
        deadline_s = rng.choice([2.0, 5.0])
        stream = [_open(task, policy=rng.choice(policies), deadline_s=deadline_s)]
        # Jurors answer the ballot the service is in (found by folding as we go),
        # with some stale, early and junk records thrown in.
        tracker = PartitionFold(CONSENSUS)
        tracker.apply(stream[0])
        clock = 0.0
        for _ in range(rng.randint(2, 24)):
            machine = tracker.machine(f"{task}/answer")
            if machine is None:
                break  # decided
            ballot = machine.ballot
            clock += rng.random() * deadline_s * 0.4
            roll = rng.random()
            if roll < 0.12:
                # Mostly the current ballot's marker; sometimes a stale or early one.
                target = ballot if rng.random() < 0.8 else rng.randint(1, 3)
                stream.append(_marker(task, target, at=clock + rng.random()))
            elif roll < 0.19 and len(stream) > 1:
                stream.append(rng.choice(stream[1:]))  # a re-delivery
            elif roll < 0.24 and len(stream) > 1:
                earlier = rng.choice(stream[1:])
                if isinstance(earlier.body, Vote) and earlier.body.kind == "choice":
                    other = "b" if earlier.body.choice == "a" else "a"
                    stream.append(
                        earlier.model_copy(
                            update={"body": earlier.body.model_copy(update={"choice": other})}
                        )
                    )
            else:
                kind = rng.choice(["choice"] * 8 + ["reject", "abstain"])
                choice = rng.choice(["a"] * 6 + ["b"] * 2 + ["zz"]) if kind == "choice" else None
                stream.append(
                    _vote(
                        task,
                        rng.choice([*VOTERS, *VOTERS, *VOTERS, "outsider"]),
                        choice,
                        ballot=ballot if rng.random() < 0.85 else rng.randint(1, 3),
                        at=clock,
                        kind=kind,
                        confidence=round(rng.random(), 3),
                    )
                )
            tracker.apply(stream[-1])
        # Late records after the decision.
        stream.extend(rng.choice(stream[1:]) for _ in range(rng.randint(0, 2)) if len(stream) > 1)
        streams.append(stream)
    log: list[Envelope[Any]] = []
    cursors = [0] * proposals
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        i = rng.choice([i for i, s in enumerate(streams) if cursors[i] < len(s)])
        log.append(streams[i][cursors[i]])
        cursors[i] += 1
    return log


def _offline(log: list[Envelope[Any]]) -> dict[str, Decision | None]:
    """An independent reading of the log: the planner's first request opens, the
    first copy of a message id counts, a marker is a Tick for its ballot."""
    from synod.core.consensus import ProposalMachine

    results: dict[str, Decision | None] = {}
    machines: dict[str, tuple[ProposalMachine, set[str], list[Event]]] = {}
    for env in log:
        body = env.body
        if isinstance(body, VoteRequested) and env.sender.role == "planner":
            if body.proposal_id in machines:
                continue
            proposal = wiremap.proposal_from_wire(
                body, task_id=env.task_id or "", opened_at=env.created_at
            )
            machines[body.proposal_id] = (ProposalMachine.open(proposal)[0], set(), [])
            continue
        if isinstance(body, Vote):
            pid = body.proposal_id
            event: Event | None = VoteReceived(wiremap.vote_from_wire(body))
        elif isinstance(body, BallotDeadline) and env.sender.role == "consensus":
            target = wiremap.marker_target(body)
            pid = target[0]
            entry = machines.get(pid)
            current = entry is not None and entry[0].ballot == target[1]
            event = Tick(wiremap.epoch_seconds(env.created_at)) if current else None
        else:
            continue
        if pid not in machines or env.message_id in machines[pid][1]:
            continue
        machine, seen, events = machines[pid]
        seen.add(env.message_id)
        if event is not None and machine.decision is None:
            events.append(event)
            machine.step(event)
    for pid, (machine, _, events) in machines.items():
        # The same decision from the core's offline entry point.
        assert replay(machine.proposal, events) == machine.decision
        results[pid] = machine.decision
    return results


@pytest.mark.parametrize("seed", range(25))
def test_refolding_from_any_cut_republishes_the_same_outputs(seed: int) -> None:
    rng = random.Random(seed)
    codec = Codec()
    # Through the codec, as the service reads them: times at wire precision.
    log = [codec.decode(codec.encode(r)) for r in _random_log(rng, proposals=6)]
    fold, outputs = _fold_all(log)
    assert {pid: d.outcome for pid, d in fold.decisions.items()} == {
        pid: d.outcome for pid, d in _offline(log).items() if d is not None
    }
    for pid, decision in _offline(log).items():
        assert fold.decisions.get(pid) == decision
    by_id: dict[str, Any] = {}
    for published in outputs:
        for item in published:
            # One id, one message: whatever produced it.
            assert by_id.setdefault(item.envelope.message_id, item.envelope) == item.envelope
    decisions = [p for out in outputs for p in out if p.to == "task-events"]
    assert len(decisions) == len(fold.decisions)  # once each in a single fold
    for cut in range(len(log) + 1):
        again = PartitionFold(CONSENSUS)
        for record in log[:cut]:
            again.apply(record)
        for record, expected in zip(log[cut:], outputs[cut:], strict=True):
            assert again.apply(record).publish == expected
        assert again.decisions == fold.decisions


@pytest.mark.parametrize("seed", range(4))
def test_a_fold_restored_from_a_snapshot_at_any_cut_folds_the_tail_like_a_full_replay(
    seed: int,
) -> None:
    rng = random.Random(1000 + seed)
    codec = Codec()
    log = [codec.decode(codec.encode(r)) for r in _random_log(rng, proposals=6)]
    fold, outputs = _fold_all(log)
    for cut in [*range(0, len(log), 2), len(log)]:  # every other cut: a snapshot costs
        before = PartitionFold(CONSENSUS)
        for record in log[:cut]:
            before.apply(record)
        restored = PartitionFold.from_snapshot(CONSENSUS, before.to_snapshot())
        assert restored.open_proposals == before.open_proposals
        assert restored.decided == before.decided
        for record, expected in zip(log[cut:], outputs[cut:], strict=True):
            assert restored.apply(record).publish == expected
        assert restored.decided == fold.decided
        # Only what it decided itself: a restored fold keeps ids, not decisions.
        assert restored.decisions == {
            pid: d for pid, d in fold.decisions.items() if pid not in before.decided
        }


def test_decided_proposals_leave_the_fold_after_the_horizon_and_stale_openings_are_ignored() -> (
    None
):
    fold = PartitionFold(CONSENSUS, decided_horizon_s=100.0)
    fold.apply(_open("t1"))
    for voter in VOTERS[:3]:
        fold.apply(_vote("t1", voter, "a"))
    assert list(fold.decisions) == ["t1/answer"]
    # Log time moves on past the horizon (another task's records).
    later = _open("t2").model_copy(update={"created_at": T0 + timedelta(seconds=500)})
    fold.apply(later)
    assert fold.decisions == {}
    assert fold.open_proposals == ("t2/answer",)
    # A copy of t1's opening, from before the horizon, opens nothing again.
    assert fold.apply(_open("t1")).publish == []
    assert fold.open_proposals == ("t2/answer",)
    snapshot = fold.to_snapshot()
    assert b"t1/answer" not in snapshot  # what left memory is not in the snapshot either


def test_a_damaged_snapshot_is_refused() -> None:
    with pytest.raises(ValueError, match="consensus snapshot"):
        PartitionFold.from_snapshot(CONSENSUS, b'{"version": 1}')
    with pytest.raises(ValueError, match="consensus snapshot"):
        PartitionFold.from_snapshot(CONSENSUS, b"\x00garbage")
    fold = PartitionFold(CONSENSUS)
    fold.apply(_open("t1"))
    for voter in VOTERS[:3]:
        fold.apply(_vote("t1", voter, "a"))
    fold.apply(_open("t2"))
    good = fold.to_snapshot()
    for damaged in (good[:-1], good + b"\x00", good[:30]):
        with pytest.raises(ValueError, match="consensus snapshot"):
            PartitionFold.from_snapshot(CONSENSUS, damaged)


def test_a_snapshot_holds_decided_ids_compactly() -> None:
    fold = PartitionFold(CONSENSUS)
    for i in range(200):
        fold.apply(_open(f"t{i}"))
        for voter in VOTERS[:3]:
            fold.apply(_vote(f"t{i}", voter, "a"))
    restored = PartitionFold.from_snapshot(CONSENSUS, fold.to_snapshot())
    assert restored.decided == fold.decided
    assert len(restored.decided) == 200
    # An id and a time each, no decision bodies: a re-delivered opening opens nothing.
    assert len(fold.to_snapshot()) < 200 * (len("t199/answer") + 4 + 8) + 64
    assert restored.apply(_open("t7")).publish == []
