"""Per-file write leases: at most one writer per file at a time, in `strong` mode.

A lease is a time-bounded right to write one path. Each grant carries a fencing
token that grows with every new grant, so a writer that paused past its
lease (a stalled process, a long LLM call) and then writes is refused: its
token is no longer the current one. Time is an input; nothing here reads a
clock, and a lease is valid while `now < expires_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class Lease:
    path: str
    holder: str
    token: int
    expires_at: float


CheckReason = Literal["no_lease", "not_holder", "stale_token", "expired"]
DenyReason = Literal[CheckReason, "held_by_other"]


@dataclass(frozen=True)
class LeaseDenied:
    path: str
    requester: str
    reason: DenyReason
    current: Lease | None


class LeaseTable:
    """The leases of one workspace; feed it requests in log order."""

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._last_token = 0
        self._tokens: dict[str, int] = {}  # path -> newest token granted by `grant`

    def acquire(self, path: str, holder: str, now: float, ttl: float) -> Lease | LeaseDenied:
        """Grant the lease if it is free or expired; a holder re-acquiring just extends it."""
        _check_ttl(ttl)
        current = self.current(path, now)
        if current is not None and current.holder != holder:
            return LeaseDenied(path, holder, "held_by_other", current)
        if current is not None:
            lease = replace(current, expires_at=now + ttl)
        else:
            self._last_token += 1
            lease = Lease(path, holder, self._last_token, now + ttl)
        self._leases[path] = lease
        return lease

    def grant(self, lease: Lease) -> Lease | LeaseDenied:
        """Install a lease an authority elsewhere issued (the task's planner), replaying its log.

        Its token must be newer than any this table has seen for the path, so
        replaying grants in log order keeps the fencing order; an older one is
        refused as `stale_token`. A newer grant fences the old holder at once,
        whether or not its lease has expired.
        """
        seen = self._tokens.get(lease.path, 0)
        if lease.token <= seen:
            return LeaseDenied(
                lease.path, lease.holder, "stale_token", self._leases.get(lease.path)
            )
        self._tokens[lease.path] = lease.token
        self._last_token = max(self._last_token, lease.token)
        self._leases[lease.path] = lease
        return lease

    def renew(
        self, path: str, holder: str, token: int, now: float, ttl: float
    ) -> Lease | LeaseDenied:
        """Extend a lease still held; an expired one must be acquired again (new token)."""
        _check_ttl(ttl)
        problem = self.check(path, holder, token, now)
        if problem is not None:
            return LeaseDenied(path, holder, problem, self._leases.get(path))
        lease = replace(self._leases[path], expires_at=now + ttl)
        self._leases[path] = lease
        return lease

    def release(self, path: str, holder: str, token: int) -> bool:
        """Give the lease up; False if the caller does not hold this grant."""
        lease = self._leases.get(path)
        if lease is None or lease.holder != holder or lease.token != token:
            return False
        del self._leases[path]
        return True

    def expire(self, now: float) -> tuple[Lease, ...]:
        """Drop every lease expired at `now` and return them, in path order."""
        gone = tuple(sorted((x for x in self._leases.values() if now >= x.expires_at), key=_path))
        for lease in gone:
            del self._leases[lease.path]
        return gone

    def current(self, path: str, now: float) -> Lease | None:
        lease = self._leases.get(path)
        return lease if lease is not None and now < lease.expires_at else None

    def check(self, path: str, holder: str, token: int | None, now: float) -> CheckReason | None:
        """None if `holder` may write `path` now with `token`, else why not."""
        lease = self._leases.get(path)
        if lease is None or token is None:
            return "no_lease"
        if lease.holder != holder:
            return "not_holder"
        if lease.token != token:
            return "stale_token"
        if now >= lease.expires_at:
            return "expired"
        return None


def _path(lease: Lease) -> str:
    return lease.path


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"a lease needs a positive ttl, got {ttl}")
