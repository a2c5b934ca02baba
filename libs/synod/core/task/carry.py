"""What the planner writes for a task machine's actions: sans-I/O, shared with synod.sim.

`TaskMachine.ready()` says what to do (`Publish`, `GrantLease`, `Forward`,
`RequestPlan`, `CheckWorkspace`); this module turns one round of it into the
records to write, in the order they must be written, with the questions the
adapter answers (a plan, a workspace check) between them. The planner service
writes them with its producer or its outbox; synod.sim appends them to its
broker model. Both build every record here, so what the simulation checks is
what the service sends.

The outbox modes (ADR 0012): with `ack` and `transaction` a log record
carries its copies on to their topics (`Write.copies`, forwarded once the log
has it) and its lease grants come with it, all in one write; with `read-back`
each record is written alone and the forwards follow when the record is read
back from the log. `Forwarded` remembers, for `ack`, what this instance sent on
already, so that reading it back folds it without forwarding it again.
`sends(batch)` is the order the `ack` outbox puts a batch on the broker (each
record and its grants, then their copies), so synod.sim models the windows
the service has: a crash before the log append, or after it and before (or
between) its copies.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from synod.core.bugs import planted
from synod.core.task.actions import (
    CheckWorkspace,
    Destination,
    Forward,
    GrantLease,
    Logged,
    Publish,
    Ready,
    RequestPlan,
)
from synod.core.task.machine import TaskMachine, forwards_of
from synod.core.workspace.records import lease_key, partition_key
from synod.wire import Envelope, Sender, TaskSubmitted
from synod.wire.messages import TaskCancelRequested

OutboxMode = Literal["ack", "transaction", "read-back"]
Log = Literal["task-events", "workspace"] | Destination
ContentType = Literal["avro", "json"]
FORWARDED_LIMIT = 50_000


@dataclass(frozen=True)
class Write:
    """One record to write: its log (`to`: a topic's role name), key and encoding.

    `copies`: the same envelope sent on to these topics once the log has it
    (outbox modes `ack` and `transaction`); their envelope is this one's.
    """

    to: Log
    envelope: Envelope[Any]
    content_type: ContentType = "avro"
    key: bytes | None = None
    partition_key: bytes | None = None
    copies: tuple[Write, ...] = ()


@dataclass(frozen=True)
class Ask:
    """An action the adapter answers with an event for the machine (a model call, a read)."""

    action: RequestPlan | CheckWorkspace


Item = list[Write] | Ask  # a batch written at once, or a question


def accepts(envelope: Envelope[Any]) -> bool:
    """Whether a record of synod.tasks is accepted into the task's log (as it is)."""
    return envelope.task_id is not None and isinstance(
        envelope.body, TaskSubmitted | TaskCancelRequested
    )


def log_record(
    machine: TaskMachine, action: Publish, sender: Sender, at: datetime | None = None
) -> Envelope[Any]:
    """The task-log record a `Publish` stands for; `at` its created_at (None: now)."""
    assert machine.submitted is not None
    return Envelope.new(
        action.body,
        sender=sender,
        task_id=machine.task_id,
        message_id=action.message_id,
        causes=list(action.causes),
        attempt=action.attempt,
        trace=machine.submitted.trace,
        **_at(at),
    )


def lease_record(
    machine: TaskMachine, action: GrantLease, sender: Sender, at: datetime | None = None
) -> Write:
    lease = Envelope.new(
        action.grant,
        sender=sender,
        task_id=machine.task_id,
        message_id=action.message_id,
        causes=list(action.causes),
        attempt=action.attempt,
        trace=action.trace,
        **_at(at),
    )
    key = lease_key(machine.task_id, action.grant.path, action.grant.token)
    return Write("workspace", lease, "avro", key, partition_key(machine.task_id))


def forward_record(action: Forward) -> Write:
    content_type: ContentType = "json" if action.destination == "results" else "avro"
    return Write(action.destination, action.envelope, content_type, action.key.encode())


def records_of(
    machine: TaskMachine,
    action: Publish | GrantLease | Forward,
    sender: Sender,
    *,
    outbox: bool,
    at: datetime | None = None,
) -> list[Write]:
    """The records of one action. With the outbox a log record comes with its lease
    grants and its copies on to their topics; without, it is written alone."""
    if isinstance(action, GrantLease):
        return [lease_record(machine, action, sender, at)]
    if isinstance(action, Forward):  # logged (by a predecessor), read back: the repair
        return [forward_record(action)]
    envelope = log_record(machine, action, sender, at)
    key = machine.task_id.encode()
    if not outbox:
        return [Write("task-events", envelope, key=key)]
    grants: list[Write] = []
    copies: list[Write] = []
    for then in forwards_of(envelope):
        if isinstance(then, GrantLease):
            grants.append(lease_record(machine, then, sender, at))
        else:
            copies.append(forward_record(then))
    # The request before its grants: they name it as their cause, so their clocks
    # come after its. Both are in before the copy goes to a worker.
    return [Write("task-events", envelope, key=key, copies=tuple(copies)), *grants]


def carry_out(
    machine: TaskMachine,
    ready: Ready,
    sender: Sender,
    mode: OutboxMode,
    at: datetime | None = None,
) -> list[Item]:
    """One round of `ready`, in order: batches to write whole, questions between them.

    With an outbox every write up to the next question is one batch; with
    `read-back` every record is a batch of its own. `machine.advance(ready)` is
    the caller's, once all of it is carried out.
    """
    outbox = mode != "read-back"
    items: list[Item] = []
    batch: list[Write] = []
    for action in ready.actions:
        if isinstance(action, RequestPlan | CheckWorkspace):
            if batch:
                items.append(batch)
                batch = []
            items.append(Ask(action))
            continue
        writes = records_of(machine, action, sender, outbox=outbox, at=at)
        if outbox:
            batch.extend(writes)
        else:
            items.extend([w] for w in writes)
    if batch:
        items.append(batch)
    return items


def sends(batch: list[Write]) -> list[tuple[Write, bool]]:
    """One batch as the non-atomic (`ack`) outbox sends it, record by record
    (`synod.transport.outbox.Outbox.publish_all`), each with whether it is a
    copy (to be sent with the envelope as the log took it, its clocks): the
    records in order, a step request's lease grants right after it, and only
    once the broker has them all, their copies.

    Between two of these the process may die: a record in the log without
    (some of) its copies is forwarded again by whoever reads it back and did
    not write it (`Forwarded`). `Forwarded.wrote(batch)` comes after the last.
    """
    records = [(replace(w, copies=()) if w.copies else w, False) for w in batch]
    return records + [(c, True) for w in batch for c in w.copies]


class Forwarded:
    """Which of its own records, read back from the log, have gone on already.

    `transaction`: all of them (in the transaction that logged them, or not at
    all); `read-back`: none (the read-back forwards them); `ack`: those this
    instance wrote with their copies. One a predecessor logged is forwarded
    again, under the same id, which consumers drop if it went out before.
    """

    def __init__(self, mode: OutboxMode, limit: int = FORWARDED_LIMIT) -> None:
        self.mode = mode
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def wrote(self, writes: Iterable[Write]) -> None:
        """`writes` are out, with their copies (non-atomic outbox only)."""
        if self.mode != "ack":
            return
        for w in writes:
            if w.copies:
                self._ids[w.envelope.message_id] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def logged(self, envelope: Envelope[Any]) -> Logged:
        """The machine's event for a record of the task log handled live."""
        # Only the planner's own records went on with their write; another's
        # (consensus's Reconciled, docs/cap.md) is forwarded from here.
        own = envelope.sender.role == "planner"
        return Logged(envelope, replayed=own and self._went_on(envelope.message_id))

    def _went_on(self, message_id: str) -> bool:
        if self.mode == "read-back":
            return False
        if self.mode == "transaction" or planted("ack_trusts_the_log"):
            return True
        return self._ids.pop(message_id, 0) is None

    def __len__(self) -> int:
        return len(self._ids)


def _at(at: datetime | None) -> dict[str, Any]:
    return {} if at is None else {"created_at": at}


__all__ = [
    "Ask",
    "Forwarded",
    "Item",
    "OutboxMode",
    "Write",
    "accepts",
    "carry_out",
    "forward_record",
    "lease_record",
    "log_record",
    "records_of",
    "sends",
]
