"""The consensus state of one partition of synod.votes, as a fold of its records.

`PartitionFold.apply` takes the partition's records one by one, in offset
order, and returns what to publish. It reads no clock and keeps no state but
what the records put there, so folding the same records again, in a restarted
or another instance, returns the same outputs with the same ids and bodies.
That is the whole decide-once argument (docs/adr/0003-consensus-service-log-replay.md):
whoever folds the log decides the same way.

What a record means to the fold:

- a VoteRequested sent by the planner opens its proposal (the first one wins);
- a Vote is a vote (the first record with a given message id wins: a juror
  that re-runs after a crash may answer differently under the same id);
- a deadline marker (`wiremap.deadline_marker`) sent by the consensus service
  ends the ballot it names, if that ballot is still current; the reachable
  voters it carries (the supervisor's view) reach the ballot just before;
- everything else (our own round requests included) changes nothing.

Outputs: a round request (VoteRequested to synod.votes) per `RequestVotes`,
and a Decision (to synod.task-events) when the proposal is decided. A
provisional (`ap`) decision keeps its proposal open, folding the rest of the
electorate's votes, until a `Reconciled` (to synod.task-events) says what the
full electorate decided (docs/cap.md). A decided
proposal answers later records with nothing: its decision was published when
the record that decided it was folded.

Snapshots (`to_snapshot` / `from_snapshot`): the state is the records of the open
proposals plus the ids of the decided and invalid ones, so a snapshot is those
records and ids, and restoring folds the records again into a fresh fold. No
machine internals are serialised: a restored fold is the fold of the same
records, and decides as a full replay would. Decided ids are forgotten
`decided_horizon_s` of log time after their decision (deterministically, in
every fold of the same log), and an opening older than the horizon is ignored,
so a fold's memory and its snapshot are bounded by the work of the horizon.

A decided proposal is kept as its id and decision time only: that is all a
later record needs (to be answered with nothing), so the Decision itself is
not in a snapshot and a restored fold's `decisions` holds only what it decided
after the restore. The encoding is binary (docs/capacity.md: 250k decided ids
restore in a fraction of a second, where JSON with decisions took tens).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from synod.core.consensus import (
    Decided,
    Decision,
    EquivocationDetected,
    NewBallot,
    Output,
    ProposalMachine,
    Reachable,
    Reconciled,
    RequestVotes,
    Tick,
    VoteIgnored,
    VoteReceived,
    wiremap,
)
from synod.errors import SynodError
from synod.ids import derived_id
from synod.wire import BallotDeadline, Codec, Envelope, Sender, Vote, VoteRequested

_codec: Codec | None = None


def _snapshot_codec() -> Codec:
    # Building a codec parses every schema (a third of a second): once per process.
    global _codec
    if _codec is None:
        _codec = Codec()
    return _codec


# A day of log time: a task's deadline is at most a day (TaskSubmitted.deadline_s), so
# a late first forward of an opening is still folded. Memory is an id and a float
# per proposal decided within the day, a few MB per partition at 10^6 tasks a day.
DECIDED_HORIZON_S = 86_400.0
# Snapshot v1 was JSON with whole decisions; a v1 snapshot is refused and the
# partition replayed (once, after an upgrade).
_SNAPSHOT_MAGIC = b"CFS2"
_COUNTS = struct.Struct("<4sdIII")  # magic, log time, decided, invalid, open records

# Where an output goes, named by the log it belongs to. The core knows no Kafka
# topics; the consensus service maps each log to its topic (synod.roles.consensus).
Log = Literal["votes", "task-events"]


@dataclass(frozen=True)
class Publish:
    to: Log
    envelope: Envelope[Any]


@dataclass
class FoldResult:
    """What one record led to. Only `publish` goes on the wire; the rest is for logs
    and metrics."""

    publish: list[Publish] = field(default_factory=list)
    equivocations: list[EquivocationDetected] = field(default_factory=list)
    ignored: list[VoteIgnored] = field(default_factory=list)
    new_ballots: list[NewBallot] = field(default_factory=list)
    decided: Decision | None = None
    reconciled: Reconciled | None = None
    invalid: str | None = None  # a planner request no ballot could decide: why


@dataclass
class _Open:
    machine: ProposalMachine
    opening: VoteRequested
    task_id: str
    seen: set[str] = field(default_factory=set)  # message ids folded for this proposal
    records: list[Envelope[Any]] = field(default_factory=list)  # what a snapshot keeps


@dataclass(frozen=True)
class Due:
    """An open ballot whose deadline has passed on the caller's clock."""

    task_id: str
    proposal_id: str
    ballot: int
    deadline: float


def request_id(proposal_id: str, ballot: int, voters: tuple[str, ...]) -> str:
    """A round request's message id: the same round always gets the same id."""
    return derived_id(proposal_id, ballot, "request", *voters)


def decision_message_id(decision_id: str) -> str:
    return derived_id(decision_id)


