"""What the planner writes for a task machine's actions (synod.core.task.carry), in each
outbox mode: the planner service and synod.sim both write exactly these records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from synod.core.task import Logged, Publish, TaskMachine
from synod.core.task.carry import Ask, Forwarded, Write, accepts, carry_out, sends
from synod.core.workspace.records import lease_key, partition_key
from synod.wire import (
    Body,
    Envelope,
    PlanStep,
    Sender,
    StepRequested,
    TaskSubmitted,
)
from synod.wire.messages import LeaseGranted, TaskCancelRequested

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PLANNER = Sender(role="planner", instance="planner-0")
CLIENT = Sender(role="gateway", instance="gw")
STEPS = [PlanStep(step_id="a", files=["a.py"]), PlanStep(step_id="b", role="researcher")]


def record(body: Body, sender: Sender, mid: str, t: float = 0.0) -> Envelope[Any]:
    return Envelope.new(
        body, sender=sender, task_id="t1", message_id=mid, created_at=T0 + timedelta(seconds=t)
    )


def submitted(**kw: Any) -> Envelope[Any]:
    body = TaskSubmitted(goal="build it", reviewers=3, consistency="strong", **kw)
    return record(body, CLIENT, "submit")


def planned() -> TaskMachine:
    """A machine whose plan is logged: its ready() requests steps a and b."""
    machine = TaskMachine("t1")
    machine.step(Logged(submitted(plan=STEPS)))
    ready = machine.ready()
    [plan] = ready.actions
    assert isinstance(plan, Publish)
    machine.advance(ready)
    machine.step(Logged(record(plan.body, PLANNER, plan.message_id)))
    return machine


def writes(items: list[Any]) -> list[Write]:
    return [w for item in items if not isinstance(item, Ask) for w in item]


def test_read_back_writes_each_log_record_alone_then_forwards_what_it_reads_back() -> None:
    machine = planned()
    at = T0 + timedelta(seconds=5)
    ready = machine.ready()
    items = carry_out(machine, ready, PLANNER, "read-back", at)
    assert all(not isinstance(i, Ask) and len(i) == 1 for i in items)  # one batch a record
    logged = writes(items)
    assert [(w.to, w.key, w.copies) for w in logged] == [
        ("task-events", b"t1", ()),
        ("task-events", b"t1", ()),
    ]
    request = logged[0].envelope
    assert isinstance(request.body, StepRequested)
    assert (request.body.step_id, request.sender, request.created_at) == ("a", PLANNER, at)
    assert request.message_id == ready.actions[0].message_id  # type: ignore[union-attr]
    machine.advance(ready)
    # Read back: the request goes on, its lease first (in the task's workspace partition).
    forwarded = Forwarded("read-back")
    for w in logged:
        event = forwarded.logged(w.envelope)
        assert not event.replayed
        machine.step(event)
    out = writes(carry_out(machine, machine.ready(), PLANNER, "read-back", at))
    assert [w.to for w in out] == ["workspace", "steps.coder", "steps.researcher"]
    lease = out[0]
    assert isinstance(lease.envelope.body, LeaseGranted)
    token = request.body.lease_tokens["a.py"]
    assert lease.key == lease_key("t1", "a.py", token)
    assert lease.partition_key == partition_key("t1")
    assert lease.envelope.causes == [request.message_id]
    assert (out[1].envelope, out[1].key) == (request, b"t1/a")
    assert out[1].content_type == "avro"


def test_with_the_outbox_a_request_carries_its_copy_and_grants_in_one_batch() -> None:
    machine = planned()
    at = T0 + timedelta(seconds=5)
    items = carry_out(machine, machine.ready(), PLANNER, "ack", at)
    [batch] = items
    assert not isinstance(batch, Ask)
    assert [w.to for w in batch] == ["task-events", "workspace", "task-events"]
    first, grant, second = batch
    assert [(c.to, c.key) for c in first.copies] == [("steps.coder", b"t1/a")]
    assert first.copies[0].envelope is first.envelope
    assert [(c.to, c.key) for c in second.copies] == [("steps.researcher", b"t1/b")]
    assert grant.envelope.causes == [first.envelope.message_id]
    # The same records as read-back writes, plus what read-back forwards later.
    alone = writes(carry_out(planned(), planned().ready(), PLANNER, "read-back", at))
    assert [w.envelope for w in alone] == [first.envelope, second.envelope]


def test_ack_sends_the_records_and_grants_first_then_their_copies() -> None:
    machine = planned()
    [batch] = carry_out(machine, machine.ready(), PLANNER, "ack")
    assert not isinstance(batch, Ask)
    order = sends(batch)
    # As Outbox.publish_all: every record (a request's grants right after it), and only
    # once the broker has them, the copies; a crash may fall between any two.
    assert [(w.to, copy) for w, copy in order] == [
        ("task-events", False),
        ("workspace", False),
        ("task-events", False),
        ("steps.coder", True),
        ("steps.researcher", True),
    ]
    assert all(not w.copies for w, _ in order)
    assert [w.envelope for w, copy in order if copy] == [batch[0].envelope, batch[2].envelope]
    assert [w.envelope for w, copy in order if not copy] == [w.envelope for w in batch]
    alone = carry_out(planned(), planned().ready(), PLANNER, "read-back")
    assert all(sends(item) == [(item[0], False)] for item in alone if not isinstance(item, Ask))


def test_ack_folds_only_what_it_forwarded_itself_and_once() -> None:
    machine = planned()
    [batch] = carry_out(machine, machine.ready(), PLANNER, "ack")
    assert not isinstance(batch, Ask)
    forwarded = Forwarded("ack")
    forwarded.wrote(batch)
    assert len(forwarded) == 2  # the two requests; a grant has no copies
    request = batch[0].envelope
    assert forwarded.logged(request).replayed  # went on with its write
    assert not forwarded.logged(request).replayed  # a redelivery: forwarded again
    other = Forwarded("ack")  # a successor: what its predecessor logged goes on again
    assert not other.logged(request).replayed
    # Another role's record (consensus's Reconciled) is never one the planner sent on.
    forwarded.wrote(batch)
    consensus = request.model_copy(update={"sender": Sender(role="consensus", instance="c-0")})
    assert not forwarded.logged(consensus).replayed
    assert not Forwarded("transaction").logged(consensus).replayed
    assert Forwarded("transaction").logged(request).replayed
    bounded = Forwarded("ack", limit=1)
    bounded.wrote(batch)
    assert len(bounded) == 1
    atomic = Forwarded("transaction")  # nothing to remember: all of it went on, or none
    atomic.wrote(batch)
    assert len(atomic) == 0


def test_a_question_splits_the_batches_and_is_the_adapters_to_answer() -> None:
    machine = TaskMachine("t1")
    machine.step(Logged(submitted()))
    [ask] = carry_out(machine, machine.ready(), PLANNER, "ack")
    assert isinstance(ask, Ask)
    assert type(ask.action).__name__ == "RequestPlan"


def test_the_planner_accepts_submissions_and_cancels_into_the_log_and_nothing_else() -> None:
    assert accepts(submitted())
    assert accepts(record(TaskCancelRequested(reason="enough", principal="alice"), CLIENT, "c"))
    plan_step = StepRequested(step_id="a", role="coder", prompt="p", deadline_s=5.0)
    assert not accepts(record(plan_step, PLANNER, "s"))
