"""Who is calling: bearer tokens kept as hashes, one principal each, a rate per token.

`SYNOD_API_TOKENS` is a comma-separated list of entries, each one of
- `principal=sha256:<hex>`: the token's SHA-256, so the gateway's config holds
  no token at all (`python -m synod.roles.gateway.tokens <principal>` reads a token
  on stdin and prints its entry);
- `principal=<token>`: hashed when read, the clear text then dropped;
- `<token>`: as before this module; its principal is `token-<first 8 hex of its hash>`.

`TokenBook.principal_for(token)` is the one lookup every part of the gateway
uses (the escalation answers record who answered through it). It hashes the
given token and compares the digest with every stored one in constant time,
so neither a wrong token nor which entry matched shows in the time taken.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from synod.errors import ConfigError

_HASHED = re.compile(r"^sha256:([0-9a-f]{64})$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def hashed_entry(principal: str, token: str) -> str:
    """The `SYNOD_API_TOKENS` entry that stores `token` for `principal` as its hash only."""
    return f"{principal}=sha256:{token_digest(token).hex()}"


@dataclass(frozen=True)
class TokenEntry:
    principal: str
    digest: bytes


def parse_entries(entries: Iterable[str]) -> list[TokenEntry]:
    """Entries of SYNOD_API_TOKENS; a bad one fails naming its position, never its text."""
    parsed: list[TokenEntry] = []
    for n, raw in enumerate(entries, start=1):
        entry = raw.strip()
        if not entry:
            continue
        principal, sep, secret = entry.partition("=")
        if not sep:
            digest = token_digest(entry)
            parsed.append(TokenEntry(f"token-{digest.hex()[:8]}", digest))
            continue
        if not _PRINCIPAL.match(principal) or not secret:
            raise ConfigError(
                f"SYNOD_API_TOKENS entry {n}: expected `principal=token` or "
                "`principal=sha256:<64 hex>` with a principal of letters, digits and _.@-"
            )
        hashed = _HASHED.match(secret)
        parsed.append(
            TokenEntry(principal, bytes.fromhex(hashed[1]) if hashed else token_digest(secret))
        )
    principals = [e.principal for e in parsed]
    if len(set(principals)) != len(principals):
        raise ConfigError("SYNOD_API_TOKENS: two entries name the same principal")
    return parsed


class TokenBook:
    """Stored token digests and their principals."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self.entries = tuple(entries)

    @classmethod
    def from_settings(cls, entries: Iterable[str]) -> TokenBook:
        return cls(parse_entries(entries))

    @property
    def required(self) -> bool:
        return bool(self.entries)

    def principal_for(self, token: str) -> str | None:
        """The principal a bearer token belongs to, or None: the one lookup of the gateway."""
        given = token_digest(token)
        found: str | None = None
        # Every entry is compared, the result taken without branching on earlier
        # ones: the time depends on the number of entries only.
        for entry in self.entries:
            if hmac.compare_digest(given, entry.digest):
                found = entry.principal
        return found


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per principal: `rate_per_s` sustained, `burst` at once.

    `admit` answers 0 (go on) or the seconds until one more request is allowed,
    which the gateway sends as `Retry-After` with a 429.
    """

    rate_per_s: float
    burst: float
    clock: Callable[[], float]
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, principal: str) -> float:
        if self.rate_per_s <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(principal)
        if bucket is None:
            bucket = self.buckets[principal] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it gets in."""
    return str(max(1, math.ceil(wait_s)))


# Where the auth middleware leaves the caller's principal on an aiohttp request
# (None when the gateway runs without tokens).
PRINCIPAL_KEY = web.RequestKey("synod_principal", str)


def principal_of(request: web.Request) -> str | None:
    """The principal of the request being handled (set by the gateway's auth middleware)."""
    return request.get(PRINCIPAL_KEY)


def main(argv: list[str] | None = None) -> int:
    import sys  # only for this small command

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not _PRINCIPAL.match(args[0]):
        print("usage: python -m synod.roles.gateway.tokens <principal> < token", file=sys.stderr)
        return 2
    token = sys.stdin.readline().strip()
    if not token:
        print("no token on stdin", file=sys.stderr)
        return 2
    print(hashed_entry(args[0], token))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
