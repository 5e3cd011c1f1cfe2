"""The token-read audit: noted in memory, written in batches, kept when the database refuses, bounded."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import anyio

from authbridge.broker import AuditLog
from authbridge.errors import StoreError
from authbridge.store import ApiKeyRecord, EventRecord, Store
from authbridge.testing import FakeClock

KEY = ApiKeyRecord("k" * 32, "web", "ab_xxxxxxx", datetime(2026, 1, 1, tzinfo=UTC), None, None, ("token",))


class _RefusingEvents:
    """An events repository whose database is down."""

    async def add_audit(self, entries: typing.Sequence[EventRecord]) -> None:
        raise StoreError("the database refused the operation (OperationalError)")


class _DownStore:
    events = _RefusingEvents()


async def test_batches_are_written_with_when_and_who(store: Store, clock: FakeClock) -> None:
    log = AuditLog(store, clock=clock)
    log.note("token.read", KEY, "c1", "acme")
    clock.advance(seconds=5)
    log.note("token.read", None, "c2", None)
    assert await log.flush() == 2
    assert await log.flush() == 0
    events = await store.events.list(type="token.read")
    assert [(e.connection_id, e.integration_key, e.data) for e in reversed(events)] == [
        ("c1", "acme", {"caller": {"id": KEY.id, "name": "web"}}),
        ("c2", None, {}),
    ]
    assert (events[0].created_at - events[1].created_at).total_seconds() == 5


async def test_a_refused_write_keeps_the_entries_for_the_next_one(store: Store, clock: FakeClock) -> None:
    log = AuditLog(typing.cast(Store, _DownStore()), clock=clock)
    for i in range(3):
        log.note("token.read", KEY, f"c{i}", None)
    assert await log.flush() == 0
    log.note("token.read", KEY, "c3", None)
    log.store = store  # the database is back
    assert await log.flush() == 4
    assert sorted(e.connection_id or "" for e in await store.events.list(type="token.read")) == ["c0", "c1", "c2", "c3"]


def test_the_oldest_are_dropped_past_the_bound(clock: FakeClock) -> None:
    log = AuditLog(typing.cast(Store, _DownStore()), clock=clock, max_pending=2)
    for i in range(5):
        log.note("token.read", KEY, f"c{i}", None)
    assert log.dropped == 3


async def test_run_forever_writes_the_rest_when_stopped(store: Store, clock: FakeClock) -> None:
    log = AuditLog(store, clock=clock, interval=3600)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(log.run_forever, stop)
        log.note("token.read", KEY, "c1", None)
        stop.set()
    assert [e.connection_id for e in await store.events.list(type="token.read")] == ["c1"]
