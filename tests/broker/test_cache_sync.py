"""The cache-invalidation log and its reader, on both backends; each "other process" is a second Store.

The end-to-end check with two ``authbridge run`` processes is tests/proxy/test_replicas.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from authbridge.broker import Broker, CacheSync
from authbridge.broker.cache_sync import EVERYTHING
from authbridge.errors import AuthenticationError, StoreError
from authbridge.spec import load_spec
from authbridge.store import CredentialRecord, KeyRing, Store
from authbridge.store.invalidations import InvalidationRepo, invalidate
from authbridge.store.repo import StoreContext
from authbridge.testing import FakeClock

SPEC = """
key: acme
name: Acme
auth: {type: api_token}
request: {base_url: "https://api.acme.example"}
"""


@pytest.fixture
async def other(db_url: str, keyring: KeyRing, clock: FakeClock, store: Store) -> AsyncIterator[Store]:
    """Another process's store on the same database (``store`` has migrated it)."""
    opened = await Store.open(db_url, keyring, clock=clock, run_migrations=False)
    try:
        yield opened
    finally:
        await opened.close()


def _recorder(sync: CacheSync) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    sync.listeners.append(lambda kind, ref: seen.append((kind, ref)))
    return seen


async def test_every_change_a_cache_may_hold_is_logged(store: Store, other: Store) -> None:
    """Key revoked, credentials written, status changed, connection deleted, integration changed: each is read."""
    sync = CacheSync(store)
    seen = _recorder(sync)
    await sync.poll()
    assert seen == [(EVERYTHING, "")]  # the first poll drops whatever was cached before it
    seen.clear()

    await other.integrations.save(load_spec(SPEC))
    connection = await other.connections.create(integration_key="acme", name="c", parameters={}, status="active")
    _plaintext, key = await other.api_keys.create("k")
    await sync.poll()
    assert seen == []  # creations invalidate nothing

    await other.credentials.save(connection.id, CredentialRecord(access_token="t1"))
    await other.connections.set_status(connection.id, "needs_reauth", last_error="x")
    await other.connections.record_refresh(connection.id, ok=False, status="needs_reauth", last_error="y")
    await other.connections.record_refresh(connection.id, ok=False, last_error="transient")  # no status change
    await other.api_keys.revoke(key.id)
    await other.integrations.save(load_spec(SPEC.replace("name: Acme", "name: Acme 2")))
    await other.connections.delete(connection.id)
    assert await sync.poll() == 6
    assert seen == [
        ("connection", connection.id),
        ("connection", connection.id),
        ("connection", connection.id),
        ("api_key", key.id),
        ("integration", "acme"),
        ("connection", connection.id),
    ]
    seen.clear()
    assert await sync.poll() == 0 and seen == []


async def test_a_refused_versioned_write_logs_nothing(store: Store, other: Store) -> None:
    """A credentials write refused for its version changes nothing, so nothing is dropped."""
    await other.integrations.save(load_spec(SPEC))
    connection = await other.connections.create(integration_key="acme", name="c", parameters={}, status="active")
    await other.credentials.save(connection.id, CredentialRecord(access_token="t1"))
    sync = CacheSync(store)
    await sync.poll()
    seen = _recorder(sync)
    assert await other.credentials.save(connection.id, CredentialRecord(access_token="t2"), expected_version=7) is None
    assert await sync.poll() == 0 and seen == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_change_committed_late_with_a_smaller_id_is_not_missed(store: Store, other: Store) -> None:
    """PostgreSQL: a transaction holding id n commits after one holding n+1 was read; the next poll reads n."""
    sync = CacheSync(store)
    await sync.poll()
    seen = _recorder(sync)
    async with other.ctx.session() as slow:
        await invalidate(slow, other.ctx, "connection", "committed-late")  # takes its id now
        async with other.ctx.session() as fast:
            await invalidate(fast, other.ctx, "connection", "committed-first")
        await sync.poll()
        assert seen == [("connection", "committed-first")]
    await sync.poll()
    assert seen == [("connection", "committed-first"), ("connection", "committed-late")]


async def test_caches_are_trusted_only_while_the_poller_keeps_up(store: Store) -> None:
    """Before a poll, and ``max_lag`` after the last one started, the caches must not answer."""
    sync = CacheSync(store, interval=0.5)
    assert sync.max_lag == 1.5
    assert not sync.trusted(time.monotonic())
    await sync.poll()
    now = time.monotonic()
    assert sync.trusted(now)
    assert not sync.trusted(now + sync.max_lag)


async def test_a_key_revoked_by_another_process_is_refused_after_the_next_poll(store: Store, other: Store) -> None:
    """The broker caches a verified key; another process revokes it; after one poll the key is refused."""
    broker = Broker(store)
    plaintext, record = await other.api_keys.create("caller")
    await broker.cache_sync.poll()
    assert (await broker.authenticate(plaintext)).id == record.id
    await other.api_keys.revoke(record.id)
    assert (await broker.authenticate(plaintext)).id == record.id  # still cached: nothing read yet
    await broker.cache_sync.poll()
    with pytest.raises(AuthenticationError, match="missing or invalid API key"):
        await broker.authenticate(plaintext)


async def test_old_rows_are_pruned(store: Store, other: Store) -> None:
    """Rows older than the retention are deleted; newer ones stay."""
    async with other.ctx.session() as session:
        await invalidate(session, other.ctx, "connection", "c1")
    assert await store.invalidations.prune(older_than=3600) == 0
    assert await store.invalidations.prune(older_than=-60) == 1  # everything is older than a minute from now
    assert await store.invalidations.after(0) == []


class _FlakyLog(InvalidationRepo):
    """The invalidation log, unreadable for the first ``failures`` reads."""

    def __init__(self, ctx: StoreContext, failures: int) -> None:
        super().__init__(ctx)
        self.failures = failures
        self.trusted_while_failing: list[bool] = []
        self.sync: CacheSync | None = None

    async def latest(self) -> int:
        if self.failures > 0:
            self.failures -= 1
            assert self.sync is not None
            self.trusted_while_failing.append(self.sync.trusted(time.monotonic()))
            raise StoreError("the database refused the operation (OperationalError)")
        return await super().latest()


async def test_an_unreadable_log_bypasses_the_caches_and_is_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """While the log cannot be read the caches are not trusted; one warning per outage, one on recovery."""
    flaky = _FlakyLog(store.ctx, failures=3)
    store.invalidations = flaky
    # Trust lasts 3 intervals from the start of the last good poll: long enough here that a loaded
    # database (a poll of tens of milliseconds) cannot make the last assertion below race the clock.
    sync = CacheSync(store, interval=0.25)
    flaky.sync = sync
    stop = anyio.Event()
    sync.listeners.append(lambda kind, _ref: stop.set() if kind == EVERYTHING else None)
    with anyio.fail_after(10):
        await sync.run_forever(stop)
    assert flaky.trusted_while_failing == [False, False, False]
    assert sync.trusted(time.monotonic())
    messages = [r.getMessage() for r in caplog.records if r.name == "authbridge.cache_sync"]
    assert len(messages) == 2
    assert messages[0].startswith("reading the cache invalidation log failed (caches bypassed until it works)")
    assert messages[1] == "reading the cache invalidation log works again"
