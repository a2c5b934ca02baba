"""Circuit breaker for one (provider, model): a pure state machine, time passed in.

Only `transient` failures count toward opening; `permanent` and `budget` errors are
ignored (they say nothing about the provider's health). Transitions are appended
to `transitions` for the caller to log or count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from synod.errors import ErrorClass

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_s: float = 60.0
    min_calls: int = 10
    failure_rate_threshold: float = 0.5
    open_for_s: float = 30.0
    half_open_probes: int = 1
    success_to_close: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    state: State
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: State
    to_state: State
    at: float
    reason: str


@dataclass
class CircuitBreaker:
    config: BreakerConfig = field(default_factory=BreakerConfig)
    transitions: list[Transition] = field(default_factory=list)
    _state: State = "closed"
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)
    _opened_at: float = 0.0
    _in_flight: int = 0
    _probe_ok: int = 0

    def _move(self, to: State, now: float, reason: str) -> None:
        self.transitions.append(Transition(self._state, to, now, reason))
        self._state = to
        self._calls.clear()
        self._in_flight = 0
        self._probe_ok = 0
        if to == "open":
            self._opened_at = now

    def state(self, now: float) -> State:
        if self._state == "open" and now >= self._opened_at + self.config.open_for_s:
            self._move("half_open", now, "open_for_s elapsed")
        return self._state

    def allow(self, now: float) -> Decision:
        st = self.state(now)
        if st == "closed":
            return Decision(True, st, 0.0)
        if st == "open":
            return Decision(False, st, self._opened_at + self.config.open_for_s - now)
        if self._in_flight < self.config.half_open_probes:
            self._in_flight += 1
            return Decision(True, st, 0.0)
        return Decision(False, st, 0.0)

    def record(self, now: float, ok: bool, error_class: ErrorClass = "transient") -> None:
        st = self.state(now)
        counts = ok or error_class == "transient"
        if st == "half_open":
            self._in_flight = max(0, self._in_flight - 1)
            if not counts:
                return
            if not ok:
                self._move("open", now, "probe failed")
                return
            self._probe_ok += 1
            if self._probe_ok >= self.config.success_to_close:
                self._move("closed", now, "probes succeeded")
            return
        if st != "closed" or not counts:
            return
        self._calls.append((now, ok))
        while self._calls and self._calls[0][0] <= now - self.config.window_s:
            self._calls.popleft()
        n = len(self._calls)
        fails = sum(1 for _, good in self._calls if not good)
        if n >= self.config.min_calls and fails / n >= self.config.failure_rate_threshold:
            self._move("open", now, f"failure rate {fails}/{n} in window")
