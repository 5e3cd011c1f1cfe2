"""A rotated refresh token is never lost: store failures after the provider answered, and rotation races.

Against the real test OAuth server, which rotates refresh tokens (a spent one gets invalid_grant). The store
failures come from a real store whose credential writes run a statement the database refuses
(:class:`FlakyStore`, handed to the TokenKeeper through its constructor).
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from authbridge.broker import Broker
from authbridge.broker.refresh import TokenKeeper
from authbridge.errors import StoreError, TokenEndpointError
from authbridge.spec import Integration
from authbridge.store import ConnectionRecord, CredentialRecord, KeyRing, Store
from authbridge.store.connections import CredentialRepo
from authbridge.store.db import create_engine
from authbridge.store.models import ConnectionRow
from authbridge.store.repo import StoreContext
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, connect, env_for, open_broker, spec_text
from tests.servers.fixtures import OAuthServer


class FlakyCredentials(CredentialRepo):
    """Credentials whose writes fail while ``failing(n)`` (n: the write's number, from 1) says so.

    A failing write runs a statement the database refuses, so the error goes through the store's own
    error mapping like any database failure. ``before_write`` runs before each write that goes through.
    """

    def __init__(self, ctx: StoreContext, failing: Callable[[int], bool]) -> None:
        super().__init__(ctx)
        self.failing = failing
        self.writes = 0
        self.failures = 0
        self.before_write: Callable[[str], typing.Awaitable[None]] | None = None

    async def save(
        self, connection_id: str, creds: CredentialRecord, *, expected_version: int | None = None
    ) -> CredentialRecord | None:
        self.writes += 1
        if self.failing(self.writes):
            self.failures += 1
            async with self._ctx.session() as session:
                await session.execute(text("UPDATE no_such_table SET x = 1"))
        if self.before_write is not None:
            await self.before_write(connection_id)
        return await super().save(connection_id, creds, expected_version=expected_version)


class FlakyStore(Store):
    """A real store on the test's database whose credential writes fail as told."""

    credentials: FlakyCredentials

    def __init__(self, url: str, keyring: KeyRing, failing: Callable[[int], bool]) -> None:
        super().__init__(create_engine(url), keyring, clock=OffsetClock())
        self.credentials = FlakyCredentials(self.ctx, failing)


@pytest.fixture
def ring() -> KeyRing:
    """The key ring every store of a test shares."""
    return memory_key_ring("k1")


@pytest.fixture
async def broker(db_url: str, ring: KeyRing, tmp_path: Path, oauth: OAuthServer) -> AsyncIterator[Broker]:
    """A broker (another worker, as far as the keeper under test knows) with the test IdP integration."""
    async with open_broker(env_for(db_url, ring, str(tmp_path / "data")), OffsetClock()) as opened:
        await apply(opened, spec_text(oauth))
        yield opened


@pytest.fixture
async def flaky_store(db_url: str, ring: KeyRing, broker: Broker) -> AsyncIterator[FlakyStore]:
    """A store whose credential writes succeed until the test says otherwise (``failing``)."""
    store = FlakyStore(db_url, ring, lambda _n: False)
    try:
        yield store
    finally:
        await store.close()


def _refresh_calls(oauth: OAuthServer) -> int:
    return int(oauth.stats()["token_calls"]["refresh_token"])


def _refresh_grant(oauth: OAuthServer, refresh_token: str) -> httpx.Response:
    """One refresh_token grant at the server, outside AuthBridge."""
    return httpx.post(
        oauth.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
        },
    )


async def _stored(broker: Broker, connection_id: str) -> CredentialRecord:
    creds = await broker.store.credentials.load(connection_id)
    assert creds is not None and creds.refresh_token is not None and creds.access_token is not None
    return creds


