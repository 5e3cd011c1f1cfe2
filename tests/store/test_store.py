"""The encrypted store, on SQLite and PostgreSQL: repositories, encryption at rest, key rotation."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import inspect, select, text, update

from authbridge.errors import ConflictError, CryptoError, IntegrationNotFound, KeyRingMismatchError, NotFoundError
from authbridge.spec import load_spec
from authbridge.store import CredentialRecord, KeyRing, Store, generate_key
from authbridge.store.db import _alembic_config, migrate
from authbridge.store.models import ConnectionRow, CredentialRow, IntegrationRow
from authbridge.testing import FakeClock, memory_key_ring

SECRET = "s3cr3t-client-VALUE-9f8e7d"


def _content(creds: CredentialRecord | None) -> CredentialRecord | None:
    """The credentials without their storage metadata (version, obtained_at)."""
    return dataclasses.replace(creds, version=0, obtained_at=None) if creds else None


SPEC = f"""
key: acme
name: Acme
parameters:
  - name: serverName
    required: true
  - name: apiSecret
    secret: true
auth:
  type: oauth2
  authorization_url: https://{{serverName}}.acme.example/authorize
  token_url: https://{{serverName}}.acme.example/token
  client_id: abc
  client_secret: {SECRET}
"""


async def test_integration_round_trip(store: Store) -> None:
    """A saved integration comes back equal, with its client secret."""
    spec = load_spec(SPEC)
    record, created = await store.integrations.save(spec)
    assert created and record.version == 1
    again = await store.integrations.get("acme")
    assert again.spec == spec
    assert again.spec.client_secret == SECRET
    assert [r.key for r in await store.integrations.list()] == ["acme"]


async def test_client_secret_is_encrypted_at_rest(store: Store) -> None:
    """The client secret is stored as ciphertext in its own column and nowhere in the spec JSON."""
    await store.integrations.save(load_spec(SPEC))
    async with store.engine.connect() as conn:
        row = (await conn.execute(text("SELECT spec, client_secret FROM integrations"))).one()
    assert SECRET not in str(row[0])
    assert row[1].startswith("v1.k1.")
    assert SECRET not in row[1]


async def test_masked_secret_keeps_the_stored_one(store: Store) -> None:
    """Saving a spec whose client secret is the mask keeps the stored secret and bumps the version."""
    await store.integrations.save(load_spec(SPEC))
    masked = load_spec(SPEC.replace(SECRET, "'********'").replace("name: Acme\n", "name: Acme 2\n"))
    record, created = await store.integrations.save(masked)
    assert not created and record.version == 2
    assert record.spec.name == "Acme 2"
    assert record.spec.client_secret == SECRET


async def test_masked_secret_cannot_create(store: Store) -> None:
    """A new integration cannot be created with the mask as its secret."""
    with pytest.raises(ConflictError, match="not \\*\\*\\*\\*\\*\\*\\*\\*"):
        await store.integrations.save(load_spec(SPEC.replace(SECRET, "'********'")))


async def test_create_only_refuses_existing_key(store: Store) -> None:
    """``update=False`` refuses a key that exists."""
    await store.integrations.save(load_spec(SPEC))
    with pytest.raises(ConflictError, match="exists already"):
        await store.integrations.save(load_spec(SPEC), update=False)


async def test_delete_integration(store: Store) -> None:
    """An integration without connections is deleted; one with connections is refused."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "dev"})
    with pytest.raises(ConflictError, match="1 connected account"):
        await store.integrations.delete("acme")
    await store.connections.delete(conn.id)
    await store.integrations.delete("acme")
    with pytest.raises(IntegrationNotFound, match="no integration with key 'acme'"):
        await store.integrations.get("acme")


async def test_connection_secret_parameters_encrypted(store: Store) -> None:
    """Secret parameter values are encrypted at rest, returned in clear, and masked by public_parameters."""
    await store.integrations.save(load_spec(SPEC))
    created = await store.connections.create(
        integration_key="acme",
        name="PROD",
        parameters={"serverName": "prod", "apiSecret": "param-secret-123"},
        secret_names={"apiSecret"},
    )
    got = await store.connections.get(created.id)
    assert got.parameters == {"serverName": "prod", "apiSecret": "param-secret-123"}
    assert got.public_parameters() == {"serverName": "prod", "apiSecret": "********"}
    assert "param-secret-123" not in repr(got)
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(ConnectionRow.parameters, ConnectionRow.secret_parameters))).one()
    assert row[0] == {"serverName": "prod"}
    assert "param-secret-123" not in row[1]


