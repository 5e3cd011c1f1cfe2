"""Sign-in rate limits: a token bucket per client address and one for everyone, in this process's memory.

```
limiter = SignInLimiter(per_address=10, overall=60)     # attempts per minute; bursts of that many
wait = limiter.attempt("203.0.113.7")                   # 0.0: go ahead; else seconds until the next try
```

Behind a reverse proxy every request comes from the proxy's address, so the per-address bucket
acts as a second overall one; the overall bucket still bounds the guessing rate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

__all__ = ["SignInLimiter", "TokenBucket"]

#: The per-address table is cleared of full buckets when it grows past this many addresses.
_MAX_ADDRESSES = 10_000


@dataclasses.dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; an attempt takes one."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0.0 when one is)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Take a token (after ``wait`` said 0)."""
        self.tokens -= 1

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely (nothing to remember about its address)."""
        self._refill(now)
        return self.tokens >= self.capacity


class SignInLimiter:
    """Allows ``per_address`` attempts per minute from one address and ``overall`` from all together."""

    def __init__(self, per_address: int, overall: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address = per_address
        self.clock = clock
        self._overall = TokenBucket(overall, overall / 60, overall, clock())
        self._buckets: dict[str, TokenBucket] = {}

    def attempt(self, address: str) -> float:
        """Count an attempt from ``address``: 0.0 when allowed, else the seconds to wait (nothing is counted)."""
        now = self.clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= _MAX_ADDRESSES:
                self._buckets = {a: b for a, b in self._buckets.items() if not b.full(now)}
                if len(self._buckets) >= _MAX_ADDRESSES:
                    self._buckets.clear()  # too many addresses at once: the overall bucket still holds
            bucket = self._buckets[address] = TokenBucket(
                self.per_address, self.per_address / 60, self.per_address, now
            )
        wait = max(bucket.wait(now), self._overall.wait(now))
        if wait > 0:
            return wait
        bucket.take()
        self._overall.take()
        return 0.0

    @staticmethod
    def retry_after(wait: float) -> int:
        """``wait`` as a Retry-After value: whole seconds, at least 1."""
        return max(1, math.ceil(wait))