class PartitionFold:
    def __init__(self, sender: Sender, *, decided_horizon_s: float = DECIDED_HORIZON_S) -> None:
        # Outputs name their sender; nothing else about them depends on who folds.
        self.sender = sender
        self.decided_horizon_s = decided_horizon_s
        self._open: dict[str, _Open] = {}
        # Proposal id -> log time of its decision (or rejection), oldest first.
        self._decided: OrderedDict[str, float] = OrderedDict()
        self._decisions: dict[str, Decision] = {}
        self._invalid: OrderedDict[str, float] = OrderedDict()
        self._log_time = 0.0  # the latest created_at folded: the log's own clock

    @property
    def open_proposals(self) -> tuple[str, ...]:
        return tuple(self._open)

    @property
    def decisions(self) -> dict[str, Decision]:
        """The decisions this fold took (not restored ones) within the horizon, in
        decision order."""
        return {pid: self._decisions[pid] for pid in self._decided if pid in self._decisions}

    # Snapshots

    @property
    def decided(self) -> tuple[str, ...]:
        """The ids of the proposals decided within the horizon, in decision order."""
        return tuple(self._decided)

    def to_snapshot(self) -> bytes:
        """The fold's state as bytes: open proposals' records, decided and invalid ids."""
        codec = _snapshot_codec()
        records = [codec.encode(r, "avro") for entry in self._open.values() for r in entry.records]
        # A provisional decision still reconciling is refolded from its records.
        decided = OrderedDict((p, at) for p, at in self._decided.items() if p not in self._open)
        return b"".join(
            [
                _COUNTS.pack(
                    _SNAPSHOT_MAGIC,
                    self._log_time,
                    len(decided),
                    len(self._invalid),
                    len(records),
                ),
                _pack_ids(decided),
                _pack_ids(self._invalid),
                struct.pack(f"<{len(records)}I", *(len(r) for r in records)),
                *records,
            ]
        )

    @classmethod
    def from_snapshot(
        cls, sender: Sender, data: bytes, *, decided_horizon_s: float = DECIDED_HORIZON_S
    ) -> PartitionFold:
        """A fold equal to the one `to_snapshot` saw; ValueError if `data` is not one."""
        codec = _snapshot_codec()
        try:
            magic, log_time, n_decided, n_invalid, n_records = _COUNTS.unpack_from(data)
            if magic != _SNAPSHOT_MAGIC:
                raise ValueError(f"consensus snapshot format {magic[:4]!r}")
            # No horizon while refolding: the records are put back one proposal
            # after another, so log time jumps around; the snapshot's own
            # log time is restored at the end.
            fold = cls(sender, decided_horizon_s=float("inf"))
            at = _COUNTS.size
            fold._decided, at = _unpack_ids(data, at, n_decided)
            fold._invalid, at = _unpack_ids(data, at, n_invalid)
            lengths = struct.unpack_from(f"<{n_records}I", data, at)
            at += 4 * n_records
            for length in lengths:
                if at + length > len(data):
                    raise ValueError("consensus snapshot truncated")
                fold.apply(codec.decode(data[at : at + length]))
                at += length
            if at != len(data):
                raise ValueError("consensus snapshot has trailing bytes")
            fold._log_time = max(fold._log_time, log_time)
            fold.decided_horizon_s = decided_horizon_s
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a consensus snapshot: {exc!r}") from exc
        except SynodError as exc:  # a record that does not decode
            raise ValueError(f"not a consensus snapshot: {exc!r}") from exc
        return fold

    def machine(self, proposal_id: str) -> ProposalMachine | None:
        entry = self._open.get(proposal_id)
        return entry.machine if entry is not None else None

    def due(self, now: float) -> list[Due]:
        """Open ballots whose deadline is at or before `now`, oldest deadline first."""
        found = [
            Due(entry.task_id, pid, entry.machine.ballot, entry.machine.deadline)
            for pid, entry in self._open.items()
            if entry.machine.deadline <= now and entry.machine.decision is None
        ]
        found.sort(key=lambda d: (d.deadline, d.proposal_id))
        return found

    def apply(self, envelope: Envelope[Any]) -> FoldResult:
        self._advance_log_time(wiremap.epoch_seconds(envelope.created_at))
        body = envelope.body
        role = envelope.sender.role
        if isinstance(body, VoteRequested) and role == "planner":
            return self._on_open(envelope, body)
        if isinstance(body, Vote):
            return self._on_vote(envelope, body)
        if isinstance(body, BallotDeadline) and role == "consensus":
            return self._on_marker(envelope, body)
        return FoldResult()

    def _advance_log_time(self, at: float) -> None:
        if at <= self._log_time:
            return
        self._log_time = at
        horizon = at - self.decided_horizon_s
        for ids in (self._decided, self._invalid):
            while ids and next(iter(ids.values())) < horizon:
                pid, _ = ids.popitem(last=False)
                self._decisions.pop(pid, None)

    # Inputs

    def _on_open(self, envelope: Envelope[Any], body: VoteRequested) -> FoldResult:
        pid = body.proposal_id
        if pid in self._decided or pid in self._open or pid in self._invalid:
            return FoldResult()  # the first opening wins; a re-delivery changes nothing
        if wiremap.epoch_seconds(envelope.created_at) < self._log_time - self.decided_horizon_s:
            # Older than the horizon: it may have been decided and forgotten.
            return FoldResult()
        task_id = envelope.task_id or ""
        try:
            proposal = wiremap.proposal_from_wire(
                body, task_id=task_id, opened_at=envelope.created_at
            )
        except ValueError as exc:
            # Remembered, so a later copy with the same id is not retried differently.
            self._invalid[pid] = self._log_time
            return FoldResult(invalid=str(exc))
        machine, outputs = ProposalMachine.open(proposal)
        entry = _Open(machine, body, task_id, {envelope.message_id}, [envelope])
        self._open[pid] = entry
        return self._outputs(entry, envelope, outputs)

    def _on_vote(self, envelope: Envelope[Any], body: Vote) -> FoldResult:
        entry = self._open.get(body.proposal_id)
        if entry is None or envelope.message_id in entry.seen:
            return FoldResult()
        entry.seen.add(envelope.message_id)
        entry.records.append(envelope)
        outputs = entry.machine.step(VoteReceived(wiremap.vote_from_wire(body)))
        return self._outputs(entry, envelope, outputs)

    def _on_marker(self, envelope: Envelope[Any], body: BallotDeadline) -> FoldResult:
        pid, ballot = wiremap.marker_target(body)
        entry = self._open.get(pid)
        if entry is None or envelope.message_id in entry.seen:
            return FoldResult()
        entry.seen.add(envelope.message_id)
        entry.records.append(envelope)
        if entry.machine.ballot != ballot:
            return FoldResult()  # that ballot ended already (a late or second marker)
        now = wiremap.epoch_seconds(envelope.created_at)
        outputs: list[Output] = []
        if body.reachable is not None:
            outputs += entry.machine.step(Reachable(frozenset(body.reachable)))
        if entry.machine.decision is None:
            outputs += entry.machine.step(Tick(now))
        return self._outputs(entry, envelope, outputs)

    # Outputs

    def _outputs(self, entry: _Open, cause: Envelope[Any], outputs: list[Output]) -> FoldResult:
        result = FoldResult()
        # Everything derived from the cause's log record, never from a clock, so
        # a refold publishes byte-identical bodies under the same ids.
        now = wiremap.epoch_seconds(cause.created_at)
        for output in outputs:
            if isinstance(output, RequestVotes):
                body = wiremap.round_request(entry.opening, output, now=now)
                result.publish.append(
                    Publish(
                        "votes",
                        self._envelope(
                            body,
                            entry,
                            cause,
                            request_id(output.proposal_id, output.ballot, output.voters),
                        ),
                    )
                )
            elif isinstance(output, Decided):
                decision = output.decision
                result.decided = decision
                result.publish.append(
                    Publish(
                        "task-events",
                        self._envelope(
                            wiremap.decision_to_wire(decision),
                            entry,
                            cause,
                            decision_message_id(decision.decision_id),
                        ),
                    )
                )
            elif isinstance(output, Reconciled):
                result.reconciled = output
                result.publish.append(
                    Publish(
                        "task-events",
                        self._envelope(
                            wiremap.reconciled_to_wire(output),
                            entry,
                            cause,
                            derived_id(output.decision.decision_id, "reconciled"),
                        ),
                    )
                )
            elif isinstance(output, EquivocationDetected):
                result.equivocations.append(output)
            elif isinstance(output, VoteIgnored):
                result.ignored.append(output)
            elif isinstance(output, NewBallot):
                result.new_ballots.append(output)
        if result.decided is not None:
            pid = result.decided.proposal_id
            if not entry.machine.reconciling:
                del self._open[pid]
            self._decided[pid] = self._log_time
            self._decisions[pid] = result.decided
        if result.reconciled is not None:
            self._open.pop(result.reconciled.decision.proposal_id, None)
        return result

    def _envelope(
        self, body: Any, entry: _Open, cause: Envelope[Any], message_id: str
    ) -> Envelope[Any]:
        return Envelope.new(
            body,
            sender=self.sender,
            task_id=entry.task_id,
            message_id=message_id,
            causes=[cause.message_id],
            created_at=cause.created_at,
            trace=cause.trace,
        )


def _pack_ids(ids: OrderedDict[str, float]) -> bytes:
    """Ids with their log times: count-prefixed lengths, times, then the UTF-8 ids."""
    encoded = [pid.encode() for pid in ids]
    return b"".join(
        [
            struct.pack(f"<{len(encoded)}I", *(len(e) for e in encoded)),
            struct.pack(f"<{len(encoded)}d", *ids.values()),
            *encoded,
        ]
    )


def _unpack_ids(data: bytes, at: int, count: int) -> tuple[OrderedDict[str, float], int]:
    lengths = struct.unpack_from(f"<{count}I", data, at)
    at += 4 * count
    times = struct.unpack_from(f"<{count}d", data, at)
    at += 8 * count
    ids: OrderedDict[str, float] = OrderedDict()
    for length, time in zip(lengths, times, strict=True):
        if at + length > len(data):
            raise ValueError("consensus snapshot truncated")
        ids[data[at : at + length].decode()] = time
        at += length
    return ids, at
