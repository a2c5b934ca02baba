"""Structured output: JSON extraction, validation messages, and the one repair turn."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from synod.llm import LLMPermanentError, LLMTransientError, ResearchNotes
from synod.llm.structured import (
    OutputInvalid,
    RawReply,
    Turn,
    complete_structured,
    extract_json,
    parse_output,
)
from synod.wire.messages import Usage

VALID = '{"summary": "ok", "findings": ["a"]}'


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        f"```json\n{VALID}\n```",
        f"```\n{VALID}\n```",
        f"Here are the notes:\n```json\n{VALID}\n```\nAnything else?",
        f"  {VALID}  \n",
    ],
)
def test_fences_and_prose_around_the_json_are_tolerated(text: str) -> None:
    assert parse_output(text, ResearchNotes) == ResearchNotes(summary="ok", findings=["a"])


def test_braces_and_fences_inside_strings_survive() -> None:
    text = '{"summary": "use ```py``` and {x}", "findings": []}'
    assert extract_json(text) == text
    assert parse_output(text, ResearchNotes).summary == "use ```py``` and {x}"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"findings": []}', "summary: Field required"),
        ('{"summary": "x", "findings": "many"}', "findings: Input should be a valid"),
        ("no json here", "Invalid JSON"),
        ('{"summary": "cut', "Invalid JSON"),
    ],
)
def test_invalid_output_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output(text, ResearchNotes)
    assert says in str(caught.value)


class Script:
    """A fake model: replies in order and records every conversation it was given."""

    def __init__(self, *replies: str | Exception, stop_reason: str = "end_turn") -> None:
        self.replies = list(replies)
        self.stop_reason = stop_reason
        self.seen: list[tuple[str, list[Turn]]] = []

    async def __call__(self, system: str, turns: Sequence[Turn]) -> RawReply:
        self.seen.append((system, list(turns)))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        usage = Usage(model="m", calls=1, input_tokens=10, output_tokens=5, cost_usd=0.5)
        return RawReply(text=reply, usage=usage, stop_reason=self.stop_reason)


async def test_valid_first_reply_is_one_call_with_the_schema_in_the_system_prompt() -> None:
    model = Script(VALID)
    result = await complete_structured(
        model, system="You research.", prompt="go", output_model=ResearchNotes
    )
    assert result.parsed == ResearchNotes(summary="ok", findings=["a"])
    assert result.usage.calls == 1
    system, turns = model.seen[0]
    assert system.startswith("You research.")
    assert '"summary"' in system
    assert turns == [Turn("user", "go")]


async def test_invalid_then_valid_is_repaired_in_a_second_turn_quoting_the_error() -> None:
    model = Script('{"findings": []}', VALID)
    result = await complete_structured(model, system="", prompt="go", output_model=ResearchNotes)
    assert result.parsed is not None
    assert result.usage == Usage(
        model="m", calls=2, input_tokens=20, output_tokens=10, cost_usd=1.0
    )
    _, turns = model.seen[1]
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert turns[1].content == '{"findings": []}'
    assert "summary: Field required" in turns[2].content


async def test_invalid_twice_is_permanent_and_carries_both_calls() -> None:
    model = Script("nope", "still nope")
    with pytest.raises(LLMPermanentError) as caught:
        await complete_structured(model, system="", prompt="go", output_model=ResearchNotes)
    assert caught.value.reason == "invalid_output"
    assert caught.value.usage.calls == 2
    assert caught.value.usage.cost_usd == 1.0
    assert len(model.seen) == 2


async def test_a_transient_error_on_the_repair_turn_keeps_the_first_calls_usage() -> None:
    model = Script("nope", LLMTransientError("busy", reason="overloaded"))
    with pytest.raises(LLMTransientError) as caught:
        await complete_structured(model, system="", prompt="go", output_model=ResearchNotes)
    assert caught.value.usage.calls == 1
    assert caught.value.usage.input_tokens == 10


async def test_refusal_is_permanent_without_a_repair() -> None:
    model = Script(VALID, stop_reason="refusal")
    with pytest.raises(LLMPermanentError) as caught:
        await complete_structured(model, system="", prompt="go", output_model=ResearchNotes)
    assert caught.value.reason == "refusal"
    assert len(model.seen) == 1


async def test_without_an_output_model_the_text_is_returned_as_is() -> None:
    model = Script("just prose")
    result = await complete_structured(model, system="s", prompt="go", output_model=None)
    assert (result.text, result.parsed, model.seen[0][0]) == ("just prose", None, "s")
