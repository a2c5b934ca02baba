import random

from hypothesis import given
from hypothesis import strategies as st

from synod.core.resilience.detector import PhiAccrualDetector


def regular(d: PhiAccrualDetector, n: int = 20, every: float = 1.0) -> float:
    t = 0.0
    for _ in range(n):
        d.heartbeat("a", t)
        t += every
    return t - every


def test_phi_grows_with_silence() -> None:
    d = PhiAccrualDetector()
    last = regular(d)
    phis = [d.phi("a", last + s) for s in (0.5, 2, 4, 6)]
    assert phis == sorted(phis)
    assert phis[0] < 1 < phis[-1]


def test_dead_crosses_after_interval_plus_pause() -> None:
    d = PhiAccrualDetector(acceptable_pause_s=3.0, min_std_s=0.5)
    last = regular(d)
    assert d.suspects(last + 1.0 + 3.0, 8.0) == []
    assert d.suspects(last + 1.0 + 3.0 + 4.0, 8.0) == ["a"]


def test_bootstrap_timeout_and_forget() -> None:
    d = PhiAccrualDetector(bootstrap_timeout_s=10)
    d.heartbeat("b", 0.0)
    assert d.suspects(9.0) == []
    assert d.suspects(11.0) == ["b"]
    d.forget("b")
    assert d.suspects(11.0) == []


@given(st.integers(0, 2**32), st.floats(0.0, 0.4))
def test_jittery_alive_not_suspected(seed: int, jitter: float) -> None:
    rng = random.Random(seed)
    d = PhiAccrualDetector()
    t = 0.0
    for _ in range(50):
        d.heartbeat("a", t)
        t += 1.0 + rng.uniform(-jitter, jitter)
        assert d.suspects(t - 1e-9, 8.0) == []


def test_a_restart_gap_slows_detection_unless_forgotten() -> None:
    """Why the supervisor forgets an instance whose heartbeat seq went back."""
    kept, fresh = PhiAccrualDetector(), PhiAccrualDetector()
    for d in (kept, fresh):
        last = regular(d)
    restart_at = last + 30.0  # the new process's first heartbeat, 30 s later
    fresh.forget("a")
    for d in (kept, fresh):
        for i in range(20):
            d.heartbeat("a", restart_at + i)
    silent = restart_at + 19 + 8.0
    assert fresh.phi("a", silent) >= 8.0 > kept.phi("a", silent)


def test_the_watchers_own_time_away_is_nobodys_silence() -> None:
    """`skip`: only clocks last heard before the watcher left move on."""
    d = PhiAccrualDetector()
    last = regular(d)
    d.heartbeat("b", last + 0.5)  # heard after the watcher left: a fresh clock
    d.heartbeat("b", last + 1.5)
    d.heartbeat("b", last + 2.5)
    d.heartbeat("b", last + 3.5)
    back = last + 60.0
    assert d.phi("a", back) >= 8.0
    d.skip(last, back - last - 1.0)
    assert d.phi("a", back) < 1.0
    assert d.phi("b", back) >= 8.0  # its silence since last + 3.5 is its own
