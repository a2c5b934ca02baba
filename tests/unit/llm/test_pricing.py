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


def test_an_unknown_model_costs_nothing_and_says_so() -> None:
    assert price_for("claude-unknown-9") is None
    assert cost_usd("claude-unknown-9", input_tokens=10**6, output_tokens=10**6) == 0.0


def test_a_custom_table() -> None:
    prices = {"house-model": Price(1.0, 1.0)}
    assert (
        cost_usd("house-model", input_tokens=500_000, output_tokens=500_000, prices=prices) == 1.0
    )
