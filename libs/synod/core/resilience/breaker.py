"""Circuit breaker for one (provider, model): a pure state machine, time passed in.

`allow(now)` says whether a call may go out and, when it may, hands out a
`Permit`; the caller gives the permit back with `record(...)` (the call ended
with a verdict) or `release(...)` (it ended without one, e.g. the caller
cancelled it). Permits carry the epoch (the number of transitions so far) they
were issued in, so an outcome that arrives after the state has moved on is
recognised as stale: a slow call admitted while closed must neither count as a
half-open probe nor free a probe's slot, and a probe from an earlier half-open
period must not close the breaker now.

Only `transient` failures count toward opening; `permanent` and `budget` errors
are ignored (they say nothing about the provider's health). Every transition is
appended to `transitions` for the caller to log or count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from synod.errors import ErrorClass

State = Literal["closed", "open", "half_open"]
STATES: tuple[State, ...] = ("closed", "open", "half_open")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_s: float = 60.0
    # 20, not 10: at a healthy provider's usual 10-15% transient errors, 5 of the
    # first 10 calls failing has probability ~1.3% (binomial, p=0.16); 10 of 20, 0.04%.
    min_calls: int = 20
    failure_rate_threshold: float = 0.5
    open_for_s: float = 30.0
    half_open_probes: int = 1
    success_to_close: int = 1
    # A transient failure that asks the caller to wait at least this long (a 429
    # or 529 with retry-after) opens the breaker until then: the provider said
    # when to come back, so calls before that are wasted. None ignores the hint.
    retry_after_hold_s: float | None = 30.0

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"window_s must be > 0, not {self.window_s}")
        if self.min_calls < 1:
            raise ValueError(f"min_calls must be >= 1, not {self.min_calls}")
        if not 0 < self.failure_rate_threshold <= 1:
            raise ValueError(
                f"failure_rate_threshold must be in (0, 1], not {self.failure_rate_threshold}"
            )
        if not self.open_for_s >= 0:
            raise ValueError(f"open_for_s must be >= 0, not {self.open_for_s}")
        if self.half_open_probes < 1:
            raise ValueError(f"half_open_probes must be >= 1, not {self.half_open_probes}")
        if self.success_to_close < 1:
            raise ValueError(f"success_to_close must be >= 1, not {self.success_to_close}")
        if self.retry_after_hold_s is not None and not self.retry_after_hold_s > 0:
            raise ValueError(f"retry_after_hold_s must be > 0, not {self.retry_after_hold_s}")


@dataclass(frozen=True, slots=True)
class Permit:
    """A licence for one call; give it back exactly once with `record` or `release`."""

    epoch: int
    probe: bool


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    state: State
    # Until the breaker next admits a call: exact while open, 0 when unknown
    # (half-open with every probe slot taken: it depends on the probes).
    retry_after_s: float
    permit: Permit | None = None


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
    _epoch: int = 0
    _now: float = float("-inf")
    # (time, ok) of the counted outcomes of calls admitted in the current closed period.
    _calls: deque[tuple[float, bool]] = field(default_factory=deque)
    _failures: int = 0
    _open_until: float = 0.0
    _probes_in_flight: int = 0
    _probe_ok: int = 0

    def _clock(self, now: float) -> float:
        # Callers pass a monotonic clock; a reading from a lagging caller is taken
        # as "now", never as time going backwards (the window would misbehave).
        self._now = max(self._now, now)
        return self._now

    def _move(self, to: State, at: float, reason: str, open_for_s: float | None = None) -> None:
        self.transitions.append(Transition(self._state, to, at, reason))
        self._state = to
        self._epoch += 1
        # Outcomes from before a transition describe the provider as it was: a
        # closed period starts with an empty window (else the failures that
        # opened it would reopen it on the first new failure), a half-open
        # period with no probes.
        self._calls.clear()
        self._failures = 0
        self._probes_in_flight = 0
        self._probe_ok = 0
        if to == "open":
            self._open_until = at + (self.config.open_for_s if open_for_s is None else open_for_s)

    def _advance(self, now: float) -> None:
        due = self._open_until
        if self._state == "open" and now >= due:
            self._move("half_open", due, "cool-down over")
        if self._state == "closed":
            horizon = now - self.config.window_s
            while self._calls and self._calls[0][0] <= horizon:
                _, ok = self._calls.popleft()
                self._failures -= not ok

    def state(self, now: float) -> State:
        self._advance(self._clock(now))
        return self._state

    @property
    def epoch(self) -> int:
        return self._epoch

    def window(self, now: float) -> tuple[int, int]:
        """(calls, failures) counted in the rolling window now (closed state only)."""
        self._advance(self._clock(now))
        return len(self._calls), self._failures

    def probes_in_flight(self) -> int:
        return self._probes_in_flight

    def allow(self, now: float) -> Decision:
        now = self._clock(now)
        self._advance(now)
        st = self._state
        if st == "closed":
            return Decision(True, st, 0.0, Permit(self._epoch, probe=False))
        if st == "open":
            return Decision(False, st, self._open_until - now)
        if self._probes_in_flight < self.config.half_open_probes:
            self._probes_in_flight += 1
            return Decision(True, st, 0.0, Permit(self._epoch, probe=True))
        return Decision(False, st, 0.0)

    def record(
        self,
        permit: Permit,
        now: float,
        *,
        ok: bool,
        error_class: ErrorClass = "transient",
        retry_after_s: float | None = None,
    ) -> Transition | None:
        """The call admitted with `permit` ended; returns the transition it caused, if any.

        `retry_after_s` is the provider's own hint on a failure (see
        `BreakerConfig.retry_after_hold_s`).
        """
        now = self._clock(now)
        self._advance(now)
        before = len(self.transitions)
        if permit.epoch == self._epoch:
            counts = ok or error_class == "transient"
            hold = self.config.retry_after_hold_s
            told = not ok and counts and hold is not None and (retry_after_s or 0) >= hold
            if self._state == "half_open" and permit.probe:
                self._probes_in_flight -= 1
                if told:
                    self._hold(now, retry_after_s or 0)
                elif counts:
                    self._probe(now, ok)
            elif self._state == "closed" and told:
                self._hold(now, retry_after_s or 0)
            elif self._state == "closed" and counts:
                self._count(now, ok)
        return self.transitions[-1] if len(self.transitions) > before else None

    def release(self, permit: Permit, now: float) -> None:
        """The call ended without a verdict on the provider (cancelled by its caller)."""
        self._advance(self._clock(now))
        if permit.probe and permit.epoch == self._epoch and self._state == "half_open":
            self._probes_in_flight -= 1

    def _hold(self, now: float, retry_after_s: float) -> None:
        hold = max(self.config.open_for_s, retry_after_s)
        self._move("open", now, f"provider asked to retry after {retry_after_s:g}s", hold)

    def _probe(self, now: float, ok: bool) -> None:
        if not ok:
            self._move("open", now, "probe failed")
            return
        self._probe_ok += 1
        if self._probe_ok >= self.config.success_to_close:
            self._move("closed", now, f"{self._probe_ok} probes succeeded")

    def _count(self, now: float, ok: bool) -> None:
        self._calls.append((now, ok))
        self._failures += not ok
        n = len(self._calls)
        if n >= self.config.min_calls and self._failures / n >= self.config.failure_rate_threshold:
            why = f"failure rate {self._failures}/{n} in {self.config.window_s:g}s"
            self._move("open", now, why)
