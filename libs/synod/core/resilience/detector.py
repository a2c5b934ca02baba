"""Phi-accrual failure detector (Hayashibara et al.) for heartbeats, time passed in.

phi = -log10(P(next heartbeat later than now)), with inter-arrival times modelled
as normal(mean + acceptable_pause_s, max(std, min_std_s)) over a sliding window.
Before `min_samples` intervals exist, a plain timeout is used: phi is 0 until
`bootstrap_timeout_s` of silence, then infinity.

A restarted process under the same instance id must be `forget`-ed first
(the supervisor does so when the heartbeat `seq` goes back): otherwise the
restart's silence enters the window as one long interval and makes the
detector slow to suspect that instance for the next `window` heartbeats.

A watcher that was itself away (paused, starved, cut off) calls `skip`: the
time it did not watch is not anyone's silence, so every clock last heard
before it left moves on by the time away (the watcher's own silence must
not be counted as the others').
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _History:
    last: float
    intervals: deque[float]


@dataclass
class PhiAccrualDetector:
    window: int = 100
    min_std_s: float = 0.5
    acceptable_pause_s: float = 3.0
    min_samples: int = 3
    bootstrap_timeout_s: float = 30.0
    _hist: dict[str, _History] = field(default_factory=dict)

    def heartbeat(self, instance: str, now: float) -> None:
        h = self._hist.get(instance)
        if h is None:
            self._hist[instance] = _History(now, deque(maxlen=self.window))
            return
        if now > h.last:
            h.intervals.append(now - h.last)
            h.last = now

    def phi(self, instance: str, now: float) -> float:
        h = self._hist.get(instance)
        if h is None:
            return 0.0
        elapsed = max(0.0, now - h.last)
        n = len(h.intervals)
        if n < self.min_samples:
            return math.inf if elapsed > self.bootstrap_timeout_s else 0.0
        mean = sum(h.intervals) / n
        std = max(self.min_std_s, math.sqrt(sum((x - mean) ** 2 for x in h.intervals) / n))
        z = (elapsed - mean - self.acceptable_pause_s) / std
        p_later = 0.5 * math.erfc(z / math.sqrt(2.0))
        return math.inf if p_later <= 0.0 else -math.log10(p_later)

    def skip(self, before: float, away_s: float) -> None:
        """Shift by `away_s` the last heartbeat of every instance last heard at or before
        `before` (when the watcher left): its next interval then leaves out the time away."""
        for h in self._hist.values():
            if h.last <= before:
                h.last += away_s

    def suspects(self, now: float, threshold: float = 8.0) -> list[str]:
        return sorted(i for i in self._hist if self.phi(i, now) >= threshold)

    def forget(self, instance: str) -> None:
        self._hist.pop(instance, None)
