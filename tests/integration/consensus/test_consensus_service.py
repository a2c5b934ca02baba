"""The consensus service on a real broker, as a separate process: decide once through
SIGKILLs and rebalances, equal to the decisions the core computes offline from the
vote log; Byzantine jurors under Supermajority."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from consensus_harness import (
    DecisionWatcher,
    Jurors,
    Script,
    ServiceProcess,
    check_decided_once,
    collect,
    mixed_scripts,
    offline_decisions,
    open_proposals,
)

from synod.transport import Publisher


def _report(name: str, **numbers: object) -> None:
    # Shown with -s or on failure; the numbers the ADR quotes come from here.
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in numbers.items()))


def _alive(*services: ServiceProcess) -> None:
    for service in services:
        if service.proc is not None and not service.alive:
            raise AssertionError(
                f"{service.instance} exited with {service.proc.returncode}:\n{service.tail()}"
            )


async def test_sigkilled_five_times_every_proposal_is_decided_once_as_the_log_says(
    bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(20260301)
    scripts = mixed_scripts("kill", 200, rng)
    service = ServiceProcess(bootstrap, prefix, "consensus-1", tmp_path)
    jurors = Jurors(bootstrap, prefix, scripts, rng)
    watcher = DecisionWatcher(bootstrap, prefix)
    await jurors.start()
    await watcher.start()
    service.start()
    started = time.monotonic()
    # Random kill points over the span the proposals are opened in, one in each
    # fifth of it, so they neither bunch up nor all miss the busy middle.
    kill_at = [rng.uniform(1.5 + 4.6 * k, 1.5 + 4.6 * (k + 1)) for k in range(5)]
    undecided_at_kill: list[int] = []

    async def killer() -> None:
        for at in kill_at:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            undecided_at_kill.append(len({s.proposal_id for s in scripts} - watcher.decided))
            service.kill()
            service.start()

    try:
        async with Publisher(bootstrap, client_id="planner-test") as planner:
            kills = asyncio.create_task(killer())
            await open_proposals(planner, prefix, scripts, rate_per_s=8)
            await kills
        await watcher.wait_for(
            {s.proposal_id for s in scripts}, timeout_s=120, check=lambda: _alive(service)
        )
        assert service.stop() == 0, service.tail()
    finally:
        await jurors.stop()
        await watcher.stop()
        if service.alive:
            service.stop()
    elapsed = time.monotonic() - started

    outcome, log = await collect(bootstrap, prefix)
    expected = offline_decisions(log)
    check_decided_once(scripts, outcome, expected)
    assert service.kills == 5
    assert all(n > 0 for n in undecided_at_kill), "a kill hit an idle service"
    outcomes = [outcome.decisions[s.proposal_id][0].body.outcome for s in scripts]
    _report(
        "sigkill",
        proposals=len(scripts),
        kills=service.kills,
        undecided_at_kills=undecided_at_kill,
        decision_copies=outcome.copies,
        decisions_reemitted=outcome.duplicates,
        requests_reemitted=outcome.request_duplicates,
        markers=outcome.markers,
        votes=outcome.votes,
        no_quorum=outcomes.count("no_quorum"),
        rejected=outcomes.count("rejected"),
        later_ballots=sum(outcome.decisions[s.proposal_id][0].body.ballot > 1 for s in scripts),
        seconds=round(elapsed, 1),
    )


async def test_two_instances_and_rebalances_mid_run_decide_as_the_log_says(
    bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(20260302)
    scripts = mixed_scripts("pair", 200, rng)
    first = ServiceProcess(bootstrap, prefix, "consensus-1", tmp_path)
    second = ServiceProcess(bootstrap, prefix, "consensus-2", tmp_path)
    jurors = Jurors(bootstrap, prefix, scripts, rng)
    watcher = DecisionWatcher(bootstrap, prefix)
    await jurors.start()
    await watcher.start()
    first.start()
    started = time.monotonic()
    in_flight_at_join: set[str] = set()
    changes: list[asyncio.Task[None]] = []

    def membership(opened: int) -> None:
        # Each change rebalances the group with proposals in flight: a second
        # instance joins, the first leaves (SIGTERM: drain, commit, leave), the
        # first comes back.
        if opened == 60:
            in_flight_at_join.update(s.proposal_id for s in scripts[:60])
            in_flight_at_join.difference_update(watcher.decided)
            second.start()
        elif opened == 130:
            changes.append(asyncio.create_task(asyncio.to_thread(first.stop)))
        elif opened == 170:
            changes.append(asyncio.create_task(_restart(first, changes[-1])))

    try:
        async with Publisher(bootstrap, client_id="planner-test") as planner:
            await open_proposals(planner, prefix, scripts, rate_per_s=10, on_progress=membership)
        await asyncio.gather(*changes)
        await watcher.wait_for(
            {s.proposal_id for s in scripts}, timeout_s=90, check=lambda: _alive(first, second)
        )
        assert first.stop() == 0, first.tail()
        assert second.stop() == 0, second.tail()
    finally:
        await jurors.stop()
        await watcher.stop()
        for service in (first, second):
            if service.alive:
                service.stop()
    elapsed = time.monotonic() - started

    outcome, log = await collect(bootstrap, prefix)
    check_decided_once(scripts, outcome, offline_decisions(log))
    by = {pid: copies[0].sender.instance for pid, copies in outcome.decisions.items()}
    assert set(by.values()) == {"consensus-1", "consensus-2"}, "the instances did not share"
    moved = {pid for pid in in_flight_at_join if by[pid] == "consensus-2"}
    assert moved, "no proposal open at the join was finished by the joining instance"
    rebalances = [
        e
        for s in (first, second)
        for e in s.log_events()
        if e.get("event") == "partitions assigned"
    ]
    _report(
        "rebalance",
        proposals=len(scripts),
        rebalances=len(rebalances),
        decisions_by={i: list(by.values()).count(i) for i in sorted(set(by.values()))},
        open_at_join=len(in_flight_at_join),
        moved_across_the_join=len(moved),
        decisions_reemitted=outcome.duplicates,
        requests_reemitted=outcome.request_duplicates,
        seconds=round(elapsed, 1),
    )


async def _restart(service: ServiceProcess, stopping: asyncio.Task[None]) -> None:
    await stopping
    assert service.proc is not None
    assert service.proc.returncode == 0, service.tail()
    service.start()


def _byzantine_scripts(n: int, rng: random.Random) -> list[Script]:
    """Supermajority over 4 jurors, one of them a liar: it lies, equivocates (before
    or after the honest votes), sends junk, rejects or stays silent. In one
    proposal in eight an honest juror has crashed too."""
    scripts = []
    for i in range(n):
        voters = [f"reviewer-{j}" for j in range(4)]
        candidates = ["a", "b", "c"]
        truth = rng.choice(candidates)
        liar = rng.choice(voters)
        behaviour = {v: "honest" for v in voters}
        behaviour[liar] = rng.choice(
            ["wrong", "equivocate", "equivocate", "equivocate_late", "junk", "reject", "silent"]
        )
        crashed = rng.random() < 1 / 8
        if crashed:
            behaviour[rng.choice([v for v in voters if v != liar])] = "silent"
        scripts.append(
            Script(
                task_id=f"byz-{i:04d}",
                policy="supermajority",
                voters=voters,
                candidates=candidates,
                truth=truth,
                # A crashed honest juror leaves no quorum; its ballots time out fast.
                deadline_s=1.0 if crashed else 8.0,
                behaviour=behaviour,  # type: ignore[arg-type]
                liar=liar,
                liar_first=behaviour[liar] == "equivocate",
            )
        )
    return scripts


async def test_one_byzantine_juror_in_four_never_gets_a_wrong_decision(
    bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    rng = random.Random(20260303)
    scripts = _byzantine_scripts(1_000, rng)
    service = ServiceProcess(bootstrap, prefix, "consensus-1", tmp_path)
    jurors = Jurors(bootstrap, prefix, scripts, rng)
    watcher = DecisionWatcher(bootstrap, prefix)
    await jurors.start()
    await watcher.start()
    service.start()
    started = time.monotonic()
    try:
        async with Publisher(bootstrap, client_id="planner-test") as planner:
            await open_proposals(planner, prefix, scripts, rate_per_s=200)
        await watcher.wait_for(
            {s.proposal_id for s in scripts}, timeout_s=120, check=lambda: _alive(service)
        )
        assert service.stop() == 0, service.tail()
    finally:
        await jurors.stop()
        await watcher.stop()
        if service.alive:
            service.stop()
    elapsed = time.monotonic() - started

    outcome, log = await collect(bootstrap, prefix)
    check_decided_once(scripts, outcome, offline_decisions(log))
    wrong, no_quorum, reported, missed = [], 0, 0, []
    for script in scripts:
        decision = outcome.decisions[script.proposal_id][0].body
        if decision.outcome == "no_quorum":
            no_quorum += 1
        elif decision.outcome != script.truth:
            wrong.append((script.proposal_id, decision.outcome, script.truth))
        # Only the liar can ever be reported.
        assert set(decision.equivocators) <= {script.liar}
        if script.liar_first:
            # Its two votes reached the log before any honest one.
            if decision.equivocators == [script.liar]:
                reported += 1
            else:
                missed.append(script.proposal_id)
    assert wrong == []
    assert missed == []
    logged = sum(e.get("event") == "equivocation" for e in service.log_events())
    assert logged >= reported
    _report(
        "byzantine",
        proposals=len(scripts),
        wrong=len(wrong),
        no_quorum=no_quorum,
        equivocations_reported=reported,
        equivocations_logged=logged,
        seconds=round(elapsed, 1),
    )
