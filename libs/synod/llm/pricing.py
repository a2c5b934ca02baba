"""What a call costs: a small price table per model, in USD per million tokens.

Prices are Anthropic's published list prices; a model missing here costs 0 and
is reported by `price_for` returning None, so an unpriced model is visible
instead of silently cheap. Override or extend with `SYNOD_LLM_PRICES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Prompt-cache writes (5 minute) cost 1.25x the input price, reads 0.1x.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


PRICES: Mapping[str, Price] = {
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
}

_SNAPSHOT_DATE = re.compile(r"-\d{8}$")


def price_for(model: str, prices: Mapping[str, Price] = PRICES) -> Price | None:
    """The price of `model`; a dated snapshot id is priced as its alias."""
    return prices.get(model) or prices.get(_SNAPSHOT_DATE.sub("", model))


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    prices: Mapping[str, Price] = PRICES,
) -> float:
    """The list-price cost of one call; 0.0 for a model not in `prices`."""
    price = price_for(model, prices)
    if price is None:
        return 0.0
    input_equivalent = (
        input_tokens
        + cache_write_tokens * CACHE_WRITE_FACTOR
        + cache_read_tokens * CACHE_READ_FACTOR
    )
    return (input_equivalent * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
