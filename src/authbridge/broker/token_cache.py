"""The token endpoint's in-memory cache: the same rules as the proxy's targets.

``GET /connections/{id}/token`` answers from here while the token is outside its refresh window (at
most ``ttl`` seconds) and the invalidation log is being read (``CacheSync.trusted``). An entry is
dropped at once when this process refreshes, re-authorizes or deletes the connection (the
TokenKeeper's listeners), and within ``CacheSync.max_lag`` when any process changes its credentials,
its status or its integration (the invalidation log). A read that raced a drop is not cached.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Callable
from datetime import datetime

from authbridge.broker.cache_sync import EVERYTHING
from authbridge.broker.lru import LRU
from authbridge.types import Clock

__all__ = ["TokenCache"]

T = typing.TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Entry(typing.Generic[T]):
    value: T = dataclasses.field(repr=False)
    integration: str
    #: Monotonic deadline (the TTL) and the time, on the broker's clock, the token enters its window.
    good_until: float
    due: datetime | None


class TokenCache(typing.Generic[T]):
    """Connection id -> a value built from its credentials, until they are due or anything changes.

    ```
    cache = TokenCache(clock=utcnow, trusted=sync.trusted)
    hit = cache.get(connection_id)                # None on a miss
    epoch = cache.epoch                           # before reading the database
    cache.put(connection_id, value, integration="acme", due=due_at, epoch=epoch)
    ```
    """

    def __init__(
        self,
        *,
        clock: Clock,
        trusted: Callable[[float], bool] = lambda _now: False,
        ttl: float = 60.0,
        capacity: int = 10_000,
    ) -> None:
        self.clock = clock
        self.trusted = trusted
        self.ttl = ttl
        self._entries: LRU[str, _Entry[T]] = LRU(capacity)
        #: Bumped on every drop: a value read while one happened may predate the change.
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, connection_id: object) -> bool:
        """Whether an entry is held for the connection (good or not)."""
        return connection_id in self._entries

    def get(self, connection_id: str) -> T | None:
        """The cached value while it is good (not due, within the TTL, the log being read), else None."""
        entry = self._entries.get(connection_id)
        if entry is None:
            return None
        now = time.monotonic()
        if entry.good_until <= now or not self.trusted(now) or (entry.due is not None and self.clock() >= entry.due):
            return None
        return entry.value

    def put(self, connection_id: str, value: T, *, integration: str, due: datetime | None, epoch: int) -> None:
        """Cache ``value`` until ``due`` (at most ``ttl`` s), unless something was dropped since ``epoch``."""
        if epoch != self.epoch:
            return
        ttl = self.ttl
        if due is not None:
            ttl = min(ttl, (due - self.clock()).total_seconds())
        if ttl <= 0:
            return
        self._entries[connection_id] = _Entry(value, integration, time.monotonic() + ttl, due)

    def forget(self, connection_id: str) -> None:
        """Drop one connection's entry (its credentials changed, or it is gone)."""
        self.epoch += 1
        self._entries.pop(connection_id, None)

    def invalidated(self, kind: str, ref: str) -> None:
        """A change from the invalidation log (any process): drop what it touches."""
        if kind == "connection":
            self.forget(ref)
        elif kind == "integration":
            self.epoch += 1
            for connection_id in [c for c, e in self._entries.items() if e.integration == ref]:
                del self._entries[connection_id]
        elif kind == EVERYTHING:
            self.epoch += 1
            self._entries.clear()
