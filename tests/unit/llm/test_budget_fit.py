"""The budget check before a call: the worst case fits, or the call is not made."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from synod.llm import LLMSettings, select_backend
from synod.llm.budget import CHARS_PER_TOKEN, fit, input_tokens, worst_case, worst_case_tokens
from synod.llm.errors import LLMBudgetError
from synod.llm.outputs import CodeOutput
from synod.llm.types import LLMRequest
from synod.wire.messages import Allowance


def request(**kw: object) -> LLMRequest:
    return LLMRequest(role="coder", task_id="t1", step_id="s1", prompt="write fizzbuzz " * 40, **kw)  # type: ignore[arg-type]


def test_max_tokens_is_lowered_until_the_worst_case_fits() -> None:
    r = request(output_model=CodeOutput)
    fitted = fit(r, Allowance(tokens=3_000), 4_096)
    assert fitted.max_tokens is not None
    assert fitted.max_tokens < 4_096
    assert worst_case_tokens(fitted, 4_096) <= 3_000
    assert worst_case(fitted, 4_096).calls == 2  # with the repair turn


def test_a_call_that_cannot_fit_is_refused_saying_why() -> None:
    with pytest.raises(LLMBudgetError) as err:
        fit(request(output_model=CodeOutput), Allowance(tokens=500), 4_096)
    assert err.value.reason == "budget_exhausted"
    assert err.value.error_class == "budget"
    assert "does not fit what is left of the budget" in str(err.value)
    with pytest.raises(LLMBudgetError):
        fit(request(output_model=CodeOutput), Allowance(calls=1), 4_096)


def test_no_allowance_changes_nothing() -> None:
    r = request()
    assert fit(r, None, 4_096) is r


async def test_the_simulated_models_usage_stays_within_the_worst_case() -> None:
    llm = select_backend(LLMSettings(backend="sim", sim_latency="fixed:0"), notice=lambda _: None)
    for attempt in range(20):
        r = fit(request(output_model=CodeOutput, attempt=attempt), Allowance(tokens=2_500), 4_096)
        response = await llm.complete(r)
        spent = response.usage.input_tokens + response.usage.output_tokens
        assert spent <= worst_case_tokens(r, 4_096)
        assert response.usage.output_tokens <= (r.max_tokens or 0) * response.usage.calls


def test_an_output_schema_is_generated_once_however_often_a_step_is_checked() -> None:
    class Counted(BaseModel):
        answer: str
        notes: list[str] = []

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            generated.append(cls)
            return super().model_json_schema(*args, **kwargs)

    generated: list[type[BaseModel]] = []
    r = request(output_model=Counted)
    plain = input_tokens(request())
    first = input_tokens(r)
    fit(r, Allowance(tokens=20_000), 4_096)
    worst_case(r, 4_096)
    assert input_tokens(r) == first
    assert generated == [Counted]
    # ...and the cached size is the schema's: the prompt grows by it and its paragraph.
    schema = json.dumps(Counted.model_json_schema(), separators=(",", ":"))
    assert first - plain == math.ceil((len(schema) + 300) / CHARS_PER_TOKEN)
