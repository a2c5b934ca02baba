"""Stamping on the way out, merging on the way in: the clocks every service puts on
its envelopes, and the causes it names for the message it was handling."""

from __future__ import annotations

import logging

import pytest

from synod.core.ordering import Order, compare, unpack
from synod.transport.causal import HANDLING, HLC_CLAMPED, Stamper
from synod.wire import Envelope, Sender, StepCompleted, StepRequested, TaskSubmitted

PLANNER = Sender(role="planner", instance="planner-0")
CODER = Sender(role="coder", instance="coder-1")


def request() -> Envelope[StepRequested]:
    body = StepRequested(step_id="s1", role="coder", title="t", instructions="do")
    return Envelope.new(body, sender=PLANNER, task_id="t1")


def test_a_send_gets_a_vclock_lamport_and_hlc() -> None:
    stamper = Stamper("planner-0", clock_ms=lambda: 1_000)
    out = stamper.stamp("synod.task-events", request())
    assert out.vclock == {"planner-0": 1}
    assert out.lamport == 1
    assert unpack(out.hlc) == (1_000, 0)
    again = stamper.stamp("synod.task-events", request())
    assert again.vclock == {"planner-0": 2}
    assert again.hlc > out.hlc


def test_a_copy_sent_on_keeps_its_clocks() -> None:
    stamper = Stamper("planner-0", clock_ms=lambda: 1_000)
    logged = stamper.stamp("synod.task-events", request())
    forwarded = stamper.stamp("synod.steps.coder", logged)
    assert forwarded is logged


def test_what_is_sent_while_handling_names_the_handled_message_and_dominates_it() -> None:
    planner = Stamper("planner-0", clock_ms=lambda: 1_000)
    coder = Stamper("coder-1", clock_ms=lambda: 1_005)
    asked = planner.stamp("synod.task-events", request())
    coder.observe("synod.steps.coder", asked)
    token = HANDLING.set(asked)
    try:
        done = coder.stamp(
            "synod.task-events",
            Envelope.new(StepCompleted(step_id="s1", output="x"), sender=CODER, task_id="t1"),
        )
    finally:
        HANDLING.reset(token)
    assert done.causes == [asked.message_id]
    assert done.cause_topics == {asked.message_id: "synod.steps.coder"}
    assert compare(asked.vclock, done.vclock) == Order.BEFORE
    assert done.vclock == {"planner-0": 1, "coder-1": 1}
    assert done.lamport > asked.lamport
    assert done.hlc > asked.hlc


def test_a_message_is_not_its_own_cause() -> None:
    # The planner logs a client's submission under the same id while handling it.
    planner = Stamper("planner-0", clock_ms=lambda: 1_000)
    submitted = Envelope.new(TaskSubmitted(goal="g"), sender=CODER, task_id="t1")
    planner.observe("synod.tasks", submitted)
    token = HANDLING.set(submitted)
    try:
        logged = planner.stamp("synod.task-events", submitted)
    finally:
        HANDLING.reset(token)
    assert logged.causes == []
    assert logged.lamport == 1  # a client's task without clocks is stamped here


def test_a_clock_beyond_the_skew_bound_is_clamped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    future = Stamper("coder-9", clock_ms=lambda: 10_000_000).stamp("synod.task-events", request())
    here = Stamper("planner-0", max_skew_ms=1_000, clock_ms=lambda: 1_000)
    before = HLC_CLAMPED._value.get()
    with caplog.at_level(logging.WARNING, logger="synod.ordering"):
        here.observe("synod.task-events", future)
    assert HLC_CLAMPED._value.get() == before + 1
    assert "clock skew beyond the bound" in caplog.text
    assert unpack(here.book.hlc.stamp)[0] == 2_000
