"""Quarantines as every planner sees them: the latest notice per instance (pure fold).

The supervisor writes a `QuarantineNotice` per change to the compacted topic
`synod.supervisor`, keyed by instance, so the topic always holds each
instance's current state and a new reader rebuilds it from the start.
`QuarantineBook` folds those notices; the planner's Kafka reader
(`synod.roles.planner.quarantine.follow`) feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from synod.wire import Envelope
from synod.wire.messages import QuarantineNotice


@dataclass
class QuarantineBook:
    notices: dict[str, QuarantineNotice] = field(default_factory=dict)

    def apply(self, envelope: Envelope[Any]) -> bool:
        body = envelope.body
        if not isinstance(body, QuarantineNotice):
            return False
        self.notices[body.instance] = body
        return True

    def active(self, now: datetime) -> frozenset[str]:
        """Instances in quarantine at `now`. A notice past its `until` no longer
        counts even if the release was never written (a supervisor that died
        cannot keep anyone out for ever)."""
        return frozenset(
            n.instance
            for n in self.notices.values()
            if n.active and (n.until is None or n.until > now)
        )
