"""The background refresher's batch path on a real store (both backends), the token endpoint an ``httpx.MockTransport``.

A claimed batch gets one token call per connection and its results are stored a group at a time in one
transaction: each result over the version read under the lease only, every lease given back, the
events and webhook deliveries written with them. A connection that fails is handled as a single
refresh's failure is, without touching the others; a lease lost mid-batch never overwrites what the
new holder stored; a failing batch transaction falls back to storing one by one.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
from sqlalchemy import select, update

from authbridge.broker import Broker
from authbridge.broker.background import BackgroundRefresher
from authbridge.broker.refresh import TokenKeeper
from authbridge.errors import StoreError, UpstreamError
from authbridge.spec import load_spec
from authbridge.store import CredentialRecord, IntegrationRecord, KeyRing, RefreshOutcome, Store
from authbridge.store.connections import ConnectionRepo, CredentialRepo
from authbridge.store.models import ConnectionRow
from authbridge.store.repo import IntegrationRepo
from authbridge.testing import FakeClock

SPEC = """
key: batch
name: Batch API
parameters: [{name: n, required: true}]
auth:
  type: custom_token
  token_url: https://login.example/token
  token_method: POST
  token_body: form
  token_params: {conn: "{n}"}
  token_response: {access_token: access_token, expires_in: {path: expires_in}}
"""

Handler = typing.Callable[[str], typing.Awaitable[httpx.Response | None]]


class Endpoint:
    """Hands out one-hour tokens named after the connection's ``n`` and a counter; ``hooks`` may answer instead."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.hooks: dict[str, Handler] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        n = dict(parse_qsl(request.content.decode()))["conn"]
        self.calls[n] = self.calls.get(n, 0) + 1
        hook = self.hooks.get(n)
        if hook is not None:
            answer = await hook(n)
            if answer is not None:
                return answer
        return httpx.Response(200, json={"access_token": f"{n}-{self.calls[n]}", "expires_in": 3600})


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
async def broker(store: Store, clock: FakeClock, endpoint: Endpoint) -> AsyncIterator[Broker]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        yield Broker(store, http=http, clock=clock)


async def _connections(broker: Broker, count: int) -> dict[str, str]:
    """``count`` active connections (``n`` = c0, c1...), by ``n``; then the clock is inside their window."""
    await broker.save_integration(load_spec(SPEC))
    ids = {}
    for i in range(count):
        created = await broker.connections.create(
            integration_key="batch", name=f"c{i}", parameters={"n": f"c{i}"}, credentials={}
        )
        ids[f"c{i}"] = created.connection.id
    return ids


def _refresher(broker: Broker, clock: FakeClock, *, batch: int = 4, concurrency: int = 2) -> BackgroundRefresher:
    return BackgroundRefresher(
        broker.store, broker.connections.keeper, clock=clock, batch=batch, concurrency=concurrency, group=concurrency
    )


async def _lease_owners(store: Store) -> set[str | None]:
    async with store.ctx.session() as session:
        return set((await session.scalars(select(ConnectionRow.refresh_lease_owner))).all())


