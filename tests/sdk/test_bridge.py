"""The in-process Bridge and its ``httpx.Auth``, on both databases, against the real test OAuth server.

The HTTP client's tests (``tests/sdk/test_client.py``) cover the same operations through the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authbridge import Bridge
from authbridge.config import Settings
from authbridge.errors import ConnectionStateError, UnsafeValueError
from tests.lifecycle.helpers import apply, connect, spec_text
from tests.sdk.helpers import open_bridge
from tests.servers.fixtures import OAuthServer

Seen = list[tuple[str, bytes]]


@pytest.fixture
async def bridge(db_url: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    """A started Bridge on a fresh database that may call the loopback server over http."""
    async with open_bridge(tmp_path, db_url) as opened:
        yield opened


@pytest.fixture
async def connection_id(bridge: Bridge, oauth: OAuthServer) -> str:
    """An active authorization-code connection made through the real server."""
    await apply(bridge.broker, spec_text(oauth))
    return await connect(bridge.broker, oauth)


def resource_server(oauth: OAuthServer, seen: Seen) -> Starlette:
    """An API that checks each bearer token with the OAuth server's /api/me and records what it received."""

    async def items(request: Request) -> JSONResponse:
        body = await request.body()
        authorization = request.headers.get("authorization", "")
        seen.append((authorization, body))
        async with httpx.AsyncClient() as client:
            me = await client.get(oauth.me_url, headers={"Authorization": authorization})
        if me.status_code != 200 or request.url.path == "/api/always-401":
            return JSONResponse({"error": "invalid_token"}, 401, headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse({"received": body.decode()})

    return Starlette(routes=[Route("/api/items", items, methods=["POST"]), Route("/api/always-401", items)])


async def test_injects_the_token(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """A request through ``bridge.auth`` carries the connection's token and needs no refresh."""
    base = await bridge.base_url(connection_id)
    assert base == oauth.base_url
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=base) as api:
        response = await api.get("/api/me")
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == oauth.USERNAME
    assert response.history == []
    assert oauth.stats()["token_calls"]["refresh_token"] == 0


async def test_refreshes_once_on_401(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """After the server expires the token, the first 401 triggers one refresh and the retried request succeeds."""
    before = (await bridge.token(connection_id)).access_token
    oauth.expire_tokens()
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=oauth.base_url) as api:
        response = await api.get("/api/me")
        again = await api.get("/api/me")
    assert response.status_code == 200, response.text
    assert [r.status_code for r in response.history] == [401]
    assert again.status_code == 200 and again.history == []
    assert oauth.stats()["token_calls"]["refresh_token"] == 1
    assert (await bridge.token(connection_id)).access_token != before


@pytest.mark.parametrize("streamed", [False, True], ids=["bytes", "async-iterator"])
async def test_replays_the_body(bridge: Bridge, connection_id: str, oauth: OAuthServer, streamed: bool) -> None:
    """A POST rejected for an expired token is sent again after the refresh with the same body."""
    seen: Seen = []
    payload = b'{"name": "first item"}'

    async def chunks() -> AsyncIterator[bytes]:
        yield payload[:5]
        yield payload[5:]

    oauth.expire_tokens()
    transport = httpx.ASGITransport(resource_server(oauth, seen))
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=oauth.base_url, transport=transport) as api:
        response = await api.post("/api/items", content=chunks() if streamed else payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": payload.decode()}
    assert [body for _auth, body in seen] == [payload, payload]
    assert seen[0][0] != seen[1][0]
    assert oauth.stats()["token_calls"]["refresh_token"] == 1


async def test_second_rejection_is_returned(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """A rejection of the retried request is returned as is, and a rejection soon after refreshes no more."""
    seen: Seen = []
    transport = httpx.ASGITransport(resource_server(oauth, seen))
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=oauth.base_url, transport=transport) as api:
        response = await api.get("/api/always-401")
        later = await api.get("/api/always-401")
    assert response.status_code == 401 and len(response.history) == 1
    assert later.status_code == 401 and later.history == []
    assert len(seen) == 3
    assert oauth.stats()["token_calls"]["refresh_token"] == 1


async def test_refused_refresh(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """When the refresh is refused the rejection is returned, and the next request says re-authorization is needed."""
    oauth.reset()  # the server forgets every token, the refresh token included
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=oauth.base_url) as api:
        response = await api.get("/api/me")
        assert response.status_code == 401 and len(response.history) == 0
        with pytest.raises(ConnectionStateError, match="needs_reauth"):
            await api.get("/api/me")
    assert oauth.stats()["token_calls"]["refresh_token"] == 1


async def test_placement(bridge: Bridge, oauth: OAuthServer) -> None:
    """The integration's request headers and query and a query-parameter token are added; injected values win."""
    await apply(
        bridge.broker,
        spec_text(oauth, extra="token: {in: query, name: key, template: 'T-{token}'}").replace(
            f"  base_url: {oauth.base_url}\n",
            f"  base_url: {oauth.base_url}/api\n  headers: {{X-Client: sdk}}\n  query: {{v: '2'}}\n",
        ),
    )
    connection_id = await connect(bridge.broker, oauth)
    token = (await bridge.token(connection_id)).access_token
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=f"{oauth.base_url}/api") as api:
        response = await api.get("/echo", params={"x": "1", "key": "mine"}, headers={"X-Client": "caller"})
    echoed = response.json()
    assert echoed["query"] == {"x": ["1"], "key": [f"T-{token}"], "v": ["2"]}
    assert echoed["headers"]["x-client"] == "sdk"
    assert "authorization" not in echoed["headers"]


