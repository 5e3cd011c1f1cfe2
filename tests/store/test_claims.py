"""The refresher's batch claim on both backends: due rows nobody holds, leased in one statement, never twice.

Three replicas splitting a storm through it: tests/lifecycle/test_refresh_replicas.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

SPEC = "key: api\nname: API\nauth: {type: api_token}\n"
LEASE = timedelta(seconds=30)


async def _due_connections(store: Store, clock: FakeClock, count: int) -> list[str]:
    await store.integrations.save(load_spec(SPEC))
    ids = []
    for n in range(count):
        record = await store.connections.create(integration_key="api", name=f"c{n}", parameters={})
        await store.connections.set_status(record.id, "active", expires_at=clock() + timedelta(minutes=n))
        ids.append(record.id)
    return ids


def _window(clock: FakeClock) -> dict[str, object]:
    return {"expiring_before": clock() + timedelta(hours=2), "idle_before": clock() - timedelta(hours=24)}


async def test_claims_are_disjoint_and_soonest_first(store: Store, clock: FakeClock) -> None:
    """Two owners claiming in turn get different rows, soonest expiry first; a held row is skipped."""
    ids = await _due_connections(store, clock, 6)
    first = await store.connections.claim_due("a", LEASE, limit=4, **_window(clock))  # type: ignore[arg-type]
    assert [c.id for c in first] == ids[:4]
    second = await store.connections.claim_due("b", LEASE, limit=4, **_window(clock))  # type: ignore[arg-type]
    assert [c.id for c in second] == ids[4:]
    assert await store.connections.claim_due("c", LEASE, limit=4, **_window(clock)) == []  # type: ignore[arg-type]
    assert not await store.connections.take_lease(ids[0], "c", LEASE)
    assert await store.connections.take_lease(ids[0], "a", LEASE)  # the claimer holds it: the keeper renews it


async def test_concurrent_claims_never_overlap(store: Store, clock: FakeClock) -> None:
    """Eight owners claiming at the same moment: every due row is claimed once."""
    ids = await _due_connections(store, clock, 20)
    batches = await asyncio.gather(
        *(store.connections.claim_due(f"w{i}", LEASE, limit=5, **_window(clock)) for i in range(8))  # type: ignore[arg-type]
    )
    claimed = [c.id for batch in batches for c in batch]
    assert sorted(claimed) == sorted(ids)


async def test_given_back_rows_are_claimable_again(store: Store, clock: FakeClock) -> None:
    """Rows released by their claimer (found not due) go to the next claim; another owner cannot release them."""
    ids = await _due_connections(store, clock, 2)
    await store.connections.claim_due("a", LEASE, limit=2, **_window(clock))  # type: ignore[arg-type]
    await store.connections.release_lease_of(ids, "b")  # not b's
    assert await store.connections.claim_due("b", LEASE, limit=2, **_window(clock)) == []  # type: ignore[arg-type]
    await store.connections.release_lease_of(ids, "a")
    await store.connections.release_lease_of([], "a")  # nothing to do
    again = await store.connections.claim_due("b", LEASE, limit=2, **_window(clock))  # type: ignore[arg-type]
    assert sorted(c.id for c in again) == sorted(ids)


async def test_backing_off_inactive_and_far_rows_are_not_claimed(store: Store, clock: FakeClock) -> None:
    """Only active rows due within the horizon and not backing off after failures are claimed."""
    ids = await _due_connections(store, clock, 3)
    await store.connections.set_status(ids[0], "needs_reauth")
    await store.connections.record_refresh(ids[1], ok=False, next_refresh_at=clock() + timedelta(minutes=5))
    await store.connections.set_status(ids[2], "active", expires_at=clock() + timedelta(days=3))
    assert await store.connections.claim_due("a", LEASE, limit=10, **_window(clock)) == []  # type: ignore[arg-type]
