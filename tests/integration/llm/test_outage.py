"""A provider outage: the primary model answers 529 for 30 seconds, the fallback stays up.

The real SDK over real HTTP to the fake Messages API, through the backend
`select_backend()` gives every agent. Steps keep arriving before, during and
after the outage; each runs as a worker and a retry topic would run it (a
transient failure is retried after the delay the error asks for). What must
hold, by counts and states only:

- the primary's breaker opens, and while it is open steps go to the fallback;
- the primary gets far fewer requests during the outage than there are steps
  (the breaker fails fast instead of sending every step to a dead model);
- the breaker closes again after the outage (a half-open probe succeeds);
- every step completes exactly once, none is lost.

The timeline (outage, breaker transitions, steps per model) is printed.
SYNOD_TEST_OUTAGE_S shortens the outage for a quick local run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import pytest

from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMRequest, LLMSettings, LLMTransientError, ResearchNotes, select_backend

PRIMARY, FALLBACK = "claude-sonnet-5-5", "claude-haiku-4-5"
OUTAGE_S = float(os.environ.get("SYNOD_TEST_OUTAGE_S", "30"))
BEFORE_S = 2.0  # healthy traffic first, so the breaker opens on a real failure rate
STEP_EVERY_S = 0.1
NOTES = '{"summary": "fine", "findings": ["one"]}'


@pytest.mark.timeout(OUTAGE_S + 180)
async def test_outage_opens_the_breaker_fallback_serves_breaker_closes_no_step_lost(
    fake_api: Any,
) -> None:
    BREAKERS.clear()
    loop = asyncio.get_running_loop()
    outage = {"start": float("inf"), "end": float("inf")}
    seen: Counter[tuple[str, str, str]] = Counter()  # (model, "529" or "200", phase)
    primary_529_at: list[float] = []

    def phase(at: float) -> str:
        if at < outage["start"]:
            return "before"
        return "during" if at < outage["end"] else "after"

    def respond(request: Any) -> Any:
        model = request.body["model"]
        now = loop.time()
        if model == PRIMARY and phase(now) == "during":
            seen[(model, "529", phase(now))] += 1
            primary_529_at.append(now)
            return fake_api.error_reply(529, "overloaded_error", "Overloaded")
        seen[(model, "200", phase(now))] += 1
        return fake_api.message_reply(NOTES, model=model)

    fake_api.responder = respond
    settings = LLMSettings(
        backend="anthropic",
        anthropic_api_key="sk-test",
        anthropic_base_url=fake_api.url,
        model=PRIMARY,
        fallback_models=[FALLBACK],
        max_retries=0,  # the SDK's own retries would only slow each 529 down here
        breaker_window_s=10,
        breaker_min_calls=5,
        breaker_open_for_s=3,
        provider_concurrency={"anthropic": 8},
    )
    llm = select_backend(settings, notice=lambda line: None)
    t0 = loop.time()
    outage.update(start=t0 + BEFORE_S, end=t0 + BEFORE_S + OUTAGE_S)

    completed: Counter[int] = Counter()
    served: Counter[tuple[str, str]] = Counter()  # (phase submitted, model)
    reasons: Counter[str] = Counter()
    attempts: Counter[int] = Counter()

    async def step(i: int) -> None:
        submitted = phase(loop.time())
        for attempt in range(100):
            try:
                response = await llm.complete(
                    LLMRequest(
                        role="researcher",
                        task_id=f"task-{i}",
                        step_id="s1",
                        prompt="notes, please",
                        attempt=attempt,
                        output_model=ResearchNotes,
                        timeout_s=20,
                    )
                )
            except LLMTransientError as exc:
                reasons[exc.reason] += 1
                await asyncio.sleep(min(exc.retry_after_s or 0.2, 2.0))  # the retry topic's wait
                continue
            completed[i] += 1
            attempts[attempt] += 1
            served[(submitted, response.model)] += 1
            return
        raise AssertionError(f"step {i} never completed")

    primary = BREAKERS.breaker(f"anthropic/{PRIMARY}", llm.breaker_config)
    jobs: list[asyncio.Task[None]] = []
    i = 0
    try:
        # Submit through the outage, then until the breaker has closed again and
        # some steps ran on the recovered primary; bounded either way.
        give_up = outage["end"] + 60
        while loop.time() < give_up:
            after = loop.time() >= outage["end"]
            if after and primary.state(time.monotonic()) == "closed" and served_after(served) >= 20:
                break
            jobs.append(asyncio.create_task(step(i)))
            i += 1
            await asyncio.sleep(STEP_EVERY_S)
        await asyncio.wait_for(asyncio.gather(*jobs), 120)
    finally:
        for job in jobs:
            job.cancel()
        await llm.aclose()

    clock_offset = time.monotonic() - loop.time()  # breakers use time.monotonic
    print_timeline(t0, clock_offset, outage, BREAKERS, served, seen, reasons, attempts, i)

    # No step lost, none done twice.
    assert sorted(completed) == list(range(i))
    assert set(completed.values()) == {1}
    # The breaker opened during the outage and closed after it.
    kinds = [(t.from_state, t.to_state) for t in primary.transitions]
    assert ("closed", "open") in kinds
    assert kinds[-1] == ("half_open", "closed")
    closed_at = primary.transitions[-1].at - clock_offset
    assert closed_at >= outage["end"]  # no probe can succeed while the outage lasts
    assert primary.state(time.monotonic()) == "closed"
    # Steps went to the fallback while the primary was out, and back after.
    assert served[("during", FALLBACK)] > 0
    assert served[("during", PRIMARY)] == 0
    assert served_after(served) >= 20
    # Fail fast: far fewer requests reached the dead primary than steps arrived.
    during = sum(n for (p, _), n in served.items() if p == "during")
    assert seen[(PRIMARY, "529", "during")] < during / 2
    # Once open, the primary only got its probes (one per half-open period), plus
    # at most the calls already in flight when it opened (the provider bulkhead).
    opened_at = next(t.at for t in primary.transitions if t.to_state == "open") - clock_offset
    periods = sum(
        1
        for t in primary.transitions
        if t.to_state == "half_open" and t.at - clock_offset < outage["end"]
    )
    after_open = sum(1 for at in primary_529_at if at > opened_at)
    limit = (
        periods * llm.breaker_config.half_open_probes + settings.provider_concurrency["anthropic"]
    )
    assert after_open <= limit


def served_after(served: Counter[tuple[str, str]]) -> int:
    return served[("after", PRIMARY)]


def print_timeline(
    t0: float,
    clock_offset: float,
    outage: dict[str, float],
    board: Any,
    served: Counter[tuple[str, str]],
    seen: Counter[tuple[str, str, str]],
    reasons: Counter[str],
    attempts: Counter[int],
    steps: int,
) -> None:
    print(f"\n--- provider outage timeline ({steps} steps, outage {OUTAGE_S:g} s) ---")
    events = [
        (outage["start"] - t0, f"outage starts: {PRIMARY} answers 529"),
        (outage["end"] - t0, "outage ends"),
    ]
    for key in (f"anthropic/{PRIMARY}", f"anthropic/{FALLBACK}"):
        for tr in board.breaker(key, None).transitions:
            events.append(
                (
                    tr.at - clock_offset - t0,
                    f"{key}: {tr.from_state} -> {tr.to_state} ({tr.reason})",
                )
            )
    for at, what in sorted(events):
        print(f"  t=+{at:7.2f}s  {what}")
    print("  steps served, by phase submitted and model:")
    for (ph, model), n in sorted(served.items()):
        print(f"    {ph:7s} {model:20s} {n}")
    print("  requests the server saw (model, status, phase):")
    for (model, status, ph), n in sorted(seen.items()):
        print(f"    {model:20s} {status} {ph:7s} {n}")
    print(f"  transient errors the steps saw, by reason: {dict(reasons)}")
    print(f"  attempts per step (0 = first try): {dict(sorted(attempts.items()))}")
