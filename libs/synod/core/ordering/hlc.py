"""A hybrid logical clock (Kulkarni et al., 2014): physical time plus a logical counter.

An HLC timestamp is `(wall_ms, logical)`: it is never behind the physical
clock it was read from by more than the skew between hosts, it never goes
backwards, and if e happened-before f then hlc(e) < hlc(f). On the wire it is
one integer, `wall_ms << 16 | logical` (`pack`), so it compares as a number.

The skew bound. A remote timestamp more than `max_skew_ms` ahead of our own
physical clock is a host whose clock is wrong (or a forged record). Adopting
it would drag every clock it reaches into the future, so the receive rule
clamps it to `now + max_skew_ms` and says so (`HLCReading.clamped`, which the
adapter counts and logs). The cost is on that one edge: the receiver's
timestamp may then not exceed the sender's, and `synod check` reports that
edge as an HLC-order violation, naming the skew as the cause. Vector clocks
are unaffected: they carry no time.
"""

from __future__ import annotations

from dataclasses import dataclass

LOGICAL_BITS = 16
LOGICAL_MAX = (1 << LOGICAL_BITS) - 1
DEFAULT_MAX_SKEW_MS = 60_000


def pack(wall_ms: int, logical: int) -> int:
    if wall_ms < 0 or not 0 <= logical <= LOGICAL_MAX:
        raise ValueError(f"HLC parts out of range: wall_ms={wall_ms} logical={logical}")
    return wall_ms << LOGICAL_BITS | logical


def unpack(stamp: int) -> tuple[int, int]:
    if stamp < 0:
        raise ValueError(f"an HLC timestamp is never negative (got {stamp})")
    return stamp >> LOGICAL_BITS, stamp & LOGICAL_MAX


@dataclass(frozen=True)
class HLCReading:
    """What a receive did: the new timestamp, and whether the remote one was clamped."""

    stamp: int
    skew_ms: int  # remote wall time minus our physical time (positive: remote ahead)
    clamped: bool


class HLC:
    """One process's hybrid logical clock; `now_ms` (physical time) is always passed in."""

    def __init__(self, max_skew_ms: int = DEFAULT_MAX_SKEW_MS) -> None:
        if max_skew_ms <= 0:
            raise ValueError("max_skew_ms must be positive")
        self.max_skew_ms = max_skew_ms
        self.wall_ms = 0
        self.logical = 0

    @property
    def stamp(self) -> int:
        return pack(self.wall_ms, self.logical)

    def _advance(self, wall_ms: int, logical: int) -> None:
        if logical > LOGICAL_MAX:  # 65k events in one millisecond: borrow the next one
            wall_ms, logical = wall_ms + 1, 0
        self.wall_ms, self.logical = wall_ms, logical

    def send(self, now_ms: int) -> int:
        """Timestamp a local or send event."""
        if now_ms > self.wall_ms:
            self._advance(now_ms, 0)
        else:
            self._advance(self.wall_ms, self.logical + 1)
        return self.stamp

    def receive(self, remote: int, now_ms: int) -> HLCReading:
        """Merge a received timestamp (the HLC receive rule, with the skew bound)."""
        r_wall, r_logical = unpack(remote)
        skew = r_wall - now_ms
        clamped = skew > self.max_skew_ms
        if clamped:
            r_wall, r_logical = now_ms + self.max_skew_ms, 0
        wall = max(self.wall_ms, r_wall, now_ms)
        if wall == self.wall_ms == r_wall:
            logical = max(self.logical, r_logical) + 1
        elif wall == self.wall_ms:
            logical = self.logical + 1
        elif wall == r_wall:
            logical = r_logical + 1
        else:
            logical = 0
        self._advance(wall, logical)
        return HLCReading(self.stamp, skew, clamped)
