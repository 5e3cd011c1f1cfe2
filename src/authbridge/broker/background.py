"""The background refresher: refreshes tokens entering their window even when nobody uses them.

It also refreshes every connection holding a refresh token at least once a day, because providers
revoke refresh tokens left idle. It scans by the index on ``expires_at`` in bounded batches, runs a
bounded number of refreshes at once, and is safe on several replicas: each refresh goes through the
TokenKeeper's lease, so it happens once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio

from authbridge.auth import plugin_for
from authbridge.auth.lifecycle import is_refresh_due
from authbridge.broker.refresh import TokenKeeper
from authbridge.errors import AuthBridgeError
from authbridge.store import ConnectionRecord, Store
from authbridge.types import Clock

__all__ = ["BackgroundRefresher"]

logger = logging.getLogger("authbridge.refresher")

#: Refresh tokens unused for this long are refreshed anyway (providers expire idle ones).
IDLE_REFRESH = timedelta(hours=24)


class BackgroundRefresher:
    """Scan, refresh what is due, repeat.

    ```
    refresher = BackgroundRefresher(store, keeper, clock=utcnow)
    await refresher.run_once()              # one scan; returns how many connections were refreshed
    await refresher.run_forever(stop)       # until `stop` (an anyio.Event) is set
    ```
    """

    def __init__(
        self,
        store: Store,
        keeper: TokenKeeper,
        *,
        clock: Clock,
        horizon: timedelta = timedelta(hours=2),
        batch: int = 100,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.keeper = keeper
        self.clock = clock
        #: Connections expiring within this are looked at; each is then checked against its own window.
        self.horizon = horizon
        self.batch = batch
        self.concurrency = concurrency

    async def _due(self, connection: ConnectionRecord) -> tuple[bool, int]:
        """Whether to refresh now (window or idle refresh token), and the version seen."""
        spec = (await self.store.integrations.get(connection.integration_key)).spec
        if not plugin_for(spec.auth).refreshable(spec):
            return False, 0
        creds = await self.store.credentials.load(connection.id)
        if creds is None:
            return False, 0
        now = self.clock()
        due = is_refresh_due(spec.refresh, expires_at=creds.expires_at, obtained_at=creds.obtained_at, now=now)
        idle = (
            creds.refresh_token is not None
            and connection.last_refreshed_at is not None
            and now - connection.last_refreshed_at >= IDLE_REFRESH
        )
        return due or idle, creds.version

    async def run_once(self) -> int:
        """One scan: refresh every connection due now; return how many were refreshed."""
        await self.keeper.flush_unsaved()  # results the store refused before: their refresh token is spent
        now = self.clock()
        candidates = await self.store.connections.due_for_refresh(
            expiring_before=now + self.horizon, idle_before=now - IDLE_REFRESH, limit=self.batch
        )
        refreshed = 0
        limiter = anyio.Semaphore(self.concurrency)

        async def one(connection: ConnectionRecord) -> None:
            nonlocal refreshed
            async with limiter:
                try:
                    due, version = await self._due(connection)
                    if due:
                        await self.keeper.refresh(connection.id, seen_version=version, force=True)
                        refreshed += 1
                except AuthBridgeError as exc:  # recorded on the connection and as an event by the keeper
                    logger.info("background refresh of %s failed: %s", connection.id, exc)
                except Exception:  # one connection's bug must not stop the refresher
                    logger.exception("background refresh of %s failed unexpectedly", connection.id)

        async with anyio.create_task_group() as group:
            for connection in candidates:
                group.start_soon(one, connection)
        return refreshed

    async def run_forever(self, stop: anyio.Event, *, interval: float = 30.0, first_delay: bool = False) -> None:
        """Scan every ``interval`` seconds until ``stop`` is set. Errors are logged, never fatal."""
        if first_delay:
            with anyio.move_on_after(interval):
                await stop.wait()
        while not stop.is_set():
            try:
                count = await self.run_once()
                if count:
                    logger.info("background refresher refreshed %d connection(s)", count)
            except AuthBridgeError as exc:
                logger.warning("background refresh scan failed: %s", exc)
            except Exception:  # keep refreshing; the error is logged
                logger.exception("background refresh scan failed unexpectedly")
            with anyio.move_on_after(interval):
                await stop.wait()
