"""The background refresher: refreshes tokens entering their window even when nobody uses them.

It also refreshes every connection holding a refresh token at least once a day, because providers
revoke refresh tokens left idle.

Each scan *claims* a batch of due connections: one statement takes the refresh lease of up to
``batch`` due rows that nobody holds (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so replicas scanning
at once split the work instead of queueing on the same rows. The batch's credentials come with it
(``ConnectionRepo.claim_due_with_credentials``: one round trip on PostgreSQL), the due ones handed to
``TokenKeeper.refresh_batch`` (one token call each, ``concurrency`` at once across the scan; results
stored a group per transaction, each only over the version read under the lease), the leases of
rows found not due are given back, and the next batch is claimed while this one's calls run, as long
as full batches come: a storm of due tokens is worked through back to back, not ``batch`` rows per
interval.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from datetime import timedelta

import anyio

from authbridge.auth import plugin_for
from authbridge.auth.lifecycle import is_refresh_due
from authbridge.broker.refresh import Claimed, TokenKeeper
from authbridge.errors import AuthBridgeError
from authbridge.spec import Integration
from authbridge.store import ConnectionRecord, CredentialRecord, Store
from authbridge.types import Clock

__all__ = ["BackgroundRefresher"]

logger = logging.getLogger("authbridge.refresher")

#: A claimed connection with its credentials (None: it has none).
_Row: typing.TypeAlias = tuple[ConnectionRecord, CredentialRecord | None]

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
        group: int | None = None,
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
        #: Answers stored per transaction (default: a whole batch): a group's statements cost little more
        #: for 64 rows than for 32, so fewer, larger groups cut the CPU per refresh
        #: (docs/architecture.md, "Refresh storm, second pass").
        self.group = group if group is not None else batch
        #: Batches one scan claims at most (a bound, in case due rows never stop coming).
        self.max_rounds = max_rounds
        #: The integrations' specs, read once per scan.
        self._specs: dict[str, Integration] = {}

    async def _spec(self, integration_key: str) -> Integration:
        spec = self._specs.get(integration_key)
        if spec is None:  # read (and parsed) once per scan: a storm is mostly a few integrations' connections
            spec = self._specs[integration_key] = (await self.store.integrations.get(integration_key)).spec
        return spec

    def _due(self, connection: ConnectionRecord, spec: Integration, creds: CredentialRecord | None) -> bool:
        """Whether to refresh now: inside the token's window, or a refresh token idle for a day."""
        if creds is None or not plugin_for(spec.auth).refreshable(spec):
            return False
        now = self.clock()
        due = is_refresh_due(spec.refresh, expires_at=creds.expires_at, obtained_at=creds.obtained_at, now=now)
        idle = (
            creds.refresh_token is not None
            and connection.last_refreshed_at is not None
            and now - connection.last_refreshed_at >= IDLE_REFRESH
        )
        return due or idle

    async def run_once(self) -> int:
        """One scan: claim and refresh due connections, batch after batch while full ones come; return the count.

        One batch is claimed ahead, waiting behind the one whose calls run (``concurrency`` calls at
        once across them), so the token calls never wait for a claim.
        """
        await self.keeper.flush_unsaved()  # results the store refused before: their refresh token is spent
        self._specs = {}
        limiter = asyncio.Semaphore(self.concurrency)  # asyncio's own: cheaper than anyio's per acquire
        refreshed = 0
        stop = False

        def nothing_due() -> None:
            # A full batch where nothing was due (the horizon is wider than the windows): claiming more
            # would only claim the same kind of rows again.
            nonlocal stop
            stop = True

        async def work(batch: list[_Row], started: anyio.Event) -> None:
            nonlocal refreshed
            count = await self._refresh_batch(batch, limiter, started, nothing_due)
            refreshed += count

        try:
            await self._scan(work, lambda: stop)
        except BaseExceptionGroup as group:  # a batch's failure (the database away...) is reported as itself
            raise group.exceptions[0] from group
        return refreshed

    async def _scan(
        self,
        work: typing.Callable[[list[_Row], anyio.Event], typing.Coroutine[typing.Any, typing.Any, None]],
        stopped: typing.Callable[[], bool],
    ) -> None:
        """Claim batch after batch, each worked on by ``work`` in a task of its own, one claimed ahead."""
        async with anyio.create_task_group() as tasks:
            ahead: anyio.Event | None = None  # the batch before the last one claimed: all its calls under way
            for _ in range(self.max_rounds):
                if stopped():
                    break
                now = self.clock()
                batch = await self.store.connections.claim_due_with_credentials(
                    self.keeper.owner,
                    self.keeper.lease,
                    expiring_before=now + self.horizon,
                    idle_before=now - IDLE_REFRESH,
                    limit=self.batch,
                )
                self.keeper.claimed(c.id for c, _ in batch)
                started = anyio.Event()
                tasks.start_soon(work, batch, started)
                if len(batch) < self.batch:
                    break  # a short batch is the last
                # One batch waits claimed behind the one being called, so the calls never wait for a claim.
                if ahead is not None:
                    await ahead.wait()
                ahead = started

    async def _refresh_batch(
        self,
        batch: list[_Row],
        limiter: asyncio.Semaphore,
        started: anyio.Event,
        nothing_due: typing.Callable[[], None],
    ) -> int:
        """Refresh the due ones of a claimed batch through the keeper; return how many were refreshed.

        ``started`` is set once every due one's call has its turn (or none is due: ``nothing_due()`` first).
        """
        unused = {c.id for c, _ in batch}  # leases to give back: all but those handed to the keeper
        due: list[Claimed] = []
        try:
            for connection, found in batch:
                spec = await self._spec(connection.integration_key)
                if found is not None and self._due(connection, spec, found):
                    due.append((connection, spec, found))
            if not due:
                nothing_due()
            unused.difference_update(c.id for c, _, _ in due)
            return await self.keeper.refresh_batch(due, limiter=limiter, group=self.group, started=started)
        finally:
            started.set()
            with anyio.CancelScope(shield=True):
                await self.keeper.give_back(unused)

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
