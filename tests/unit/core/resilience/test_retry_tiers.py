"""The retry tier policy: full-jitter bounds, monotone tiers, exhaustion, classes, hints."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synod.core.resilience.retrytopics import Exhausted, Park, RetryTiers

TIERS = RetryTiers(delays_s=(1.0, 5.0, 20.0), base_s=2.0)
delays = st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=6).map(lambda d: tuple(sorted(d)))


def park(tiers: RetryTiers, retries: int, seed: int, **kw: object) -> Park:
    decision = tiers.next_retry(
        error_class=kw.get("error_class", "transient"),  # type: ignore[arg-type]
        reason=str(kw.get("reason", "overloaded")),
        retries_so_far=retries,
        retry_after_s=kw.get("retry_after_s"),  # type: ignore[arg-type]
        rng=random.Random(seed),
        now=float(kw.get("now", 1000.0)),  # type: ignore[arg-type]
    )
    assert isinstance(decision, Park), decision
    return decision


@given(delays, st.floats(0.01, 100.0), st.data(), st.integers(0, 2**32))
def test_full_jitter_stays_between_zero_and_the_tiers_ceiling(
    ds: tuple[float, ...], base: float, data: st.DataObject, seed: int
) -> None:
    tiers = RetryTiers(delays_s=ds, base_s=base)
    retries = data.draw(st.integers(0, len(ds) - 1))
    p = park(tiers, retries, seed, now=50.0)
    assert p.tier == retries + 1
    assert 0.0 <= p.delay_s <= tiers.ceiling_s(p.tier) <= ds[retries]
    assert p.due_at == 50.0 + p.delay_s


@given(delays, st.floats(0.01, 100.0))
def test_ceilings_never_decrease_from_tier_to_tier(ds: tuple[float, ...], base: float) -> None:
    tiers = RetryTiers(delays_s=ds, base_s=base)
    ceilings = [tiers.ceiling_s(n) for n in range(1, tiers.tiers + 1)]
    assert ceilings == sorted(ceilings)


def test_the_ceiling_grows_exponentially_until_the_tier_caps_it() -> None:
    tiers = RetryTiers(delays_s=(10.0, 10.0, 10.0, 10.0), base_s=1.0)
    assert [tiers.ceiling_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert [TIERS.ceiling_s(n) for n in (1, 2, 3)] == [1.0, 4.0, 8.0]


def test_delays_spread_over_the_whole_range_full_jitter() -> None:
    drawn = [park(TIERS, 2, seed).delay_s for seed in range(2000)]
    assert min(drawn) < 0.1 * 8.0
    assert max(drawn) > 0.9 * 8.0


@given(delays, st.integers(0, 2**32))
def test_exhausted_after_the_last_tier(ds: tuple[float, ...], seed: int) -> None:
    tiers = RetryTiers(delays_s=ds)
    for retries in range(len(ds)):
        assert isinstance(
            tiers.next_retry(
                error_class="transient",
                reason="r",
                retries_so_far=retries,
                retry_after_s=None,
                rng=random.Random(seed),
                now=0.0,
            ),
            Park,
        )
    for retries in (len(ds), len(ds) + 1):
        assert tiers.next_retry(
            error_class="transient",
            reason="r",
            retries_so_far=retries,
            retry_after_s=None,
            rng=random.Random(seed),
            now=0.0,
        ) == Exhausted("tiers_spent")


@pytest.mark.parametrize("error_class", ["permanent", "budget"])
@pytest.mark.parametrize("retries", [0, 1, 2])
def test_permanent_and_budget_are_never_retried(error_class: str, retries: int) -> None:
    decision = TIERS.next_retry(
        error_class=error_class,  # type: ignore[arg-type]
        reason="refusal",
        retries_so_far=retries,
        retry_after_s=5.0,
        rng=random.Random(1),
        now=0.0,
    )
    assert decision == Exhausted("not_transient")


@given(st.integers(0, 2), st.floats(0.0, 250.0), st.integers(0, 2**32))
def test_retry_after_is_the_floor_of_the_delay(retries: int, hint: float, seed: int) -> None:
    p = park(TIERS, retries, seed, retry_after_s=hint, reason="circuit_open")
    assert p.delay_s >= hint
    # and otherwise the same draw as without the hint
    assert p.delay_s == max(hint, park(TIERS, retries, seed).delay_s)


def test_a_huge_retry_after_is_bounded() -> None:
    tiers = RetryTiers(delays_s=(1.0,), max_retry_after_s=60.0)
    assert park(tiers, 0, 3, retry_after_s=1e9).delay_s == 60.0
    assert park(tiers, 0, 3, retry_after_s=-5.0).delay_s <= 1.0


def test_a_reason_limit_spends_fewer_tiers() -> None:
    tiers = RetryTiers(delays_s=(1.0, 5.0, 20.0), limits={"deadline": 1, "never": 0})
    kw = {"error_class": "transient", "retry_after_s": None, "now": 0.0}
    assert isinstance(
        tiers.next_retry(reason="deadline", retries_so_far=0, rng=random.Random(1), **kw),  # type: ignore[arg-type]
        Park,
    )
    assert tiers.next_retry(
        reason="deadline",
        retries_so_far=1,
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    ) == Exhausted("tiers_spent")
    assert tiers.next_retry(
        reason="never",
        retries_so_far=0,
        rng=random.Random(1),
        **kw,  # type: ignore[arg-type]
    ) == Exhausted("tiers_spent")
    assert tiers.limit("overloaded") == 3


def test_same_seed_same_delays() -> None:
    assert [park(TIERS, n, 42).delay_s for n in range(3)] == [
        park(TIERS, n, 42).delay_s for n in range(3)
    ]
