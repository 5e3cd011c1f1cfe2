"""Keeps a process's in-memory caches in step with changes other processes make.

Each process caches verified API keys and each connection's proxy target, so the hot path touches no
database. Every change those caches may hold (an API key revoked, a connection's credentials written,
its status changed or the connection deleted, an integration changed) adds a row to the invalidation
log in the same transaction (``store.invalidations``). One task per process reads the log every
``interval`` seconds (one primary-key range query) and tells its listeners what to drop.

A cache is used only while the last completed poll started less than ``max_lag`` seconds ago
(:meth:`CacheSync.trusted`, one comparison on the hot path): a stalled poller (a database outage, a
paused process) makes the caches fall through to the database, and the first poll after such a lapse
drops everything. A change committed at time T therefore stops being served from any replica's cache
by T + ``max_lag`` at the latest; in the steady state, within one interval.

Why a poll and not PostgreSQL LISTEN/NOTIFY: it works on SQLite too (several processes on one file),
needs no connection held outside the pool (LISTEN does not survive PgBouncer's transaction pooling),
cannot lose a notification across a reconnect, and costs one indexed query per interval per process
(about a millisecond: benchmarks/cache_sync.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import anyio

from authbridge.errors import AuthBridgeError
from authbridge.store import Invalidation, Store

__all__ = ["EVERYTHING", "CacheSync"]

logger = logging.getLogger("authbridge.cache_sync")

#: The kind a listener receives when it must drop every entry (after a lapse, or too much to track).
EVERYTHING = "*"
#: Ids read from the log at start, before the latest: changes that may still be committing.
_LOOKBACK = 100
#: How long a missing id (a transaction not yet committed, or rolled back) is looked for.
_GAP_TTL = 120.0
#: More missing ids than this and the caches are dropped instead of tracking them.
_MAX_GAPS = 10_000
#: Log rows older than this are deleted (a process that lags more has dropped its caches anyway).
RETENTION = 3600.0
_PRUNE_EVERY = 300.0


class CacheSync:
    """Reads the invalidation log and tells the listeners which cache entries to drop.

    ```
    sync = CacheSync(store, interval=0.5)
    sync.listeners.append(lambda kind, ref: ...)   # kind: api_key | connection | integration | "*"
    await sync.poll()                              # one read of the log
    await sync.run_forever(stop)                   # every `interval` s until `stop` is set
    if sync.trusted(time.monotonic()): ...         # caches may answer
    ```
    """

    def __init__(self, store: Store, *, interval: float = 0.5, batch: int = 1000) -> None:
        self.store = store
        self.interval = interval
        #: A cache entry may be served only while the last completed poll started within this.
        self.max_lag = 3 * interval
        self.batch = batch
        self.listeners: list[Callable[[str, str], None]] = []
        self._last: int | None = None
        self._gaps: dict[int, float] = {}
        self._synced_at = -float("inf")
        self._pruned_at = -float("inf")
        self._failing = False

    def trusted(self, now: float) -> bool:
        """Whether in-memory caches may answer at monotonic time ``now``."""
        return now - self._synced_at < self.max_lag

    def _notify(self, kind: str, ref: str) -> None:
        for listener in self.listeners:
            try:
                listener(kind, ref)
            except Exception:  # one listener's bug must not keep the others stale
                logger.exception("cache listener failed on %s %s", kind, ref)

    async def poll(self) -> int:
        """Read what changed since the last poll and notify the listeners; return how many changes were read."""
        started = time.monotonic()
        lapsed = not self.trusted(started)
        if self._last is None:
            self._last = max(0, await self.store.invalidations.latest() - _LOOKBACK)
        count = 0
        while True:
            rows = await self.store.invalidations.after(self._last, self._gaps, limit=self.batch)
            self._apply(rows, started)
            count += len(rows)
            if len(rows) < self.batch:
                break
        for missing, since in list(self._gaps.items()):
            if started - since > _GAP_TTL:
                del self._gaps[missing]
        if lapsed:
            # Changes made while the caches were not trusted may be pruned or unread: drop everything.
            self._notify(EVERYTHING, "")
        self._synced_at = started
        if started - self._pruned_at > _PRUNE_EVERY:
            self._pruned_at = started
            await self.store.invalidations.prune(older_than=RETENTION)
        return count

    def _apply(self, rows: Iterable[Invalidation], now: float) -> None:
        assert self._last is not None
        for row in rows:
            if self._gaps.pop(row.id, None) is None and row.id > self._last:
                if row.id - self._last - 1 + len(self._gaps) > _MAX_GAPS:
                    self._gaps.clear()
                    self._notify(EVERYTHING, "")
                else:
                    for missing in range(self._last + 1, row.id):
                        self._gaps[missing] = now
                self._last = row.id
            self._notify(row.kind, row.ref)

    async def run_forever(self, stop: anyio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set. Failures are logged; the caches then lapse."""
        while not stop.is_set():
            try:
                await self.poll()
            except AuthBridgeError as exc:
                if not self._failing:  # once per outage, not twice a second
                    logger.warning(
                        "reading the cache invalidation log failed (caches bypassed until it works): %s", exc
                    )
                self._failing = True
            except Exception:  # keep polling; until it works again the caches are not trusted
                logger.exception("reading the cache invalidation log failed unexpectedly")
                self._failing = True
            else:
                if self._failing:
                    logger.warning("reading the cache invalidation log works again")
                self._failing = False
            with anyio.move_on_after(self.interval):
                await stop.wait()
