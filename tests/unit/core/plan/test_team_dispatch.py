"""Central and claim teams in the TaskMachine: dispatch order, slots, blocked claims.

Deterministic: a small discrete-event driver folds each request's completion
back after the step's fixed duration, as the log would, and the same project
runs through the simulator's engines (`synod.core.plan.modes`) for comparison.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import pytest
from tests import taskcore
from tests.taskcore import cancels, decided, fold

from synod.core.plan.dag import Plan, load_project
from synod.core.plan.modes import (
    AttemptFinished,
    CentralEngine,
    ClaimAttempted,
    ClaimEngine,
    Run,
    Tick,
    list_order,
)
from synod.core.plan.teampolicy import (
    SharedList,
    TeamLabelError,
    central_lists,
    central_next,
    central_waiting,
    central_waits,
    team_of,
)
from synod.core.task import Publish, TaskConfig, TaskMachine
from synod.wire import Body, Envelope, PlanStep, Sender, StepCompleted, TaskSubmitted
from synod.wire.messages import StepClaimed, StepRequested, TaskFailed

PLANNER = Sender(role="planner", instance="planner-0")
P02 = Path(__file__).parents[3] / "e2e" / "data" / "p02.json"

# a -> b -> d, c alone, e after c and b: priorities as the paper writes them (depth).
SMALL = [
    PlanStep(step_id="a", priority=1, files=["a.py"]),
    PlanStep(step_id="c", priority=1, files=["c.py"]),
    PlanStep(step_id="b", priority=2, depends_on=["a"], files=["b.py"]),
    PlanStep(step_id="d", priority=3, depends_on=["b"], files=["d.py"]),
    PlanStep(step_id="e", priority=3, depends_on=["b", "c"], files=["e.py"]),
]


def env(body: Body, **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=PLANNER, task_id="t1", **kw)


def started(
    steps: list[PlanStep], mode: str, agents: str, config: TaskConfig | None = None
) -> tuple[TaskMachine, list[Envelope[Any]]]:
    """A machine past its plan, and its log so far."""
    labels = {"team.mode": mode, "team.agents": agents}
    machine = TaskMachine("t1", config or TaskConfig())
    log = [env(TaskSubmitted(goal="build it", plan=steps, labels=labels))]
    fold(machine, log[0])
    log += feed(machine, decided(machine))  # the plan
    return machine, log


def machine_for(steps: list[PlanStep], mode: str, agents: str) -> TaskMachine:
    return started(steps, mode, agents)[0]


def feed(machine: TaskMachine, actions: list[Any]) -> list[Envelope[Any]]:
    logged = []
    for action in actions:
        assert isinstance(action, Publish)
        e = env(action.body, message_id=action.message_id, attempt=action.attempt)
        fold(machine, e)
        logged.append(e)
    return logged


def run(
    steps: list[PlanStep], mode: str, n: int, durations: dict[str, float]
) -> tuple[TaskMachine, list[Envelope[Any]], dict[str, tuple[float, int]]]:
    """Drive the machine to the end of its steps; (machine, log, step -> (start, slot))."""
    machine, log = started(steps, mode, str(n))
    starts: dict[str, tuple[float, int]] = {}
    running: list[tuple[float, int, str, int, int]] = []  # (end, seq, step, attempt, slot)
    now, seq = 0.0, 0
    for _ in range(10_000):
        actions = [*cancels(machine), *decided(machine)]
        for e in feed(machine, [a for a in actions if not isinstance(a.body, TaskFailed)]):
            log.append(e)
            if isinstance(e.body, StepRequested):
                slot = e.body.agent
                assert slot is not None, "a team's request names its slot"
                assert all(r[4] != slot for r in running), f"slot {slot} got a second step"
                starts[e.body.step_id] = (now, slot)
                end = now + durations[e.body.step_id]
                heapq.heappush(running, (end, seq, e.body.step_id, e.attempt, slot))
                seq += 1
        if len(machine.completed) == len(steps):
            return machine, log, starts
        assert running, "nothing runs and steps are left: the team is stuck"
        now, _, step_id, attempt, _ = heapq.heappop(running)
        done = env(StepCompleted(step_id=step_id, duration_s=durations[step_id]), attempt=attempt)
        fold(machine, done)
        log.append(done)
    raise AssertionError("the run did not end")


# ------------------------------------------------------------------ labels


def test_team_labels_are_read_and_bad_ones_named() -> None:
    assert team_of({}) == ("synod", None)
    assert team_of({"team.mode": "central", "team.agents": "3"}) == ("central", 3)
    with pytest.raises(TeamLabelError, match=r"team\.agents"):
        team_of({"team.mode": "claim"})
    with pytest.raises(TeamLabelError, match="anarchy"):
        team_of({"team.mode": "anarchy", "team.agents": "2"})


def test_a_team_task_with_bad_labels_fails_saying_which_label() -> None:
    machine = machine_for(SMALL, "central", "0")
    [failed] = decided(machine)
    assert isinstance(failed.body, TaskFailed)
    assert "team.agents" in failed.body.reason


# ------------------------------------------------------------------ central


def test_central_deals_the_list_round_robin_and_a_slot_waits_for_its_own_next_step() -> None:
    plan = Plan.from_steps(SMALL)
    assert list_order(plan) == ("a", "c", "b", "d", "e")
    lists = central_lists(plan, 2)
    assert lists == (("a", "b", "e"), ("c", "d"))
    # Slot 1 finished c; its next step d waits for b, so it idles although
    # nothing else of its own is ready.
    assert central_next(plan, lists, {"c"}) == [(0, "a")]
    assert central_waiting(plan, lists, {"c"}) == [1]

    machine = machine_for(SMALL, "central", "2")
    first = decided(machine)
    assert [(a.body.step_id, a.body.agent) for a in first] == [("a", 0), ("c", 1)]
    feed(machine, first)
    assert decided(machine) == []  # both slots busy
    fold(machine, env(StepCompleted(step_id="c")))
    assert decided(machine) == []  # slot 1 waits for b (slot 0's), slot 0 is busy
    fold(machine, env(StepCompleted(step_id="a")))
    [b] = decided(machine)
    assert (b.body.step_id, b.body.agent) == ("b", 0)


def test_central_runs_as_the_simulators_central_engine_does() -> None:
    plan = load_project(P02)
    steps = list(plan)
    # Distinct durations: no ties, so event order is the same in both drivers.
    durations = {s: 1.0 + i / 37 for i, s in enumerate(plan.ids)}
    _, log, starts = run(steps, "central", 3, durations)
    engine = CentralEngine(plan, ["0", "1", "2"])
    expected = _engine_starts(engine, durations)
    assert starts == expected
    lists = central_lists(plan, 3)
    assert all(starts[s][1] == slot for slot, mine in enumerate(lists) for s in mine)
    assert not any(isinstance(e.body, StepClaimed) for e in log)
    # Idle stretches replayed from the log's completion order, as the engine counts them:
    # each chain step's slot then waits for the step two links further on.
    finished = [e.body.step_id for e in log if isinstance(e.body, StepCompleted)]
    assert central_waits(plan, 3, finished) == engine.stats.waits >= 12


# ------------------------------------------------------------------ claim


def test_a_free_slot_claims_the_next_step_ready_or_not_and_blocked_claims_are_logged() -> None:
    machine = machine_for(SMALL, "claim", "3")
    first = decided(machine)
    claims = [a.body for a in first if isinstance(a.body, StepClaimed)]
    # Three slots claim a, c, b at once; b's dependency a is not done: blocked.
    assert [(c.step_id, c.agent, c.blocked_on) for c in claims] == [
        ("a", 0, []),
        ("c", 1, []),
        ("b", 2, ["a"]),
    ]
    requests = [a.body for a in first if isinstance(a.body, StepRequested)]
    assert [(r.step_id, r.agent) for r in requests] == [("a", 0), ("c", 1)]  # slot 2 waits
    feed(machine, first)
    assert decided(machine) == []
    fold(machine, env(StepCompleted(step_id="c")))
    # Slot 1 claims d at once; d needs b, which slot 2 holds unstarted: blocked too.
    nxt = decided(machine)
    assert [(a.body.step_id, a.body.blocked_on) for a in nxt] == [("d", ["b"])]
    feed(machine, nxt)
    fold(machine, env(StepCompleted(step_id="a")))
    nxt = decided(machine)
    # Slot 0 claims e (blocked on b); slot 2's claim of b is ready and runs now.
    assert [(type(a.body).__name__, a.body.step_id) for a in nxt] == [
        ("StepClaimed", "e"),
        ("StepRequested", "b"),
    ]
    assert nxt[1].body.agent == 2
    assert machine.shared_list is not None
    assert machine.shared_list.blocked_claims == 3


def test_claims_are_a_function_of_the_log_so_a_rebuilt_machine_makes_the_same() -> None:
    durations = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 1.5, "e": 0.7}
    machine, log, _ = run(SMALL, "claim", 2, durations)
    rebuilt = TaskMachine("t1")
    for e in log:
        fold(rebuilt, e)
    assert rebuilt.shared_list is not None
    assert machine.shared_list is not None
    assert rebuilt.shared_list.claims == machine.shared_list.claims
    # Nothing new to claim or request: the vote is out, as in the original.
    assert decided(rebuilt) == decided(machine) == []
    # Mid-run, too: the log up to the third completion rebuilds the same claims,
    # and the rebuilt machine asks for what the original logged next.
    cut = [i for i, e in enumerate(log) if isinstance(e.body, StepCompleted)][2] + 1
    partial = TaskMachine("t1")
    for e in log[:cut]:
        fold(partial, e)
    upcoming = {e.message_id for e in log[cut:]}
    again = {a.message_id for a in decided(partial)}
    assert again
    assert again <= upcoming


def test_claim_runs_as_the_simulators_claim_engine_with_instant_claims() -> None:
    plan = load_project(P02)
    durations = {s: 1.0 + i / 37 for i, s in enumerate(plan.ids)}
    _, log, starts = run(list(plan), "claim", 3, durations)
    engine = ClaimEngine(plan, ["0", "1", "2"])
    assert starts == _engine_starts(engine, durations)
    logged = [e.body for e in log if isinstance(e.body, StepClaimed)]
    assert len(logged) == len(plan)  # every step claimed once, in list order
    assert [c.step_id for c in logged] == list(list_order(plan))
    blocked = sum(1 for c in logged if c.blocked_on)
    assert blocked == engine.stats.blocked_claims
    # p02 is a chain of 15 after 5 independent steps: with 3 slots every chain
    # claim but the ones a slot makes right after finishing its dependency waits.
    assert blocked >= 10


def test_no_hedging_in_the_paper_modes() -> None:
    from datetime import timedelta

    for mode in ("central", "claim", "synod"):
        # One finished step is enough for a p95 here; a is then far past it.
        machine, _ = started(SMALL, mode, "2", TaskConfig(hedge_min_samples=1))
        feed(machine, decided(machine))
        fold(machine, env(StepCompleted(step_id="c", duration_s=0.5)))
        later = machine.requested_at["a"] + timedelta(minutes=5)
        hedged = [h.body.step_id for h in taskcore.hedges(machine, later)]
        assert hedged == (["a"] if mode == "synod" else []), mode


def test_shared_list_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        SharedList(Plan.from_steps(SMALL), 0)


def _engine_starts(
    engine: CentralEngine | ClaimEngine, durations: dict[str, float]
) -> dict[str, tuple[float, int]]:
    """Run a simulator engine with the same durations; claims land at once."""
    starts: dict[str, tuple[float, int]] = {}
    running: list[tuple[float, int, str, int, str]] = []
    now, seq = 0.0, 0
    pending: list[Any] = [Tick(0.0)]
    for _ in range(10_000):
        actions = list(engine.handle(pending))
        pending = []
        if isinstance(engine, ClaimEngine):
            for agent in engine.agents:  # each idle agent claims, one after the other
                step_id = engine.choose(agent)
                if step_id is not None:
                    actions += engine.handle([ClaimAttempted(agent, step_id, now)])
        for a in actions:
            if isinstance(a, Run):
                assert a.agent is not None
                starts[a.step_id] = (now, int(a.agent))
                end = now + durations[a.step_id]
                heapq.heappush(running, (end, seq, a.step_id, a.attempt, a.agent))
                seq += 1
        if engine.outcome is not None:
            return starts
        now, _, step_id, attempt, agent = heapq.heappop(running)
        pending = [AttemptFinished(step_id, attempt, agent, now)]
    raise AssertionError("the engine did not finish")
