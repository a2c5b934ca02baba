"""tests.polling: returns what the condition gave, fails with what was awaited."""

from __future__ import annotations

import asyncio

import pytest
from tests.polling import PollTimeout, wait_until, wait_until_async


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([0, None, "", 7, 8])
    assert wait_until(lambda: next(calls), what="a number", interval_s=0.001) == 7


def test_wait_until_fails_with_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(
        PollTimeout, match=r"timed out after 0.05 s waiting for the moon \(last: 0\)"
    ):
        wait_until(lambda: 0, what="the moon", timeout_s=0.05, interval_s=0.01)


def test_an_error_in_the_condition_is_not_swallowed() -> None:
    def dead() -> bool:
        raise RuntimeError("the child exited")

    with pytest.raises(RuntimeError, match="the child exited"):
        wait_until(dead, what="never")


async def test_wait_until_async_takes_plain_and_coroutine_conditions() -> None:
    box: list[int] = []
    asyncio.get_running_loop().call_later(0.02, box.append, 3)
    assert await wait_until_async(lambda: box, what="a value", interval_s=0.005) == [3]

    async def ready() -> str:
        return "yes" if box else ""

    assert await wait_until_async(ready, what="ready") == "yes"
    with pytest.raises(PollTimeout, match="waiting for nothing"):
        await wait_until_async(lambda: None, what="nothing", timeout_s=0.02, interval_s=0.005)
