"""Structured output: ask for JSON, parse it, and allow exactly one repair turn.

Both backends run their calls through `complete_structured`, so the real model
and the simulation share one repair path: the first reply is parsed (code fences
and surrounding prose are tolerated), and if it is not valid the model gets one
more turn that quotes the validation error. Still invalid: `LLMPermanentError`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError

from synod.llm.errors import LLMError, LLMPermanentError
from synod.llm.types import M, add_usage
from synod.wire.messages import Usage

MAX_ERRORS_QUOTED = 8


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RawReply:
    """One model call's reply; `usage` is that call's alone (calls=1)."""

    text: str
    usage: Usage
    stop_reason: str | None = None


# (system prompt, conversation so far) -> the model's next reply
Generate = Callable[[str, Sequence[Turn]], Awaitable[RawReply]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StructuredResult:
    text: str
    parsed: BaseModel | None
    usage: Usage
    stop_reason: str | None


class OutputInvalid(ValueError):
    """A reply that is not a valid instance of the output model; the message says why."""


@functools.cache
def json_instructions(output_model: type[BaseModel]) -> str:
    # Cached: generating a JSON schema costs about a millisecond, every call.
    schema = json.dumps(output_model.model_json_schema(), separators=(",", ":"))
    return (
        "Reply with exactly one JSON object and nothing else: no prose, no code fences. "
        f"It must be valid against this JSON Schema:\n{schema}"
    )


def extract_json(text: str) -> str:
    """The JSON object inside a reply, without code fences or prose around it."""
    stripped = text.strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start == -1 or end < start:
        return stripped
    return stripped[start : end + 1]


def parse_output(text: str, output_model: type[M]) -> M:
    """Validate a reply against `output_model`, or raise `OutputInvalid` saying why."""
    try:
        return output_model.model_validate_json(extract_json(text))
    except ValidationError as err:
        raise OutputInvalid(describe_validation_error(err)) from None


def describe_validation_error(err: ValidationError) -> str:
    """A short, model-readable list of what is wrong (pydantic's own text is long)."""
    problems = err.errors(include_url=False)
    lines = []
    for problem in problems[:MAX_ERRORS_QUOTED]:
        where = ".".join(str(part) for part in problem["loc"]) or "(the whole object)"
        lines.append(f"- {where}: {problem['msg']}")
    if len(problems) > MAX_ERRORS_QUOTED:
        lines.append(f"- and {len(problems) - MAX_ERRORS_QUOTED} more")
    return "\n".join(lines)


def repair_prompt(problem: str) -> str:
    return (
        "Your reply is not valid:\n"
        f"{problem}\n"
        "Reply again with only the corrected JSON object: no prose, no code fences."
    )


def _refused(usage: Usage) -> LLMPermanentError:
    return LLMPermanentError(
        "the model declined to answer (stop_reason 'refusal')",
        reason="refusal",
        model=usage.model,
        usage=usage,
    )


async def complete_structured(
    generate: Generate,
    *,
    system: str,
    prompt: str,
    output_model: type[BaseModel] | None,
) -> StructuredResult:
    """Run one request through `generate`: one call, plus one repair when output is invalid."""
    if output_model is not None:
        instructions = json_instructions(output_model)
        system = f"{system}\n\n{instructions}" if system else instructions
    turns: list[Turn] = [Turn("user", prompt)]
    first = await generate(system, turns)
    if first.stop_reason == "refusal":
        raise _refused(first.usage)
    if output_model is None:
        return StructuredResult(
            text=first.text, parsed=None, usage=first.usage, stop_reason=first.stop_reason
        )
    try:
        parsed = parse_output(first.text, output_model)
        return StructuredResult(
            text=first.text, parsed=parsed, usage=first.usage, stop_reason=first.stop_reason
        )
    except OutputInvalid as invalid:
        problem = str(invalid)

    turns += [Turn("assistant", first.text or "(empty)"), Turn("user", repair_prompt(problem))]
    try:
        second = await generate(system, turns)
    except LLMError as err:
        err.usage = add_usage(first.usage, err.usage)
        raise
    usage = add_usage(first.usage, second.usage)
    if second.stop_reason == "refusal":
        raise _refused(usage)
    try:
        parsed = parse_output(second.text, output_model)
    except OutputInvalid as invalid:
        raise LLMPermanentError(
            f"output still invalid for {output_model.__name__} after one repair:\n{invalid}",
            reason="invalid_output",
            model=usage.model,
            usage=usage,
        ) from None
    return StructuredResult(
        text=second.text, parsed=parsed, usage=usage, stop_reason=second.stop_reason
    )
