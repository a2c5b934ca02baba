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
  ends the ballot it names, if that ballot is still current;
- everything else (our own round requests included) changes nothing.

Outputs: a round request (VoteRequested to synod.votes) per `RequestVotes`,
and a Decision (to synod.task-events) when the proposal is decided. A decided
proposal answers later records with nothing: its decision was published when
the record that decided it was folded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from synod.core.consensus import (
    Decided,
    Decision,
    EquivocationDetected,
    NewBallot,
    Output,
    ProposalMachine,
    RequestVotes,
    Tick,
    VoteIgnored,
    VoteReceived,
    wiremap,
)
from synod.ids import derived_id
from synod.wire import BallotDeadline, Envelope, Sender, Vote, VoteRequested

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
    invalid: str | None = None  # a planner request no ballot could decide: why


@dataclass
class _Open:
    machine: ProposalMachine
    opening: VoteRequested
    task_id: str
    seen: set[str] = field(default_factory=set)  # message ids folded for this proposal


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
    def __init__(self, sender: Sender) -> None:
        # Outputs name their sender; nothing else about them depends on who folds.
        self.sender = sender
        self._open: dict[str, _Open] = {}
        self._decided: dict[str, Decision] = {}
        self._invalid: set[str] = set()

    @property
    def open_proposals(self) -> tuple[str, ...]:
        return tuple(self._open)

    @property
    def decisions(self) -> dict[str, Decision]:
        return dict(self._decided)

    def machine(self, proposal_id: str) -> ProposalMachine | None:
        entry = self._open.get(proposal_id)
        return entry.machine if entry is not None else None

    def due(self, now: float) -> list[Due]:
        """Open ballots whose deadline is at or before `now`, oldest deadline first."""
        found = [
            Due(entry.task_id, pid, entry.machine.ballot, entry.machine.deadline)
            for pid, entry in self._open.items()
            if entry.machine.deadline <= now
        ]
        found.sort(key=lambda d: (d.deadline, d.proposal_id))
        return found

    def apply(self, envelope: Envelope[Any]) -> FoldResult:
        body = envelope.body
        role = envelope.sender.role
        if isinstance(body, VoteRequested) and role == "planner":
            return self._on_open(envelope, body)
        if isinstance(body, Vote):
            return self._on_vote(envelope, body)
        if isinstance(body, BallotDeadline) and role == "consensus":
            return self._on_marker(envelope, body)
        return FoldResult()

    # Inputs

    def _on_open(self, envelope: Envelope[Any], body: VoteRequested) -> FoldResult:
        pid = body.proposal_id
        if pid in self._decided or pid in self._open or pid in self._invalid:
            return FoldResult()  # the first opening wins; a re-delivery changes nothing
        task_id = envelope.task_id or ""
        try:
            proposal = wiremap.proposal_from_wire(
                body, task_id=task_id, opened_at=envelope.created_at
            )
        except ValueError as exc:
            # Remembered, so a later copy with the same id is not retried differently.
            self._invalid.add(pid)
            return FoldResult(invalid=str(exc))
        machine, outputs = ProposalMachine.open(proposal)
        entry = _Open(machine, body, task_id, {envelope.message_id})
        self._open[pid] = entry
        return self._outputs(entry, envelope, outputs)

    def _on_vote(self, envelope: Envelope[Any], body: Vote) -> FoldResult:
        entry = self._open.get(body.proposal_id)
        if entry is None or envelope.message_id in entry.seen:
            return FoldResult()
        entry.seen.add(envelope.message_id)
        outputs = entry.machine.step(VoteReceived(wiremap.vote_from_wire(body)))
        return self._outputs(entry, envelope, outputs)

    def _on_marker(self, envelope: Envelope[Any], body: BallotDeadline) -> FoldResult:
        pid, ballot = wiremap.marker_target(body)
        entry = self._open.get(pid)
        if entry is None or envelope.message_id in entry.seen:
            return FoldResult()
        entry.seen.add(envelope.message_id)
        if entry.machine.ballot != ballot:
            return FoldResult()  # that ballot ended already (a late or second marker)
        now = wiremap.epoch_seconds(envelope.created_at)
        return self._outputs(entry, envelope, entry.machine.step(Tick(now)))

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
            elif isinstance(output, EquivocationDetected):
                result.equivocations.append(output)
            elif isinstance(output, VoteIgnored):
                result.ignored.append(output)
            elif isinstance(output, NewBallot):
                result.new_ballots.append(output)
        if result.decided is not None:
            del self._open[result.decided.proposal_id]
            self._decided[result.decided.proposal_id] = result.decided
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
