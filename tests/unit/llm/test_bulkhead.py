"""The bulkhead core (bound, first come first served, waiters giving up) and its adapter."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synod.llm.bulkhead import Bulkhead, BulkheadCore, BulkheadFull


def test_admits_up_to_the_limit_then_queues_in_order() -> None:
    core = BulkheadCore(2)
    assert [core.enter(t) for t in range(4)] == [True, True, False, False]
    assert (core.in_use, core.waiting) == (2, 2)
    assert core.leave(1) == [2]
    assert core.leave(0) == [3]
    assert (core.in_use, core.waiting) == (2, 0)


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    core = BulkheadCore(1)
    core.enter(0)
    core.enter(1)
    core.enter(2)
    assert core.abandon(1) == []
    assert core.leave(0) == [2]


def test_an_admitted_waiter_that_gives_up_passes_the_slot_on() -> None:
    # Its wake-up and its deadline came in the same loop turn.
    core = BulkheadCore(1)
    core.enter(0)
    core.enter(1)
    core.enter(2)
    assert core.leave(0) == [1]
    assert core.abandon(1) == [2]


def test_no_overtaking_a_queue() -> None:
    core = BulkheadCore(1)
    core.enter(0)
    core.enter(1)
    assert core.leave(0) == [1]
    assert core.enter(2) is False


def test_bad_limit_and_double_entry() -> None:
    with pytest.raises(ValueError, match="limit"):
        BulkheadCore(0)
    core = BulkheadCore(1)
    core.enter(0)
    with pytest.raises(ValueError, match="already"):
        core.enter(0)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 4),
    ops=st.lists(st.tuples(st.sampled_from(["enter", "leave", "abandon"]), st.integers(0, 9))),
)
def test_never_over_the_limit_and_no_ticket_lost(limit: int, ops: list[tuple[str, int]]) -> None:
    core = BulkheadCore(limit)
    inside: set[int] = set()
    queued: list[int] = []
    for op, ticket in ops:
        if op == "enter" and ticket not in inside and ticket not in queued:
            if core.enter(ticket):
                inside.add(ticket)
            else:
                queued.append(ticket)
        elif op == "leave" and ticket in inside:
            inside.discard(ticket)
            admitted = core.leave(ticket)
            assert admitted == queued[: len(admitted)]  # in arrival order
            del queued[: len(admitted)]
            inside.update(admitted)
        elif op == "abandon" and (ticket in inside or ticket in queued):
            if ticket in queued:
                queued.remove(ticket)
                assert core.abandon(ticket) == []
            else:
                inside.discard(ticket)
                admitted = core.abandon(ticket)
                del queued[: len(admitted)]
                inside.update(admitted)
        assert core.in_use == len(inside) <= limit
        assert core.waiting == len(queued)
        # A free slot never sits next to a waiter.
        assert not (queued and len(inside) < limit)


async def test_adapter_waits_within_the_deadline() -> None:
    bulkhead = Bulkhead("role coder", 1)
    loop = asyncio.get_running_loop()
    async with bulkhead.slot():
        with pytest.raises(BulkheadFull, match="role coder"):
            async with bulkhead.slot(deadline=loop.time() + 0.01):
                pass
        assert bulkhead.core.waiting == 0
    async with bulkhead.slot(deadline=loop.time() + 0.01):
        assert bulkhead.core.in_use == 1
    assert bulkhead.core.in_use == 0


async def test_adapter_hands_the_slot_to_the_next_waiter() -> None:
    bulkhead = Bulkhead("provider sim", 1)
    order: list[int] = []

    async def use(i: int) -> None:
        async with bulkhead.slot():
            order.append(i)
            await asyncio.sleep(0)

    await asyncio.gather(*(use(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert (bulkhead.core.in_use, bulkhead.core.waiting) == (0, 0)
