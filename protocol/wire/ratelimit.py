"""The relay's token bucket (docs/PROTOCOL.md 16.3, rate_per_second and rate_burst).

Sans-I/O: the caller passes the time in, so tests and the connection core can drive it
with any clock.
"""

from __future__ import annotations


class TokenBucket:
    """Every frame costs one token; tokens refill at `rate` per second up to `burst`."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spends one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