async def test_first_save_fails_and_the_rotated_token_is_stored(
    broker: Broker, flaky_store: FlakyStore, oauth: OAuthServer
) -> None:
    """The write after the provider answered fails once: it is retried, and the next refresh sends the rotated token."""
    cid = await connect(broker, oauth)
    before = await _stored(broker, cid)
    flaky_store.credentials.failing = lambda n: n == 1
    keeper = TokenKeeper(flaky_store, fetch=broker.connections.fetch_refresh, clock=OffsetClock())

    result = await keeper.refresh(cid, seen_version=before.version, force=True)

    assert flaky_store.credentials.failures == 1 and flaky_store.credentials.writes == 2
    stored = await _stored(broker, cid)
    assert stored.refresh_token == result.refresh_token != before.refresh_token
    assert stored.version == before.version + 1
    assert before.refresh_token is not None
    assert _refresh_grant(oauth, before.refresh_token).json()["error"] == "invalid_grant"  # spent at the server
    assert _refresh_calls(oauth) == 2

    again = await broker.connections.refresh(cid)  # another worker: must send the rotated token
    assert _refresh_calls(oauth) == 3
    assert again.refresh_token not in {before.refresh_token, result.refresh_token}
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active" and connection.refresh_failures == 0


async def test_every_save_fails_the_pair_is_kept_and_stored_later(
    broker: Broker, flaky_store: FlakyStore, oauth: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every write fails: a clear error, nothing secret logged, the lease kept, the pair stored once the store works."""
    caplog.set_level(logging.DEBUG)
    cid = await connect(broker, oauth)
    before = await _stored(broker, cid)
    broken = True
    flaky_store.credentials.failing = lambda _n: broken
    keeper = TokenKeeper(flaky_store, fetch=broker.connections.fetch_refresh, clock=OffsetClock(), store_retry=0.3)

    with pytest.raises(StoreError, match="the provider issued new tokens but storing them failed") as raised:
        await keeper.refresh(cid, seen_version=before.version, force=True)
    assert _refresh_calls(oauth) == 1
    assert flaky_store.credentials.failures >= 2  # retried
    assert (await _stored(broker, cid)).version == before.version  # nothing half-written
    # The lease stays with the keeper: no other worker may spend the old (already spent) refresh token.
    assert not await broker.store.connections.take_lease(cid, "another-worker", timedelta(seconds=5))

    # While the store refuses writes, this process serves the new tokens from memory.
    _connection, in_memory = await keeper.fresh(cid)
    assert in_memory.access_token is not None and in_memory.refresh_token is not None
    assert in_memory.refresh_token != before.refresh_token
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {in_memory.access_token}"}).status_code == 200
    assert _refresh_calls(oauth) == 1

    secrets = {before.access_token, before.refresh_token, in_memory.access_token, in_memory.refresh_token}
    shown = [str(raised.value), repr(raised.value), *(r.getMessage() for r in caplog.records)]
    assert not [line for line in shown for secret in secrets if secret and secret in line]

    broken = False  # the database is back: the next refresh in this process writes the kept pair first
    _connection, written = await keeper.fresh(cid)
    assert _refresh_calls(oauth) == 1
    stored = await _stored(broker, cid)
    assert stored.refresh_token == written.refresh_token == in_memory.refresh_token
    assert await broker.store.connections.take_lease(cid, "another-worker", timedelta(seconds=5))  # released
    await broker.store.connections.release_lease(cid, "another-worker")

    again = await broker.connections.refresh(cid)
    assert _refresh_calls(oauth) == 2 and again.refresh_token != in_memory.refresh_token
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active"


async def test_kept_pair_repairs_a_connection_another_worker_gave_up_on(
    broker: Broker, flaky_store: FlakyStore, oauth: OAuthServer
) -> None:
    """The store refused our pair; our lease ran out; another worker's spent token got invalid_grant and marked
    the connection needs_reauth. Our kept pair, stored once the store works, makes it active again."""
    cid = await connect(broker, oauth)
    before = await _stored(broker, cid)
    broken = True
    flaky_store.credentials.failing = lambda _n: broken
    keeper = TokenKeeper(
        flaky_store,
        fetch=broker.connections.fetch_refresh,
        clock=OffsetClock(),
        deadline=1.0,
        lease=timedelta(seconds=1.5),
        store_retry=0.2,
    )
    with pytest.raises(StoreError, match="storing them failed"):
        await keeper.refresh(cid, seen_version=before.version, force=True)

    with pytest.raises(TokenEndpointError, match="invalid_grant"):  # waits for our lease to run out first
        await broker.connections.refresh(cid)
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "needs_reauth"

    broken = False
    connection, kept = await keeper.fresh(cid)
    assert connection.status == "active"
    assert kept.refresh_token == (await _stored(broker, cid)).refresh_token != before.refresh_token
    assert _refresh_calls(oauth) == 2  # ours, and the other worker's refused one: storing ours called nobody
    token = await broker.connections.token(cid)
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token.access_token}"}).status_code == 200
    assert (await broker.connections.refresh(cid)).refresh_token != kept.refresh_token


async def test_the_lease_is_renewed_while_the_write_is_retried(
    broker: Broker, flaky_store: FlakyStore, oauth: OAuthServer
) -> None:
    """Writes fail for longer than the lease lasts: each retry renews it, so the write happens under a live lease."""
    cid = await connect(broker, oauth)
    before = await _stored(broker, cid)
    lease = timedelta(seconds=2)
    keeper = TokenKeeper(
        flaky_store,
        fetch=broker.connections.fetch_refresh,
        clock=OffsetClock(),
        deadline=1.8,
        lease=lease,
        store_retry=10.0,
    )
    broken_until = time.monotonic() + 3.5  # past the 2-second lease taken before the token call
    flaky_store.credentials.failing = lambda _n: time.monotonic() < broken_until
    seen: list[tuple[str | None, bool]] = []

    async def check_lease(connection_id: str) -> None:
        async with flaky_store.ctx.session() as session:
            row = await session.get(ConnectionRow, connection_id)
            assert row is not None
            owner = row.refresh_lease_owner
        intruder = await flaky_store.connections.take_lease(connection_id, "intruder", lease)
        seen.append((owner, intruder))

    flaky_store.credentials.before_write = check_lease
    result = await keeper.refresh(cid, seen_version=before.version, force=True)

    assert flaky_store.credentials.failures >= 2
    assert seen == [(keeper.owner, False)]  # ours, and live: nobody else could take it
    assert (await _stored(broker, cid)).refresh_token == result.refresh_token != before.refresh_token


async def test_invalid_grant_after_another_worker_rotated_uses_its_tokens(broker: Broker, oauth: OAuthServer) -> None:
    """A refresh answered invalid_grant re-reads, finds the pair another worker stored meanwhile, and uses it."""
    cid = await connect(broker, oauth)
    before = await _stored(broker, cid)
    rotated: list[CredentialRecord] = []
    refused: list[TokenEndpointError] = []

    async def slow_worker_fetch(
        connection: ConnectionRecord, spec: Integration, creds: CredentialRecord | None
    ) -> typing.Any:
        # This worker's lease runs out while its call is on the way; another worker refreshes meanwhile.
        await broker.store.connections.release_lease(connection.id, "slow-worker")
        rotated.append(await broker.connections.refresh(connection.id))
        try:
            return await broker.connections.fetch_refresh(connection, spec, creds)  # the spent refresh token
        except TokenEndpointError as exc:
            refused.append(exc)
            raise

    slow = TokenKeeper(broker.store, fetch=slow_worker_fetch, clock=OffsetClock(), owner="slow-worker")
    result = await slow.refresh(cid, seen_version=before.version, force=True)

    assert len(refused) == 1 and refused[0].permanent and "invalid_grant" in str(refused[0])
    assert result.refresh_token == rotated[0].refresh_token != before.refresh_token
    assert _refresh_calls(oauth) == 2
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active" and connection.refresh_failures == 0
    events = [e.type for e in await broker.store.events.list(connection_id=cid)]
    assert "connection.needs_reauth" not in events and "connection.refresh_failed" not in events
    token = await broker.connections.token(cid)
    assert token.access_token == rotated[0].access_token
