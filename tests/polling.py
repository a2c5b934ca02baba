"""Waiting in tests for what another task, thread or process does: the one polling helper.

A test that needs the broker, a server or a child process to get somewhere
polls a condition until it holds, never sleeps a fixed time. `wait_until`
(blocking) and `wait_until_async` (in a coroutine; the condition may be a
coroutine function too) check it every `interval_s`, return the first truthy
value it gives, and after `timeout_s` fail with what was awaited, so a timed
out test says "timed out after 30 s waiting for reviewer-0 to be quarantined",
not a bare `assert False`. A condition that raises (a child that died) fails
the wait at once with its own error.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class PollTimeout(AssertionError):
    """The awaited condition did not hold in time (an assertion failure for pytest)."""


def _timed_out(what: str, timeout_s: float, last: object) -> PollTimeout:
    return PollTimeout(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


def wait_until(
    condition: Callable[[], T], *, what: str, timeout_s: float = 30.0, interval_s: float = 0.05
) -> T:
    """The first truthy value of `condition()`, polled every `interval_s` for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout_s, value)
        time.sleep(interval_s)


@overload
async def wait_until_async(
    condition: Callable[[], Awaitable[T]],
    *,
    what: str,
    timeout_s: float = ...,
    interval_s: float = ...,
) -> T: ...


@overload
async def wait_until_async(
    condition: Callable[[], T], *, what: str, timeout_s: float = ..., interval_s: float = ...
) -> T: ...


async def wait_until_async(
    condition: Callable[[], Any],
    *,
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
) -> Any:
    """As `wait_until`, without blocking the loop; `condition` may return an awaitable."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout_s, value)
        await asyncio.sleep(interval_s)


__all__ = ["PollTimeout", "wait_until", "wait_until_async"]
