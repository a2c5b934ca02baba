"""Cost per call from the price table."""

from __future__ import annotations

import pytest

from synod.llm.pricing import Price, cost_usd, price_for


def test_cost_of_a_priced_model() -> None:
    # claude-sonnet-5-5: $2 / MTok in, $10 / MTok out
    cost = cost_usd("claude-sonnet-5-5", input_tokens=1_000_000, output_tokens=100_000)
    assert cost == pytest.approx(3.0)


def test_a_dated_snapshot_is_priced_as_its_alias() -> None:
    assert price_for("claude-haiku-4-5-20251001") == Price(1.0, 5.0)


def test_cache_tokens_are_priced_with_their_factors() -> None:
    cost = cost_usd(
        "claude-haiku-4-5",
        input_tokens=0,
        output_tokens=0,
        cache_write_tokens=1_000_000,
        cache_read_tokens=1_000_000,
    )
    assert cost == pytest.approx(1.25 + 0.1)


def test_an_unknown_model_is_unpriced_not_free() -> None:
    assert price_for("claude-unknown-9") is None
    assert cost_usd("claude-unknown-9", input_tokens=10**6, output_tokens=10**6) is None
    assert cost_usd("house", input_tokens=1, output_tokens=1, provider="openai") is None


def test_prices_are_per_provider() -> None:
    # gpt-4.1-mini: $0.4 in, $1.6 out, $0.1 cached in (per million tokens)
    cost = cost_usd(
        "gpt-4.1-mini",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_read_tokens=1_000_000,
        provider="openai",
    )
    assert cost == pytest.approx(0.4 + 1.6 + 0.1)
    assert price_for("gpt-4.1-mini", provider="anthropic") is None
    assert price_for("claude-haiku-4-5", provider="openai") is None
    # a dated OpenAI snapshot is priced as its alias; the sim is free by definition
    assert price_for("gpt-4.1-2025-04-14", provider="openai") == Price(2.0, 8.0, 0.5)
    assert cost_usd("anything", input_tokens=9, output_tokens=9, provider="sim") == 0.0


def test_the_table_is_versioned_by_date() -> None:
    import datetime

    from synod.llm.pricing import PRICE_TABLE_VERSION

    datetime.date.fromisoformat(PRICE_TABLE_VERSION)


def test_overrides_take_provider_keys_and_bare_model_keys() -> None:
    from synod.llm.pricing import merged

    prices = merged({"openai:llama3.1:8b": (0.0, 0.0), "house": (1.0, 1.0)})
    assert (
        cost_usd("llama3.1:8b", input_tokens=5, output_tokens=5, prices=prices, provider="openai")
        == 0.0
    )
    assert price_for("house", prices, provider="openai") == Price(1.0, 1.0)


def test_a_custom_table() -> None:
    prices = {"house-model": Price(1.0, 1.0)}
    assert (
        cost_usd("house-model", input_tokens=500_000, output_tokens=500_000, prices=prices) == 1.0
    )
