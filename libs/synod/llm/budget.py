"""The budget check before a model call: make it only if its worst case fits.

A request's worst case is what it could spend at most: its input (estimated
conservatively at `CHARS_PER_TOKEN` characters a token: real tokenizers
average 3 to 4 for English and code) plus its `max_tokens` of output, twice
over for a structured request (the repair turn re-sends the prompt and the
first reply). `fit` lowers the request's `max_tokens` so that the worst case
fits what is left of the allowance, and refuses the call (`LLMBudgetError`,
reason `budget_exhausted`) when not even `MIN_OUTPUT_TOKENS` of output would.
Cost is checked at the dearest price of the table (the fallback chain may
end anywhere), so a cost limit is never passed, only approached
conservatively. docs/adr/0011 has the whole rule.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

from pydantic import BaseModel

from synod.llm.errors import LLMBudgetError
from synod.llm.pricing import PRICES
from synod.llm.types import LLMRequest
from synod.wire.messages import Allowance, Usage

CHARS_PER_TOKEN = 2
FRAMING_TOKENS = 64  # the message framing and the system prompt's wrapper
REPAIR_PROMPT_TOKENS = 100  # the repair turn's own words and the schema reminder
MIN_OUTPUT_TOKENS = 64


@functools.cache
def schema_chars(output_model: type[BaseModel]) -> int:
    """The length of an output model's JSON Schema as the structured prompt carries it.

    Cached: generating the schema costs 0.5-0.8 ms and a step's budget check asks
    three times (about a tenth of a coder's CPU); the output models are a few classes.
    """
    return len(json.dumps(output_model.model_json_schema(), separators=(",", ":")))


def input_tokens(request: LLMRequest) -> int:
    chars = len(request.system) + len(request.prompt)
    if request.output_model is not None:
        # The structured prompt carries the output's JSON Schema and a paragraph on it.
        chars += schema_chars(request.output_model) + 300
    return math.ceil(chars / CHARS_PER_TOKEN) + FRAMING_TOKENS


def calls_of(request: LLMRequest) -> int:
    return 2 if request.output_model is not None else 1


def worst_case_tokens(request: LLMRequest, default_max_tokens: int) -> int:
    """The most tokens `request` may spend, at its own max_tokens or the default."""
    max_tokens = request.max_tokens or default_max_tokens
    first = input_tokens(request) + max_tokens
    if calls_of(request) == 1:
        return first
    # The repair turn sends the prompt, the first reply and the repair prompt.
    return first + input_tokens(request) + max_tokens + REPAIR_PROMPT_TOKENS + max_tokens


def worst_case(request: LLMRequest, default_max_tokens: int) -> Usage:
    """The most a request may spend, as a Usage (what a cut-off call is charged)."""
    n = calls_of(request)
    total = worst_case_tokens(request, default_max_tokens)
    inputs = n * input_tokens(request)
    in_usd, out_usd = dearest_usd_per_token()
    cost = inputs * in_usd + (total - inputs) * out_usd
    return Usage(
        model=request.model or "",
        calls=n,
        input_tokens=inputs,
        output_tokens=total - inputs,
        cost_usd=round(cost, 9),
    )


def dearest_usd_per_token() -> tuple[float, float]:
    prices = list(PRICES.values())
    return (
        max(p.input_per_mtok for p in prices) / 1e6,
        max(p.output_per_mtok for p in prices) / 1e6,
    )


def left_of(allowance: Allowance, spent: Usage) -> Allowance:
    """What an allowance leaves after `spent`."""
    return Allowance(
        tokens=None
        if allowance.tokens is None
        else allowance.tokens - spent.input_tokens - spent.output_tokens,
        cost_usd=None if allowance.cost_usd is None else allowance.cost_usd - spent.cost_usd,
        calls=None if allowance.calls is None else allowance.calls - spent.calls,
    )


def fit(request: LLMRequest, left: Allowance | None, default_max_tokens: int) -> LLMRequest:
    """`request` with a `max_tokens` whose worst case fits `left`, or LLMBudgetError."""
    if left is None:
        return request
    where = f"{request.role} {request.task_id}/{request.step_id}"
    if left.calls is not None and left.calls < calls_of(request):
        raise _refused(
            f"{where}: {left.calls} model calls left, the call may take {calls_of(request)}"
        )
    out = request.max_tokens or default_max_tokens
    n = calls_of(request)
    inp = input_tokens(request)
    if left.tokens is not None:
        # Solve worst_case_tokens(out) <= left.tokens for out.
        room = left.tokens - n * inp - (REPAIR_PROMPT_TOKENS if n == 2 else 0)
        out = min(out, room // (1 if n == 1 else 3))
    if left.cost_usd is not None:
        in_usd, out_usd = dearest_usd_per_token()
        room_usd = (
            left.cost_usd - n * inp * in_usd - (REPAIR_PROMPT_TOKENS * in_usd if n == 2 else 0)
        )
        per_out = out_usd * (1 if n == 1 else 3) + (in_usd if n == 2 else 0)
        out = min(out, math.floor(room_usd / per_out))
    if out < MIN_OUTPUT_TOKENS:
        raise _refused(
            f"{where}: its worst case does not fit what is left of the budget "
            f"({left.tokens} tokens, {left.cost_usd} USD): about {inp} input tokens "
            f"and at least {MIN_OUTPUT_TOKENS} of output"
        )
    return dataclasses.replace(request, max_tokens=out)


def _refused(message: str) -> LLMBudgetError:
    return LLMBudgetError(message, reason="budget_exhausted")