async def test_a_storm_is_refreshed_once_each_and_noted_with_its_events(
    broker: Broker, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Nine due connections, batches of four, groups of two: each gets one call, one write, its events, its delivery."""
    ids = await _connections(broker, 9)
    hook, _secret = await broker.store.webhooks.add("https://hooks.example/authbridge")
    before = {n: await broker.store.credentials.load(cid) for n, cid in ids.items()}
    clock.advance(minutes=31)
    assert await _refresher(broker, clock).run_once() == 9
    assert endpoint.calls == {n: 2 for n in ids}  # the connect, then exactly one refresh
    for n, cid in ids.items():
        creds = await broker.store.credentials.load(cid)
        old = before[n]
        assert creds is not None and old is not None
        assert (creds.access_token, creds.version) == (f"{n}-2", old.version + 1)
        assert creds.expires_at == clock() + timedelta(hours=1)
        connection = await broker.store.connections.get(cid)
        assert connection.last_refreshed_at == clock() and connection.expires_at == creds.expires_at
        refreshed = await broker.store.events.list(type="connection.refreshed", connection_id=cid)
        assert [e.data["expires_at"] for e in refreshed] == [creds.expires_at.isoformat()]
        assert len(await broker.store.webhooks.deliveries(webhook_id=hook.id, event_id=refreshed[0].id)) == 1
    assert await _lease_owners(broker.store) == {None}
    assert await _refresher(broker, clock).run_once() == 0  # nothing is due any more
    assert endpoint.calls == {n: 2 for n in ids}


async def test_one_failing_connection_in_a_batch_does_not_affect_the_others(
    broker: Broker, clock: FakeClock, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A transient failure backs off, a refused grant needs re-authorization; the rest of the batch is stored."""
    ids = await _connections(broker, 4)

    async def busy(_n: str) -> httpx.Response:
        return httpx.Response(503, json={"error": "temporarily_unavailable"})

    async def refused(_n: str) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant"})

    async def broken(_n: str) -> httpx.Response:
        raise RuntimeError("a bug in the provider's client")

    endpoint.hooks = {"c0": busy, "c1": refused, "c3": broken}
    clock.advance(minutes=31)
    with caplog.at_level(logging.INFO, logger="authbridge.refresher"):
        assert await _refresher(broker, clock).run_once() == 1
    assert endpoint.calls == {n: 2 for n in ids}
    fine = await broker.store.credentials.load(ids["c2"])
    assert fine is not None and fine.access_token == "c2-2"
    transient = await broker.store.connections.get(ids["c0"])
    assert transient.status == "active" and transient.refresh_failures == 1
    assert transient.next_refresh_at is not None and transient.next_refresh_at > clock()
    permanent = await broker.store.connections.get(ids["c1"])
    assert permanent.status == "needs_reauth" and "invalid_grant" in (permanent.last_error or "")
    for n in ("c0", "c1", "c3"):
        creds = await broker.store.credentials.load(ids[n])
        assert creds is not None and creds.access_token == f"{n}-1"  # the stored token stays as it was
        kinds = [e.type for e in await broker.store.events.list(connection_id=ids[n])]
        assert "connection.refreshed" not in kinds
        assert ("connection.refresh_failed" in kinds) == (n != "c3")  # a bug is not the provider's failure
    assert "background refresh of " + ids["c3"] + " failed unexpectedly" in caplog.messages
    assert await _lease_owners(broker.store) == {None}


async def test_a_lease_lost_mid_batch_never_overwrites_the_new_holders_result(
    broker: Broker, store: Store, clock: FakeClock, endpoint: Endpoint
) -> None:
    """While c1's call runs its lease passes to another worker, which stores its own result: that one stands."""
    ids = await _connections(broker, 3)

    async def taken_over(n: str) -> None:
        cid = ids[n]
        current = await store.credentials.load(cid)
        assert current is not None
        async with store.ctx.session() as session:  # our lease ran out; another worker took it
            await session.execute(
                update(ConnectionRow)
                .where(ConnectionRow.id == cid)
                .values(refresh_lease_owner="other-worker", refresh_lease_until=store.ctx.db_now(60))
            )
        saved = await store.credentials.save(
            cid, CredentialRecord(access_token="theirs", token_type="Bearer"), expected_version=current.version
        )
        assert saved is not None
        return None

    endpoint.hooks = {"c1": taken_over}
    clock.advance(minutes=31)
    assert await _refresher(broker, clock).run_once() == 2
    theirs = await store.credentials.load(ids["c1"])
    assert theirs is not None and theirs.access_token == "theirs"
    assert not await store.events.list(type="connection.refreshed", connection_id=ids["c1"])
    for n in ("c0", "c2"):
        creds = await store.credentials.load(ids[n])
        assert creds is not None and creds.access_token == f"{n}-2"
    async with store.ctx.session() as session:
        owners = dict((await session.execute(select(ConnectionRow.id, ConnectionRow.refresh_lease_owner))).all())
    assert owners == {ids["c0"]: None, ids["c1"]: "other-worker", ids["c2"]: None}  # theirs is not ours to release


async def test_a_caller_in_the_process_joins_the_batch_refresh(
    broker: Broker, store: Store, clock: FakeClock, endpoint: Endpoint
) -> None:
    """A request needing c0 while the batch refreshes it waits for that refresh: one call, the same result."""
    ids = await _connections(broker, 2)
    keeper = broker.connections.keeper
    joined: list[asyncio.Task[CredentialRecord]] = []

    async def meanwhile(n: str) -> None:
        joined.append(asyncio.ensure_future(keeper.refresh(ids[n], seen_version=1, force=True)))
        await asyncio.sleep(0)  # the caller is waiting now
        return None

    endpoint.hooks = {"c0": meanwhile}
    clock.advance(minutes=31)
    assert await _refresher(broker, clock).run_once() == 2
    result = await joined[0]
    assert result.access_token == "c0-2"
    assert endpoint.calls == {"c0": 2, "c1": 2}


class _RefusingBatches(ConnectionRepo):
    """Connections whose batch writes the database refuses (single writes still work)."""

    async def store_refreshes(
        self, owner: str, outcomes: typing.Sequence[RefreshOutcome]
    ) -> dict[str, CredentialRecord]:
        raise StoreError("the database refused the operation (OperationalError)")


class _RefusingOne(CredentialRepo):
    """Credentials whose single writes the database refuses for the connections in ``refused``."""

    refused: typing.ClassVar[set[str]] = set()

    async def save(
        self, connection_id: str, creds: CredentialRecord, *, expected_version: int | None = None
    ) -> CredentialRecord | None:
        if connection_id in self.refused:
            raise StoreError("the database refused the operation (OperationalError)")
        return await super().save(connection_id, creds, expected_version=expected_version)


class _Store(Store):
    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = _RefusingBatches(self.ctx)
        self.credentials = _RefusingOne(self.ctx)


async def test_a_refused_batch_write_is_stored_one_by_one(
    db_url: str, keyring: KeyRing, clock: FakeClock, endpoint: Endpoint
) -> None:
    """When a group's one transaction fails, each result is stored the single refresh's way.

    c1's single write is refused too: its new tokens stay in the keeper's memory with its lease (the old
    refresh token may be spent), as a single refresh leaves them; the others are stored.
    """
    store = await _Store.open(db_url, keyring, clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
            broker = Broker(store, http=http, clock=clock)
            ids = await _connections(broker, 3)
            keeper = TokenKeeper(store, fetch=broker.connections.fetch_refresh, clock=clock, store_retry=0.2)
            _RefusingOne.refused = {ids["c1"]}
            clock.advance(minutes=31)
            refresher = BackgroundRefresher(store, keeper, clock=clock, batch=4, concurrency=2)
            assert await refresher.run_once() == 2
            for n in ("c0", "c2"):
                creds = await store.credentials.load(ids[n])
                assert creds is not None and creds.access_token == f"{n}-2"
                assert len(await store.events.list(type="connection.refreshed", connection_id=ids[n])) == 1
            kept = await store.credentials.load(ids["c1"])
            assert kept is not None and kept.access_token == "c1-1"
            assert endpoint.calls == {n: 2 for n in ids}
            async with store.ctx.session() as session:
                owners = dict(
                    (await session.execute(select(ConnectionRow.id, ConnectionRow.refresh_lease_owner))).all()
                )
            assert owners == {ids["c0"]: None, ids["c1"]: keeper.owner, ids["c2"]: None}
            _RefusingOne.refused = set()
            assert await keeper.flush_unsaved() == 0  # the next scan's first step stores them, no new call
            stored = await store.credentials.load(ids["c1"])
            assert stored is not None and stored.access_token == "c1-2"
            assert endpoint.calls == {n: 2 for n in ids}
    finally:
        _RefusingOne.refused = set()
        await store.close()


async def test_a_refused_grant_after_another_workers_rotation_uses_that_result(
    broker: Broker, store: Store, clock: FakeClock, endpoint: Endpoint
) -> None:
    """invalid_grant because another worker spent the refresh token meanwhile: its stored result is used, no reauth."""
    ids = await _connections(broker, 2)

    async def rotated_elsewhere(n: str) -> httpx.Response:
        current = await store.credentials.load(ids[n])
        assert current is not None
        await store.credentials.save(
            ids[n], CredentialRecord(access_token="rotated", token_type="Bearer"), expected_version=current.version
        )
        return httpx.Response(400, json={"error": "invalid_grant"})

    endpoint.hooks = {"c0": rotated_elsewhere}
    clock.advance(minutes=31)
    assert await _refresher(broker, clock).run_once() == 1
    connection = await store.connections.get(ids["c0"])
    assert connection.status == "active" and connection.refresh_failures == 0
    creds = await store.credentials.load(ids["c0"])
    assert creds is not None and creds.access_token == "rotated"
    assert await _lease_owners(store) == {None}


async def test_a_connection_this_process_is_refreshing_is_left_to_that_refresh(
    broker: Broker, store: Store, clock: FakeClock, endpoint: Endpoint
) -> None:
    """A batch claimed while a request of this process refreshes c0 does not call for c0 again."""
    ids = await _connections(broker, 2)
    keeper = broker.connections.keeper
    release = anyio.Event()

    async def slow(_n: str) -> None:
        await release.wait()
        return None

    endpoint.hooks = {"c0": slow}
    clock.advance(minutes=31)
    claimed = await store.connections.claim_due(
        keeper.owner, keeper.lease, expiring_before=clock() + timedelta(hours=2), idle_before=clock(), limit=10
    )
    keeper.claimed(c.id for c in claimed)
    assert sorted(c.id for c in claimed) == sorted(ids.values())
    creds = await store.credentials.load_many(ids.values())
    spec = (await store.integrations.get("batch")).spec
    foreground = asyncio.ensure_future(keeper.refresh(ids["c0"], seen_version=creds[ids["c0"]].version, force=True))
    while endpoint.calls["c0"] < 2:  # the request's refresh is at the token endpoint
        await asyncio.sleep(0.01)
    batch = keeper.refresh_batch([(c, spec, creds[c.id]) for c in claimed], limiter=anyio.Semaphore(2))
    assert await batch == 1  # c1 only
    release.set()
    assert (await foreground).access_token == "c0-2"
    assert endpoint.calls == {"c0": 2, "c1": 2}
    assert await _lease_owners(store) == {None}


async def test_an_interrupted_batch_fails_its_joiners_and_gives_its_leases_back(
    broker: Broker, store: Store, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Cancelled mid-call (a shutdown): whoever waited for the batch's refresh is told; the lease is released."""
    ids = await _connections(broker, 1)
    keeper = broker.connections.keeper
    joined: list[asyncio.Task[CredentialRecord]] = []

    async def stuck(n: str) -> None:
        joined.append(asyncio.ensure_future(keeper.refresh(ids[n], seen_version=1, force=True)))
        await anyio.sleep(60)
        return None

    endpoint.hooks = {"c0": stuck}
    clock.advance(minutes=31)
    with anyio.move_on_after(0.5):
        await _refresher(broker, clock).run_once()
    with pytest.raises(UpstreamError, match="the background refresh was interrupted"):
        await joined[0]
    assert await _lease_owners(store) == {None}
    creds = await store.credentials.load(ids["c0"])
    assert creds is not None and creds.access_token == "c0-1"


class _UnreadableIntegrations(IntegrationRepo):
    """Integrations the database cannot read once ``away`` is set (gone between the claim and the batch's reads).

    The claim brings the credentials with it (``claim_due_with_credentials``): the batch's next read is its specs.
    """

    away: typing.ClassVar[bool] = False

    async def get(self, key: str) -> IntegrationRecord:
        if self.away:
            raise StoreError("the database refused the operation (InterfaceError)")
        return await super().get(key)


class _UnreadableStore(Store):
    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self.integrations = _UnreadableIntegrations(self.ctx)


async def test_a_scan_whose_batch_fails_reports_that_failure_and_gives_the_leases_back(
    db_url: str, keyring: KeyRing, clock: FakeClock, endpoint: Endpoint
) -> None:
    """The database failing under a batch ends the scan with that StoreError (run_forever logs it and goes on)."""
    store = await _UnreadableStore.open(db_url, keyring, clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
            broker = Broker(store, http=http, clock=clock)
            await _connections(broker, 2)
            clock.advance(minutes=31)
            _UnreadableIntegrations.away = True
            with pytest.raises(StoreError, match="InterfaceError"):
                await _refresher(broker, clock).run_once()
            assert endpoint.calls == {"c0": 1, "c1": 1}  # no call was made
            assert await _lease_owners(store) == {None}
    finally:
        _UnreadableIntegrations.away = False
        await store.close()


class _CountingBatches(ConnectionRepo):
    """Connections whose batch writes are counted (their sizes), then stored as usual."""

    sizes: typing.ClassVar[list[int]] = []

    async def store_refreshes(
        self, owner: str, outcomes: typing.Sequence[RefreshOutcome]
    ) -> dict[str, CredentialRecord]:
        self.sizes.append(len(outcomes))
        return await super().store_refreshes(owner, outcomes)


class _CountingStore(Store):
    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections = _CountingBatches(self.ctx)


async def test_a_batch_is_stored_in_one_transaction_unless_groups_are_asked_for(
    db_url: str, keyring: KeyRing, clock: FakeClock, endpoint: Endpoint
) -> None:
    """By default a claimed batch's answers are written together (one group); ``group`` splits them."""
    store = await _CountingStore.open(db_url, keyring, clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
            broker = Broker(store, http=http, clock=clock)
            ids = await _connections(broker, 6)
            clock.advance(minutes=31)
            _CountingBatches.sizes = []
            refresher = BackgroundRefresher(store, broker.connections.keeper, clock=clock, batch=4, concurrency=2)
            assert await refresher.run_once() == 6
            assert sorted(_CountingBatches.sizes) == [2, 4]  # the two batches (claimed one ahead)
            clock.advance(hours=1)
            _CountingBatches.sizes = []
            assert await _refresher(broker, clock).run_once() == 6  # groups of two (= concurrency)
            assert _CountingBatches.sizes == [2, 2, 2]
            assert endpoint.calls == {n: 3 for n in ids}
    finally:
        _CountingBatches.sizes = []
        await store.close()
