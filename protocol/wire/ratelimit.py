"""The relay's token bucket (docs/PROTOCOL.md 16.3, rate_per_second and rate_burst; the
relay's budgets of 16.7 use it too, with costs in envelopes or bytes).

Sans-I/O: the caller passes the time in, so tests and the connection core can drive it
with any clock.
"""

from __future__ import annotations


class TokenBucket:
    """Tokens refill at `rate` per second up to `burst`; a frame costs one token, a
    budget may charge more (an envelope's bytes)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def refill(self, now: float) -> float:
        """Brings the bucket up to `now`; returns the tokens it holds."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def can_take(self, now: float, cost: float = 1.0) -> bool:
        return self.refill(now) >= cost

    def spend(self, cost: float) -> None:
        """Takes `cost` tokens the caller has checked are there (see `can_take`)."""
        self.tokens -= cost

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spends `cost` tokens if there are that many."""
        if self.can_take(now, cost):
            self.tokens -= cost
            return True
        return False

    def full(self, now: float) -> bool:
        """True once the bucket has refilled: it then remembers nothing worth keeping."""
        return self.refill(now) >= self.burst
