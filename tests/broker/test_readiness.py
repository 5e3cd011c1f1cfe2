"""Readiness checks and the shutdown of the token keeper, on both backends.

The same behaviour through a real ``authbridge run`` process: tests/api/test_readiness_e2e.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from authbridge.auth import TokenSet
from authbridge.broker.readiness import Lifecycle, readiness
from authbridge.broker.refresh import TokenKeeper
from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

SPEC = "key: api\nname: API\nauth: {type: api_token}\n"
LEASE = timedelta(seconds=60)


async def _connections(store: Store, count: int) -> list[str]:
    await store.integrations.save(load_spec(SPEC))
    return [
        (await store.connections.create(integration_key="api", name=f"C{n}", parameters={})).id for n in range(count)
    ]


async def test_ready_when_database_migrations_and_keys_are_in_order(store: Store) -> None:
    """Every check passes on a migrated store opened with its own key ring."""
    result = await readiness(store, Lifecycle())
    assert result.ready
    assert result.checks == {"shutdown": "no", "database": "ok", "migrations": "ok", "keys": "ok"}


async def test_not_ready_while_stopping(store: Store) -> None:
    """From the shutdown signal on, readiness says so before looking at anything else."""
    result = await readiness(store, Lifecycle(stopping=True))
    assert (result.ready, result.reason) == (False, "shutting_down")


async def test_not_ready_when_migrations_are_behind(store: Store) -> None:
    """A database at an older revision than the code ships is not ready."""
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    result = await readiness(store, Lifecycle())
    assert (result.reason, result.checks["migrations"]) == ("migrations_not_at_head", "behind")


async def test_not_ready_when_a_canary_does_not_decrypt(store: Store) -> None:
    """A canary the key ring cannot decrypt (tampered, or another key under the same id) is not ready."""
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE key_canaries SET ciphertext = 'v1:k1:AAAA'"))
    result = await readiness(store, Lifecycle())
    assert (result.reason, result.checks["keys"]) == ("key_ring_mismatch", "mismatch")
    assert result.message is not None and "cannot decrypt" in result.message


async def test_not_ready_when_a_canary_key_is_missing(store: Store) -> None:
    """A canary of a key that is not in the ring is named in the reason."""
    async with store.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO key_canaries (kid, ciphertext, created_at) VALUES ('gone', 'x', :now)"),
            {"now": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)},
        )
    result = await readiness(store, Lifecycle())
    assert result.reason == "key_ring_mismatch"
    assert result.message is not None and "'gone'" in result.message


async def test_shutdown_lets_a_refresh_finish_then_gives_back_this_process_leases(
    store: Store, clock: FakeClock
) -> None:
    """Shutdown waits for an in-flight refresh, then releases this owner's leases and no one else's."""
    refreshing, leftover, foreign = await _connections(store, 3)
    entered, go = asyncio.Event(), asyncio.Event()

    async def fetch(*_: object) -> TokenSet:
        entered.set()
        await go.wait()
        return TokenSet(access_token="fresh-token")

    keeper = TokenKeeper(store, fetch=fetch, clock=clock, owner="me")
    assert await store.connections.take_lease(leftover, "me", LEASE)
    keeper._held.add(leftover)  # as when giving it back after a refresh failed (a database hiccup)
    assert await store.connections.take_lease(foreign, "someone-else", LEASE)
    refresh = asyncio.ensure_future(keeper.refresh(refreshing, seen_version=None, force=True))
    await entered.wait()
    shutdown = asyncio.ensure_future(keeper.shutdown(timeout=60))
    go.set()
    await shutdown
    assert (await refresh).access_token == "fresh-token"
    assert await store.connections.take_lease(refreshing, "next", LEASE)
    assert await store.connections.take_lease(leftover, "next", LEASE)
    assert not await store.connections.take_lease(foreign, "next", LEASE)


async def test_shutdown_cancels_a_refresh_that_outlives_the_bound(store: Store, clock: FakeClock) -> None:
    """A refresh still running at the bound is cancelled, and its lease given back."""
    (cid,) = await _connections(store, 1)
    entered = asyncio.Event()

    async def fetch(*_: object) -> TokenSet:
        entered.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    keeper = TokenKeeper(store, fetch=fetch, clock=clock, owner="me")
    refresh = asyncio.ensure_future(keeper.refresh(cid, seen_version=None, force=True))
    await entered.wait()
    await keeper.shutdown(timeout=0.05)
    await asyncio.wait([refresh])
    assert await keeper.shutdown(timeout=0.05) == 0  # nothing held any more: no query
    assert refresh.cancelled()
    assert await store.connections.take_lease(cid, "next", LEASE)
