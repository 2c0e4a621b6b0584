"""Per-account budget for LOOKUP_IDENTITY (PROTOCOL.md 16.6, docs/DATA.md "In memory").

The per-connection token bucket lets one account ask about 200 names a second; spread
over connections, even more. That is enough to enumerate who has an account. Each
account gets one bucket for lookups, shared by all its connections; beyond it the
relay answers RATE_LIMITED."""

from __future__ import annotations

from protocol.wire.ratelimit import TokenBucket

LOOKUP_RATE = 1.0
"""Lookups per second an account earns back."""
LOOKUP_BURST = 100
"""Lookups an account may make at once (a client looks a name up when adding a contact
or on a first message from an identity it has not pinned)."""


class LookupBudget:
    """One token bucket per account, kept only while it is not full again."""

    def __init__(self, rate: float = LOOKUP_RATE, burst: int = LOOKUP_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, account: str, now: float) -> bool:
        bucket = self.buckets.get(account)
        if bucket is None:
            bucket = self.buckets[account] = TokenBucket(self.rate, self.burst, now)
        allowed = bucket.take(now)
        if len(self.buckets) > 1024:
            self._forget_full(now)
        return allowed

    def _forget_full(self, now: float) -> None:
        """Drops buckets that have refilled: they hold nothing an empty one would not."""
        for name, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * bucket.rate >= bucket.burst:
                del self.buckets[name]
