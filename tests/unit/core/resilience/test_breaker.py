"""Example tests: one or more for every transition and for the stale-outcome rules."""

import pytest

from synod.core.resilience.breaker import BreakerConfig, CircuitBreaker, Permit

C = BreakerConfig(
    window_s=10,
    min_calls=4,
    failure_rate_threshold=0.5,
    open_for_s=5,
    half_open_probes=2,
    success_to_close=2,
)


def call(b: CircuitBreaker, now: float, ok: bool, error_class: str = "transient") -> None:
    d = b.allow(now)
    assert d.allowed
    assert d.permit is not None
    b.record(d.permit, now, ok=ok, error_class=error_class)  # type: ignore[arg-type]


def opened() -> CircuitBreaker:
    b = CircuitBreaker(C)
    for _ in range(4):
        call(b, 0.0, ok=False)
    assert b.state(0.0) == "open"
    return b


def probe(b: CircuitBreaker, now: float) -> Permit:
    d = b.allow(now)
    assert d.allowed
    assert d.permit is not None
    assert d.permit.probe
    return d.permit


def test_needs_min_calls() -> None:
    b = CircuitBreaker(C)
    for _ in range(3):
        call(b, 0.0, ok=False)
    assert b.state(0.0) == "closed"
    call(b, 0.0, ok=False)
    assert b.state(0.0) == "open"
    assert b.transitions[-1].reason == "failure rate 4/4 in 10s"


def test_closed_to_open_at_the_threshold_not_below() -> None:
    b = CircuitBreaker(C)
    for ok in (True, True, True, False, False):
        call(b, 1.0, ok=ok)
    assert b.state(1.0) == "closed"  # 2/5 < 0.5
    call(b, 1.0, ok=False)  # 3/6 == 0.5
    assert b.state(1.0) == "open"
    assert b.transitions[-1].at == 1.0


def test_successes_keep_it_closed() -> None:
    b = CircuitBreaker(C)
    for i in range(100):
        call(b, i * 0.1, ok=(i + 1) % 3 != 0)  # a third fail
    assert b.state(10.0) == "closed"


def test_open_fails_fast_with_retry_after() -> None:
    d = opened().allow(2.0)
    assert not d.allowed
    assert d.permit is None
    assert d.state == "open"
    assert d.retry_after_s == 3.0


def test_open_to_half_open_after_the_cool_down() -> None:
    b = opened()
    assert b.state(4.999) == "open"
    assert b.state(7.0) == "half_open"
    # Dated when it became due, not when somebody looked.
    assert b.transitions[-1].at == 5.0
    assert b.transitions[-1].from_state == "open"


def test_half_open_admits_a_bounded_number_of_probes() -> None:
    b = opened()
    decisions = [b.allow(5.0) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].state == "half_open"
    assert b.probes_in_flight() == 2


def test_half_open_to_closed_when_probes_succeed() -> None:
    b = opened()
    p1, p2 = probe(b, 5.0), probe(b, 5.0)
    b.record(p1, 5.1, ok=True)
    assert b.state(5.1) == "half_open"  # success_to_close is 2
    b.record(p2, 5.2, ok=True)
    assert b.state(5.2) == "closed"
    assert [t.to_state for t in b.transitions] == ["open", "half_open", "closed"]


def test_closing_starts_a_fresh_window() -> None:
    b = opened()
    b.record(probe(b, 5.0), 5.0, ok=True)
    b.record(probe(b, 5.0), 5.0, ok=True)
    call(b, 5.5, ok=False)  # the four failures at t=0 are still within 10 s
    assert b.state(5.5) == "closed"
    assert b.window(5.5) == (1, 1)


def test_half_open_to_open_when_a_probe_fails() -> None:
    b = opened()
    p1, p2 = probe(b, 5.0), probe(b, 5.0)
    b.record(p1, 5.5, ok=False)
    assert b.state(5.5) == "open"
    assert b.allow(6.0).retry_after_s == pytest.approx(4.5)
    b.record(p2, 6.0, ok=True)  # the other probe is from the last half-open period
    assert b.state(6.0) == "open"


def test_a_permanent_probe_failure_frees_the_slot_only() -> None:
    b = opened()
    p1, p2 = probe(b, 5.0), probe(b, 5.0)
    b.record(p1, 5.1, ok=False, error_class="permanent")
    assert b.state(5.1) == "half_open"
    assert b.probes_in_flight() == 1
    b.record(p2, 5.2, ok=True)
    assert b.state(5.2) == "half_open"
    b.record(probe(b, 5.3), 5.3, ok=True)
    assert b.state(5.3) == "closed"


