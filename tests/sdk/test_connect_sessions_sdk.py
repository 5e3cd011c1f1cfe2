"""The SDK's connect sessions, owner fields and paged lists (a served AuthBridge; paging by MockTransport)."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authbridge import AsyncAuthBridgeClient, AuthBridgeClient
from authbridge.client import AuthBridgeAPIError
from authbridge.config import Settings
from tests.sdk.test_client import Served, serve


@pytest.fixture(name="served")
def served_fixture(tmp_path: Path) -> Iterator[Served]:
    """AuthBridge under uvicorn on a SQLite data dir (no background tasks), with an admin key."""
    env = {"AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"), "AUTHBRIDGE_BACKGROUND_TASKS": "false"}
    with serve(Settings.from_env(env)) as running:
        yield running


def test_a_backend_creates_and_ends_a_session(served: Served) -> None:
    """With the admin key the SDK makes a connect-scoped session; the token is hidden from repr; end stops it."""
    with AuthBridgeClient(served.base_url, served.api_key) as client:
        client.integrations.create({"key": "giphy", "name": "Giphy", "auth": {"type": "api_token"}})
        session = client.connect_sessions.create(
            {"id": "u-1", "email": "a@b.example"}, allowed_integrations=["giphy"], tags={"plan": "pro"}, ttl="5m"
        )
        assert session.connect_url.endswith(f"/connect/{session.token}")
        assert session.token not in repr(session)
        assert session.expires_at is not None
        client.connect_sessions.end(session.token)
        with pytest.raises(AuthBridgeAPIError, match="no connect session") as caught:
            client.connect_sessions.end("abcs_unknown")
        assert caught.value.status == 404
        with pytest.raises(AuthBridgeAPIError, match="give either allowed_integrations or reconnect"):
            client.connect_sessions.create({"id": "u-1"})


def test_owner_fields_and_filters(served: Served) -> None:
    with AuthBridgeClient(served.base_url, served.api_key) as client:
        client.integrations.create({"key": "giphy", "name": "Giphy", "auth": {"type": "api_token"}})
        made = client.connections.create(
            "giphy",
            "Ann",
            credentials={"token": "t"},
            end_user={"id": "u-1"},
            organization={"id": "org-1"},
            tags={"env": "dev"},
        )
        client.connections.create("giphy", "Bob", credentials={"token": "t"}, end_user={"id": "u-2"})
        assert made.end_user == {"id": "u-1"} and made.organization == {"id": "org-1"} and made.tags == {"env": "dev"}
        assert [c.name for c in client.connections.list(end_user_id="u-1")] == ["Ann"]
        assert [c.name for c in client.connections.list(tags={"env": "dev"})] == ["Ann"]
        assert [c.name for c in client.connections.list("giphy", status="active")] == ["Ann", "Bob"]


def _pages(request: httpx.Request) -> httpx.Response:
    """Three pages of connections, the cursor naming the next one."""
    cursor = request.url.params.get("cursor") or "0"
    page = int(cursor)
    items = [
        {"id": f"c{page}{i}", "integration": "x", "name": f"n{page}{i}", "status": "active", "parameters": {}}
        for i in range(2)
    ]
    assert request.url.params.get_list("tag") == ["a:b"]
    return httpx.Response(200, json={"items": items, "next_cursor": str(page + 1) if page < 2 else None})


def test_list_follows_every_page() -> None:
    with AuthBridgeClient("http://ab.test", "ab_key", transport=httpx.MockTransport(_pages)) as client:
        assert [c.id for c in client.connections.list(tags={"a": "b"})] == ["c00", "c01", "c10", "c11", "c20", "c21"]


async def test_async_list_follows_every_page() -> None:
    async with AsyncAuthBridgeClient("http://ab.test", "ab_key", transport=httpx.MockTransport(_pages)) as client:
        found = await client.connections.list(tags={"a": "b"})
        assert len(found) == 6


async def test_async_sessions(served: Served) -> None:
    async with AsyncAuthBridgeClient(served.base_url, served.api_key) as client:
        await client.integrations.create({"key": "giphy", "name": "Giphy", "auth": {"type": "api_token"}})
        session = await client.connect_sessions.create({"id": "u-1"}, allowed_integrations=["giphy"])
        await client.connect_sessions.end(session.token)
        typing.assert_type(session.id, str)


def test_the_sdk_updates_a_connection_in_place(served: Served) -> None:
    """``connections.update`` renames and rotates an API token; the id stays."""
    spec = {"key": "tokapi", "name": "T", "auth": {"type": "api_token"}, "request": {"base_url": "https://t.example"}}
    with AuthBridgeClient(served.base_url, served.api_key) as client:
        client.integrations.create(spec)
        made = client.connections.create("tokapi", "DEV", credentials={"token": "t-old"})
        updated = client.connections.update(made.id, name="PROD", credentials={"token": "t-new"})
        assert updated.id == made.id and updated.name == "PROD"
        assert client.connections.token(made.id).access_token == "t-new"
        with pytest.raises(AuthBridgeAPIError) as raised:
            client.connections.update(made.id, name=" ")
        assert raised.value.status == 422