async def test_refuses_other_hosts(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """Credentials are never put on a request outside the integration's base URL."""
    seen: Seen = []
    transport = httpx.ASGITransport(resource_server(oauth, seen))
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), transport=transport) as api:
        with pytest.raises(UnsafeValueError, match="outside the integration's base URL"):
            await api.post("http://127.0.0.1:9/api/items", content=b"x")
    assert seen == []


async def test_sync_client_is_refused(bridge: Bridge, connection_id: str) -> None:
    """A synchronous httpx.Client gets an error that says to use httpx.AsyncClient."""
    with (
        httpx.Client(auth=bridge.auth(connection_id)) as client,
        pytest.raises(RuntimeError, match=r"httpx\.AsyncClient"),
    ):
        client.get("http://127.0.0.1:9/")


async def test_passthrough(bridge: Bridge, connection_id: str, oauth: OAuthServer) -> None:
    """``bridge.connections`` and ``bridge.token`` are the broker's; the token works on the API."""
    record, scopes = await bridge.connections.view(connection_id)
    assert record.status == "active" and scopes == ["read"]
    token = await bridge.token(connection_id)
    assert token.access_token not in repr(token)
    me = httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token.access_token}"})
    assert me.status_code == 200
    assert (await bridge.connections.test(connection_id)).ok


async def test_not_started(tmp_path: Path) -> None:
    """A Bridge not started (or closed) says how to start it; a started one cannot start twice."""
    settings = Settings.from_env({"AUTHBRIDGE_DATA_DIR": str(tmp_path)})
    idle = Bridge(settings=settings)
    with pytest.raises(RuntimeError, match="start the Bridge first"):
        _ = idle.connections
    async with idle as started:
        with pytest.raises(RuntimeError, match="already started"):
            await started.start()
    with pytest.raises(RuntimeError, match="start the Bridge first"):
        _ = idle.broker


@pytest.mark.parametrize("path", ["/api/%2e%2e/admin", "/api/.%2E/admin", "/api/%2E/items", "/apix/items", "/ap%69x"])
async def test_refuses_encoded_dot_segments_and_sibling_paths(bridge: Bridge, oauth: OAuthServer, path: str) -> None:
    """``/api/%2e%2e/admin`` is ``/admin`` to the server: paths are compared decoded, segment by segment."""
    base = f"  base_url: {oauth.base_url}\n"
    await apply(bridge.broker, spec_text(oauth).replace(base, f"  base_url: {oauth.base_url}/api\n"))
    connection_id = await connect(bridge.broker, oauth)
    seen: Seen = []
    transport = httpx.ASGITransport(resource_server(oauth, seen))
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), transport=transport) as api:
        with pytest.raises(UnsafeValueError, match="outside the integration's base URL"):
            await api.post(f"{oauth.base_url}{path}", content=b"x")
        assert seen == []
        response = await api.post(f"{oauth.base_url}/%61pi/items", content=b"y")  # decoded, it is /api/items
    assert response.status_code == 200 and seen[0][1] == b"y"
