"""Fresh tokens, refreshed exactly once across coroutines, worker processes and replicas.

How one refresh happens (DESIGN rule 3):

1. In the process, one task per connection does the work (single flight); other coroutines await it.
2. Across processes and replicas, that task takes a *lease* on the connection row: a conditional
   ``UPDATE`` of ``refresh_lease_until``/``refresh_lease_owner``, times on the database's clock, the
   lease longer than the whole token-endpoint deadline. No transaction is held open across the
   HTTP call (it would pin a pooled connection) and no advisory lock is used (PgBouncer breaks them).
3. With the lease, it re-reads the credentials: if their version moved since the caller looked,
   someone else refreshed and their result is used. Otherwise it calls the token endpoint once and
   writes the result only over the version it read; the new pair is committed before anyone uses it.
4. Without the lease, it polls until the credentials' version moves (the holder's result) or the
   lease expires (a dead holder): then it takes the lease itself.

On ``invalid_grant`` it re-reads first: another worker may have rotated the refresh token; only
otherwise is the connection marked ``needs_reauth``. Transient failures keep the current token and
back off; they never mark the connection dead.

Once the provider has answered, its tokens are the only valid ones (a rotated refresh token is
spent): a store failure while writing them is retried, the lease renewed before every attempt, for
up to ``store_retry`` seconds. If every attempt fails, the pair stays in this process's memory, the
lease is kept (nobody else may spend the old refresh token), and the next refresh of the connection
in this process writes it before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import anyio

from authbridge.auth import TokenSet, plugin_for
from authbridge.auth.lifecycle import REJECTION_REFRESH_INTERVAL, backoff_delay, is_refresh_due, refresh_on_rejection
from authbridge.broker.lru import LRU
from authbridge.errors import (
    AuthBridgeError,
    ConnectionStateError,
    RefreshUnavailableError,
    StoreError,
    TokenEndpointError,
    UpstreamError,
)
from authbridge.logs import CONNECTION_ID
from authbridge.metrics import Metrics
from authbridge.spec import Integration
from authbridge.store import ConnectionRecord, CredentialRecord, RefreshOutcome, Store
from authbridge.tracing import Tracer
from authbridge.types import Clock

__all__ = ["Claimed", "Fetch", "TokenKeeper", "credentials_from", "ttl_warning"]

logger = logging.getLogger("authbridge.refresh")
#: The batch path's per-connection failures are the background refresher's to report (as they were before batches).
refresher_logger = logging.getLogger("authbridge.refresher")

#: The function that performs one refresh against the upstream (the broker's, hooks included).
Fetch = Callable[[ConnectionRecord, Integration, CredentialRecord | None], Awaitable[TokenSet]]

#: A connection whose refresh lease this keeper holds, with its spec and the credentials read under the lease.
Claimed = tuple[ConnectionRecord, Integration, CredentialRecord]


class _Done(typing.NamedTuple):
    """A batch member whose token call answered: what to store, and the future its joiners wait on."""

    connection: ConnectionRecord
    spec: Integration
    creds: CredentialRecord
    tokens: TokenSet
    future: asyncio.Future[CredentialRecord | None]


def _settle(future: asyncio.Future[CredentialRecord | None]) -> None:
    """A batch future's outcome counts as seen even when nobody joined it (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


