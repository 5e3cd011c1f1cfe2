"""The connection store's refusals (both backends): unknown statuses, integrations and ids change nothing."""

from __future__ import annotations

import pytest

from authbridge.errors import NotFoundError
from authbridge.spec import load_spec
from authbridge.store import Store

SPEC = "key: api\nname: API\nauth: {type: api_token}\n"


async def _connection(store: Store) -> str:
    await store.integrations.save(load_spec(SPEC))
    return (await store.connections.create(integration_key="api", name="DEV", parameters={})).id


async def test_unknown_statuses_are_refused(store: Store) -> None:
    """Creating or moving a connection to a status that does not exist is refused; the stored one stays."""
    cid = await _connection(store)
    with pytest.raises(ValueError, match="unknown connection status 'activ'"):
        await store.connections.create(integration_key="api", name="X", parameters={}, status="activ")
    with pytest.raises(ValueError, match="unknown connection status 'gone'"):
        await store.connections.set_status(cid, "gone")
    [only] = await store.connections.list()
    assert (only.id, only.status) == (cid, "pending")


async def test_unknown_integrations_and_ids_are_not_found(store: Store) -> None:
    """An unknown integration key or connection id is a NotFoundError naming it."""
    await _connection(store)
    with pytest.raises(NotFoundError, match="no integration with key 'nope'"):
        await store.connections.create(integration_key="nope", name="X", parameters={})
    for call in (
        store.connections.set_status("missing", "active"),
        store.connections.record_refresh("missing", ok=True),
        store.connections.delete("missing"),
    ):
        with pytest.raises(NotFoundError, match="no connection with id 'missing'"):
            await call
    assert len(await store.connections.list()) == 1


async def test_forgetting_credentials_says_whether_there_were_any(store: Store) -> None:
    """Deleting the credentials of a connection that has none reports False and changes nothing."""
    cid = await _connection(store)
    assert await store.credentials.delete(cid) is False
    assert await store.credentials.load(cid) is None
