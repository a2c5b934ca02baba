"""Commit points and their metadata: what a new owner may skip, and nothing else."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.transport.offsets import (
    METADATA_LIMIT,
    PartitionOffsets,
    decode_finished,
    encode_finished,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**12), st.sets(st.integers(1, 5_000), max_size=400))
def test_encoding_round_trips(base: int, rel: set[int]) -> None:
    finished = sorted(base + r for r in rel)
    assert decode_finished(base, encode_finished(base, finished)) == set(finished)


def test_encoding_is_compact_for_the_two_usual_shapes() -> None:
    # A dense run (one slow message holding back many finished ones): run lengths.
    dense = encode_finished(100, list(range(101, 2_101)))
    assert len(dense) < 20
    # Scattered completions: the bitmap wins.
    rng = random.Random(7)
    scattered = sorted(100 + rng.randrange(1, 8_000) for _ in range(3_000))
    assert len(encode_finished(100, scattered)) <= 8_000 // 8 * 4 // 3 + 20


def test_foreign_or_corrupt_metadata_means_nothing_to_skip() -> None:
    assert decode_finished(5, "") == set()
    assert decode_finished(5, "written by another client") == set()
    assert decode_finished(5, "synod1:r:!!!not-base64") == set()
    assert decode_finished(5, "synod1:x:AAAA") == set()


def test_commit_point_is_the_lowest_unfinished_offset() -> None:
    part = PartitionOffsets(start=10)
    for o in range(10, 20):
        assert part.receive(o)
    for o in (11, 12, 15, 19):
        part.finish(o)
    point = part.commit_point()
    assert point.offset == 10
    assert decode_finished(10, point.metadata) == {11, 12, 15, 19}
    part.finish(10)
    point = part.commit_point()
    assert point.offset == 13
    assert decode_finished(13, point.metadata) == {15, 19}
    for o in (13, 14, 16, 17, 18):
        part.finish(o)
    assert part.commit_point().offset == 20
    assert part.commit_point().metadata == ""


def test_a_new_owner_skips_what_the_old_one_finished() -> None:
    old = PartitionOffsets(start=0)
    for o in range(10):
        old.receive(o)
    for o in (0, 1, 4, 5, 8):
        old.finish(o)
    point = old.commit_point()
    new = PartitionOffsets(start=point.offset, skip=decode_finished(point.offset, point.metadata))
    handled = [o for o in range(point.offset, 10) if new.receive(o)]
    assert handled == [2, 3, 6, 7, 9]
    # Until it passes them, the new owner carries the old owner's finished offsets.
    assert decode_finished(2, new.commit_point().metadata) == {4, 5, 8}
    for o in handled:
        new.finish(o)
    assert new.commit_point().offset == 10


def test_metadata_over_the_limit_is_truncated_not_failed() -> None:
    part = PartitionOffsets(start=0, metadata_limit=64)
    for o in range(2_000):
        part.receive(o)
    for o in range(1, 2_000, 2):  # every other one: worst case for run lengths
        part.finish(o)
    point = part.commit_point()
    assert len(point.metadata) <= 64
    assert point.truncated > 0
    assert point.offset == 0
    # What the metadata claims is finished really is.
    assert decode_finished(0, point.metadata) <= set(range(1, 2_000, 2))
    assert part.metadata_pressure() > 1.0


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 300))
def test_nothing_unfinished_is_ever_claimed_finished(rng: random.Random, n: int) -> None:
    part = PartitionOffsets(start=0, metadata_limit=METADATA_LIMIT)
    for o in range(n):
        part.receive(o)
    done: set[int] = set()
    for o in rng.sample(range(n), rng.randrange(n + 1)):
        part.finish(o)
        done.add(o)
        point = part.commit_point()
        below = set(range(point.offset))
        claimed = decode_finished(point.offset, point.metadata)
        assert below <= done
        assert claimed <= done
        assert point.offset not in done or point.offset == n


class _Reference:
    """The obvious model: a min over the sets each time (what PartitionOffsets was)."""

    def __init__(self, start: int, skip: set[int]) -> None:
        self.start, self.next = start, start
        self.pending: set[int] = set()
        self.finished = {o for o in skip if o >= start}

    def receive(self, o: int) -> bool:
        self.next = max(self.next, o + 1)
        if o in self.finished or o < self.start:
            return False
        self.pending.add(o)
        return True

    def finish(self, o: int) -> None:
        if o in self.pending:
            self.pending.discard(o)
            self.finished.add(o)
            point = self.commit_offset()
            self.finished = {f for f in self.finished if f >= point}

    def commit_offset(self) -> int:
        return min(self.pending) if self.pending else self.next

    def pressure(self) -> float:
        point = self.commit_offset()
        finished = sorted(o for o in self.finished if o > point)
        return len(encode_finished(point, finished)) / METADATA_LIMIT


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 50),
    st.sets(st.integers(0, 400), max_size=40),
    st.lists(st.tuples(st.booleans(), st.integers(0, 400)), max_size=300),
)
def test_the_heaps_agree_with_a_min_over_the_sets(
    start: int, skip: set[int], ops: list[tuple[bool, int]]
) -> None:
    offsets, ref = PartitionOffsets(start, set(skip)), _Reference(start, set(skip))
    for receive, o in ops:
        if receive:
            assert offsets.receive(o) == ref.receive(o)
        else:
            offsets.finish(o)
            ref.finish(o)
        assert offsets.commit_offset == ref.commit_offset()
        assert offsets.finished_above == len(ref.finished)
        exact = ref.pressure()
        assert offsets.metadata_pressure() == exact
        # Asked with a threshold: exact at or above it, a bound (never below) under it.
        bounded = offsets.metadata_pressure(exact_above=0.01)
        assert bounded >= exact
        if bounded >= 0.01:
            assert bounded == exact
    assert offsets.commit_point().offset == ref.commit_offset()


def test_a_stretch_finished_behind_one_slow_record_is_not_encoded_to_be_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20,000 finished in order behind offset 0: a span whose bitmap bound passes any
    threshold, but one run. The run-length bound answers, so the pressure is never
    encoded exactly (which sorts every finished offset) and the answer stays small."""
    from synod.transport import offsets as module

    encoded: list[int] = []
    real = module.encode_finished

    def counting(base: int, finished: list[int]) -> str:
        encoded.append(len(finished))
        return real(base, finished)

    monkeypatch.setattr(module, "encode_finished", counting)
    part = PartitionOffsets(0)
    for o in range(20_001):
        part.receive(o)
    for o in range(1, 20_001):
        part.finish(o)
        assert part.metadata_pressure(exact_above=0.6) < 0.05
    assert encoded == []
    assert len(encode_finished(0, list(range(1, 20_001)))) / METADATA_LIMIT < 0.05
