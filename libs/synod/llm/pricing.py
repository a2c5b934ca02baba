"""What a call costs: one versioned price table per provider and model, in USD per million tokens.

The table is keyed `provider:model`; a bare `model` key is the anthropic
provider's (as the table was before it had more than one provider). A model
missing from the table is *unpriced*: `price_for` returns None, the call's
`Usage.unpriced_calls` counts it and its cost stays out of `cost_usd`, so a
budget sees that its total is a lower bound instead of believing the model is
free. Override or extend with `SYNOD_LLM_PRICES` (e.g. declare a local model
free: `{"openai:llama3.1:8b": [0, 0]}`).

`PRICE_TABLE_VERSION` is the date the list prices were last checked against
the providers' price pages; change it with every edit of `PRICES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

PRICE_TABLE_VERSION = "2026-12-02"

# Prompt-cache factors per provider, applied to the input price. Anthropic:
# cache writes (5 minute) 1.25x, reads 0.1x. OpenAI has no write surcharge and
# its cached-input discount varies by model: Price.cached_input_per_mtok says it.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    # The price of cached input tokens; None: the provider's factor (CACHE_READ_FACTOR).
    cached_input_per_mtok: float | None = None


PRICES: Mapping[str, Price] = {
    # Anthropic list prices.
    "anthropic:claude-fable-5-1": Price(10.0, 50.0),
    "anthropic:claude-opus-5-5": Price(4.0, 20.0),
    "anthropic:claude-opus-5": Price(5.0, 25.0),
    "anthropic:claude-sonnet-5-5": Price(2.0, 10.0),
    "anthropic:claude-sonnet-5": Price(2.0, 10.0),
    "anthropic:claude-opus-4-7": Price(5.0, 25.0),
    "anthropic:claude-opus-4-6": Price(5.0, 25.0),
    "anthropic:claude-opus-4-5": Price(5.0, 25.0),
    "anthropic:claude-sonnet-4-6": Price(3.0, 15.0),
    "anthropic:claude-sonnet-4-5": Price(3.0, 15.0),
    "anthropic:claude-haiku-4-5": Price(1.0, 5.0),
    # OpenAI list prices (Chat Completions, standard tier).
    "openai:gpt-5": Price(1.25, 10.0, 0.125),
    "openai:gpt-5-mini": Price(0.25, 2.0, 0.025),
    "openai:gpt-5-nano": Price(0.05, 0.4, 0.005),
    "openai:gpt-4.1": Price(2.0, 8.0, 0.5),
    "openai:gpt-4.1-mini": Price(0.4, 1.6, 0.1),
    "openai:gpt-4.1-nano": Price(0.1, 0.4, 0.025),
    "openai:gpt-4o": Price(2.5, 10.0, 1.25),
    "openai:gpt-4o-mini": Price(0.15, 0.6, 0.075),
    "openai:o3": Price(2.0, 8.0, 0.5),
    "openai:o4-mini": Price(1.1, 4.4, 0.275),
    # The simulation costs nothing, by definition.
    "sim:sim": Price(0.0, 0.0),
}

# Dated snapshot ids: claude-haiku-4-5-20251001, gpt-4.1-2025-04-14.
_SNAPSHOT_DATE = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")


def price_key(provider: str, model: str) -> str:
    return f"{provider}:{model}"


def price_for(
    model: str, prices: Mapping[str, Price] = PRICES, provider: str = "anthropic"
) -> Price | None:
    """The price of `model` on `provider`; a dated snapshot id is priced as its alias.

    A bare model key (`SYNOD_LLM_PRICES` written before providers) counts for
    any provider; the sim provider prices every model at 0.
    """
    for name in (model, _SNAPSHOT_DATE.sub("", model)):
        found = prices.get(price_key(provider, name)) or prices.get(name)
        if found is not None:
            return found
    if provider == "sim":
        return prices.get("sim:sim")
    return None


def cost_usd(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
    prices: Mapping[str, Price] = PRICES,
    provider: str = "anthropic",
) -> float | None:
    """The list-price cost of one call; None for a model not in `prices` (unknown, not 0).

    `input_tokens` are the uncached ones; cache writes and reads are priced apart.
    """
    price = price_for(model, prices, provider)
    if price is None:
        return None
    cached = (
        price.cached_input_per_mtok
        if price.cached_input_per_mtok is not None
        else price.input_per_mtok * CACHE_READ_FACTOR
    )
    return (
        input_tokens * price.input_per_mtok
        + cache_write_tokens * price.input_per_mtok * CACHE_WRITE_FACTOR
        + cache_read_tokens * cached
        + output_tokens * price.output_per_mtok
    ) / 1e6


def merged(overrides: Mapping[str, tuple[float, ...]]) -> dict[str, Price]:
    """The table with `SYNOD_LLM_PRICES` entries added or replaced."""
    return {**PRICES, **{key: Price(*values) for key, values in overrides.items()}}
