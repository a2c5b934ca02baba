"""Property tests of the safety rules, over random logs, plus the Byzantine check.

Random logs mix votes for the current, older and future ballots, duplicates,
equivocations, outsiders, unknown candidates, abstentions and rejections with
deadline ticks and reachability reports. `trace` runs a log through the machine
and classifies every vote with a small reference model written from the rules
(not from the machine); each test then checks one property of that trace.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from synod.core.consensus import (
    NO_QUORUM,
    Adaptive,
    Candidate,
    ConfidenceWeighted,
    Consensus,
    Decided,
    Decision,
    EquivocationDetected,
    Event,
    LogEvent,
    Majority,
    NewBallot,
    Open,
    Output,
    Policy,
    Proposal,
    ProposalMachine,
    Reachable,
    Reconciled,
    Supermajority,
    Tick,
    Unanimity,
    Vote,
    VoteIgnored,
    VoteReceived,
    replay,
)

CANDIDATES = ("A", "B", "C")
POLICIES: tuple[Policy, ...] = (
    Majority(),
    Supermajority(f=1),
    Unanimity(),
    ConfidenceWeighted(0.5),
    ConfidenceWeighted(0.7),
    Adaptive(),
    Adaptive(threshold=0.8, prior=0.5),
)
EXAMPLES = settings(max_examples=150, deadline=None)


@st.composite
def proposals(draw: st.DrawFn, min_ballot: int = 0) -> Proposal:
    policy = draw(st.sampled_from(POLICIES))
    n = draw(st.integers(policy.min_electorate(), 7))
    return Proposal(
        proposal_id="p",
        task_id="t",
        ballot=draw(st.integers(min_ballot, min_ballot + 2)),
        candidates=tuple(Candidate(c) for c in CANDIDATES[: draw(st.integers(1, 3))]),
        electorate=tuple(f"v{i}" for i in range(n)),
        policy=policy,
        deadline=10.0,
        mode=draw(st.sampled_from(["cp", "ap"])),
        max_ballots=draw(st.integers(1, 3)),
        widen=tuple(f"w{i}" for i in range(draw(st.integers(0, 2)))),
        ballot_timeout=10.0,
    )


def votes_for(proposal: Proposal) -> st.SearchStrategy[Vote]:
    """Any vote at all: wrong ballots, outsiders, unknown candidates included."""
    voters = (*proposal.electorate, *proposal.widen, "mallory")
    ballots = st.integers(max(0, proposal.ballot - 1), proposal.last_ballot + 1)
    return st.one_of(
        st.builds(
            Vote,
            proposal_id=st.just("p"),
            ballot=ballots,
            voter=st.sampled_from(voters),
            kind=st.just("choice"),
            choice=st.sampled_from((*proposal.candidate_ids, "Z")),
            confidence=st.sampled_from((0.0, 0.3, 0.6, 1.0)),
        ),
        st.builds(
            Vote,
            proposal_id=st.just("p"),
            ballot=ballots,
            voter=st.sampled_from(voters),
            kind=st.sampled_from(("reject", "abstain")),
        ),
    )


@st.composite
def ballot_votes(draw: st.DrawFn, proposal: Proposal, ballot: int) -> list[Event]:
    """One ballot's votes from its electorate, leaning to one option so that ballots
    do decide, with re-deliveries and equivocations mixed in."""
    favourite = draw(st.sampled_from(proposal.candidate_ids))
    others = [c for c in proposal.candidate_ids if c != favourite] or [favourite]
    members = draw(st.permutations(proposal.electorate_for(ballot)))
    events: list[Event] = []
    # Mostly most of the electorate votes; sometimes few do (crashed voters).
    turnout = draw(st.sampled_from((len(members),) * 3 + (len(members) - 1, 1)))
    for voter in members[:turnout]:
        answer = draw(st.sampled_from(["fav", "fav", "fav", "other", "reject", "abstain"]))
        confidence = draw(st.sampled_from((0.3, 0.7, 1.0)))
        if answer in ("fav", "other"):
            option = favourite if answer == "fav" else draw(st.sampled_from(others))
            vote = Vote("p", ballot, voter, "choice", option, confidence)
        else:
            vote = Vote("p", ballot, voter, answer, None, confidence)  # type: ignore[arg-type]
        events.append(VoteReceived(vote))
        fault = draw(st.sampled_from(["none"] * 4 + ["redeliver", "equivocate"]))
        if fault == "redeliver":
            events.append(VoteReceived(Vote("p", ballot, voter, vote.kind, vote.choice, 0.5)))
        elif fault == "equivocate":
            flipped = others[0] if vote.choice == favourite else favourite
            twin = Vote("p", ballot, voter, "choice", flipped)
            if twin.same_answer(vote):
                twin = Vote("p", ballot, voter, "reject")
            events.append(VoteReceived(twin))
    return events


@st.composite
def scenarios(draw: st.DrawFn, min_ballot: int = 0) -> tuple[Proposal, list[Event]]:
    proposal = draw(proposals(min_ballot))
    voters = (*proposal.electorate, *proposal.widen)
    noise = st.one_of(
        st.builds(VoteReceived, votes_for(proposal)),
        st.builds(Tick, st.sampled_from((5.0, 10.0, 20.0, 30.0, 45.0))),
        st.builds(Reachable, st.frozensets(st.sampled_from(voters))),
    )
    events: list[Event] = []
    for k, ballot in enumerate(range(proposal.ballot, proposal.last_ballot + 1)):
        block = draw(ballot_votes(proposal, ballot)) + draw(st.lists(noise, max_size=4))
        events += draw(st.permutations(block))
        if draw(st.booleans()):
            events.append(Tick(proposal.deadline + k * proposal.ballot_timeout))
    return proposal, events


@dataclass
class Trace:
    """A run of one log, and what the reference model says about every vote."""

    proposal: Proposal
    first: list[Output]
    outputs: list[list[Output]]
    decision: Decision | None
    # (ballot, voter) -> the votes the machine accepted silently
    accepted: dict[tuple[int, str], list[Vote]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    excluded_reconciling: list[str] = field(default_factory=list)  # after a provisional one
    mismatches: list[str] = field(default_factory=list)


def expected_fate(
    proposal: Proposal, ballot: int, votes: dict[str, Vote], excluded: list[str], vote: Vote
) -> str:
    """What the rules say must happen to `vote` in the current `ballot`."""
    if vote.ballot < ballot:
        return "stale_ballot"
    if vote.ballot > ballot:
        return "future_ballot"
    if vote.voter not in proposal.electorate_for(ballot):
        return "not_in_electorate"
    if vote.voter in excluded:
        return "equivocator"
    if vote.kind == "choice" and vote.choice not in proposal.candidate_ids:
        return "unknown_candidate"
    previous = votes.get(vote.voter)
    if previous is None:
        return "accept"
    same = (previous.kind, previous.choice) == (vote.kind, vote.choice)
    return "duplicate" if same else "equivocation"


def fate_of(vote: Vote, outputs: list[Output]) -> str:
    for out in outputs:
        if isinstance(out, VoteIgnored) and out.vote == vote:
            return out.reason
        if isinstance(out, EquivocationDetected) and out.votes[1] == vote:
            return "equivocation"
    return "accept"


def trace(proposal: Proposal, events: list[Event]) -> Trace:
    machine, first = ProposalMachine.open(proposal)
    t = Trace(proposal, first, [], None)
    ballot = proposal.ballot
    votes: dict[str, Vote] = {}
    decided = reconciling = False
    for event in events:
        outputs = machine.step(event)
        t.outputs.append(outputs)
        if isinstance(event, VoteReceived) and not decided:
            vote = event.vote
            want = expected_fate(proposal, ballot, votes, t.excluded, vote)
            got = fate_of(vote, outputs)
            if want != got:
                t.mismatches.append(f"{vote}: expected {want}, got {got}")
            if got == "accept":
                votes[vote.voter] = vote
                t.accepted.setdefault((ballot, vote.voter), []).append(vote)
            elif got == "equivocation":
                votes.pop(vote.voter, None)
                t.excluded.append(vote.voter)
        elif (
            isinstance(event, VoteReceived)
            and reconciling
            and fate_of(event.vote, outputs) == "equivocation"
        ):
            # An ap decision stays open for the missing jurors: their equivocations
            # are still found and excluded after it (the fates are not modelled here).
            t.excluded_reconciling.append(event.vote.voter)
        for out in outputs:
            if isinstance(out, NewBallot):
                ballot, votes = out.ballot, {}
            if isinstance(out, Decided):
                decided = True
                reconciling = out.decision.provisional
    t.decision = machine.decision
    return t


def all_outputs(t: Trace) -> list[Output]:
    return [*t.first, *(o for outs in t.outputs for o in outs)]


def support(t: Trace, decision: Decision) -> tuple[Counter[str], dict[str, float]]:
    """Counts and weights of the votes that stand in the deciding ballot."""
    counts: Counter[str] = Counter()
    confidences: dict[str, list[float]] = {}
    for (ballot, voter), votes in t.accepted.items():
        if ballot != decision.ballot or voter in t.excluded:
            continue
        for vote in votes:
            if vote.option is not None:
                counts[vote.option] += 1
                confidences.setdefault(vote.option, []).append(vote.confidence)
    return counts, {o: math.fsum(c) for o, c in confidences.items()}


# Safety properties


@EXAMPLES
@given(scenarios())
def test_at_most_one_decision_per_proposal(scenario: tuple[Proposal, list[Event]]) -> None:
    proposal, events = scenario
    t = trace(proposal, events)
    decisions = {o.decision for o in all_outputs(t) if isinstance(o, Decided)}
    assert len(decisions) <= 1
    assert bool(decisions) == (t.decision is not None)
    if t.decision is not None:
        assert decisions == {t.decision}
        # After a final decision: late votes get it back, nothing else happens.
        # After a provisional one: the decided ballot's votes are still counted
        # until one Reconciled says what the full electorate decided (docs/cap.md).
        seen = False
        reconciled = 0
        for event, outputs in zip(events, t.outputs, strict=True):
            if seen and (not t.decision.provisional or reconciled):
                expected = [Decided(t.decision)] if isinstance(event, VoteReceived) else []
                assert outputs == expected
            elif seen:
                allowed = (Reconciled, VoteIgnored, EquivocationDetected)
                assert all(isinstance(o, allowed) for o in outputs), outputs
                reconciled += sum(isinstance(o, Reconciled) for o in outputs)
            seen = seen or any(isinstance(o, Decided) for o in outputs)
        assert reconciled <= 1


@EXAMPLES
@given(scenarios())
def test_a_voter_counts_once_per_ballot(scenario: tuple[Proposal, list[Event]]) -> None:
    proposal, events = scenario
    t = trace(proposal, events)
    assert t.mismatches == []
    assert all(len(votes) == 1 for votes in t.accepted.values())
    if t.decision is not None:
        counts, weights = support(t, t.decision)
        expected = weights if proposal.policy.weighted else counts
        assert t.decision.tally_dict() == {o: expected.get(o, 0.0) for o in proposal.options}
        assert t.decision.votes_counted <= len(proposal.electorate_for(t.decision.ballot))


@EXAMPLES
@given(scenarios())
def test_equivocators_are_reported_and_excluded(scenario: tuple[Proposal, list[Event]]) -> None:
    proposal, events = scenario
    t = trace(proposal, events)
    assert t.mismatches == []  # every second, different vote was reported
    reports = [o for o in all_outputs(t) if isinstance(o, EquivocationDetected)]
    assert [r.voter for r in reports] == t.excluded + t.excluded_reconciling
    for r in reports:
        first, second = r.votes
        assert first.voter == second.voter == r.voter
        assert first.ballot == second.ballot == r.ballot
        assert not first.same_answer(second)
    if t.decision is not None and t.decision.provisional:
        # Reconciling goes on counting (and excluding) after the decision was taken.
        assert set(t.decision.excluded) <= set(t.excluded + t.excluded_reconciling)
    elif t.decision is not None:
        d = t.decision
        assert set(d.excluded) == set(t.excluded)
        standing = [
            vote
            for (ballot, voter), votes in t.accepted.items()
            if ballot == d.ballot and voter not in t.excluded
            for vote in votes
        ]
        assert d.votes_counted == len(standing)


@settings(max_examples=80, deadline=None)
@given(scenarios(min_ballot=1), st.data())
def test_votes_for_older_ballots_change_nothing(
    scenario: tuple[Proposal, list[Event]], data: st.DataObject
) -> None:
    proposal, events = scenario
    baseline = trace(proposal, events)
    # Inject stale votes at random points, each for a ballot older than the current one.
    machine, _ = ProposalMachine.open(proposal)
    mixed: list[Event] = []
    injected: list[Vote] = []
    for event in events:
        if data.draw(st.booleans()):
            stale = data.draw(votes_for(proposal))
            old = data.draw(st.integers(0, machine.ballot - 1))
            stale = Vote("p", old, stale.voter, stale.kind, stale.choice, stale.confidence)
            injected.append(stale)
            mixed.append(VoteReceived(stale))
            outputs = machine.step(VoteReceived(stale))
            if machine.decision is None or machine.reconciling:
                assert outputs == [VoteIgnored(stale, "stale_ballot")]
            else:
                assert outputs == [Decided(machine.decision)]
        mixed.append(event)
        machine.step(event)
    assert machine.decision == baseline.decision
    assert replay(proposal, mixed) == baseline.decision


@EXAMPLES
@given(scenarios())
def test_no_decision_without_quorum_unless_provisional_in_ap(
    scenario: tuple[Proposal, list[Event]],
) -> None:
    proposal, events = scenario
    t = trace(proposal, events)
    d = t.decision
    if d is None:
        return
    policy = proposal.policy
    size = len(proposal.electorate_for(d.ballot))
    if d.outcome == NO_QUORUM:
        # Before the last ballot only cp, and only on a report of who is reachable
        # (the quorum out of reach: docs/cap.md).
        assert d.ballot == proposal.last_ballot or (
            proposal.mode == "cp" and any(isinstance(e, Reachable) for e in events)
        )
        assert not d.provisional
        return
    counts, weights = support(t, d)
    assert counts[d.outcome] >= d.quorum >= 1
    if not d.provisional:
        assert d.quorum == policy.quorum(size)
        if isinstance(policy, ConfidenceWeighted):
            assert weights[d.outcome] > policy.threshold * size
    else:
        assert proposal.mode == "ap"
        assert d.quorum in {policy.quorum(m) for m in range(1, size)}


@EXAMPLES
@given(scenarios())
def test_replay_is_deterministic(scenario: tuple[Proposal, list[Event]]) -> None:
    proposal, events = scenario
    a, b = trace(proposal, events), trace(proposal, events)
    assert (a.first, a.outputs) == (b.first, b.outputs)
    assert replay(proposal, events) == a.decision
    consensus = Consensus.from_log([Open(proposal), *events])
    assert consensus.decision("p") == a.decision


@settings(max_examples=80, deadline=None)
@given(scenarios())
def test_crash_between_any_two_events_then_rebuild_gives_the_same_run(
    scenario: tuple[Proposal, list[Event]],
) -> None:
    proposal, events = scenario
    reference = trace(proposal, events)
    for cut in range(len(events) + 1):
        rebuilt, _ = ProposalMachine.open(proposal)
        for event in events[:cut]:
            rebuilt.step(event)
        rest = [rebuilt.step(event) for event in events[cut:]]
        assert rest == reference.outputs[cut:]
        assert rebuilt.decision == reference.decision


@st.composite
def interleaved_logs(draw: st.DrawFn) -> list[LogEvent]:
    """Several proposals' logs, interleaved as one consensus instance would see them."""
    streams: list[list[LogEvent]] = []
    for i in range(draw(st.integers(1, 3))):
        proposal, events = draw(scenarios())
        pid = f"p{i}"
        renamed: list[LogEvent] = [Open(replace(proposal, proposal_id=pid))]
        for event in events:
            if isinstance(event, VoteReceived):
                v = event.vote
                event = VoteReceived(Vote(pid, v.ballot, v.voter, v.kind, v.choice, v.confidence))
            renamed.append(event)
        streams.append(renamed)
    log: list[LogEvent] = []
    while any(streams):
        stream = draw(st.sampled_from([s for s in streams if s]))
        log.append(stream.pop(0))
    # A re-delivered Open must not reopen or redecide anything.
    return [*log, *(e for e in log if isinstance(e, Open))]


