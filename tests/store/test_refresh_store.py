"""The refresher's store side on both backends: the batch claim with credentials, the batch write of results.

PostgreSQL runs statements of its own for both (one round trip for the claim, ``unnest`` arrays for the
write); SQLite the portable ones. The same tests hold for each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from authbridge.errors import CryptoError, StoreError
from authbridge.spec import load_spec
from authbridge.store import CredentialRecord, RefreshOutcome, Store
from authbridge.store.models import ConnectionRow, CredentialRow, EventRow, WebhookDeliveryRow, WebhookRow
from authbridge.testing import FakeClock

SPEC = "key: api\nname: API\nparameters: [{name: n}, {name: key, secret: true}]\nauth: {type: api_token}\n"
LEASE = timedelta(seconds=30)


async def _due(store: Store, clock: FakeClock, count: int, *, credentials: bool = True) -> list[str]:
    """``count`` active connections due soonest first (c0 first), each with version-1 credentials."""
    await store.integrations.save(load_spec(SPEC))
    ids = []
    for n in range(count):
        record = await store.connections.create(
            integration_key="api",
            name=f"c{n}",
            parameters={"n": f"c{n}", "key": f"secret-{n}"},
            tags={"t": str(n)},
            end_user={"id": f"u{n}"} if n == 0 else None,
            organization={"id": "o1"} if n == 0 else None,
        )
        await store.connections.set_status(record.id, "active", expires_at=clock() + timedelta(minutes=n))
        if credentials:
            await store.credentials.save(
                record.id,
                CredentialRecord(
                    access_token=f"old-{n}",
                    refresh_token=f"refresh-{n}",
                    token_type="Bearer",
                    expires_at=clock() + timedelta(minutes=n),
                    scopes=["read"],
                    raw={"access_token": f"old-{n}"},
                    extra={"x": n},
                    inputs={"i": str(n)},
                ),
            )
        ids.append(record.id)
    return ids


def _window(clock: FakeClock) -> dict[str, datetime]:
    return {"expiring_before": clock() + timedelta(hours=2), "idle_before": clock() - timedelta(hours=24)}


def _outcome(cid: str, n: int, clock: FakeClock, *, version: int = 1, warning: str | None = None) -> RefreshOutcome:
    return RefreshOutcome(
        connection_id=cid,
        integration_key="api",
        credentials=CredentialRecord(
            access_token=f"new-{n}",
            refresh_token=f"refresh-{n}-2",
            token_type="Bearer",
            expires_at=clock() + timedelta(hours=1),
            scopes=["read", "write"] if n else None,
            raw={"access_token": f"new-{n}"} if n else {},
            extra={"x": n + 1},
            inputs={"i": str(n)},
        ),
        version=version,
        warning=warning,
        events=(("connection.refreshed", {"n": n}),),
        end_user={"id": f"u{n}"} if n == 0 else None,
        organization={"id": "o1"} if n == 0 else None,
    )


async def _lease_owners(store: Store, ids: list[str]) -> dict[str, str | None]:
    async with store.ctx.session() as session:
        rows = await session.execute(
            select(ConnectionRow.id, ConnectionRow.refresh_lease_owner).where(ConnectionRow.id.in_(ids))
        )
        return {cid: owner for cid, owner in rows}


async def test_a_batch_stores_the_fresh_results_and_leaves_out_the_moved_and_the_deleted(
    store: Store, clock: FakeClock
) -> None:
    """c2's credentials moved on and c3 was deleted meanwhile: both left out; c0, c1 and c4 stored with their
    events, deliveries (one per active webhook) and invalidations; every lease of the owner given back (c4's lease
    went to another owner meanwhile: that one is kept)."""
    ids = await _due(store, clock, 5)
    c0, c1, c2, c3, c4 = ids
    await store.connections.record_refresh(c0, ok=False, last_error="boom")  # a failure to recover from
    claimed = await store.connections.claim_due("w", LEASE, limit=10, **_window(clock))
    assert [c.id for c in claimed] == ids
    await store.connections.release_lease_of([c4], "w")
    assert await store.connections.take_lease(c4, "other", LEASE)
    moved = await store.credentials.save(c2, CredentialRecord(access_token="newer"))
    assert moved is not None and moved.version == 2
    await store.connections.delete(c3)
    active, _ = await store.webhooks.add("https://hooks.example/a")
    disabled, _ = await store.webhooks.add("https://hooks.example/b")
    async with store.ctx.session() as session:
        await session.execute(update(WebhookRow).where(WebhookRow.id == disabled.id).values(disabled_at=clock()))
    before = {c.id: c for c in await store.connections.list()}
    since = await store.invalidations.latest()
    clock.advance(minutes=1)

    outcomes = [_outcome(cid, n, clock, warning="short" if n == 1 else None) for n, cid in enumerate(ids)]
    saved = await store.connections.store_refreshes("w", outcomes)

    assert sorted(saved) == sorted([c0, c1, c4])
    for n, cid in enumerate(ids):
        if cid not in saved:
            continue
        expected = outcomes[n].credentials
        assert saved[cid].version == 2 and saved[cid].obtained_at == clock()
        loaded = await store.credentials.load(cid)
        assert loaded == saved[cid]
        assert (loaded.access_token, loaded.refresh_token, loaded.scopes) == (
            expected.access_token,
            expected.refresh_token,
            expected.scopes,
        )
        assert (loaded.raw, loaded.extra, loaded.inputs) == (expected.raw, expected.extra, expected.inputs)
        connection = await store.connections.get(cid)
        assert connection.status == "active" and connection.refresh_failures == 0 and connection.last_error is None
        assert connection.last_refreshed_at == clock() and connection.updated_at == clock()
        assert connection.expires_at == expected.expires_at and connection.next_refresh_at is None
        assert connection.warning == ("short" if n == 1 else None)
        assert connection.version == before[cid].version + 1
        assert connection.parameters == before[cid].parameters  # the secret parameter still decrypts
    newer = await store.credentials.load(c2)
    assert newer is not None and (newer.access_token, newer.version) == ("newer", 2)
    assert (await store.connections.get(c2)).version == before[c2].version  # left alone
    assert await _lease_owners(store, ids) == {c0: None, c1: None, c2: None, c4: "other"}

    events = await store.events.list(type="connection.refreshed")
    assert sorted(e.connection_id or "" for e in events) == sorted([c0, c1, c4])
    by_connection = {e.connection_id: e for e in events}
    assert by_connection[c0].data == {"n": 0, "end_user": {"id": "u0"}, "organization": {"id": "o1"}}
    assert by_connection[c1].data == {"n": 1} and by_connection[c1].integration_key == "api"
    assert all(e.created_at == clock() for e in events)
    async with store.ctx.session() as session:
        deliveries = (await session.execute(select(WebhookDeliveryRow.webhook_id, WebhookDeliveryRow.event_id))).all()
    assert sorted(event for _, event in deliveries) == sorted(e.id for e in events)
    assert {webhook for webhook, _ in deliveries} == {active.id}
    changed = [i.ref for i in await store.invalidations.after(since) if i.kind == "connection"]
    assert sorted(changed) == sorted([c0, c1, c4])


async def test_a_batch_with_nothing_fresh_only_gives_the_leases_back(store: Store, clock: FakeClock) -> None:
    """Every result stale: nothing written, no event, every lease of the owner given back."""
    ids = await _due(store, clock, 2)
    await store.connections.claim_due("w", LEASE, limit=10, **_window(clock))
    since = await store.invalidations.latest()
    saved = await store.connections.store_refreshes(
        "w", [_outcome(cid, n, clock, version=7) for n, cid in enumerate(ids)]
    )
    assert saved == {}
    assert await _lease_owners(store, ids) == dict.fromkeys(ids)
    assert await store.events.list(type="connection.refreshed") == []
    assert await store.invalidations.after(since) == []


async def test_a_failing_batch_stores_nothing(store: Store, clock: FakeClock) -> None:
    """The database refusing the batch's last statement rolls back the whole batch (StoreError): credentials,
    connections, invalidations and events unchanged, the leases still held."""
    ids = await _due(store, clock, 3)
    await store.connections.claim_due("w", LEASE, limit=10, **_window(clock))
    await store.webhooks.add("https://hooks.example/a")
    before = {c.id: c for c in await store.connections.list()}
    since = await store.invalidations.latest()
    async with store.ctx.session() as session:  # the deliveries' table away: the batch's last write fails
        await session.execute(text("ALTER TABLE webhook_deliveries RENAME TO deliveries_away"))
    clock.advance(minutes=1)
    with pytest.raises(StoreError):
        await store.connections.store_refreshes("w", [_outcome(cid, n, clock) for n, cid in enumerate(ids)])
    for n, cid in enumerate(ids):
        creds = await store.credentials.load(cid)
        assert creds is not None and (creds.access_token, creds.version) == (f"old-{n}", 1)
        assert await store.connections.get(cid) == before[cid]
    assert await _lease_owners(store, ids) == dict.fromkeys(ids, "w")
    assert await store.invalidations.after(since) == []
    async with store.ctx.session() as session:
        assert await session.scalar(select(func.count()).select_from(EventRow)) == 0
        assert (
            await session.scalar(select(func.count()).select_from(CredentialRow).where(CredentialRow.version > 1)) == 0
        )


async def test_the_claim_brings_each_connections_credentials(store: Store, clock: FakeClock) -> None:
    """The connections as ``get`` reads them, soonest expiry first, each with its credentials (None: it has none)."""
    ids = await _due(store, clock, 3)
    bare = await _due_without_credentials(store, clock)
    claimed = await store.connections.claim_due_with_credentials("w", LEASE, limit=10, **_window(clock))
    assert [c.id for c, _ in claimed] == [*ids[:1], bare, *ids[1:]]
    for connection, creds in claimed:
        assert connection == await store.connections.get(connection.id)
        assert creds == await store.credentials.load(connection.id)
    assert dict((c.id, creds) for c, creds in claimed)[bare] is None
    assert claimed[0][0].parameters == {"n": "c0", "key": "secret-0"} and claimed[0][0].secret_names == {"key"}
    assert claimed[0][0].end_user == {"id": "u0"} and claimed[0][0].tags == {"t": "0"}
    assert await _lease_owners(store, [*ids, bare]) == dict.fromkeys([*ids, bare], "w")
    assert await store.connections.claim_due_with_credentials("x", LEASE, limit=10, **_window(clock)) == []
    assert not await store.connections.take_lease(ids[0], "x", LEASE)


async def _due_without_credentials(store: Store, clock: FakeClock) -> str:
    """One more active connection, due between c0 and c1, that has no credentials."""
    record = await store.connections.create(integration_key="api", name="bare", parameters={"n": "bare"})
    await store.connections.set_status(record.id, "active", expires_at=clock() + timedelta(seconds=30))
    return record.id


async def test_the_claim_with_credentials_selects_as_claim_due_does(store: Store, clock: FakeClock) -> None:
    """Not claimed: inactive, backing off, due beyond the horizon, or leased by someone else; at most ``limit``."""
    ids = await _due(store, clock, 6)
    await store.connections.set_status(ids[0], "needs_reauth")
    await store.connections.record_refresh(ids[1], ok=False, next_refresh_at=clock() + timedelta(minutes=5))
    await store.connections.set_status(ids[2], "active", expires_at=clock() + timedelta(days=3))
    assert await store.connections.take_lease(ids[3], "other", LEASE)
    first = await store.connections.claim_due_with_credentials("w", LEASE, limit=1, **_window(clock))
    assert [c.id for c, _ in first] == [ids[4]]
    rest = await store.connections.claim_due_with_credentials("w", LEASE, limit=10, **_window(clock))
    assert [c.id for c, _ in rest] == [ids[5]]


async def test_concurrent_claims_with_credentials_never_overlap(store: Store, clock: FakeClock) -> None:
    """Eight owners claiming at the same moment: every due row is claimed once, with its own credentials."""
    ids = await _due(store, clock, 20)
    batches = await asyncio.gather(
        *(store.connections.claim_due_with_credentials(f"w{i}", LEASE, limit=5, **_window(clock)) for i in range(8))
    )
    claimed = [c.id for batch in batches for c, _ in batch]
    assert sorted(claimed) == sorted(ids)
    owners = await _lease_owners(store, ids)
    for i, batch in enumerate(batches):
        for connection, creds in batch:
            assert owners[connection.id] == f"w{i}"
            assert creds is not None and creds.access_token == f"old-{ids.index(connection.id)}"


async def test_a_failing_claim_with_credentials_holds_no_lease(store: Store, clock: FakeClock) -> None:
    """The credentials unreadable: StoreError, and no row is left leased (PostgreSQL: the one statement fails;
    SQLite: the leases just taken are given back)."""
    ids = await _due(store, clock, 3)
    async with store.ctx.session() as session:
        await session.execute(text("ALTER TABLE credentials RENAME TO credentials_away"))
    with pytest.raises(StoreError):
        await store.connections.claim_due_with_credentials("w", LEASE, limit=10, **_window(clock))
    assert await _lease_owners(store, ids) == dict.fromkeys(ids)


async def test_a_claim_whose_secrets_do_not_decrypt_holds_no_lease(store: Store, clock: FakeClock) -> None:
    """A ciphertext moved to another row does not decrypt: CryptoError, and the claimed rows' leases go back."""
    ids = await _due(store, clock, 2)
    async with store.ctx.session() as session:
        moved = await session.scalar(select(CredentialRow.access_token).where(CredentialRow.connection_id == ids[0]))
        await session.execute(
            update(CredentialRow).where(CredentialRow.connection_id == ids[1]).values(access_token=moved)
        )
    with pytest.raises(CryptoError):
        await store.connections.claim_due_with_credentials("w", LEASE, limit=10, **_window(clock))
    assert await _lease_owners(store, ids) == dict.fromkeys(ids)


def test_stored_credentials_are_dataclasses_replace() -> None:
    """``CredentialRecord.stored`` (a refresh's written record, made without ``replace``) keeps every other field.

    Each field gets a value of its own, so a field added to the record but not to ``stored`` fails here.
    """
    values: dict[str, object] = {}
    for n, field in enumerate(dataclasses.fields(CredentialRecord)):
        values[field.name] = {"raw": {"r": n}, "extra": {"e": n}, "inputs": {"i": str(n)}}.get(field.name, f"v{n}")
    record = CredentialRecord(**values)  # type: ignore[arg-type]
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored, replaced = record.stored(9, when), dataclasses.replace(record, version=9, obtained_at=when)
    for field in dataclasses.fields(CredentialRecord):  # each field, compared or not by ==
        assert getattr(stored, field.name) == getattr(replaced, field.name), field.name