async def test_credentials_round_trip_and_repr(store: Store, clock: FakeClock) -> None:
    """Credentials are stored encrypted per column and their repr hides the tokens."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "dev"})
    creds = CredentialRecord(
        access_token="at-VALUE-1",
        refresh_token="rt-VALUE-2",
        token_type="Bearer",
        expires_at=clock() + timedelta(hours=1),
        scopes=["read"],
        raw={"access_token": "at-VALUE-1"},
        extra={"instance_url": "https://na1.example"},
    )
    saved = await store.credentials.save(conn.id, creds)
    assert saved is not None and saved.version == 1 and saved.obtained_at == clock()
    assert await store.credentials.load(conn.id) == saved
    assert _content(saved) == _content(creds)
    assert "VALUE" not in repr(creds)
    async with store.engine.connect() as conn_:
        raw = (await conn_.execute(text("SELECT access_token, refresh_token, raw, extra FROM credentials"))).one()
    assert all("VALUE" not in value and "instance_url" not in value for value in raw)
    await store.connections.delete(conn.id)
    assert await store.credentials.load(conn.id) is None


async def test_ciphertext_copied_to_another_row_fails(store: Store) -> None:
    """A ciphertext moved to another connection's row does not decrypt there (AAD binds the row)."""
    await store.integrations.save(load_spec(SPEC))
    a = await store.connections.create(integration_key="acme", name="A", parameters={"serverName": "a"})
    b = await store.connections.create(integration_key="acme", name="B", parameters={"serverName": "b"})
    await store.credentials.save(a.id, CredentialRecord(access_token="token-of-a"))
    await store.credentials.save(b.id, CredentialRecord(access_token="token-of-b"))
    async with store.ctx.session() as session:
        stolen = await session.scalar(select(CredentialRow.access_token).where(CredentialRow.connection_id == a.id))
        await session.execute(
            update(CredentialRow).where(CredentialRow.connection_id == b.id).values(access_token=stolen)
        )
    with pytest.raises(CryptoError, match="moved or altered") as info:
        await store.credentials.load(b.id)
    assert "token-of-a" not in str(info.value)
    loaded = await store.credentials.load(a.id)
    assert loaded is not None and loaded.access_token == "token-of-a"


async def test_ciphertext_copied_to_another_column_fails(store: Store) -> None:
    """A ciphertext moved to another column of the same row does not decrypt there."""
    await store.integrations.save(load_spec(SPEC))
    a = await store.connections.create(integration_key="acme", name="A", parameters={"serverName": "a"})
    await store.credentials.save(a.id, CredentialRecord(access_token="at", refresh_token="rt"))
    async with store.ctx.session() as session:
        swap = update(CredentialRow).values(access_token=CredentialRow.refresh_token)
        await session.execute(swap.where(CredentialRow.connection_id == a.id))
    with pytest.raises(CryptoError, match="wrong key or the ciphertext was moved or altered"):
        await store.credentials.load(a.id)


async def test_wrong_key_ring_refuses_to_start(db_url: str, clock: FakeClock) -> None:
    """Opening stored data with a key ring that cannot decrypt it is refused, naming the problem."""
    first = await Store.open(db_url, memory_key_ring("k1"), clock=clock)
    await first.integrations.save(load_spec(SPEC))
    await first.close()
    with pytest.raises(KeyRingMismatchError, match="'k1', which is not in the key ring"):
        await Store.open(db_url, memory_key_ring("k2"), clock=clock)
    with pytest.raises(KeyRingMismatchError, match="cannot decrypt"):
        await Store.open(db_url, memory_key_ring("k1"), clock=clock)  # same id, different key bytes