@settings(max_examples=80, deadline=None)
@given(interleaved_logs())
def test_consensus_rebuilt_from_any_log_prefix_continues_identically(
    log: list[LogEvent],
) -> None:
    live = Consensus()
    outputs = [live.step(event) for event in log]
    for cut in range(0, len(log) + 1, 3):
        rebuilt = Consensus.from_log(log[:cut])
        assert [rebuilt.step(event) for event in log[cut:]] == outputs[cut:]
        assert rebuilt.decisions == live.decisions
    decided: dict[str, Decision] = {}
    for out in (o for outs in outputs for o in outs):
        if isinstance(out, Decided):
            assert decided.setdefault(out.decision.proposal_id, out.decision) == out.decision


# Byzantine voters


@dataclass
class ByzantineStats:
    decided: int = 0
    wrong: int = 0
    no_quorum_without_crash: int = 0
    equivocations_reported: int = 0
    equivocations_missed: int = 0
    min_honest_support: int = 10**9


def liar_votes(rng: random.Random, pid: str, ballot: int, voter: str) -> list[Vote]:
    wrong = Vote(pid, ballot, voter, "choice", rng.choice("BC"))
    behaviour = rng.choice(["wrong", "right", "equivocate", "silent", "junk"])
    if behaviour == "wrong":
        return [wrong, wrong]
    if behaviour == "right":
        return [Vote(pid, ballot, voter, "choice", "A")]
    if behaviour == "equivocate":
        other = rng.choice(
            [Vote(pid, ballot, voter, "choice", "A"), Vote(pid, ballot, voter, "reject")]
        )
        return [wrong, other]
    if behaviour == "junk":
        return [
            Vote(pid, ballot + 1, voter, "choice", "B"),
            Vote(pid, max(0, ballot - 1), voter, "choice", "C"),
        ]
    return []


