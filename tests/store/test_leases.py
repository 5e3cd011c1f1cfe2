"""The refresh lease on the connection row, on the database's clock (both backends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio

from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

SPEC = "key: api\nname: API\nauth: {type: api_token}\n"


async def _connection(store: Store) -> str:
    await store.integrations.save(load_spec(SPEC))
    return (await store.connections.create(integration_key="api", name="DEV", parameters={})).id


async def test_one_owner_at_a_time(store: Store) -> None:
    """Only one owner takes a live lease; it can take it again; after release another can."""
    cid = await _connection(store)
    assert await store.connections.take_lease(cid, "a", timedelta(seconds=30))
    assert not await store.connections.take_lease(cid, "b", timedelta(seconds=30))
    assert await store.connections.take_lease(cid, "a", timedelta(seconds=30))
    await store.connections.release_lease(cid, "b")  # not b's to release
    assert not await store.connections.take_lease(cid, "b", timedelta(seconds=30))
    await store.connections.release_lease(cid, "a")
    assert await store.connections.take_lease(cid, "b", timedelta(seconds=30))


async def test_expired_lease_can_be_taken(store: Store) -> None:
    """A lease whose time has passed on the database's clock is taken over (a dead worker's lease)."""
    cid = await _connection(store)
    assert await store.connections.take_lease(cid, "dead-worker", timedelta(seconds=2))
    assert not await store.connections.take_lease(cid, "b", timedelta(seconds=30))  # 2 s: ample for this call
    with anyio.fail_after(30):  # then b gets it once the lease has run out, and nobody else does after
        while not await store.connections.take_lease(cid, "b", timedelta(seconds=30)):
            await anyio.sleep(0.1)
    assert not await store.connections.take_lease(cid, "dead-worker", timedelta(seconds=2))


async def test_concurrent_takers_one_wins(store: Store) -> None:
    """Of 20 concurrent attempts, exactly one takes the lease."""
    cid = await _connection(store)
    results = await asyncio.gather(
        *(store.connections.take_lease(cid, f"w{i}", timedelta(seconds=30)) for i in range(20))
    )
    assert results.count(True) == 1


async def test_record_refresh_and_due_list(store: Store, clock: FakeClock) -> None:
    """Refresh outcomes count failures and back off; due_for_refresh finds expiring and idle connections."""
    cid = await _connection(store)
    await store.connections.set_status(cid, "active", expires_at=clock() + timedelta(minutes=10))
    due = await store.connections.due_for_refresh(
        expiring_before=clock() + timedelta(minutes=30), idle_before=clock() - timedelta(hours=24), limit=10
    )
    assert [c.id for c in due] == [cid]
    failed = await store.connections.record_refresh(
        cid, ok=False, last_error="upstream 503", next_refresh_at=clock() + timedelta(minutes=1)
    )
    assert (failed.refresh_failures, failed.status, failed.last_error) == (1, "active", "upstream 503")
    assert not await store.connections.due_for_refresh(
        expiring_before=clock() + timedelta(minutes=30), idle_before=clock() - timedelta(hours=24), limit=10
    )
    clock.advance(minutes=2)
    ok = await store.connections.record_refresh(cid, ok=True, expires_at=clock() + timedelta(hours=1))
    assert (ok.refresh_failures, ok.last_error, ok.last_refreshed_at) == (0, None, clock())
    assert not await store.connections.due_for_refresh(
        expiring_before=clock() + timedelta(minutes=30), idle_before=clock() - timedelta(hours=24), limit=10
    )
    clock.advance(hours=25)
    assert [
        c.id
        for c in await store.connections.due_for_refresh(
            expiring_before=clock() - timedelta(days=9), idle_before=clock() - timedelta(hours=24), limit=10
        )
    ] == [cid]
