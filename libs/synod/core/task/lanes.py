"""Which worker a hedge copy reaches: its key is picked by the partition it lands on.

A step request travels under a key (its lane, `actions.key_of`); the producer
puts the key in partition `murmur2(key) % partitions`, and the worker group
gives each partition to one worker. A hedge copy under a key of its own lands
wherever its hash says, so it may well reach the very worker that straggles
(a gray failure: one coder's zone is slow). The workers' heartbeats say which
partitions each holds (`Heartbeat.assigned`); `OwnerBook` folds them into an
owner map per step topic, and the planner hands that map to the task core as
an input (`Owners`), as it hands it the time. When the core hedges a step, it
tries the lanes `<step>/<attempt>`, `<step>/<attempt>~1`, ... in that order and
takes the first whose partition a live worker other than the straggler's owns;
the choice is written into the request (`StepRequested.lane`), so a fold of the
log, or a forward repeated after a crash, uses the same key. With no such
worker known (no map yet, one worker, every other one silent) the copy keeps
today's lane, `<step>/<attempt>`.

The limit: the map is as fresh as the heartbeats. Right after a rebalance a
partition may have moved and the copy may reach anyone, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synod.wire.messages import Heartbeat
from synod.wire.partitioner import partition_for

# Suffixes tried before giving up: with one partition of P owned by another
# worker, 256 tries all miss with probability (1 - 1/P)^256 (5e-10 for P = 12).
MAX_LANE_TRIES = 256
FORGET_AFTER_S = 600.0  # an instance silent this long leaves the book


@dataclass(frozen=True)
class Owner:
    """Who holds a partition, by that instance's newest heartbeat."""

    instance: str
    seen_at: datetime  # the heartbeat's created_at (the sender's clock)
    live: bool = True  # False once it said it is draining or stopping


@dataclass(frozen=True)
class OwnerMap:
    """One step topic: its partition count and each partition's owner, where known."""

    partitions: int
    owners: Mapping[int, Owner]


def fresh_owners(m: OwnerMap, now: datetime, fresh_s: float) -> dict[int, str]:
    """Partition -> instance, for the owners heard within `fresh_s` and still running."""
    return {
        p: o.instance
        for p, o in m.owners.items()
        if o.live and 0 <= p < m.partitions and (now - o.seen_at).total_seconds() <= fresh_s
    }


def default_lane(step_id: str, attempt: int) -> str:
    return f"{step_id}/{attempt}"


def hedge_lane(
    task_id: str,
    step_id: str,
    attempt: int,
    owners: OwnerMap | None,
    avoid_keys: Iterable[str],
    now: datetime | None,
    fresh_s: float,
) -> str:
    """The lane of hedge copy `attempt` of `step_id`: one whose key lands on a
    partition a fresh owner holds that owns none of `avoid_keys`' partitions (the
    step's live attempts); "" (today's lane) when no such owner is known."""
    if owners is None or now is None or owners.partitions < 1:
        return ""
    n = owners.partitions
    taken = {partition_for(k.encode(), n) for k in avoid_keys}
    busy = {owners.owners[p].instance for p in taken if p in owners.owners}
    targets = {
        p
        for p, instance in fresh_owners(owners, now, fresh_s).items()
        if instance not in busy and p not in taken
    }
    if not targets:
        return ""
    base = default_lane(step_id, attempt)
    for k in range(MAX_LANE_TRIES):
        lane = base if k == 0 else f"{base}~{k}"
        if partition_for(f"{task_id}/{lane}".encode(), n) in targets:
            return lane
    return ""


class OwnerBook:
    """The workers' heartbeats folded into owner maps (pure: records in, maps out)."""

    def __init__(self) -> None:
        self._newest: dict[str, tuple[datetime, Heartbeat]] = {}
        self.version = 0  # bumped on every change: callers rebuild their maps then

    def apply(self, envelope: Any) -> bool:
        """Fold one record of synod.heartbeats; True if it changed the book."""
        body = getattr(envelope, "body", None)
        if not isinstance(body, Heartbeat):
            return False
        at: datetime = envelope.created_at
        held = self._newest.get(body.instance)
        if held is not None and held[0] >= at:
            return False  # an older heartbeat, read late
        self._newest[body.instance] = (at, body)
        self.version += 1
        return True

    def owner_map(self, topic: str, partitions: int, now: datetime | None = None) -> OwnerMap:
        """`topic`'s owners: for a partition two instances claim (a rebalance under
        way), the one heard last. `now`: forget instances silent FORGET_AFTER_S."""
        if now is not None:
            gone = [
                i
                for i, (at, _) in self._newest.items()
                if (now - at).total_seconds() > FORGET_AFTER_S
            ]
            for instance in gone:
                del self._newest[instance]
        owners: dict[int, Owner] = {}
        for instance, (at, beat) in sorted(self._newest.items()):
            live = beat.state in ("starting", "running")
            for p in beat.assigned.get(topic, ()):
                known = owners.get(p)
                if known is None or known.seen_at < at:
                    owners[p] = Owner(instance, at, live)
        return OwnerMap(partitions, owners)