async def test_rotation_reencrypts_everything(db_url: str, clock: FakeClock) -> None:
    """After rotation every secret is under the new key, and the old key can be dropped."""
    old = memory_key_ring("old")
    store = await Store.open(db_url, old, clock=clock)
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(
        integration_key="acme", name="DEV", parameters={"serverName": "d", "apiSecret": "x"}, secret_names={"apiSecret"}
    )
    await store.credentials.save(
        conn.id, CredentialRecord(access_token="a", refresh_token="r", raw={"k": "v"}, inputs={"password": "p"})
    )
    await store.flows.create(state="st", connection_id=conn.id, code_verifier="v", redirect_uri="https://cb")
    await store.close()

    new_key = generate_key("new")
    store = await Store.open(db_url, old.with_new_active(new_key), clock=clock)
    assert await store.keys.reencrypt_all() == 7
    assert await store.keys.reencrypt_all() == 0
    await store.close()

    store = await Store.open(db_url, KeyRing([new_key]), clock=clock)  # the old key is gone: everything still decrypts
    try:
        assert (await store.integrations.get("acme")).spec.client_secret == SECRET
        assert (await store.connections.get(conn.id)).parameters["apiSecret"] == "x"
        assert _content(await store.credentials.load(conn.id)) == _content(
            CredentialRecord(access_token="a", refresh_token="r", raw={"k": "v"}, inputs={"password": "p"})
        )
        flow = await store.flows.consume("st")
        assert flow is not None and flow.code_verifier == "v"
    finally:
        await store.close()


async def test_flow_state_is_single_use_and_expires(store: Store, clock: FakeClock) -> None:
    """A flow is consumed once; a replay, an unknown state and an expired state all give None."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "d"})
    await store.flows.create(state="s1", connection_id=conn.id, code_verifier="verifier", redirect_uri="https://cb")
    flow = await store.flows.consume("s1")
    assert flow is not None and flow.code_verifier == "verifier" and "verifier" not in repr(flow)
    assert await store.flows.consume("s1") is None
    assert await store.flows.consume("unknown") is None
    await store.flows.create(state="s2", connection_id=conn.id, code_verifier=None, redirect_uri="https://cb")
    clock.advance(minutes=10, seconds=1)
    assert await store.flows.consume("s2") is None


async def test_flow_state_is_stored_hashed(store: Store) -> None:
    """The state value itself is not in the database, only its hash."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "d"})
    await store.flows.create(state="the-state-value", connection_id=conn.id, code_verifier="v", redirect_uri="x")
    async with store.engine.connect() as c:
        dump = str((await c.execute(text("SELECT * FROM oauth_flows"))).all())
    assert "the-state-value" not in dump


async def test_api_keys(store: Store, clock: FakeClock) -> None:
    """A key verifies until revoked; it is stored only as a hash; wrong keys do not verify."""
    plaintext, record = await store.api_keys.create("ci")
    assert plaintext.startswith("ab_") and len(plaintext) > 40
    assert (await store.api_keys.verify(plaintext)) is not None
    assert await store.api_keys.verify(plaintext + "x") is None
    assert await store.api_keys.verify("") is None
    async with store.engine.connect() as c:
        dump = str((await c.execute(text("SELECT * FROM api_keys"))).all())
    assert plaintext not in dump
    await store.api_keys.revoke(record.id)
    assert await store.api_keys.verify(plaintext) is None
    with pytest.raises(NotFoundError, match="no active API key with id, prefix or name"):
        await store.api_keys.revoke(record.id)


async def test_events(store: Store, clock: FakeClock) -> None:
    """Events are listed newest first and filtered by type and connection."""
    await store.events.add("integration.created", integration_key="acme")
    clock.advance(seconds=1)
    await store.events.add("connection.created", connection_id="c1", data={"name": "DEV"})
    events = await store.events.list()
    assert [e.type for e in events] == ["connection.created", "integration.created"]
    assert [e.type for e in await store.events.list(connection_id="c1")] == ["connection.created"]
    assert [e.type for e in await store.events.list(type="integration.created")] == ["integration.created"]
    assert await store.events.prune(older_than=clock()) == 1


