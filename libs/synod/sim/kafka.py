"""An in-memory model of the Kafka Synod relies on, in virtual time.

What it has: topics with partitions, records placed by key with the one
murmur2 partitioner (`synod.transport.partitioner`), per-partition order with
a visibility delay (records of different partitions may overtake each other,
never within one), consumer groups with the range assignor, generations and
rebalances, committed offsets with metadata (fenced by generation, as a
`CommitFailedError` would be), and a broker that can be down.

What it leaves out: replication and ISR, transactions, retention and
compaction (nothing is ever deleted), quotas, and the group coordinator's own
timing (a rebalance is instant once the membership changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synod.transport.partitioner import partition_for

TP = tuple[str, int]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    visible_at: float


@dataclass(frozen=True)
class Committed:
    offset: int
    metadata: str


@dataclass
class Group:
    name: str
    topics: tuple[str, ...]
    members: list[str] = field(default_factory=list)
    generation: int = 0
    assignment: dict[str, list[TP]] = field(default_factory=dict)
    committed: dict[TP, Committed] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One member's side of a rebalance."""

    member: str
    revoked: tuple[TP, ...]
    assigned: tuple[TP, ...]


class Broker:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.logs: dict[str, list[list[Record]]] = {
            name: [[] for _ in range(n)] for name, n in sorted(partitions.items())
        }
        self.groups: dict[str, Group] = {}
        self.produced = 0

    def partitions(self, topic: str) -> int:
        return len(self.logs[topic])

    def append(
        self, topic: str, key: bytes, value: bytes, now: float, delay: float, partition_key: bytes
    ) -> Record:
        """Append; the record is readable at `now + delay`, never before an earlier one
        of its partition (a partition is one ordered log)."""
        partition = partition_for(partition_key, self.partitions(topic))
        log = self.logs[topic][partition]
        visible = now + delay
        if log:
            visible = max(visible, log[-1].visible_at)
        record = Record(topic, partition, len(log), key, value, visible)
        log.append(record)
        self.produced += 1
        return record

    def read(self, tp: TP, offset: int, now: float) -> Record | None:
        log = self.logs[tp[0]][tp[1]]
        if offset < len(log) and log[offset].visible_at <= now:
            return log[offset]
        return None

    def next_visible(self, tp: TP, offset: int) -> float | None:
        log = self.logs[tp[0]][tp[1]]
        return log[offset].visible_at if offset < len(log) else None

    def end(self, tp: TP) -> int:
        return len(self.logs[tp[0]][tp[1]])

    # ------------------------------------------------------------ groups

    def group(self, name: str, topics: tuple[str, ...]) -> Group:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name, topics)
        return group

    def join(self, group: Group, member: str) -> list[Change]:
        if member in group.members:
            return []
        group.members.append(member)
        return self._rebalance(group)

    def leave(self, group: Group, member: str) -> list[Change]:
        if member not in group.members:
            return []
        group.members.remove(member)
        return self._rebalance(group)

    def _rebalance(self, group: Group) -> list[Change]:
        """The range assignor: per topic, members by id take contiguous runs of
        partitions, so partition p of every topic goes to the same member."""
        group.generation += 1
        members = sorted(group.members)
        new: dict[str, list[TP]] = {m: [] for m in members}
        if members:
            for topic in group.topics:
                n = self.partitions(topic)
                per, extra = divmod(n, len(members))
                start = 0
                for i, m in enumerate(members):
                    count = per + (1 if i < extra else 0)
                    new[m].extend((topic, p) for p in range(start, start + count))
                    start += count
        changes = []
        for m in sorted(set(group.assignment) | set(new)):
            before, after = set(group.assignment.get(m, [])), set(new.get(m, []))
            if before != after or m in new:
                changes.append(
                    Change(m, tuple(sorted(before - after)), tuple(sorted(after - before)))
                )
        group.assignment = new
        return changes

    def commit(
        self, group: Group, member: str, generation: int, tp: TP, offset: int, metadata: str
    ) -> bool:
        """Store a commit; refused from a member that no longer owns the partition."""
        if generation != group.generation or tp not in group.assignment.get(member, []):
            return False
        group.committed[tp] = Committed(offset, metadata)
        return True

    def committed(self, group: Group, tp: TP) -> Committed:
        return group.committed.get(tp, Committed(0, ""))
