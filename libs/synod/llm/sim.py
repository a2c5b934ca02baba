"""The simulated backend: offline, deterministic, and as unreliable as its fault profile says.

Every call is a pure function of (seed, task_id, step_id, attempt, role): the
fault, the latency and the text. Run it twice and the same things happen, which
is what makes a simulated failure replayable.

Faults (at most one per call, drawn with the profile's rates):
- transient: after the latency, `LLMTransientError` (half `rate_limited` with a
  `retry_after_s` hint, half `overloaded`).
- timeout: waits `timeout_s` (the request's, else the backend's) with the
  injected sleep, then `LLMTimeoutError`. With a virtual or instant sleep it
  therefore raises at once in wall-clock time, having spent `timeout_s` of
  virtual time.
- malformed: the first reply fails validation; the repair turn succeeds with
  the profile's `repair_success` probability, else `LLMPermanentError`. Without
  an output model the malformed text is returned as is.
- wrong: a plausible but wrong output (see `synod.llm.simcontent` for markers).
- loop: the output attempt 0 of this step would have given, byte for byte, at
  whatever attempt number, as a model stuck in a loop repeats itself.
- hang: never returns; the caller's deadline must cancel it. Not affected by
  the injected sleep, since no amount of (virtual) time ends a hang.
- inject: the right output, with a prompt injection in its free text (research
  findings, the code's comments and explanation, a review's rationale, a plan's
  rationale): see `synod.llm.simcontent.INJECTION`.
- Step ids matching one of `wrong_steps` (fnmatch patterns) always get `wrong`.
- crash: calls the `crash` hook, by default `os._exit(137)` (as if SIGKILLed).
  If the hook returns, `SimulatedCrash` is raised: a BaseException, so agent
  code that handles errors cannot mistake it for one. A crash models the
  process dying (OOM, a lost node), not the request: its draw also takes the
  backend's `life` (the process's pid when run as a service, 0 in-process), so
  a restarted process does not die on the same request again, while a run
  with a fixed `life` stays reproducible. Without that, every crash would be
  a query of death that kills each process handling the request, forever.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from synod.llm import simcontent
from synod.llm.errors import LLMTimeoutError, LLMTransientError
from synod.llm.faults import PROFILES, FaultName, FaultProfile, Latency
from synod.llm.structured import RawReply, Turn, complete_structured
from synod.llm.types import LLMRequest, LLMResponse
from synod.wire.messages import Usage

Sleep = Callable[[float], Awaitable[None]]
CrashHook = Callable[[str], None]

DEFAULT_TIMEOUT_S = 60.0
CRASH_EXIT_CODE = 137  # 128 + SIGKILL, what a supervisor sees for kill -9


class SimulatedCrash(BaseException):
    """Raised when a test's crash hook returns instead of ending the process."""


def exit_process(reason: str) -> NoReturn:
    os._exit(CRASH_EXIT_CODE)


@dataclass(frozen=True, slots=True)
class SimDecision:
    """What the simulation does for one request, before it does it."""

    fault: FaultName | None
    latency_s: float


