"""A provider outage with the fallback on another provider's servers, both ways round.

The real anthropic and openai SDKs over real HTTP to the fake Messages API and
the fake Chat Completions API, through the backend `select_backend()` gives
every agent. Two runs go at once, each on its own pair of servers:

- anthropic first: the Messages API answers 529 for 30 s; the fallback link is
  `openai:gpt-4.1-mini`;
- openai first: the Chat Completions API answers 503 for 30 s; the fallback
  link is `anthropic:claude-haiku-4-5`.

Steps keep arriving before, during and after the outage; a transient failure
is retried after the delay it asks for (as the retry topics do). What must
hold in each run, by counts and states only: the primary's breaker opens,
steps go to the other provider while it is open and their records say so (the
provider and model that answered, the primary skipped with its reason), every
step completes exactly once, and the breaker closes after the outage.
SYNOD_TEST_OUTAGE_S shortens the outage for a quick local run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from synod.core.resilience.registry import BREAKERS
from synod.llm import LLMRequest, LLMSettings, LLMTransientError, ResearchNotes, select_backend
from synod.llm.resilient import ResilientBackend

OUTAGE_S = float(os.environ.get("SYNOD_TEST_OUTAGE_S", "30"))
BEFORE_S = 2.0
STEP_EVERY_S = 0.1
NOTES = '{"summary": "fine", "findings": ["one"]}'


@dataclass
class Run:
    name: str
    primary: tuple[str, str]  # (provider, model)
    fallback: tuple[str, str]
    outage: dict[str, float] = field(
        default_factory=lambda: {"start": float("inf"), "end": float("inf")}
    )
    completed: Counter[int] = field(default_factory=Counter)
    served: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, provider)
    skipped_while_out: Counter[str] = field(default_factory=Counter)  # reason
    primary_hits_during: int = 0
    steps: int = 0

    def phase(self, at: float) -> str:
        if at < self.outage["start"]:
            return "before"
        return "during" if at < self.outage["end"] else "after"


def answering(run: Run, server: Any, provider: str, loop: asyncio.AbstractEventLoop) -> Any:
    """The responder of one server: down during the outage if it is the primary's."""

    def respond(request: Any) -> Any:
        model = request.body["model"]
        out = provider == run.primary[0] and run.phase(loop.time()) == "during"
        if out:
            run.primary_hits_during += 1
        if provider == "anthropic":
            if out:
                return server.error_reply(529, "overloaded_error", "Overloaded")
            return server.message_reply(NOTES, model=model)
        if out:
            return server.openai_error_reply(503, None, "The engine is currently overloaded")
        return server.completion_reply(NOTES, model=model)

    return respond


def settings_for(run: Run, anthropic_url: str, openai_url: str) -> LLMSettings:
    provider, model = run.primary
    return LLMSettings(
        backend=provider,  # type: ignore[arg-type]
        model=model,
        fallback_models=[f"{run.fallback[0]}:{run.fallback[1]}"],
        anthropic_api_key="sk-ant-test",
        anthropic_base_url=anthropic_url,
        openai_api_key="sk-oai-test",
        openai_base_url=f"{openai_url}/v1",
        max_retries=0,
        breaker_window_s=10,
        breaker_min_calls=5,
        breaker_open_for_s=3,
        provider_concurrency={"anthropic": 8, "openai": 8},
    )


