import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synod.core.resilience.backoff import RetryPolicy

P = RetryPolicy(base_s=0.1, cap_s=5.0, max_attempts=8)


@given(st.integers(0, 7), st.integers(0, 2**32))
def test_delay_within_bounds(attempt: int, seed: int) -> None:
    d = P.next_delay(attempt, "transient", random.Random(seed))
    assert d is not None
    assert 0.0 <= d <= min(5.0, 0.1 * 2**attempt)


@pytest.mark.parametrize("cls", ["permanent", "budget"])
def test_never_retries_permanent_or_budget(cls: str) -> None:
    assert P.next_delay(0, cls, random.Random(1)) is None  # type: ignore[arg-type]


def test_gives_up_after_max_attempts() -> None:
    assert P.next_delay(7, "transient", random.Random(1)) is not None
    assert P.next_delay(8, "transient", random.Random(1)) is None


def test_same_seed_same_delays() -> None:
    a = [P.next_delay(i, "transient", random.Random(42)) for i in range(8)]
    b = [P.next_delay(i, "transient", random.Random(42)) for i in range(8)]
    assert a == b


def test_mean_grows_then_saturates() -> None:
    rng = random.Random(7)
    means = [
        sum(P.next_delay(i, "transient", rng) or 0 for _ in range(2000)) / 2000 for i in range(8)
    ]
    assert means[0] < means[2] < means[4]
    assert abs(means[6] - 2.5) < 0.2
    assert abs(means[7] - 2.5) < 0.2


@given(st.integers(0, 10_000), st.integers(0, 2**32))
def test_without_a_limit_it_never_gives_up_and_stays_under_the_cap(attempt: int, seed: int) -> None:
    forever = RetryPolicy(base_s=0.1, cap_s=5.0, max_attempts=None)
    d = forever.next_delay(attempt, "transient", random.Random(seed))
    assert d is not None
    assert 0.0 <= d <= min(5.0, 0.1 * 2 ** min(attempt, 64))
    assert forever.next_delay(attempt, "permanent", random.Random(seed)) is None


@pytest.mark.parametrize(
    "kwargs", [{"base_s": 0.0}, {"base_s": 2.0, "cap_s": 1.0}, {"max_attempts": -1}]
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
