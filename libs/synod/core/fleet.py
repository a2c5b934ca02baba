"""The agents as the console shows them: every instance, its health, from heartbeats.

Pure: heartbeats and quarantine notices in (each with the time it stands
for), a table out for a `now` the caller passes. The suspicion is the same
phi-accrual detector the supervisor runs, with the supervisor's defaults, so
the console shows an instance as suspect when the supervisor would act on it.

Times. A heartbeat is placed at its envelope's `created_at` (the sender's
clock), not at the time the gateway read it: the gateway reads the topic's
last hour at start, and arrival times would all be "now". Within one machine
or an NTP-synced cluster the skew is far below a heartbeat interval.

Restarts are counted from the heartbeats themselves: a new process under an
old instance id starts its `seq` again, or reports another pid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synod.core.resilience.detector import PhiAccrualDetector
from synod.wire.messages import Heartbeat, QuarantineNotice

# The supervisor's defaults (synod.core.supervisor.SupervisorConfig).
PHI_THRESHOLD = 8.0
ACCEPTABLE_PAUSE_S = 3.0
MIN_STD_S = 0.5
BOOTSTRAP_TIMEOUT_S = 10.0
# Gone from the table after this much silence (scaled away, not dead).
FORGET_AFTER_S = 600.0


@dataclass
class _Instance:
    instance: str
    role: str
    seq: int = -1
    pid: int = 0
    host: str = ""
    state: str = "running"
    last_beat: float = 0.0
    first_beat: float = 0.0
    beats: int = 0
    restarts: int = 0
    in_flight: list[str] = field(default_factory=list)
    breakers: dict[str, str] = field(default_factory=dict)
    last_progress_at: datetime | None = None


@dataclass
class Fleet:
    """Instances by id, with what their heartbeats and the supervisor said."""

    phi_threshold: float = PHI_THRESHOLD
    forget_after_s: float = FORGET_AFTER_S
    _instances: dict[str, _Instance] = field(default_factory=dict)
    _quarantines: dict[str, QuarantineNotice] = field(default_factory=dict)
    _detector: PhiAccrualDetector = field(
        default_factory=lambda: PhiAccrualDetector(
            min_std_s=MIN_STD_S,
            acceptable_pause_s=ACCEPTABLE_PAUSE_S,
            bootstrap_timeout_s=BOOTSTRAP_TIMEOUT_S,
        )
    )

    def heartbeat(self, beat: Heartbeat, at: float) -> None:
        inst = self._instances.get(beat.instance)
        if inst is None:
            inst = self._instances[beat.instance] = _Instance(beat.instance, beat.role)
            inst.first_beat = at
        elif at < inst.last_beat:
            return  # an older beat read late (another partition): it says nothing new
        restarted = inst.beats > 0 and (
            beat.seq < inst.seq or (beat.pid and inst.pid and beat.pid != inst.pid)
        )
        if restarted or inst.state == "stopping":
            # A new process: the silence before it is not part of its rhythm.
            self._detector.forget(beat.instance)
            if restarted:
                inst.restarts += 1
        inst.role = beat.role
        inst.seq = beat.seq
        inst.pid = beat.pid or inst.pid
        inst.host = beat.host or inst.host
        inst.state = beat.state
        inst.last_beat = at
        inst.beats += 1
        inst.in_flight = list(beat.in_flight)
        inst.breakers = dict(beat.breakers)
        inst.last_progress_at = beat.last_progress_at
        if beat.state == "stopping":
            self._detector.forget(beat.instance)
        else:
            self._detector.heartbeat(beat.instance, at)

    def quarantine(self, notice: QuarantineNotice) -> None:
        self._quarantines[notice.instance] = notice

    def agents(self, now: float) -> list[dict[str, Any]]:
        """Every instance heard from within `forget_after_s`, by role then id."""
        out = []
        for name in sorted(self._instances, key=lambda n: (self._instances[n].role, n)):
            inst = self._instances[name]
            age = max(0.0, now - inst.last_beat)
            if age > self.forget_after_s:
                continue
            phi = self._detector.phi(name, now) if inst.state != "stopping" else 0.0
            notice = self._quarantines.get(name)
            quarantined = (
                notice is not None
                and notice.active
                and (notice.until is None or notice.until.timestamp() > now)
            )
            health = (
                "stopped"
                if inst.state == "stopping"
                else ("suspect" if phi >= self.phi_threshold else "alive")
            )
            out.append(
                {
                    "instance": name,
                    "role": inst.role,
                    "state": inst.state,
                    "health": health,
                    "heartbeat_age_s": round(age, 3),
                    "phi": None if math.isinf(phi) else round(phi, 3),
                    "phi_infinite": math.isinf(phi),
                    "suspect": health == "suspect",
                    "seq": inst.seq,
                    "pid": inst.pid,
                    "host": inst.host,
                    "beats": inst.beats,
                    "restarts": inst.restarts,
                    "in_flight": list(inst.in_flight),
                    "breakers": dict(inst.breakers),
                    "last_progress_at": (
                        inst.last_progress_at.isoformat() if inst.last_progress_at else None
                    ),
                    "quarantined": quarantined,
                    "quarantine": (
                        {
                            "active": notice.active,
                            "until": notice.until.isoformat() if notice.until else None,
                            "reason": notice.reason,
                            "strikes": notice.strikes,
                        }
                        if notice is not None
                        else None
                    ),
                }
            )
        return out


__all__ = ["PHI_THRESHOLD", "Fleet"]