def test_release_frees_a_probe_slot_without_a_verdict() -> None:
    b = opened()
    p1, _ = probe(b, 5.0), probe(b, 5.0)
    assert not b.allow(5.0).allowed
    b.release(p1, 5.1)
    assert b.state(5.1) == "half_open"
    assert b.allow(5.1).allowed


def test_a_late_closed_call_is_no_probe() -> None:
    b = CircuitBreaker(C)
    late = b.allow(0.0).permit
    assert late is not None
    for _ in range(4):
        call(b, 0.0, ok=False)
    p1, p2 = probe(b, 5.0), probe(b, 5.0)
    # The slow call admitted while closed ends now: it must neither close the
    # breaker nor free a probe slot.
    b.record(late, 5.1, ok=True)
    assert b.state(5.1) == "half_open"
    assert b.probes_in_flight() == 2
    assert not b.allow(5.1).allowed
    b.record(p1, 5.2, ok=True)
    b.record(p2, 5.2, ok=True)
    assert b.state(5.2) == "closed"


def test_a_late_failure_after_opening_changes_nothing() -> None:
    b = CircuitBreaker(C)
    late = b.allow(0.0).permit
    assert late is not None
    for _ in range(4):
        call(b, 0.0, ok=False)
    b.record(late, 1.0, ok=False)
    assert [t.to_state for t in b.transitions] == ["open"]
    assert b.allow(1.0).retry_after_s == 4.0


def test_old_failures_leave_window() -> None:
    b = CircuitBreaker(C)
    for _ in range(3):
        call(b, 0.0, ok=False)
    call(b, 11.0, ok=False)
    assert b.state(11.0) == "closed"
    assert b.window(11.0) == (1, 1)


def test_permanent_and_budget_never_open() -> None:
    b = CircuitBreaker(C)
    for _ in range(50):
        call(b, 0.0, ok=False, error_class="permanent")
        call(b, 0.0, ok=False, error_class="budget")
    assert b.state(0.0) == "closed"
    assert b.window(0.0) == (0, 0)


def test_time_going_backwards_is_taken_as_now() -> None:
    b = opened()
    assert b.state(6.0) == "half_open"
    assert b.state(1.0) == "half_open"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_s": 0},
        {"min_calls": 0},
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.5},
        {"open_for_s": -1},
        {"half_open_probes": 0},
        {"success_to_close": 0},
        {"retry_after_hold_s": 0},
    ],
)
def test_bad_config_is_refused_with_the_name(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_a_long_retry_after_opens_it_until_then() -> None:
    b = CircuitBreaker(C)  # retry_after_hold_s defaults to 30
    d = b.allow(0.0)
    assert d.permit is not None
    b.record(d.permit, 0.0, ok=False, retry_after_s=120)
    assert b.state(0.0) == "open"
    assert b.transitions[-1].reason == "provider asked to retry after 120s"
    assert b.allow(10.0).retry_after_s == 110
    assert b.state(119.9) == "open"
    assert b.state(120.0) == "half_open"


def test_a_short_retry_after_is_just_a_failure() -> None:
    b = CircuitBreaker(C)
    d = b.allow(0.0)
    assert d.permit is not None
    b.record(d.permit, 0.0, ok=False, retry_after_s=2)
    assert b.state(0.0) == "closed"
    assert b.window(0.0) == (1, 1)


def test_a_probe_told_to_wait_reopens_for_that_long() -> None:
    b = opened()
    b.record(probe(b, 5.0), 5.0, ok=False, retry_after_s=60)
    assert b.state(5.0) == "open"
    assert b.allow(5.0).retry_after_s == 60


def test_retry_after_ignored_when_so_configured_or_not_transient() -> None:
    b = CircuitBreaker(BreakerConfig(min_calls=4, retry_after_hold_s=None))
    call_with = b.allow(0.0).permit
    assert call_with is not None
    b.record(call_with, 0.0, ok=False, retry_after_s=600)
    assert b.state(0.0) == "closed"
    b = CircuitBreaker(C)
    permit = b.allow(0.0).permit
    assert permit is not None
    b.record(permit, 0.0, ok=False, error_class="budget", retry_after_s=600)
    assert b.state(0.0) == "closed"
