"""Integration and API-key records off the main paths (both backends): lookups by id, saves that may only
update, revocations that name more than one key. Refusals change nothing."""

from __future__ import annotations

import pytest

from authbridge.errors import ConflictError, IntegrationNotFound
from authbridge.spec import load_spec
from authbridge.store import Store

SPEC = "key: api\nname: API\nauth: {type: api_token}\n"


async def test_integrations_by_id_and_update_only_saves(store: Store) -> None:
    """An integration is found by its id; an unknown id is not found; an update-only save of a new key is refused."""
    record, created = await store.integrations.save(load_spec(SPEC))
    assert created
    assert (await store.integrations.get_by_id(record.id)).key == "api"
    with pytest.raises(IntegrationNotFound, match="no integration with id 'nope'"):
        await store.integrations.get_by_id("nope")
    with pytest.raises(IntegrationNotFound, match="no integration with key 'other'"):
        await store.integrations.save(load_spec(SPEC.replace("key: api", "key: other")), create=False)
    assert [r.key for r in await store.integrations.list()] == ["api"]


async def test_revoking_by_a_shared_name_asks_for_the_id(store: Store) -> None:
    """Two live keys with one name: revoking by that name is refused (give the id); by id, it works."""
    _, first = await store.api_keys.create("ci")
    second_plain, second = await store.api_keys.create("ci")
    with pytest.raises(ConflictError, match="2 active keys match 'ci': give the id instead"):
        await store.api_keys.revoke("ci")
    assert all(k.revoked_at is None for k in await store.api_keys.list())
    await store.api_keys.revoke(first.id)
    assert (await store.api_keys.revoke("ci")).id == second.id  # now only one matches
    assert await store.api_keys.verify(second_plain) is None