async def test_connection_status(store: Store, clock: FakeClock) -> None:
    """Status changes are stored with the error text and bump the version."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "d"})
    await store.connections.set_status(conn.id, "needs_reauth", last_error="invalid_grant")
    got = await store.connections.get(conn.id)
    assert (got.status, got.last_error, got.version) == ("needs_reauth", "invalid_grant", 2)
    assert [c.id for c in await store.connections.list(integration_key="acme")] == [conn.id]
    with pytest.raises(NotFoundError, match="no connection with id 'nope'"):
        await store.connections.set_status("nope", "active")


async def test_timestamps_are_aware_utc(store: Store, clock: FakeClock) -> None:
    """Datetimes come back timezone-aware on both backends."""
    record, _ = await store.integrations.save(load_spec(SPEC))
    assert record.created_at == clock()
    again = await store.integrations.get("acme")
    assert again.created_at.tzinfo is not None and again.created_at == clock()


async def test_integration_rows_survive_reopen(db_url: str, clock: FakeClock) -> None:
    """Migrations are idempotent: reopening a migrated database keeps its data."""
    ring = memory_key_ring("k1")
    store = await Store.open(db_url, ring, clock=clock)
    await store.integrations.save(load_spec(SPEC))
    await store.close()
    store = await Store.open(db_url, ring, clock=clock)
    try:
        async with store.engine.connect() as c:
            assert (await c.execute(select(IntegrationRow.key))).scalars().all() == ["acme"]
    finally:
        await store.close()


async def test_migrations_match_the_models(db_url: str, clock: FakeClock) -> None:
    """After migrating, the database schema is exactly what the models declare (no missing migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from authbridge.store.models import Base

    store = await Store.open(db_url, memory_key_ring("k1"), clock=clock)
    try:
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await store.close()
    assert diff == []


async def test_versioned_save_refuses_a_stale_write(store: Store) -> None:
    """A write that expects an older version is refused and changes nothing (a refresh never overwrites a newer one)."""
    await store.integrations.save(load_spec(SPEC))
    conn = await store.connections.create(integration_key="acme", name="DEV", parameters={"serverName": "d"})
    first = await store.credentials.save(conn.id, CredentialRecord(access_token="one"))
    assert first is not None and first.version == 1
    second = await store.credentials.save(conn.id, CredentialRecord(access_token="two"), expected_version=1)
    assert second is not None and second.version == 2
    assert await store.credentials.save(conn.id, CredentialRecord(access_token="stale"), expected_version=1) is None
    loaded = await store.credentials.load(conn.id)
    assert loaded is not None and (loaded.access_token, loaded.version) == ("two", 2)


async def test_the_refreshed_tables_leave_room_for_updates_in_place(store: Store) -> None:
    """On PostgreSQL, connections and credentials keep 30 % of each page free (migration 0011); SQLite has none."""
    async with store.engine.connect() as c:
        revision = (await c.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        assert int(revision) >= 11  # migrated past 0011 (on SQLite it has nothing to do)
        if store.engine.dialect.name != "postgresql":
            return
        options: dict[str, list[str]] = dict(
            (
                await c.execute(
                    text("SELECT relname, reloptions FROM pg_class WHERE relname IN ('connections', 'credentials')")
                )
            ).all()
        )
    assert options == {"connections": ["fillfactor=70"], "credentials": ["fillfactor=70"]}


#: Indexes of connections that others cover (migration 0012), and the ones covering them.
_COVERED = {"ix_connections_integration_id", "ix_connections_end_user_id", "ix_connections_expires_at"}
_COVERING = {"ix_connections_integration_created", "ix_connections_end_user_created", "ix_connections_active_expires"}


async def _connection_indexes(store: Store) -> set[str]:
    async with store.engine.connect() as c:
        return await c.run_sync(lambda sync: {str(ix["name"]) for ix in inspect(sync).get_indexes("connections")})


async def test_connections_keep_no_index_another_covers(store: Store) -> None:
    """Each refresh writes an entry in every index of connections: migration 0012 drops the three that others cover.

    Its downgrade puts them back, and upgrading again drops them again.
    """
    indexes = await _connection_indexes(store)
    assert not indexes & _COVERED and _COVERING <= indexes
    async with store.engine.begin() as c:  # Alembic's downgrade, on the store's migration scripts
        await c.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0011"))
    assert _COVERED <= await _connection_indexes(store)
    await migrate(store.engine)
    assert not await _connection_indexes(store) & _COVERED


async def test_filters_on_the_dropped_indexes_columns_still_use_an_index(store: Store) -> None:
    """On PostgreSQL the integration and end-user filters use the covering indexes.

    (The integration filter is the lookup the foreign key's ``ON DELETE RESTRICT`` check makes too.)
    """
    if store.engine.dialect.name != "postgresql":
        return
    async with store.engine.connect() as c:
        await c.execute(text("SET enable_seqscan = off"))  # a near-empty table: make the planner say what it can use
        plans = {
            column: "\n".join((await c.execute(text(query))).scalars().all())
            for column, query in (
                ("integration_id", "EXPLAIN SELECT id FROM connections WHERE integration_id = 'x'"),
                ("end_user_id", "EXPLAIN SELECT id FROM connections WHERE end_user_id = 'x'"),
            )
        }
    # (either composite that starts with integration_id serves it)
    assert re.search(r"Index (Only )?Scan using ix_connections_integration_\w*created ", plans["integration_id"])
    assert re.search(r"Index (Only )?Scan using ix_connections_end_user_created ", plans["end_user_id"])