class SimBackend:
    """An `LLMBackend` that needs no network and no key."""

    name = "sim"

    def __init__(
        self,
        *,
        seed: int = 0,
        profile: FaultProfile = PROFILES["none"],
        latency: Latency | None = None,
        model: str = "sim",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sleep: Sleep = asyncio.sleep,
        crash: CrashHook = exit_process,
        life: int = 0,
        slow_first_attempts: Mapping[str, float] | None = None,
        prompt_log: str = "",
        wrong_steps: Sequence[str] = (),
    ) -> None:
        self.seed = seed
        self.life = life
        self.profile = profile
        self.latency = latency if latency is not None else profile.latency
        self.model = model
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._crash = crash
        # step id -> extra latency of its attempt 0: a straggler on demand.
        self.slow_first_attempts = dict(slow_first_attempts or {})
        self.prompt_log = prompt_log
        # step-id patterns answered wrong on demand (a juror that rejects, a coder
        # that errs), whatever the profile draws.
        self.wrong_steps = tuple(wrong_steps)

    def describe(self) -> str:
        return f"fault profile {self.profile.name}, seed {self.seed}, latency {self.latency.spec()}"

    def _fault_rng(self, request: LLMRequest) -> random.Random:
        key = (self.seed, "fault", request.task_id, request.step_id, request.attempt, request.role)
        return random.Random(simcontent.stable_seed(*key))

    def _content_rng(self, request: LLMRequest, attempt: int) -> random.Random:
        key = (self.seed, "content", request.task_id, request.step_id, attempt, request.role)
        return random.Random(simcontent.stable_seed(*key))

    def decide(self, request: LLMRequest) -> SimDecision:
        """The fault and first latency `complete` will use for this request."""
        return self._decide(self._fault_rng(request))

    def _decide(self, rng: random.Random) -> SimDecision:
        fault = self.profile.choose(rng.random())
        return SimDecision(fault, self.latency.draw(rng))

    def _crashes(self, request: LLMRequest) -> bool:
        key = (self.seed, "crash", request.task_id, request.step_id, request.attempt, self.life)
        return random.Random(simcontent.stable_seed(*key)).random() < self.profile.rate("crash")

    async def complete(self, request: LLMRequest) -> LLMResponse:
        rng = self._fault_rng(request)
        decision = self._decide(rng)
        if decision.fault == "crash" or self._crashes(request):
            # The crash draw is separate (see the module doc); the fault draw's
            # own "crash" share means no fault, so the other rates stay exact.
            decision = SimDecision("crash" if self._crashes(request) else None, decision.latency_s)
        if any(fnmatch.fnmatchcase(request.step_id, p) for p in self.wrong_steps):
            decision = SimDecision("wrong", decision.latency_s)
        fault = decision.fault
        model = request.model or self.model
        where = f"sim {request.role} {request.task_id}/{request.step_id}#{request.attempt}"

        if fault == "hang":
            await asyncio.get_running_loop().create_future()
        if fault == "timeout":
            timeout_s = request.timeout_s or self.timeout_s
            await self._sleep(timeout_s)
            raise LLMTimeoutError(f"{where}: no reply within {timeout_s:g} s", model=model)
        slow_s = self.slow_first_attempts.get(request.step_id, 0.0) if request.attempt == 0 else 0.0
        await self._sleep(decision.latency_s + slow_s)
        if fault == "crash":
            self._crash(f"{where}: simulated crash")
            raise SimulatedCrash(f"{where}: simulated crash")
        if fault == "transient":
            if rng.random() < 0.5:
                raise LLMTransientError(
                    f"{where}: simulated 429",
                    reason="rate_limited",
                    model=model,
                    status=429,
                    retry_after_s=round(rng.uniform(0.1, 2.0), 3),
                )
            raise LLMTransientError(
                f"{where}: simulated 529", reason="overloaded", model=model, status=529
            )

        content_attempt = 0 if fault == "loop" else request.attempt
        output = simcontent.nominal(
            request, self._content_rng(request, content_attempt), wrong=fault == "wrong"
        )
        if fault == "inject":
            output = simcontent.injected(output, request)
        good = simcontent.render(output, structured=request.output_model is not None)
        spent = [decision.latency_s + slow_s]

        async def generate(system: str, turns: Sequence[Turn]) -> RawReply:
            repairing = len(turns) > 1
            self._log_prompt(request, turns[-1].content)
            if repairing:
                latency_s = self.latency.draw(rng)
                spent.append(latency_s)
                await self._sleep(latency_s)
            text = good
            if fault == "malformed" and not (
                repairing and rng.random() < self.profile.repair_success
            ):
                text = simcontent.malformed(good, rng)
            if request.max_tokens is not None and _tokens(len(text)) > request.max_tokens:
                # A real model stops at max_tokens; so does the simulated one.
                text = text[: request.max_tokens * 4]
            asked = len(system) + sum(len(t.content) for t in turns)
            usage = Usage(
                model=model,
                calls=1,
                input_tokens=_tokens(asked),
                output_tokens=_tokens(len(text)),
            )
            return RawReply(text=text, usage=usage, stop_reason="end_turn")

        result = await complete_structured(
            generate,
            system=request.system,
            prompt=request.prompt,
            output_model=request.output_model,
        )
        return LLMResponse(
            text=result.text,
            parsed=result.parsed,
            usage=result.usage,
            model=model,
            latency_s=sum(spent),
            stop_reason=result.stop_reason,
            fault=fault,
        )

    def _log_prompt(self, request: LLMRequest, prompt: str) -> None:
        if not self.prompt_log:
            return
        line = {
            "role": request.role,
            "task_id": request.task_id,
            "step_id": request.step_id,
            "attempt": request.attempt,
            "max_tokens": request.max_tokens,
            "prompt": prompt,
        }
        with open(self.prompt_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    async def aclose(self) -> None:
        return None


def _tokens(chars: int) -> int:
    # About four characters per token for English text and code.
    return max(1, chars // 4)
