"""A juror retries what another attempt can fix, within its ballot's deadline."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from synod.llm import LLMRequest, LLMResponse, LLMTransientError, ReviewVerdict
from synod.llm.errors import LLMPermanentError
from synod.roles.reviewer.service import Reviewer
from synod.wire import Usage

VERDICT = ReviewVerdict(kind="reject", confidence=0.9, rationale="wrong")
REQUEST = LLMRequest(role="reviewer", task_id="t", step_id="t/answer/b1/reviewer-0", prompt="?")


class Scripted:
    """Answers each attempt as scripted: an exception to raise, "hang", or a verdict."""

    name = "scripted"

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.attempts: list[int] = []

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.attempts.append(request.attempt)
        step = self.script[min(request.attempt, len(self.script) - 1)]
        if step == "hang":
            await asyncio.get_running_loop().create_future()
        if isinstance(step, BaseException):
            raise step
        return LLMResponse(text="", parsed=step, usage=Usage(), model="m", latency_s=0.0)


def reviewer(llm: Scripted) -> Reviewer:
    return Reviewer(cast(Any, None), cast(Any, llm))


async def test_transient_errors_are_retried_as_new_attempts() -> None:
    llm = Scripted(LLMTransientError("529", reason="overloaded"), "hang", VERDICT)
    verdict = await reviewer(llm).judge(REQUEST, deadline_s=3.0)
    assert verdict == VERDICT
    assert llm.attempts == [0, 1, 2]  # a hung attempt is cut short and retried too


async def test_invalid_output_is_resampled() -> None:
    invalid = LLMPermanentError("still invalid", reason="invalid_output")
    llm = Scripted(invalid, VERDICT)
    assert await reviewer(llm).judge(REQUEST, deadline_s=3.0) == VERDICT


async def test_a_permanent_error_is_not_retried() -> None:
    llm = Scripted(LLMPermanentError("400", reason="bad_request"), VERDICT)
    with pytest.raises(LLMPermanentError):
        await reviewer(llm).judge(REQUEST, deadline_s=3.0)
    assert llm.attempts == [0]


async def test_the_ballot_deadline_bounds_all_attempts() -> None:
    llm = Scripted("hang")
    with pytest.raises(TimeoutError):  # (a judge ignoring its deadline would hang here)
        await reviewer(llm).judge(REQUEST, deadline_s=1.0)
    assert 1 <= len(llm.attempts) <= 2