class TokenKeeper:
    """Hands out valid credentials and performs every refresh exactly once.

    ```
    keeper = TokenKeeper(store, fetch=connections.fetch_refresh, clock=utcnow, deadline=30.0)
    connection, creds = await keeper.fresh(connection_id)
    ```
    """

    def __init__(
        self,
        store: Store,
        *,
        fetch: Fetch,
        clock: Clock,
        deadline: float = 30.0,
        lease: timedelta | None = None,
        poll: float = 0.05,
        owner: str | None = None,
        store_retry: float | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.tracer = tracer
        self.fetch = fetch
        self.clock = clock
        self.deadline = deadline
        #: The lease outlives the whole HTTP deadline, so a live holder never loses it mid-call.
        self.lease = lease if lease is not None else timedelta(seconds=deadline + 5)
        if self.lease.total_seconds() <= deadline:
            raise ValueError("the refresh lease must outlive the refresh deadline")
        self.poll = poll
        self.owner = owner or uuid.uuid4().hex
        #: How long a refresh result's write is retried after store failures (default: the refresh deadline).
        self.store_retry = store_retry if store_retry is not None else deadline
        #: Refresh results the store refused: connection id -> (version they go over, credentials).
        self._unsaved: dict[str, tuple[int, CredentialRecord]] = {}
        self._inflight: dict[str, asyncio.Future[CredentialRecord | None]] = {}
        self._rejection_refreshes: LRU[str, datetime] = LRU(100_000)
        #: Connections whose lease this process took and has not given back (shutdown releases them).
        self._held: set[str] = set()
        #: Called with a connection id whenever its stored credentials change in this process.
        self.listeners: list[Callable[[str], None]] = []

    def changed(self, connection_id: str) -> None:
        """Tell the listeners (the proxy's cache) that a connection's credentials changed or went away."""
        for listener in self.listeners:
            listener(connection_id)

    async def _spec(self, connection: ConnectionRecord) -> Integration:
        return (await self.store.integrations.get(connection.integration_key)).spec

    def claimed(self, connection_ids: typing.Iterable[str]) -> None:
        """Note leases taken in this keeper's name by a batch claim: shutdown gives them back."""
        self._held.update(connection_ids)

    async def give_back(self, connection_ids: typing.Collection[str]) -> None:
        """Release claimed leases that no refresh used (rows found not due); failures only delay others by the lease."""
        if not connection_ids:
            return
        try:
            await self.store.connections.release_lease_of(connection_ids, self.owner)
        except StoreError as exc:
            logger.warning("giving back %d unused refresh lease(s) failed (they run out): %s", len(connection_ids), exc)
            return
        self._held.difference_update(connection_ids)

    async def shutdown(self, timeout: float) -> int:
        """Let in-flight refreshes finish (up to ``timeout`` s, then cancel them); give back this process's leases.

        Leases over results the store refused stay held (the old refresh token may be spent). Returns
        how many leases were given back.
        """
        pending = list(self._inflight.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        if not self._held - set(self._unsaved):
            return 0  # nothing to give back: no query (the database may be gone)
        released = await self.store.connections.release_leases(self.owner, keep=set(self._unsaved))
        self._held &= set(self._unsaved)
        return released

    async def fresh(self, connection_id: str) -> tuple[ConnectionRecord, CredentialRecord]:
        """An active connection's credentials, refreshed first when inside the refresh window.

        A transient refresh failure still returns the current token while it is valid.
        """
        connection = await self.store.connections.get(connection_id)
        # With tokens the store refused earlier, the connection may have been marked needs_reauth by a worker
        # that spent the old refresh token after our lease ran out: ours are valid, store them first.
        if connection.status != "active" and connection_id not in self._unsaved:
            reason = f": {connection.last_error}" if connection.last_error else ""
            raise ConnectionStateError(f"connection {connection_id} is {connection.status}{reason}")
        creds = await self.store.credentials.load(connection_id)
        spec = await self._spec(connection)
        if creds is None:
            if not plugin_for(spec.auth).stores_credentials(spec):
                return connection, CredentialRecord()
            raise ConnectionStateError(f"connection {connection_id} has no credentials")
        now = self.clock()
        unsaved = connection_id in self._unsaved  # tokens the store refused earlier: write them now
        if not unsaved and not is_refresh_due(
            spec.refresh, expires_at=creds.expires_at, obtained_at=creds.obtained_at, now=now
        ):
            return connection, creds
        still_valid = _still_valid(creds, now)
        if not unsaved and connection.next_refresh_at is not None and now < connection.next_refresh_at and still_valid:
            return connection, creds  # backing off after a transient failure: keep using the current token
        try:
            refreshed = await self.refresh(connection_id, seen_version=creds.version, force=unsaved)
        except TokenEndpointError as exc:
            if isinstance(exc, RefreshUnavailableError) and still_valid:
                return connection, creds  # no refresh without the user, but the token has time left
            if exc.permanent:
                raise ConnectionStateError(f"connection {connection_id} needs re-authorization: {exc}") from None
            if still_valid:
                return connection, creds
            raise
        except UpstreamError:
            if still_valid:
                return connection, creds
            raise
        except StoreError:
            kept = self._unsaved.get(connection_id)
            if kept is None:
                raise
            return connection, kept[1]  # the store refuses writes: the new tokens from memory
        return await self.store.connections.get(connection_id), refreshed

    async def after_rejection(
        self, connection_id: str, rejected_token: str, status: int, www_authenticate: str | None = None
    ) -> CredentialRecord | None:
        """Credentials to retry with after the upstream rejected ``rejected_token``; None: return the rejection.

        If the stored token already differs (someone refreshed), that one is used without another
        refresh. Rejection-triggered refreshes are limited to one per 30 s per connection.
        """
        connection = await self.store.connections.get(connection_id)
        spec = await self._spec(connection)
        if not plugin_for(spec.auth).refreshable(spec):
            return None  # a static token or password: nothing to refresh, the rejection stands
        if not refresh_on_rejection(spec.refresh, status, www_authenticate):
            return None
        creds = await self.store.credentials.load(connection_id)
        if creds is None:
            return None
        if creds.access_token != rejected_token:
            return creds
        # The token a rejection-triggered refresh produced less than 30 s ago is rejected again: the API
        # misbehaves, and another refresh would only rotate tokens in a storm. (Counted per process.)
        last = self._rejection_refreshes.get(connection_id)
        if last is not None and self.clock() - last < REJECTION_REFRESH_INTERVAL:
            return None
        self._rejection_refreshes[connection_id] = self.clock()
        try:
            fresh = await self.refresh(connection_id, seen_version=creds.version, force=True)
            if fresh.access_token == rejected_token:
                # We joined an in-flight refresh that found nothing due: ours must really happen.
                fresh = await self.refresh(connection_id, seen_version=fresh.version, force=True)
            return fresh
        except AuthBridgeError as exc:  # the upstream's rejection stands; the failure is on the connection
            logger.info("refresh after a %s rejection failed for %s: %s", status, connection_id, exc)
            return None

    async def refresh(self, connection_id: str, *, seen_version: int | None, force: bool = False) -> CredentialRecord:
        """Refresh once. Concurrent callers in this process share one attempt; other processes wait for it.

        ``seen_version`` is the credentials' version the caller looked at: if it moved, that newer
        result is returned instead of refreshing again. ``force`` refreshes even outside the window.
        """
        task = self._inflight.get(connection_id)
        if task is None:
            task = asyncio.ensure_future(self._refresh(connection_id, seen_version, force))
            self._inflight[connection_id] = task
            task.add_done_callback(lambda _t: self._inflight.pop(connection_id, None))
        result = await asyncio.shield(task)
        if result is None:
            raise ConnectionStateError(f"connection {connection_id} has no credentials to refresh")
        return result

    async def _refresh(self, connection_id: str, seen_version: int | None, force: bool) -> CredentialRecord | None:
        CONNECTION_ID.set(connection_id)  # a task of its own: the refresh's log lines name the connection
        if seen_version is None:
            start = await self.store.credentials.load(connection_id)
            seen_version = start.version if start else 0
        baseline = seen_version
        # A failed attempt leaves the credentials' version as it was but counts a failure: whoever
        # waited for it must share that outcome, not call the token endpoint again.
        failures = (await self.store.connections.get(connection_id)).refresh_failures
        give_up = anyio.current_time() + self.lease.total_seconds() + self.deadline
        while True:
            if await self.store.connections.take_lease(connection_id, self.owner, self.lease):
                self._held.add(connection_id)
                try:
                    return await self._with_lease(connection_id, baseline, failures, force)
                finally:
                    if connection_id not in self._unsaved:  # else keep it: the old refresh token may be spent
                        with contextlib.suppress(Exception):
                            await self.store.connections.release_lease(connection_id, self.owner)
                            self._held.discard(connection_id)
            await anyio.sleep(self.poll)
            latest = await self.store.credentials.load(connection_id)
            if latest is not None and latest.version != baseline:
                return latest  # the lease holder's result
            self._raise_if_failed_meanwhile(await self.store.connections.get(connection_id), failures)
            if anyio.current_time() > give_up:
                raise UpstreamError(f"connection {connection_id}: another worker's refresh did not finish in time")

    async def refresh_batch(
        self,
        claimed: typing.Sequence[Claimed],
        *,
        limiter: contextlib.AbstractAsyncContextManager[typing.Any],
        group: int = 32,
        started: anyio.Event | None = None,
    ) -> int:
        """Refresh connections whose leases a batch claim took in this keeper's name; return how many were stored.

        Each gets exactly one token call (``limiter``, a semaphore, bounds how many run at once), its
        failure handled as a single refresh's is (recorded, events, back-off or ``needs_reauth``; the
        others go on).
        The answers are stored ``group`` at a time, each group in one transaction
        (``ConnectionRepo.store_refreshes``: written only over the version read under the lease,
        leases given back). Should that transaction fail, the group's results are stored one by one as
        a single refresh stores them (retries with the lease renewed, kept in memory if the store keeps
        refusing). Coroutines of this process that need one of these connections meanwhile join its
        refresh (as they join any in-flight one); a connection this process is refreshing already is
        left to that refresh. ``started`` is set once every call has its turn (the caller may claim more).
        """
        loop = asyncio.get_running_loop()
        mine: list[tuple[ConnectionRecord, Integration, CredentialRecord, asyncio.Future[CredentialRecord | None]]] = []
        for connection, spec, creds in claimed:
            # A refresh running in this process holds the lease in our name and gives it back; a result the
            # store refused keeps its lease until ``flush_unsaved`` (each scan's first step) stores it.
            if connection.id in self._inflight or connection.id in self._unsaved:
                continue
            future: asyncio.Future[CredentialRecord | None] = loop.create_future()
            future.add_done_callback(_settle)
            future.add_done_callback(functools.partial(self._forget_inflight, connection.id))
            self._inflight[connection.id] = future
            mine.append((connection, spec, creds, future))
        stored = 0
        pending: list[_Done] = []
        unused: list[str] = []

        async def flush() -> None:
            nonlocal stored
            done = pending[:]
            pending.clear()
            count = await self._store_batch(done)
            stored += count

        waiting = len(mine)

        async def one(
            connection: ConnectionRecord,
            spec: Integration,
            creds: CredentialRecord,
            future: asyncio.Future[CredentialRecord | None],
        ) -> None:
            nonlocal waiting
            CONNECTION_ID.set(connection.id)
            async with limiter:
                waiting -= 1
                if not waiting and started is not None:
                    started.set()
                try:
                    answer = await self._call(connection, spec, creds, creds.version)
                except Exception as exc:  # recorded on the connection by _call; its joiners get it
                    unused.append(connection.id)
                    if not future.done():
                        future.set_exception(exc)
                    if isinstance(exc, AuthBridgeError):
                        refresher_logger.info("background refresh of %s failed: %s", connection.id, exc)
                    else:  # one connection's bug must not stop the others
                        refresher_logger.exception("background refresh of %s failed unexpectedly", connection.id)
                    return
            if isinstance(answer, CredentialRecord):  # another worker's newer result
                unused.append(connection.id)
                future.set_result(answer)
                return
            pending.append(_Done(connection, spec, creds, answer, future))
            if len(pending) >= group:
                await flush()

        if not mine and started is not None:
            started.set()
        try:
            async with asyncio.TaskGroup() as tasks:  # asyncio's own: a task costs half what anyio's does
                for connection, spec, creds, future in mine:
                    tasks.create_task(one(connection, spec, creds, future))
            if pending:
                await flush()
        finally:
            with anyio.CancelScope(shield=True):
                for connection, *_, future in mine:
                    if not future.done():  # cancelled (shutdown) before its answer was stored
                        future.set_exception(UpstreamError("the background refresh was interrupted"))
                        unused.append(connection.id)
                await self.give_back([c for c in unused if c not in self._unsaved])
        return stored

    def _forget_inflight(self, connection_id: str, _future: object) -> None:
        self._inflight.pop(connection_id, None)

    async def _store_batch(self, done: list[_Done]) -> int:
        """Store a group of batch answers in one transaction (one by one if it fails); settle their futures."""
        outcomes = []
        for item in done:
            connection, spec, creds, tokens = item.connection, item.spec, item.creds, item.tokens
            fresh = credentials_from(tokens, creds)
            events: list[tuple[str, dict[str, typing.Any]]] = [
                ("connection.refreshed", {"expires_at": fresh.expires_at.isoformat() if fresh.expires_at else None})
            ]
            if connection.refresh_failures:
                events.append(("connection.recovered", {"after_failures": connection.refresh_failures}))
            outcomes.append(
                RefreshOutcome(
                    connection_id=connection.id,
                    integration_key=spec.key,
                    credentials=fresh,
                    version=creds.version,
                    warning=ttl_warning(spec, tokens, self.clock),
                    events=tuple(events),
                    end_user=connection.end_user,
                    organization=connection.organization,
                )
            )
        try:
            saved = await self.store.connections.store_refreshes(self.owner, outcomes)
        except StoreError as exc:
            logger.warning("storing %d refresh results at once failed (%s); storing them one by one", len(done), exc)
            return await self._store_each(done, outcomes)
        self._held.difference_update(o.connection_id for o in outcomes)
        stale = [item.connection.id for item in done if item.connection.id not in saved]
        latest = await self._latest(stale)
        for item in done:
            connection_id = item.connection.id
            self.changed(connection_id)
            if connection_id in saved:
                item.future.set_result(saved[connection_id])
            else:  # newer credentials were stored meanwhile (or the connection went away): those stand
                logger.warning("connection %s: newer credentials were stored during its refresh", connection_id)
                item.future.set_result(latest.get(connection_id))
        return len(saved)

    async def _latest(self, connection_ids: list[str]) -> dict[str, CredentialRecord]:
        return await self.store.credentials.load_many(connection_ids) if connection_ids else {}

    async def _store_each(self, done: list[_Done], outcomes: list[RefreshOutcome]) -> int:
        """The single refresh's way of storing, for a group whose one transaction failed."""
        stored = 0
        for item, outcome in zip(done, outcomes, strict=True):
            connection_id = item.connection.id
            try:
                result = await self._store_result(
                    item.connection, item.spec, outcome.credentials, outcome.version, item.tokens
                )
            except AuthBridgeError as exc:
                item.future.set_exception(exc)
            else:
                stored += 1
                item.future.set_result(result)
            finally:
                if connection_id not in self._unsaved:  # else keep it: the old refresh token may be spent
                    with contextlib.suppress(Exception):
                        await self.store.connections.release_lease(connection_id, self.owner)
                        self._held.discard(connection_id)
        return stored

    @staticmethod
    def _raise_if_failed_meanwhile(connection: ConnectionRecord, failures: int) -> None:
        """The lease holder's failure, shared with those who waited for it."""
        if connection.refresh_failures != failures:  # every failure, transient or permanent, counts one
            reason = connection.last_error or "the refresh failed"
            if connection.status == "needs_reauth":
                raise TokenEndpointError(reason, permanent=True)
            raise UpstreamError(reason)

    async def _with_lease(
        self, connection_id: str, baseline: int, failures: int, force: bool
    ) -> CredentialRecord | None:
        connection = await self.store.connections.get(connection_id)
        self._raise_if_failed_meanwhile(connection, failures)
        spec = await self._spec(connection)
        creds = await self.store.credentials.load(connection_id)
        version = creds.version if creds else 0
        unsaved = self._unsaved.get(connection_id)
        if unsaved is not None:
            if unsaved[0] == version:
                return await self._store_result(connection, spec, unsaved[1], version, None)
            # Newer credentials were stored meanwhile (a re-authorization): ours are not the latest.
            del self._unsaved[connection_id]
            return creds
        if version != baseline:
            return creds  # someone refreshed between the caller's look and our lease
        if (
            not force
            and creds is not None
            and not is_refresh_due(
                spec.refresh, expires_at=creds.expires_at, obtained_at=creds.obtained_at, now=self.clock()
            )
        ):
            return creds
        answer = await self._call(connection, spec, creds, version)
        if isinstance(answer, CredentialRecord):
            return answer
        return await self._store_result(connection, spec, credentials_from(answer, creds), version, answer)

    async def _call(
        self, connection: ConnectionRecord, spec: Integration, creds: CredentialRecord | None, version: int
    ) -> TokenSet | CredentialRecord:
        """Call the token endpoint once, under the lease, for credentials at ``version``: the new tokens.

        A failure is recorded on the connection (and as events) and raised; after ``invalid_grant``
        the credentials are read again first, and newer ones (another worker rotated the refresh
        token) are returned instead.
        """
        traced = (
            self.tracer.internal("refresh", {"authbridge.integration": spec.key})
            if self.tracer is not None
            else contextlib.nullcontext()
        )
        with traced:
            try:
                async with asyncio.timeout(self.deadline):  # asyncio's own: half the cost of anyio.fail_after
                    tokens = await self.fetch(connection, spec, creds)
                if self.metrics is not None:
                    self.metrics.refreshed(spec.key, "ok")
            except TimeoutError:
                await self._failed(
                    connection, spec, UpstreamError(f"{spec.key}: the refresh took over {self.deadline:g} s")
                )
                raise UpstreamError(f"{spec.key}: the refresh took over {self.deadline:g} s") from None
            except TokenEndpointError as exc:
                if exc.permanent:
                    latest = await self.store.credentials.load(connection.id)
                    if latest is not None and latest.version != version:
                        return latest  # another worker rotated the refresh token: use its result
                if isinstance(exc, RefreshUnavailableError) and creds is not None and _still_valid(creds, self.clock()):
                    reason = await self._unavailable(connection, spec, creds, exc)
                    raise RefreshUnavailableError(reason, integration=spec.key) from None
                await self._failed(connection, spec, exc)
                raise
            except UpstreamError as exc:
                await self._failed(connection, spec, exc)
                raise
            except AuthBridgeError as exc:
                # A template, spec or hook problem: permanent until someone fixes the spec or reconnects.
                await self._failed(connection, spec, TokenEndpointError(str(exc), integration=spec.key, permanent=True))
                raise
            return tokens

    async def _store_result(
        self,
        connection: ConnectionRecord,
        spec: Integration,
        fresh: CredentialRecord,
        version: int,
        tokens: TokenSet | None,
    ) -> CredentialRecord | None:
        """Write a refresh result over ``version``; then note the refresh (best effort) and tell the listeners."""
        connection_id = connection.id
        saved = await self._save_result(connection_id, fresh, version)
        self.changed(connection_id)
        if saved is None:
            return await self.store.credentials.load(connection_id)
        try:
            await self.store.connections.record_refresh(
                connection_id,
                ok=True,
                expires_at=fresh.expires_at,
                warning=ttl_warning(spec, tokens, self.clock) if tokens is not None else None,
            )
            await self.store.events.add(
                "connection.refreshed",
                connection_id=connection_id,
                integration_key=spec.key,
                data={"expires_at": fresh.expires_at.isoformat() if fresh.expires_at else None},
            )
            if connection.refresh_failures:
                await self.store.events.add(
                    "connection.recovered",
                    connection_id=connection_id,
                    integration_key=spec.key,
                    data={"after_failures": connection.refresh_failures},
                )
        except StoreError as exc:  # the tokens are stored: only the bookkeeping is missing
            logger.warning("refresh of %s stored, but noting it failed: %s", connection_id, exc)
        return saved

    async def _save_result(self, connection_id: str, fresh: CredentialRecord, version: int) -> CredentialRecord | None:
        """Store a refresh result over ``version``, retrying store failures with the lease renewed before each try.

        Returns None when newer credentials are stored already. When every try fails, the result is
        kept in memory (written by this process's next refresh of the connection) and StoreError raised.
        """
        give_up = anyio.current_time() + self.store_retry
        delay, attempts = 0.05, 0
        while True:
            attempts += 1
            try:
                # Renewed before every write: while we hold it nobody else spends the old refresh token. A
                # lost lease (it ran out) still allows the write: it only succeeds over the version we read.
                if not await self.store.connections.take_lease(connection_id, self.owner, self.lease):
                    logger.warning(
                        "connection %s: the refresh lease ran out before its result was stored", connection_id
                    )
                saved = await self.store.credentials.save(connection_id, fresh, expected_version=version)
            except StoreError as exc:
                if anyio.current_time() + delay > give_up:
                    self._unsaved[connection_id] = (version, fresh)
                    raise StoreError(
                        f"connection {connection_id}: the provider issued new tokens but storing them failed "
                        f"{attempts} time(s) ({exc}); this process keeps them and stores them on its next "
                        "refresh of the connection"
                    ) from None
                logger.warning(
                    "connection %s: storing the refreshed tokens failed (%s); retrying in %.2f s",
                    connection_id,
                    exc,
                    delay,
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._unsaved.pop(connection_id, None)
            return saved

    async def flush_unsaved(self) -> int:
        """Store every refresh result this process holds because the store refused it; return how many are left."""
        for connection_id in list(self._unsaved):
            try:
                await self.refresh(connection_id, seen_version=None, force=True)
            except AuthBridgeError as exc:
                logger.warning("connection %s: refreshed tokens still not stored: %s", connection_id, exc)
        return len(self._unsaved)

    async def _unavailable(
        self, connection: ConnectionRecord, spec: Integration, creds: CredentialRecord, exc: RefreshUnavailableError
    ) -> str:
        """No refresh is possible but the token is still valid: it stays in use; nobody asks again before it expires."""
        expires = creds.expires_at
        assert expires is not None  # what _still_valid checked
        reason = f"{exc}; the current token stays valid until {expires:%Y-%m-%d %H:%M:%S} UTC"
        await self.store.connections.record_refresh(connection.id, ok=False, last_error=reason, next_refresh_at=expires)
        await self.store.events.add(
            "connection.refresh_failed",
            connection_id=connection.id,
            integration_key=spec.key,
            data={"kind": "unavailable", "reason": reason},
        )
        return reason

    async def _failed(self, connection: ConnectionRecord, spec: Integration, exc: UpstreamError) -> None:
        permanent = isinstance(exc, TokenEndpointError) and exc.permanent
        if self.metrics is not None:
            self.metrics.refreshed(spec.key, "needs_reauth" if permanent else "failed")
        reason = str(exc)
        if permanent:
            await self.store.connections.record_refresh(
                connection.id, ok=False, status="needs_reauth", last_error=reason
            )
            self.changed(connection.id)
        else:
            retry_after = exc.retry_after if isinstance(exc, TokenEndpointError) else None
            delay = backoff_delay(connection.refresh_failures + 1, retry_after=retry_after)
            await self.store.connections.record_refresh(
                connection.id, ok=False, last_error=reason, next_refresh_at=self.clock() + delay
            )
        await self.store.events.add(
            "connection.refresh_failed",
            connection_id=connection.id,
            integration_key=spec.key,
            data={"kind": "permanent" if permanent else "transient", "reason": reason},
        )
        if permanent:
            await self.store.events.add(
                "connection.reauthorization_needed",
                connection_id=connection.id,
                integration_key=spec.key,
                data={"reason": reason},
            )


def _still_valid(creds: CredentialRecord, now: datetime) -> bool:
    """Whether a token is known to be valid now (a token without a known expiry is not)."""
    return creds.expires_at is not None and creds.expires_at > now


def credentials_from(
    tokens: TokenSet,
    previous: CredentialRecord | None = None,
    *,
    inputs: Mapping[str, str] | None = None,
    extra: Mapping[str, typing.Any] | None = None,
) -> CredentialRecord:
    """Credentials to store from a token answer, keeping what it does not replace.

    The previous refresh token and scopes stay when the answer has none; fields kept from earlier
    answers stay unless the new one (or ``extra``, e.g. callback captures) sets them; the user's
    inputs stay unless new ones are given.
    """
    return CredentialRecord(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
        token_type=tokens.token_type,
        expires_at=tokens.expires_at,
        scopes=tokens.scopes if tokens.scopes is not None else (previous.scopes if previous else None),
        raw=tokens.raw,
        extra={**(previous.extra if previous else {}), **tokens.extra, **(extra or {})},
        inputs=dict(inputs if inputs is not None else (previous.inputs if previous else {})),
    )


def ttl_warning(spec: Integration, tokens: TokenSet, clock: Clock) -> str | None:
    """The connection's warning when the token lives less than ``refresh.min_ttl`` (Airkit's 5 minutes)."""
    if tokens.expires_at is None:
        return None
    ttl = tokens.expires_at - clock()
    # A second of slack: the expiry was computed a moment ago from the response's `expires_in`.
    if ttl + timedelta(seconds=1) >= spec.refresh.min_ttl:
        return None
    minimum = int(spec.refresh.min_ttl.total_seconds())
    return f"the token lives {round(ttl.total_seconds())} s, under the {minimum} s minimum: expect frequent refreshes"
