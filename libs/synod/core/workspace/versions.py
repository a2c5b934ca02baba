"""Version vectors: which writes a version of a file has seen.

A version vector maps a writer to a counter. Version `a` covers `b` when every
counter of `a` is at least `b`'s: whoever wrote `a` had seen everything in `b`.
When neither covers the other the two were written concurrently, and one of
them would be lost if the other simply replaced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class VersionVector:
    """Immutable writer -> counter map; a missing writer counts 0.

    Entries are kept sorted and without zeros, so equal vectors compare and hash equal.
    """

    entries: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for writer, counter in self.entries:
            if counter < 0:
                raise ValueError(f"negative counter {counter} for writer '{writer}'")
            if writer in seen:
                raise ValueError(f"writer '{writer}' appears twice")
            seen[writer] = counter
        object.__setattr__(self, "entries", tuple(sorted((w, c) for w, c in seen.items() if c)))

    @classmethod
    def of(cls, counters: Mapping[str, int] | None = None) -> VersionVector:
        return cls(tuple((counters or {}).items()))

    def get(self, writer: str) -> int:
        for w, c in self.entries:
            if w == writer:
                return c
        return 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.entries)

    def covers(self, other: VersionVector) -> bool:
        """Every write `other` has seen, this one has seen too (self >= other)."""
        mine = self.as_dict()
        return all(mine.get(w, 0) >= c for w, c in other.entries)

    def concurrent(self, other: VersionVector) -> bool:
        return not self.covers(other) and not other.covers(self)

    def join(self, other: VersionVector) -> VersionVector:
        merged = self.as_dict()
        for w, c in other.entries:
            merged[w] = max(merged.get(w, 0), c)
        return VersionVector.of(merged)

    def with_entry(self, writer: str, counter: int) -> VersionVector:
        return VersionVector.of({**self.as_dict(), writer: counter})

    def __str__(self) -> str:
        return "{" + ", ".join(f"{w}:{c}" for w, c in self.entries) + "}"
