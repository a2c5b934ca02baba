"""Which offsets of one partition are done, and what to commit (sans-I/O).

With many messages of a partition in flight at once, they finish out of
order. Kafka stores one committed offset per partition, so we commit the lowest
offset not yet finished, and put the offsets finished beyond it into the
commit's metadata string (as Confluent's Parallel Consumer does). A consumer
that takes the partition over reads that metadata back and skips what is
already done, instead of doing it twice.

The metadata must fit Kafka's `offset.metadata.max.bytes` (4096 by default),
so the finished set is encoded compactly: either a bitmap or run lengths, as
base64, whichever is shorter.
"""

from __future__ import annotations

import base64
import heapq
from dataclasses import dataclass, field

from synod.core.bugs import planted

METADATA_LIMIT = 4096  # the broker's offset.metadata.max.bytes default
_PREFIX = "synod1"


@dataclass(frozen=True)
class CommitPoint:
    offset: int  # the next offset a new owner must start from
    metadata: str  # encoded offsets > `offset` that are already finished
    finished_above: int  # how many offsets the metadata carries (after truncation)
    truncated: int = 0  # finished offsets left out to respect the size limit


# ---------------------------------------------------------------- encoding


def _varint(n: int, out: bytearray) -> None:
    if n < 0:
        raise ValueError("varints here are unsigned")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varints(data: bytes) -> list[int]:
    values, current, shift = [], 0, 0
    for byte in data:
        current |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")
        else:
            values.append(current)
            current, shift = 0, 0
    if shift:
        raise ValueError("truncated varint")
    return values


