"""Causal delivery on the real broker: the gateway's view reads one task over two topics
(synod.task-events and synod.results). A result whose cause is held back by a paused
producer waits in the causal buffer until the cause is in the view; without the buffer
the view shows the effect first (the same scenario, asserted the other way, so this test
would fail if the buffer did nothing). A cause that never comes is a marked gap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from synod.roles.gateway.view import TaskFeed, ViewConsumer
from synod.transport import Publisher
from synod.transport.admin import ensure_topics
from synod.transport.causal import HANDLING, Stamper
from synod.transport.topics import RESULTS, TASK_EVENTS, topic_name
from synod.wire import Envelope, Sender, StepCompleted, TaskCompleted, TaskSubmitted

PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-1")


class RecordingFeed(TaskFeed):
    """A feed that remembers the order envelopes were applied in."""

    def __init__(self) -> None:
        super().__init__()
        self.order: dict[str, list[str]] = {}  # task -> types, in the order applied

    def apply(
        self, envelope: Envelope[Any], log_offset: int | None = None, causal_gap: Any = frozenset()
    ) -> Any:
        self.order.setdefault(envelope.task_id or "", []).append(envelope.type)
        return super().apply(envelope, log_offset, causal_gap)


async def until(condition: Any, what: str) -> None:
    """Poll (bounded: 30 s) until `condition()` holds."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
async def prefix(bootstrap: str) -> str:
    name = f"causal{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix=name, partitions=3)
    return name


def cause_and_effect(
    prefix: str, task_id: str
) -> tuple[Envelope[Any], Envelope[Any], Envelope[Any]]:
    """A task's submission, a coder's StepCompleted, and the planner's TaskCompleted it caused,
    stamped by the services' own Stamper as they would be."""
    events = topic_name(TASK_EVENTS, prefix)
    planner, coder = Stamper("planner-0"), Stamper("coder-1")
    submitted = planner.stamp(
        events, Envelope.new(TaskSubmitted(goal="g"), sender=PLANNER, task_id=task_id)
    )
    coder.observe(events, submitted)
    token = HANDLING.set(submitted)
    done = coder.stamp(
        events, Envelope.new(StepCompleted(step_id="s1", output="x"), sender=CODER, task_id=task_id)
    )
    HANDLING.reset(token)
    planner.observe(events, done)
    token = HANDLING.set(done)
    completed = planner.stamp(
        events,
        Envelope.new(TaskCompleted(result="r", plan_id="p"), sender=PLANNER, task_id=task_id),
    )
    HANDLING.reset(token)
    assert completed.cause_topics == {done.message_id: events}
    return submitted, done, completed


async def run_view(
    bootstrap: str, prefix: str, *, buffered: bool, send_cause: bool, timeout_s: float = 20.0
) -> tuple[RecordingFeed, ViewConsumer, list[bool], str]:
    """Publish the result first and hold the cause back until the view has read the
    result; note at each poll whether the view showed the task done without its cause."""
    task_id = f"t-{uuid.uuid4().hex[:8]}"
    submitted, done, completed = cause_and_effect(prefix, task_id)
    feed = RecordingFeed()
    view = ViewConsumer(
        bootstrap,
        feed,
        task_events_topic=topic_name(TASK_EVENTS, prefix),
        results_topic=topic_name(RESULTS, prefix),
        causal_timeout_s=timeout_s if buffered else None,
    )
    early: list[bool] = []
    async with Publisher(bootstrap) as publisher:
        await publisher.publish(topic_name(TASK_EVENTS, prefix), submitted)
        await publisher.publish(topic_name(RESULTS, prefix), completed, "json")
        await view.start()
        try:
            # The paused producer: the cause goes out only once the view has read the effect.
            def effect_read() -> bool:
                if view.causal is not None and view.causal.holding(completed.message_id):
                    return True
                return "TaskCompleted" in feed.order.get(task_id, [])

            await until(effect_read, "the view to read the result")
            for _ in range(10):  # a few fetch rounds with the effect in hand
                await asyncio.sleep(0.05)
                shown = feed.index.get(task_id)
                early.append(shown is not None and shown.terminal)
            if send_cause:
                await publisher.publish(topic_name(TASK_EVENTS, prefix), done)
                await publisher.publish(topic_name(TASK_EVENTS, prefix), completed)
            wanted = {"StepCompleted", "TaskCompleted"} if send_cause else {"TaskCompleted"}
            await until(lambda: wanted <= set(feed.order.get(task_id, [])), "both in the view")
        finally:
            await view.stop()
    return feed, view, early, task_id


async def test_an_effect_waits_in_the_buffer_until_its_held_back_cause_arrives(
    bootstrap: str, prefix: str
) -> None:
    feed, view, early, task_id = await run_view(bootstrap, prefix, buffered=True, send_cause=True)
    assert not any(early)  # never shown done while the cause was missing
    assert feed.order[task_id].index("StepCompleted") < feed.order[task_id].index("TaskCompleted")
    assert view.stats.causal_waits == 1
    assert view.stats.causal_gaps == 0


async def test_without_the_buffer_the_effect_is_shown_before_its_cause(
    bootstrap: str, prefix: str
) -> None:
    # The control: the same scenario, no buffer. If this stopped failing the ordering
    # (e.g. the effect could not be read first), the test above would prove nothing.
    feed, _, early, task_id = await run_view(bootstrap, prefix, buffered=False, send_cause=True)
    assert any(early)
    assert feed.order[task_id].index("TaskCompleted") < feed.order[task_id].index("StepCompleted")


async def test_a_cause_that_never_comes_is_a_marked_gap_after_the_bound(
    bootstrap: str, prefix: str
) -> None:
    feed, view, _, task_id = await run_view(
        bootstrap, prefix, buffered=True, send_cause=False, timeout_s=1.0
    )
    assert view.stats.causal_gaps == 1
    task = feed.index.get(task_id)
    assert task is not None
    (completed,) = [e for e in task.events() if e.type == "TaskCompleted"]
    assert len(completed.causal_gap) == 1  # the StepCompleted it went without, named