def run_byzantine(
    policy: Policy, n: int, f: int, proposals: int, seed: int, honest_split: bool
) -> ByzantineStats:
    """Honest voters vote their view ("A", or A/B at random if split); f liars do anything.

    One honest voter in five proposals crashes (is silent throughout), so some
    proposals run with more faults than f: safety must hold anyway.
    """
    rng = random.Random(seed)
    voters = tuple(f"v{i}" for i in range(n))
    liars = frozenset(voters[n - f :])
    honest = [v for v in voters if v not in liars]
    stats = ByzantineStats()
    for i in range(proposals):
        pid = f"p{i}"
        proposal = Proposal(
            pid,
            "t",
            0,
            (Candidate("A"), Candidate("B"), Candidate("C")),
            voters,
            policy,
            deadline=10.0,
            max_ballots=3,
            ballot_timeout=10.0,
        )
        machine, _ = ProposalMachine.open(proposal)
        crashed = rng.choice(honest) if rng.random() < 0.2 else None
        delivered: list[tuple[int, Vote]] = []  # (ballot at delivery, vote), all undecided
        reported: set[str] = set()
        while machine.decision is None:
            ballot = machine.ballot
            batch: list[Vote] = []
            for voter in voters:
                if voter in liars:
                    batch += liar_votes(rng, pid, ballot, voter)
                elif voter != crashed:
                    answer = rng.choice("AB") if honest_split else "A"
                    batch.append(Vote(pid, ballot, voter, "choice", answer))
            rng.shuffle(batch)
            for vote in batch:
                at = machine.ballot
                outputs = machine.step(VoteReceived(vote))
                delivered.append((at, vote))
                reported |= {o.voter for o in outputs if isinstance(o, EquivocationDetected)}
                if machine.decision is not None:
                    break
            else:
                machine.step(Tick(machine.deadline))
        decision = machine.decision
        current = [(at, v) for at, v in delivered if v.ballot == at]
        answers: dict[tuple[int, str], set[tuple[str, str | None]]] = {}
        for at, v in current:
            answers.setdefault((at, v.voter), set()).add((v.kind, v.choice))
        equivocators = {voter for (_, voter), seen in answers.items() if len(seen) > 1}
        stats.equivocations_reported += len(reported)
        stats.equivocations_missed += len(equivocators - reported)
        assert reported <= liars
        if decision.outcome == NO_QUORUM:
            stats.no_quorum_without_crash += crashed is None and not honest_split
            continue
        stats.decided += 1
        stats.wrong += decision.outcome != "A"
        support = sum(
            1
            for at, v in current
            if v.voter not in liars and at == decision.ballot and v.option == decision.outcome
        )
        stats.min_honest_support = min(stats.min_honest_support, support)
    return stats


def test_one_liar_in_four_never_causes_a_wrong_decision() -> None:
    stats = run_byzantine(Supermajority(f=1), n=4, f=1, proposals=1000, seed=7, honest_split=False)
    assert stats.wrong == 0
    assert stats.equivocations_missed == 0
    assert stats.equivocations_reported > 100  # the liar equivocates in ~1 ballot in 5
    # Liveness with at most f faults: three honest votes always decide.
    assert stats.no_quorum_without_crash == 0
    assert stats.decided > 900


def test_supermajority_decisions_carry_f_plus_1_honest_votes_even_when_honest_voters_split() -> (
    None
):
    stats = run_byzantine(Supermajority(f=2), n=7, f=2, proposals=400, seed=11, honest_split=True)
    assert stats.decided > 0
    assert stats.equivocations_missed == 0
    assert stats.min_honest_support >= 3


def test_plain_majority_lacks_that_guarantee_so_the_check_above_can_fail() -> None:
    stats = run_byzantine(Majority(), n=7, f=2, proposals=400, seed=11, honest_split=True)
    assert stats.min_honest_support < 3