def encode_finished(base: int, finished: list[int]) -> str:
    """Encode sorted offsets > base. Empty string when there are none."""
    if not finished:
        return ""
    rel = sorted({o - base for o in finished})
    if rel[0] <= 0:
        raise ValueError("finished offsets must be above the commit offset")
    span = rel[-1] + 1
    bitmap = bytearray((span + 7) // 8)
    for r in rel:
        bitmap[r >> 3] |= 1 << (r & 7)
    runs = bytearray()
    # Alternating run lengths starting with unfinished (offset `base` is unfinished).
    prev_end = 0
    i = 0
    while i < len(rel):
        j = i
        while j + 1 < len(rel) and rel[j + 1] == rel[j] + 1:
            j += 1
        _varint(rel[i] - prev_end, runs)
        _varint(j - i + 1, runs)
        prev_end = rel[j] + 1
        i = j + 1
    if len(runs) <= len(bitmap):
        return f"{_PREFIX}:r:{base64.b64encode(bytes(runs)).decode()}"
    return f"{_PREFIX}:b:{base64.b64encode(bytes(bitmap)).decode()}"


def decode_finished(base: int, metadata: str) -> set[int]:
    """Offsets finished above `base`, from metadata we wrote; empty for anything else."""
    if not metadata.startswith(_PREFIX + ":"):
        return set()  # written by another client, or empty: nothing to skip
    try:
        _, kind, payload = metadata.split(":", 2)
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        return set()
    if kind == "b":
        return {base + i for i in range(len(data) * 8) if data[i >> 3] & (1 << (i & 7))}
    if kind == "r":
        try:
            runs = _read_varints(data)
        except ValueError:
            return set()
        out: set[int] = set()
        pos = 0
        for gap, length in zip(runs[::2], runs[1::2], strict=False):
            pos += gap
            out.update(range(base + pos, base + pos + length))
            pos += length
        return out
    return set()


# ---------------------------------------------------------------- state


@dataclass
class PartitionOffsets:
    """Offsets of one partition: received, finished, and the commit point.

    `start` is where consumption starts (the committed offset); `skip` holds
    offsets a previous owner finished beyond it, read from the commit metadata.

    Every operation the consumer does per record or per fetch is O(log n) or
    O(1): the pending and finished offsets are sets with a min-heap beside each
    (entries no longer in the set are dropped when they reach the top), and the
    metadata size is recomputed only when something changed. With a min over a
    set, a planner holding 10^4 tasks in flight spent over half its CPU here.
    """

    start: int
    skip: set[int] = field(default_factory=set)
    metadata_limit: int = METADATA_LIMIT
    _next_expected: int = field(init=False)
    _pending: set[int] = field(init=False, default_factory=set)
    _finished: set[int] = field(init=False, default_factory=set)
    _pending_heap: list[int] = field(init=False, default_factory=list)
    _finished_heap: list[int] = field(init=False, default_factory=list)
    _max_finished: int = field(init=False, default=-1)
    _runs: int = field(init=False, default=0)  # maximal runs of consecutive finished offsets
    _changes: int = field(init=False, default=0)
    _pressure: tuple[int, float] = field(init=False, default=(-1, 0.0))

    def __post_init__(self) -> None:
        self._next_expected = self.start
        # Until the commit point passes them, the previous owner's finished
        # offsets must be carried forward in our own commits.
        for offset in self.skip:
            if offset >= self.start:
                self._add_finished(offset)

    def _add_finished(self, offset: int) -> None:
        if offset not in self._finished:
            self._finished.add(offset)
            heapq.heappush(self._finished_heap, offset)
            self._max_finished = max(self._max_finished, offset)
            self._runs += 1 - self._neighbours(offset)  # a new run, or joins one or two

    def _neighbours(self, offset: int) -> int:
        return (offset - 1 in self._finished) + (offset + 1 in self._finished)

    def receive(self, offset: int) -> bool:
        """A record arrived. False if it was finished by a previous owner: skip it."""
        self._next_expected = max(self._next_expected, offset + 1)
        self._changes += 1
        if offset in self._finished or offset < self.start:
            return False
        if planted("commit_early"):
            self._add_finished(offset)  # done before its handler ran: lost by a crash
            return True
        if offset not in self._pending:
            self._pending.add(offset)
            heapq.heappush(self._pending_heap, offset)
        return True

    def finish(self, offset: int) -> None:
        if offset in self._pending:
            self._pending.discard(offset)
            self._add_finished(offset)
            self._changes += 1
            self._prune()

    def _prune(self) -> None:
        point = self.commit_offset
        heap = self._finished_heap
        while heap and heap[0] < point:
            offset = heapq.heappop(heap)
            if offset in self._finished:
                self._finished.discard(offset)
                self._runs -= 1 - self._neighbours(offset)

    @property
    def commit_offset(self) -> int:
        heap = self._pending_heap
        while heap and heap[0] not in self._pending:
            heapq.heappop(heap)  # finished since it was pushed
        return heap[0] if heap else self._next_expected

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def finished_above(self) -> int:
        return len(self._finished)

    def commit_point(self) -> CommitPoint:
        offset = self.commit_offset
        finished = sorted(o for o in self._finished if o > offset)
        metadata = encode_finished(offset, finished)
        truncated = 0
        # Dropping the highest finished offsets keeps the commit valid: a new
        # owner redoes them (at-least-once) instead of the commit failing.
        while len(metadata) > self.metadata_limit and finished:
            drop = max(1, len(finished) // 8)
            finished = finished[:-drop]
            truncated += drop
            metadata = encode_finished(offset, finished)
        return CommitPoint(offset, metadata, len(finished), truncated)

    def metadata_pressure(self, exact_above: float = 0.0) -> float:
        """Encoded metadata size as a fraction of the limit (1.0 = full).

        The consumer asks this of every lane after every fetch. Below
        `exact_above` the answer may be an upper bound instead (the bitmap's
        size, from the span alone), which is all a threshold under it needs."""
        offset = self.commit_offset
        if not self._finished or self._max_finished <= offset:
            return 0.0
        # Two bounds from counts alone: the bitmap's size (from the span), and the
        # run-length form's (two varints a run, none longer than the span's). The
        # encoding takes the smaller form, so the smaller bound holds. The second
        # keeps a long stretch finished behind one slow record (a few runs over a
        # wide span) off the exact path, which costs a sort of every finished offset.
        span = self._max_finished - offset
        bitmap = (span + 8) // 8  # bytes for offsets offset+1..max
        runs = 2 * self._runs * max(1, (span.bit_length() + 6) // 7)
        size = min(bitmap, runs)
        bound = (len(_PREFIX) + 3 + 4 * ((size + 2) // 3)) / self.metadata_limit
        if bound < exact_above:
            return bound
        changes, pressure = self._pressure
        if changes != self._changes:
            finished = sorted(o for o in self._finished if o > offset)
            pressure = len(encode_finished(offset, finished)) / self.metadata_limit
            self._pressure = (self._changes, pressure)
        return pressure
