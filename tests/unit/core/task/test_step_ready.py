"""The task core's one interface: events in (`step`), actions out (`ready`), `advance`.

Deterministic: every envelope is built here with a fixed id and time, so a
machine rebuilt from the same log must say exactly the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from synod.core.task import (
    CheckWorkspace,
    Forward,
    GrantLease,
    Logged,
    Phase,
    PlanMade,
    PlanningFailed,
    Publish,
    Quarantined,
    Ready,
    RequestPlan,
    TaskMachine,
    Tick,
    WorkspaceChecked,
)
from synod.ids import derived_id
from synod.wire import (
    Body,
    Decision,
    Envelope,
    PlanStep,
    Sender,
    StepCompleted,
    StepRequested,
    TaskFailed,
    TaskSubmitted,
    VoteRequested,
)
from synod.wire.messages import LeaseGranted, StepCancelled

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-0")
CLIENT = Sender(role="gateway", instance="gw")
STEPS = [
    PlanStep(step_id="a", files=["a.py"]),
    PlanStep(step_id="b", files=["b.py"]),
    PlanStep(step_id="c", depends_on=["a", "b"], files=["c.py"]),
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(body: Body, sender: Sender, mid: str, attempt: int = 0, t: float = 0.0) -> Any:
    return Envelope.new(
        body, sender=sender, task_id="t1", message_id=mid, attempt=attempt, created_at=at(t)
    )


def submitted(**kw: Any) -> Envelope[Any]:
    return record(TaskSubmitted(goal="build it", reviewers=3, **kw), CLIENT, "submit")


class Log:
    """The task's log as the planner would write it: what the machine publishes goes
    in (and is delivered back), with the time it was written."""

    def __init__(self, machine: TaskMachine) -> None:
        self.machine = machine
        self.records: list[Envelope[Any]] = []
        self.now = 0.0

    def deliver(self, envelope: Envelope[Any]) -> None:
        self.records.append(envelope)
        self.machine.step(Logged(envelope))

    def run(self) -> list[Any]:
        """Carry out one ready(): append what it publishes; the actions it held."""
        ready = self.machine.ready()
        self.machine.advance(ready)
        for action in ready.actions:
            if isinstance(action, Publish):
                body = action.body
                self.deliver(record(body, PLANNER, action.message_id, action.attempt, self.now))
        return list(ready.actions)

    def complete(self, step_id: str, attempt: int = 0, took: float = 1.0) -> None:
        body = StepCompleted(step_id=step_id, output=f"out {step_id}", duration_s=took)
        self.deliver(record(body, CODER, f"done/{step_id}/{attempt}", attempt, self.now))


def published(actions: list[Any]) -> list[Any]:
    return [type(a.body).__name__ for a in actions if isinstance(a, Publish)]


def test_phases_move_on_with_the_log_from_new_to_done() -> None:
    machine = TaskMachine("t1")
    assert machine.phase is Phase.NEW
    assert machine.ready().actions == ()
    log = Log(machine)
    log.deliver(submitted(plan=STEPS))
    assert machine.phase is Phase.PLANNING
    assert published(log.run()) == ["PlanProposed"]
    assert machine.phase is Phase.RUNNING
    assert published(log.run()) == ["StepRequested", "StepRequested"]  # a and b
    log.complete("a")
    log.complete("b")
    assert machine.phase is Phase.RUNNING
    log.run()  # c
    log.complete("c")
    assert machine.phase is Phase.VOTING
    assert published(log.run()) == ["VoteRequested"]
    decision = Decision(
        decision_id="d", proposal_id="t1/answer", ballot=1, outcome="answer", quorum=2
    )
    log.deliver(record(decision, Sender(role="consensus", instance="c"), "decision"))
    assert published(log.run()) == ["TaskCompleted"]
    assert machine.phase is Phase.DONE
    [outcome] = machine.ready().actions  # all that is left: the outcome goes out
    assert isinstance(outcome, Forward)
    assert (outcome.destination, outcome.key) == ("results", "t1")
    machine.advance(machine.ready())
    assert machine.ready() == Ready()  # nothing more, and no wake-up


def test_a_rejected_answer_takes_the_task_back_to_running() -> None:
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=STEPS[:1]))
    log.run()
    log.run()
    log.complete("a")
    log.run()  # the vote
    rejected = Decision(
        decision_id="d", proposal_id="t1/answer", ballot=1, outcome="reject", quorum=2
    )
    log.deliver(record(rejected, Sender(role="consensus", instance="c"), "decision"))
    [revision] = [a for a in log.run() if isinstance(a, Publish)]
    assert revision.body.prompt_variant == "revise-2"
    assert machine.phase is Phase.RUNNING  # the revised step's output is awaited again


def test_the_model_is_asked_for_a_plan_and_its_answer_is_logged() -> None:
    machine = TaskMachine("t1")
    machine.step(Logged(submitted()))
    ready = machine.ready()
    assert ready.actions == (RequestPlan(attempt=0),)
    assert machine.ready() == ready  # the same again until advanced
    machine.step(PlanMade(STEPS, "because"))
    machine.advance(ready)
    [plan] = machine.ready().actions
    assert isinstance(plan, Publish)
    assert plan.message_id == derived_id("t1", "plan")
    assert plan.body.rationale == "because"

    failed = TaskMachine("t1")
    failed.step(Logged(submitted()))
    failed.step(PlanningFailed("no model", "transient"))
    [outcome] = failed.ready().actions
    assert isinstance(outcome, Publish)
    assert isinstance(outcome.body, TaskFailed)
    assert outcome.body.reason == "planning failed: no model"


def test_forwards_carry_their_keys_and_leases_go_first() -> None:
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=STEPS, consistency="strong"))
    log.run()  # the plan
    [first, second] = [a for a in machine.ready().actions if isinstance(a, Publish)]
    log.run()  # a and b are logged and delivered back: now they go on to the coders
    out = machine.ready().actions
    kinds = [(type(a).__name__, getattr(a, "key", None)) for a in out]
    assert kinds == [
        ("GrantLease", None),
        ("Forward", "t1/a"),
        ("GrantLease", None),
        ("Forward", "t1/b"),
    ]
    grant = out[0]
    assert isinstance(grant, GrantLease)
    assert isinstance(grant.grant, LeaseGranted)
    assert (grant.grant.path, grant.grant.token) == ("a.py", first.body.lease_tokens["a.py"])
    assert grant.causes == (first.message_id,)
    forward = out[1]
    assert isinstance(forward, Forward)
    assert forward.destination == "steps.coder"
    assert forward.envelope.message_id == first.message_id
    machine.advance(machine.ready())
    assert machine.ready().actions == ()
    # A redelivery of a logged request (a crash before the forward) forwards it again.
    machine.step(Logged(log.records[-1]))
    assert [type(a).__name__ for a in machine.ready().actions] == ["GrantLease", "Forward"]
    # A rebuild folds the log but forwards nothing.
    machine.advance(machine.ready())
    machine.step(Logged(log.records[-1], replayed=True))
    assert machine.ready().actions == ()
    assert second.body.step_id == "b"


def test_hedges_have_lanes_of_their_own_and_results_go_out_keyed_by_task() -> None:
    plan = [PlanStep(step_id=f"s{i}") for i in range(6)]
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=plan))
    log.run()
    log.run()  # six requests at t=0
    log.now = 1.0
    for i in range(5):
        log.complete(f"s{i}")
    machine.advance(machine.ready())  # forwards of what came before
    log.now = 5.0
    machine.step(Tick(at(5.0)))
    [hedge] = [a for a in log.run() if isinstance(a, Publish)]
    assert hedge.body.prompt_variant == "hedge"
    assert hedge.attempt == 1
    [forward] = [a for a in machine.ready().actions if isinstance(a, Forward)]
    assert forward.key == "t1/s5/1"  # not behind the straggler on "t1/s5"
    machine.advance(machine.ready())
    log.complete("s5", attempt=1)
    [cancel, vote] = [a for a in log.run() if isinstance(a, Publish)]
    assert isinstance(cancel.body, StepCancelled)
    assert cancel.body.request_ids == [derived_id("t1", "step/s5/0")]
    assert isinstance(vote.body, VoteRequested)
    keys = {a.destination: a.key for a in machine.ready().actions if isinstance(a, Forward)}
    assert keys == {"steps.cancel": "t1", "votes": "t1"}


def test_a_team_slot_shares_one_lane() -> None:
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=STEPS, labels={"team.mode": "central", "team.agents": "1"}))
    log.run()
    log.run()
    [forward] = [a for a in machine.ready().actions if isinstance(a, Forward)]
    assert forward.key == "t1/agent-0"


def test_time_is_an_input_deadline_and_wake_up() -> None:
    plan = [PlanStep(step_id=f"s{i}") for i in range(6)]
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=plan, deadline_s=100))
    log.run()
    log.run()
    assert machine.ready().wake_at == at(100)  # no hedge possible yet: the deadline
    log.now = 2.0
    for i in range(5):
        log.complete(f"s{i}", took=2.0)
    assert machine.ready().wake_at == at(2.0)  # s5, out since 0, is due a hedge at the p95
    machine.step(Tick(at(99)))
    assert not any(isinstance(a.body, TaskFailed) for a in log.run() if isinstance(a, Publish))
    machine.step(Tick(at(100)))
    [failed] = [a for a in machine.ready().actions if isinstance(a, Publish)]
    assert isinstance(failed.body, TaskFailed)
    assert failed.body.error_class == "budget"
    assert "waiting for steps s5" in failed.body.reason


def test_the_quarantine_is_an_event_too() -> None:
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=STEPS[:1]))
    log.run()
    log.run()
    log.complete("a")
    machine.step(Quarantined(frozenset({"reviewer-1"})))
    [vote] = [a for a in machine.ready().actions if isinstance(a, Publish)]
    assert vote.body.electorate == ["reviewer-0", "reviewer-2", "reviewer-3"]


def test_an_eventual_vote_asks_for_a_workspace_check_first() -> None:
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=STEPS[:1], consistency="eventual"))
    log.run()
    log.run()
    log.complete("a")
    ready = machine.ready()
    [check] = [a for a in ready.actions if not isinstance(a, Forward | GrantLease)]
    assert isinstance(check, CheckWorkspace)
    assert check.winners == {"a": derived_id("t1", "step/a/0")}
    machine.step(WorkspaceChecked(check.winners, {}))  # the adapter's answer, then advance
    machine.advance(ready)
    [vote] = machine.ready().actions
    assert isinstance(vote, Publish)
    assert isinstance(vote.body, VoteRequested)


def _scenario() -> tuple[TaskMachine, list[Envelope[Any]]]:
    """A hedged team run, stopped half way: the machine and the log it wrote."""
    plan = [
        PlanStep(step_id=f"s{i}", files=[f"s{i}.py"], depends_on=["s0"] if i > 5 else [])
        for i in range(8)
    ]
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=plan, labels={"team.agents": "4"}))
    log.run()
    log.run()
    log.now = 1.0
    for i in range(3):
        log.complete(f"s{i}")
        log.run()
    log.now = 1.5
    log.complete("s3", took=1.5)
    log.complete("s4", took=0.5)
    log.run()
    machine.step(Tick(at(9.0)))  # s5 is a straggler by now; what is due is not carried out
    return machine, log.records


def test_a_restarted_machine_folding_the_same_log_says_the_same() -> None:
    first, records = _scenario()
    again, _ = _scenario()
    assert [r.message_id for r in records] == [r.message_id for r in _scenario()[1]]
    rebuilt = TaskMachine("t1")
    for envelope in records:
        rebuilt.step(Logged(envelope, replayed=True))
    rebuilt.step(Tick(at(9.0)))
    want = [a for a in first.ready().actions if not isinstance(a, Forward | GrantLease)]
    got = list(rebuilt.ready().actions)
    assert got == want
    assert want, "the scenario should leave something to do"
    assert rebuilt.phase is first.phase is Phase.RUNNING
    assert again.ready() == first.ready()
    assert any(isinstance(a, Publish) and isinstance(a.body, StepRequested) for a in want), want
    assert rebuilt.outcome is None


def test_every_step_request_carries_the_tasks_model_routing() -> None:
    plan = [PlanStep(step_id=f"s{i}") for i in range(6)]
    labels = {"model.coder": "fast", "team.agents": "6", "other": "x"}
    machine = TaskMachine("t1")
    log = Log(machine)
    log.deliver(submitted(plan=plan, labels=labels))
    log.run()
    requests = [a for a in log.run() if isinstance(a, Publish)]
    log.now = 1.0
    for i in range(5):
        log.complete(f"s{i}")
    machine.step(Tick(at(5.0)))
    hedges = [a for a in log.run() if isinstance(a, Publish)]
    assert len(requests) == 6
    assert [h.body.prompt_variant for h in hedges] == ["hedge"]
    assert all(a.body.labels == {"model.coder": "fast"} for a in [*requests, *hedges])
