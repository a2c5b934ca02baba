from synod.resilience.breaker import BreakerConfig, CircuitBreaker

C = BreakerConfig(
    window_s=10,
    min_calls=4,
    failure_rate_threshold=0.5,
    open_for_s=5,
    half_open_probes=2,
    success_to_close=2,
)


def opened() -> CircuitBreaker:
    b = CircuitBreaker(C)
    for _ in range(4):
        b.record(0.0, ok=False)
    assert b.state(0.0) == "open"
    return b


def test_needs_min_calls() -> None:
    b = CircuitBreaker(C)
    for _ in range(3):
        b.record(0.0, ok=False)
    assert b.state(0.0) == "closed"
    b.record(0.0, ok=False)
    assert b.state(0.0) == "open"


def test_open_fails_fast_with_retry_after() -> None:
    d = opened().allow(2.0)
    assert not d.allowed
    assert d.retry_after_s == 3.0


def test_half_open_exactly_n_probes_then_close() -> None:
    b = opened()
    assert [b.allow(5.0).allowed for _ in range(3)] == [True, True, False]
    b.record(5.1, ok=True)
    b.record(5.2, ok=True)
    assert b.state(5.2) == "closed"
    assert [t.to_state for t in b.transitions] == ["open", "half_open", "closed"]


def test_probe_failure_reopens() -> None:
    b = opened()
    assert b.allow(5.0).allowed
    b.record(5.0, ok=False)
    assert b.state(5.0) == "open"


def test_old_failures_leave_window() -> None:
    b = CircuitBreaker(C)
    for _ in range(3):
        b.record(0.0, ok=False)
    b.record(11.0, ok=False)
    assert b.state(11.0) == "closed"


def test_permanent_never_opens() -> None:
    b = CircuitBreaker(C)
    for _ in range(50):
        b.record(0.0, ok=False, error_class="permanent")
        b.record(0.0, ok=False, error_class="budget")
    assert b.state(0.0) == "closed"
