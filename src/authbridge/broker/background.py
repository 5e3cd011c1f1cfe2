"""The background refresher: refreshes tokens entering their window even when nobody uses them.

It also refreshes every connection holding a refresh token at least once a day, because providers
revoke refresh tokens left idle.

Each scan *claims* a batch of due connections: one statement takes the refresh lease of up to
``batch`` due rows that nobody holds (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so replicas scanning
at once split the work instead of queueing on the same rows. The batch is refreshed ``concurrency``
at a time through the TokenKeeper (which renews the lease it finds in its own name, and still
re-reads the version, so each refresh happens once), the leases of rows found not due are given
back, and the next batch is claimed at once while full batches keep coming: a storm of due tokens is
worked through back to back, not ``batch`` rows per interval.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import anyio

from authbridge.auth import plugin_for
from authbridge.auth.lifecycle import is_refresh_due
from authbridge.broker.refresh import TokenKeeper
from authbridge.errors import AuthBridgeError
from authbridge.spec import Integration
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
        batch: int = 64,
        concurrency: int = 32,
        max_rounds: int = 10_000,
    ) -> None:
        self.store = store
        self.keeper = keeper
        self.clock = clock
        #: Connections expiring within this are looked at; each is then checked against its own window.
        self.horizon = horizon
        #: Rows claimed at once: a few times ``concurrency``, so a claimed row waits little for its turn
        #: (the lease, ``keeper.lease``, must outlast the wait).
        self.batch = batch
        self.concurrency = concurrency
        #: Batches one scan claims at most (a bound, in case due rows never stop coming).
        self.max_rounds = max_rounds
        #: The integrations' specs, read once per scan.
        self._specs: dict[str, Integration] = {}

    async def _due(self, connection: ConnectionRecord) -> tuple[bool, int]:
        """Whether to refresh now (window or idle refresh token), and the version seen."""
        spec = self._specs.get(connection.integration_key)
        if spec is None:  # read once per scan: a storm is mostly a few integrations' connections
            spec = self._specs[connection.integration_key] = (
                await self.store.integrations.get(connection.integration_key)
            ).spec
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
        """One scan: claim and refresh due connections, batch after batch while full ones come; return the count."""
        await self.keeper.flush_unsaved()  # results the store refused before: their refresh token is spent
        self._specs = {}
        refreshed = 0
        for _ in range(self.max_rounds):
            now = self.clock()
            batch = await self.store.connections.claim_due(
                self.keeper.owner,
                self.keeper.lease,
                expiring_before=now + self.horizon,
                idle_before=now - IDLE_REFRESH,
                limit=self.batch,
            )
            self.keeper.claimed(c.id for c in batch)
            attempted, done = await self._refresh_batch(batch)
            refreshed += done
            # A short batch is the last; a full one where nothing was due (the horizon is wider than the
            # windows) would only claim the same rows again.
            if len(batch) < self.batch or not attempted:
                break
        return refreshed

    async def _refresh_batch(self, batch: list[ConnectionRecord]) -> tuple[int, int]:
        """Refresh the due ones of a claimed batch, ``concurrency`` at a time: (attempted, refreshed)."""
        attempted = refreshed = 0
        skipped: list[str] = []
        limiter = anyio.Semaphore(self.concurrency)

        async def one(connection: ConnectionRecord) -> None:
            nonlocal attempted, refreshed
            async with limiter:
                try:
                    due, version = await self._due(connection)
                    if not due:
                        skipped.append(connection.id)
                        return
                    attempted += 1
                    await self.keeper.refresh(connection.id, seen_version=version, force=True)
                    refreshed += 1
                except AuthBridgeError as exc:  # recorded on the connection and as an event by the keeper
                    logger.info("background refresh of %s failed: %s", connection.id, exc)
                except Exception:  # one connection's bug must not stop the refresher
                    logger.exception("background refresh of %s failed unexpectedly", connection.id)

        try:
            async with anyio.create_task_group() as group:
                for connection in batch:
                    group.start_soon(one, connection)
        finally:
            with anyio.CancelScope(shield=True):
                await self.keeper.give_back(skipped)
        return attempted, refreshed

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
