"""Retention: events and webhook deliveries past AUTHBRIDGE_EVENT_RETENTION_DAYS are pruned (both backends)."""

from __future__ import annotations

import anyio
import pytest

from authbridge.broker.retention import Pruner
from authbridge.store import Store
from authbridge.testing import FakeClock


async def _event_ids(store: Store) -> set[int]:
    return {event.id for event in await store.events.list(limit=1000)}


async def test_old_events_and_their_deliveries_go_in_batches_young_ones_stay(store: Store, clock: FakeClock) -> None:
    """Five events 31 days old go (three batches of two), with their deliveries; one from today stays."""
    await store.webhooks.add("https://hooks.example.com/in")
    for n in range(5):
        await store.events.add("connection.created", data={"n": n})
    clock.advance(days=31)
    young = (await store.events.add("connection.created")).id
    assert len(await store.webhooks.deliveries(limit=100)) == 6

    pruner = Pruner(store, clock=clock, days=30, batch=2)
    assert await pruner.run_once() == (5, 5)

    assert await _event_ids(store) == {young}
    assert [d.event_id for d in await store.webhooks.deliveries(limit=100)] == [young]
    assert await pruner.run_once() == (0, 0)


async def test_an_event_exactly_inside_the_period_stays(store: Store, clock: FakeClock) -> None:
    """An event 29 days old is kept with a 30-day retention."""
    kept = (await store.events.add("connection.created")).id
    clock.advance(days=29)
    assert await Pruner(store, clock=clock, days=30).run_once() == (0, 0)
    assert await _event_ids(store) == {kept}


async def test_one_run_is_bounded_and_the_next_goes_on(store: Store, clock: FakeClock) -> None:
    """A run deletes at most max_batches x batch events; the rest goes on the next run."""
    for _ in range(5):
        await store.events.add("connection.created")
    clock.advance(days=40)
    pruner = Pruner(store, clock=clock, days=30, batch=2, max_batches=1)
    assert await pruner.run_once() == (2, 0)
    assert len(await _event_ids(store)) == 3
    assert await pruner.run_once() == (2, 0)
    assert await pruner.run_once() == (1, 0)
    assert await _event_ids(store) == set()


async def test_an_event_being_delivered_right_now_waits(store: Store, clock: FakeClock) -> None:
    """An old event whose delivery a worker holds a live lease on is kept until the lease is over."""
    await store.webhooks.add("https://hooks.example.com/in")
    event = (await store.events.add("connection.created")).id
    clock.advance(days=31)
    (claimed,) = await store.webhooks.claim_due()
    assert await Pruner(store, clock=clock, days=30).run_once() == (0, 0)
    await store.webhooks.mark_delivered(claimed.id)  # releases the lease
    assert await Pruner(store, clock=clock, days=30).run_once() == (1, 1)
    assert event not in await _event_ids(store)


async def test_run_forever_prunes_then_stops(store: Store, clock: FakeClock) -> None:
    """The background loop prunes on its first pass and returns once stopped."""
    await store.events.add("connection.created")
    clock.advance(days=31)
    stop = anyio.Event()
    pruner = Pruner(store, clock=clock, days=30)
    async with anyio.create_task_group() as group:
        group.start_soon(pruner.run_forever, stop)
        with anyio.fail_after(10):
            while await _event_ids(store):
                await anyio.sleep(0.01)
        stop.set()
    assert await _event_ids(store) == set()


def test_the_setting_takes_whole_days() -> None:
    """AUTHBRIDGE_EVENT_RETENTION_DAYS defaults to 30, 0 keeps events forever, anything else is refused."""
    from authbridge.config import Settings
    from authbridge.errors import ConfigError

    assert Settings.from_env({}).event_retention_days == 30
    assert Settings.from_env({"AUTHBRIDGE_EVENT_RETENTION_DAYS": "0"}).event_retention_days == 0
    with pytest.raises(ConfigError, match="AUTHBRIDGE_EVENT_RETENTION_DAYS has value '-1'"):
        Settings.from_env({"AUTHBRIDGE_EVENT_RETENTION_DAYS": "-1"})
