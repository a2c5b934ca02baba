"""The blackboard CRDT: an observed-remove map from keys to sets of facts.

Each fact is an add tagged with its own unique `fact_id` (derived from the
request that published it and the key, so a redelivery is the same add). A
fact also names the fact ids its writer had observed on the same key when it
wrote: those tags are removed (tombstoned). What a key holds is every fact
added and not removed: one fact when writers saw each other (an overwrite),
several when they wrote concurrently (a conflict, kept, never silently lost).

The state is two grow-only sets, the adds (by tag) and the tombstones, and
`merge` is their union. Union is commutative, associative and idempotent, so
the state is a join semilattice: any replicas that received the same records,
in any order and any number of times, hold the same blackboard. A tombstone
may arrive before the add it removes (delivery across attempts, redelivery):
it waits in `removed` and the add, when it comes, is born removed.

Two adds with one tag but different content cannot come from this system (the
tag is derived from the record's id); if a forged pair is merged anyway the
larger one in `Fact`'s order is kept, on every replica, so the laws still hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, order=True)
class Fact:
    """One published fact: `key` holds `value`, as `step_id`'s attempt `attempt` saw it.

    `confidence` (0..1) is the writer's own; `resolve_key` reads it.
    """

    fact_id: str
    key: str
    value: str
    confidence: float = 1.0
    step_id: str = ""
    attempt: int = 0
    author: str = ""


def _frozen(adds: Mapping[str, Fact]) -> Mapping[str, Fact]:
    return MappingProxyType(dict(sorted(adds.items())))


@dataclass(frozen=True)
class Blackboard:
    """An immutable observed-remove map of facts; every operation returns a new board."""

    adds: Mapping[str, Fact] = field(default_factory=lambda: _frozen({}))
    removed: frozenset[str] = frozenset()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blackboard):
            return NotImplemented
        return dict(self.adds) == dict(other.adds) and self.removed == other.removed

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.adds.items())), self.removed))

    # ------------------------------------------------------------ operations

    @staticmethod
    def of(fact: Fact, observed: Iterable[str] = ()) -> Blackboard:
        """The board of one operation: `fact` added, the facts its writer observed removed."""
        removed = frozenset(t for t in observed if t != fact.fact_id)
        return Blackboard(_frozen({fact.fact_id: fact}), removed)

    def add(self, fact: Fact, observed: Iterable[str] = ()) -> Blackboard:
        """This board with one more operation applied (a merge with `Blackboard.of`)."""
        return self.merge(Blackboard.of(fact, observed))

    def merge(self, other: Blackboard) -> Blackboard:
        """The join of two boards: the union of their adds and of their tombstones."""
        adds = dict(self.adds)
        for tag, fact in other.adds.items():
            mine = adds.get(tag)
            adds[tag] = fact if mine is None else max(mine, fact)
        return Blackboard(_frozen(adds), self.removed | other.removed)

    # ------------------------------------------------------------ queries

    def live(self) -> tuple[Fact, ...]:
        """Every fact added and not removed, ordered by key then tag."""
        out = [f for tag, f in self.adds.items() if tag not in self.removed]
        return tuple(sorted(out, key=lambda f: (f.key, f.fact_id)))

    def ids(self) -> frozenset[str]:
        """The tags of the live facts: what a reader of this board has observed."""
        return frozenset(f.fact_id for f in self.live())

    def keys(self) -> tuple[str, ...]:
        return tuple(sorted({f.key for f in self.live()}))

    def values(self, key: str) -> tuple[Fact, ...]:
        """The live facts of `key`: one after an overwrite, several after concurrent writes."""
        return tuple(f for f in self.live() if f.key == key)

    def conflicts(self) -> dict[str, tuple[Fact, ...]]:
        """Keys whose live facts say different values (concurrent writes not reconciled)."""
        out: dict[str, tuple[Fact, ...]] = {}
        for key in self.keys():
            facts = self.values(key)
            if len({f.value for f in facts}) > 1:
                out[key] = facts
        return out

    def resolved(self) -> dict[str, Fact]:
        """Each key's winning fact by `resolve_key` (a read: nothing is removed)."""
        return {key: resolve_key(self.values(key)) for key in self.keys()}

    def __len__(self) -> int:
        return len(self.live())


def resolve_key(facts: Iterable[Fact]) -> Fact:
    """The one rule that picks a key's value among concurrent facts: the highest
    confidence, then the smallest tag (any fixed total order would do; this one
    is the same on every replica and needs no clock)."""
    ranked = sorted(facts, key=lambda f: (-f.confidence, f.fact_id))
    if not ranked:
        raise ValueError("resolve_key needs at least one fact")
    return ranked[0]
