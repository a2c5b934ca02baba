"""The process's circuit breakers by name ("provider/model"), for whoever must report them.

The LLM wrapper creates and drives the breakers; the service runtime reads
their states into every heartbeat. Both hold the same board, so a heartbeat
shows exactly the breakers the calls went through. Time is still passed in:
the board is as pure as the breakers it holds. Listeners hear every
transition once, including an open breaker's lazy move to half-open that only
a heartbeat noticed.
"""

from __future__ import annotations

from collections.abc import Callable

from synod.core.resilience.breaker import BreakerConfig, CircuitBreaker, State, Transition

Listener = Callable[[str, Transition], None]


class BreakerBoard:
    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._reported: dict[str, int] = {}
        self._listeners: list[Listener] = []

    def breaker(self, key: str, config: BreakerConfig) -> CircuitBreaker:
        """The breaker named `key`, created with `config` the first time it is asked for."""
        found = self._breakers.get(key)
        if found is None:
            found = self._breakers[key] = CircuitBreaker(config)
            self._reported[key] = 0
        return found

    def listen(self, listener: Listener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def settle(self, key: str) -> None:
        """Tell the listeners about the transitions of `key` they have not heard yet."""
        breaker = self._breakers[key]
        new = breaker.transitions[self._reported[key] :]
        self._reported[key] = len(breaker.transitions)
        for transition in new:
            for listener in self._listeners:
                listener(key, transition)

    def states(self, now: float) -> dict[str, State]:
        out: dict[str, State] = {}
        for key, breaker in sorted(self._breakers.items()):
            out[key] = breaker.state(now)
            self.settle(key)
        return out

    def clear(self) -> None:
        """Forget every breaker (a test starting afresh in the same process)."""
        self._breakers.clear()
        self._reported.clear()


# One board per process: heartbeats report it, the LLM wrapper fills it.
BREAKERS = BreakerBoard()
