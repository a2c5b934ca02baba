"""When the consensus service writes a deadline marker: sans-I/O, shared with synod.sim.

The fold (`PartitionFold`) never reads a clock: a ballot ends when the fold
reaches a `BallotDeadline` marker on the vote log. Someone has to append those
markers once a ballot's deadline has passed on the wall clock; that is this
module. `Ticker` holds one partition's fold and the ballots it has written a
marker for (`marked`), so each ballot gets one marker per owner; `Reachability`
keeps the freshest supervisor report, whose reachable electorate members the
marker carries (docs/cap.md). Both take the time and the records as inputs
and return the markers to publish; the service and the simulator publish them
their own way, so a bug here shows in the simulation too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from synod.core.consensus import wiremap
from synod.core.consensus.fold import FoldResult, PartitionFold
from synod.wire import BallotDeadline, Envelope, Reachability, Sender

REACHABILITY_FRESH_S = 5.0
"""A supervisor report older than this says nothing about now."""


@dataclass(frozen=True)
class Marker:
    """A deadline marker to append to the vote log; `key` is (proposal, ballot)."""

    key: tuple[str, int]
    envelope: Envelope[BallotDeadline]


@dataclass
class ReachabilityView:
    """The freshest supervisor `Reachability` report heard, and who it names.

    A supervisor cut off from the broker reports nothing, so its silence never
    makes a voter look gone: past `fresh_s` the view names nobody (None).
    """

    fresh_s: float = REACHABILITY_FRESH_S
    latest: tuple[frozenset[str], float] | None = None  # (reachable, written at)

    def heard(self, envelope: Envelope[Any]) -> bool:
        """Take a record of synod.heartbeats; True if it was a supervisor's report."""
        body = envelope.body
        if not isinstance(body, Reachability) or envelope.sender.role != "supervisor":
            return False
        at = wiremap.epoch_seconds(envelope.created_at)
        if self.latest is None or at >= self.latest[1]:
            self.latest = (frozenset(body.reachable), at)
        return True

    def voters(self, electorate: Iterable[str], now: float) -> list[str] | None:
        """The members of `electorate` the freshest report names; None: no fresh report."""
        if self.latest is None or now - self.latest[1] > self.fresh_s:
            return None
        seen = self.latest[0]
        return [voter for voter in electorate if voter in seen]


@dataclass
class Ticker:
    """One votes partition as its owner folds it, and the markers it owes.

    `apply` every record of the partition in offset order (silently or live:
    the caller decides what to publish); `due` at every tick. A marker that
    could not be published is handed back with `failed`, so the next tick
    writes it again.
    """

    fold: PartitionFold
    marked: set[tuple[str, int]] = field(default_factory=set)

    def apply(self, envelope: Envelope[Any]) -> FoldResult:
        result = self.fold.apply(envelope)
        if result.decided is not None:
            # A decided proposal has no more deadlines: forget its markers.
            decided = result.decided.proposal_id
            self.marked = {m for m in self.marked if m[0] != decided}
        return result

    def due(
        self,
        now: float,
        sender: Sender,
        reachability: ReachabilityView | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> list[Marker]:
        """The markers to append now: one per open ballot past its deadline at `now`
        (epoch seconds) that has none yet, oldest deadline first. `new_id` makes
        the message ids (default: random, as `Envelope` does)."""
        markers = []
        for due in self.fold.due(now):
            key = (due.proposal_id, due.ballot)
            if key in self.marked:
                continue
            self.marked.add(key)
            reachable = None
            if reachability is not None:
                machine = self.fold.machine(due.proposal_id)
                electorate = machine.electorate if machine is not None else ()
                reachable = reachability.voters(electorate, now)
            ids = {} if new_id is None else {"message_id": new_id()}
            envelope = Envelope.new(
                wiremap.deadline_marker(due.proposal_id, due.ballot, reachable),
                sender=sender,
                task_id=due.task_id,
                created_at=wiremap.marker_time(now, due.deadline),
                **ids,
            )
            markers.append(Marker(key, envelope))
        return markers

    def failed(self, marker: Marker) -> None:
        """`marker` was not published: the next `due` writes it again."""
        self.marked.discard(marker.key)


__all__ = ["REACHABILITY_FRESH_S", "Marker", "ReachabilityView", "Ticker"]