async def drive(run: Run, llm: ResilientBackend) -> None:
    loop = asyncio.get_running_loop()
    key = f"{run.primary[0]}/{run.primary[1]}"
    breaker = BREAKERS.breaker(key, llm.breaker_config)

    async def step(i: int) -> None:
        submitted = run.phase(loop.time())
        for attempt in range(100):
            try:
                response = await llm.complete(
                    LLMRequest(
                        role="researcher",
                        task_id=f"{run.name}-{i}",
                        step_id="s1",
                        prompt="notes, please",
                        attempt=attempt,
                        output_model=ResearchNotes,
                        timeout_s=20,
                    )
                )
            except LLMTransientError as exc:
                await asyncio.sleep(min(exc.retry_after_s or 0.2, 2.0))
                continue
            route = response.route
            assert route is not None
            run.completed[i] += 1
            run.served[(submitted, route.provider)] += 1
            if submitted == "during" and route.provider == run.fallback[0]:
                assert route.model == run.fallback[1]
                assert [(s.provider, s.model) for s in route.skipped] == [run.primary]
                run.skipped_while_out[route.skipped[0].reason] += 1
            return
        raise AssertionError(f"{run.name} step {i} never completed")

    t0 = loop.time()
    run.outage.update(start=t0 + BEFORE_S, end=t0 + BEFORE_S + OUTAGE_S)
    jobs: list[asyncio.Task[None]] = []
    try:
        give_up = run.outage["end"] + 60
        while loop.time() < give_up:
            after = loop.time() >= run.outage["end"]
            if (
                after
                and breaker.state(time.monotonic()) == "closed"
                and run.served[("after", run.primary[0])] >= 10
            ):
                break
            jobs.append(asyncio.create_task(step(run.steps)))
            run.steps += 1
            await asyncio.sleep(STEP_EVERY_S)
        await asyncio.wait_for(asyncio.gather(*jobs), 120)
    finally:
        for job in jobs:
            job.cancel()
        await llm.aclose()


@pytest.mark.timeout(OUTAGE_S + 200)
async def test_an_outage_of_either_provider_is_served_by_the_other(
    fake_api: Any, fake_openai: Any
) -> None:
    BREAKERS.clear()
    loop = asyncio.get_running_loop()
    # A second pair of servers for the second run (same classes as the fixtures').
    other_api, other_openai = type(fake_api)(), type(fake_openai)()
    await other_api.start()
    await other_openai.start()
    try:
        runs = [
            Run("anthropic-out", ("anthropic", "claude-sonnet-5-5"), ("openai", "gpt-4.1-mini")),
            Run("openai-out", ("openai", "gpt-4.1"), ("anthropic", "claude-haiku-4-5")),
        ]
        pairs = [(fake_api, fake_openai), (other_api, other_openai)]
        llms = []
        for run, (api, oai) in zip(runs, pairs, strict=True):
            api.responder = answering(run, api, "anthropic", loop)
            oai.responder = answering(run, oai, "openai", loop)
            llms.append(select_backend(settings_for(run, api.url, oai.url), notice=lambda _: None))
        await asyncio.gather(*(drive(run, llm) for run, llm in zip(runs, llms, strict=True)))
    finally:
        await other_api.stop()
        await other_openai.stop()

    for run in runs:
        key = f"{run.primary[0]}/{run.primary[1]}"
        primary = BREAKERS.breaker(key, None)
        print(
            f"\n{run.name}: {run.steps} steps; served {dict(run.served)}; primary hit "
            f"{run.primary_hits_during} times during the outage; fallback steps skipped the "
            f"primary as {dict(run.skipped_while_out)}; breaker "
            + " ".join(f"{t.from_state}->{t.to_state}" for t in primary.transitions)
        )
        # No step lost, none done twice.
        assert sorted(run.completed) == list(range(run.steps)), run.name
        assert set(run.completed.values()) == {1}, run.name
        # The breaker opened during the outage and closed after it.
        kinds = [(t.from_state, t.to_state) for t in primary.transitions]
        assert ("closed", "open") in kinds, run.name
        assert kinds[-1] == ("half_open", "closed"), run.name
        # The other provider served the outage, and the records say the primary was
        # skipped, mostly without a call (its breaker open).
        assert run.served[("during", run.fallback[0])] > 0, run.name
        assert run.served[("during", run.primary[0])] == 0, run.name
        assert run.skipped_while_out["circuit_open"] > 0, run.name
        during = sum(n for (p, _), n in run.served.items() if p == "during")
        assert run.primary_hits_during < during / 2, run.name
        assert run.served[("after", run.primary[0])] >= 10, run.name
