"""The HTTP SDK against AuthBridge served for real (uvicorn on a loopback port) and the real test OAuth server.

The in-process twin is ``tests/sdk/test_bridge.py``; the routes themselves are tested in ``tests/api/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pickle
import socket
import threading
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn

from authbridge import AsyncAuthBridgeClient, AuthBridgeClient
from authbridge.app import create_app, open_store
from authbridge.client import AuthBridgeAPIError
from authbridge.config import Settings
from tests.servers.fixtures import OAuthServer

Json = dict[str, typing.Any]


@dataclasses.dataclass(frozen=True)
class Served:
    """A running AuthBridge and an API key of it."""

    base_url: str
    api_key: str


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Served]:
    """Run ``create_app(settings)`` under uvicorn in a thread on a free loopback port, with a fresh API key."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_config=None, log_level="warning"))
    keys: list[str] = []

    async def main() -> None:
        store = await open_store(settings)
        try:
            keys.append((await store.api_keys.create("sdk"))[0])
        finally:
            await store.close()
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.025)
        assert server.started, "AuthBridge did not start"
        yield Served(f"http://127.0.0.1:{port}", keys[0])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """AuthBridge on a SQLite data dir, allowed to call the loopback OAuth server, no background tasks."""
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        }
    )
    with serve(settings) as running:
        yield running


@pytest.fixture
def client(served: Served) -> Iterator[AuthBridgeClient]:
    """The synchronous client with a valid key."""
    with AuthBridgeClient(served.base_url, served.api_key) as opened:
        yield opened


def spec(oauth: OAuthServer, key: str = "idp", grant_type: str = "client_credentials", **extra: typing.Any) -> Json:
    """An integration on the test server: client credentials unless told otherwise."""
    auth: Json = {
        "type": "oauth2",
        "grant_type": grant_type,
        "token_url": oauth.token_url,
        "revoke_url": oauth.revoke_url,
        "client_id": oauth.CONFIDENTIAL_ID,
        "client_secret": oauth.CONFIDENTIAL_SECRET,
        "scopes": ["read"],
    }
    if grant_type == "authorization_code":
        auth["authorization_url"] = oauth.authorize_url
    return {
        "key": key,
        "name": "Test IdP",
        "auth": auth,
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/me"},
        **extra,
    }


def test_integrations(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """Integrations are created, read, listed, replaced and deleted; the secret never comes back."""
    created = client.integrations.create(spec(oauth))
    assert created["key"] == "idp" and created["auth"]["client_secret"] == "********"
    assert client.integrations.get("idp")["name"] == "Test IdP"
    assert [i["key"] for i in client.integrations.list()] == ["idp"]
    replaced = client.integrations.put("idp", {**spec(oauth), "name": "Renamed"})
    assert replaced["name"] == "Renamed"
    client.integrations.delete("idp")
    assert client.integrations.list() == []
    with pytest.raises(AuthBridgeAPIError, match="no integration with key 'idp'") as caught:
        client.integrations.get("idp")
    assert (caught.value.status, caught.value.code, caught.value.side) == (404, "integration_not_found", "authbridge")


def test_import_yaml(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """A YAML text of several documents creates them all, and importing it again updates them."""
    text = "\n---\n".join(
        f"key: {key}\nname: {key}\nauth: {{type: api_token}}\nrequest: {{base_url: '{oauth.base_url}'}}\n"
        for key in ("one", "two")
    )
    first = client.integrations.import_yaml(text)
    assert (first.created, first.updated) == (["one", "two"], [])
    second = client.integrations.import_yaml(text.encode())
    assert (second.created, second.updated) == ([], ["one", "two"])


def test_connections(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """A client-credentials connection is active at once; get, list, token, test, refresh and delete work on it."""
    client.integrations.create(spec(oauth))
    created = client.connections.create("idp", "DEV")
    assert created.status == "active" and created.authorize_url is None
    assert isinstance(created.expires_at, datetime)
    assert client.connections.get(created.id).name == "DEV"
    assert [c.id for c in client.connections.list()] == [created.id]
    assert [c.id for c in client.connections.list(integration="idp")] == [created.id]
    assert client.connections.list(integration="other") == []

    token = client.connections.token(created.id)
    assert token.token_type.lower() == "bearer" and token.access_token not in repr(token)
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token.access_token}"}).status_code == 200

    tested = client.connections.test(created.id)
    assert (tested.ok, tested.status) == (True, 200)

    refreshed = client.connections.refresh(created.id)
    assert refreshed.id == created.id and refreshed.last_refreshed_at is not None
    assert oauth.stats()["token_calls"]["client_credentials"] == 2
    assert client.connections.token(created.id).access_token != token.access_token

    deleted = client.connections.delete(created.id)
    assert (deleted.revoked, deleted.revoke_error, deleted.revocations) == (True, None, {"access_token": None})
    with pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection with id") as caught:
        client.connections.get(created.id)
    assert caught.value.status == 404


def test_authorization_code(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """An authorization-code connection comes back pending with its authorize URL; reconnect gives a new one."""
    client.integrations.create(spec(oauth, grant_type="authorization_code"))
    created = client.connections.create("idp", "alice")
    assert created.status == "pending"
    assert created.authorize_url is not None and created.authorize_url.startswith(oauth.authorize_url)
    again = client.connections.reconnect(created.id)
    assert again.authorize_url is not None and again.authorize_url != created.authorize_url


def test_wrong_key(served: Served) -> None:
    """A wrong API key raises a 401 error that says nothing of the key."""
    with (
        AuthBridgeClient(served.base_url, "abk_wrong") as wrong,
        pytest.raises(AuthBridgeAPIError, match="401 unauthorized: missing or invalid API key") as caught,
    ):
        wrong.integrations.list()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert "abk_wrong" not in str(caught.value)
    assert repr(caught.value) == "AuthBridgeAPIError(status=401, code='unauthorized')"


def test_invalid_spec(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """A 422 carries every problem with its field path."""
    bad = spec(oauth)
    bad["auth"] = {**bad["auth"], "token_url": "not a url"}
    bad["refresh"] = {"window": "soon"}
    with pytest.raises(AuthBridgeAPIError, match="422 invalid_spec: 2 problems in the integration spec") as caught:
        client.integrations.create(bad)
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_spec")
    paths = {item.path for item in error.errors}
    assert {"auth.token_url", "refresh.window"} <= paths, paths
    assert "auth.token_url" in str(error)
    assert pickle.loads(pickle.dumps(error)).errors == error.errors  # noqa: S301 - our own bytes, another process


def test_invalid_request(client: AuthBridgeClient) -> None:
    """A request the API cannot read (an empty connection name) is a 422 with the field named."""
    with pytest.raises(AuthBridgeAPIError, match="name: String should have at least 1 character") as caught:
        client.connections.create("idp", "")
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    assert [item.path for item in caught.value.errors] == ["name"]


async def test_async_client(served: Served, oauth: OAuthServer) -> None:
    """The async client does the same, with ``await`` and ``async with``."""
    async with AsyncAuthBridgeClient(served.base_url, served.api_key) as client:
        await client.integrations.create(spec(oauth))
        assert [i["key"] for i in await client.integrations.list()] == ["idp"]
        assert (await client.integrations.put("idp", spec(oauth)))["key"] == "idp"
        assert (await client.integrations.get("idp"))["key"] == "idp"
        imported = await client.integrations.import_yaml("key: other\nname: Other\nauth: {type: api_token}\n")
        assert imported.created == ["other"]
        created = await client.connections.create("idp", "DEV")
        assert (await client.connections.get(created.id)).status == "active"
        assert [c.id for c in await client.connections.list("idp")] == [created.id]
        token = await client.connections.token(created.id)
        assert (await client.connections.test(created.id)).ok
        assert (await client.connections.refresh(created.id)).id == created.id
        assert (await client.connections.token(created.id)).access_token != token.access_token
        assert (await client.connections.reconnect(created.id)).status == "active"
        assert (await client.connections.delete(created.id)).revoked
        await client.integrations.delete("other")
        with pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection with id") as caught:
            await client.connections.token(created.id)
    assert caught.value.status == 404


# -- the client's side of the proxy, on a transport that answers as the proxy would ------------------


def proxy_answers(request: httpx.Request) -> httpx.Response:
    """Answers like AuthBridge's proxy: its own refusals carry ``side``; upstream answers pass as they came."""
    assert request.headers["x-authbridge-key"] == "abk_test"
    path = request.url.path
    if path == "/proxy/gone/user":
        body = {"error": {"code": "not_found", "message": "no connection gone", "side": "authbridge"}}
        return httpx.Response(404, json=body)
    if path == "/proxy/c1/unreachable":
        body = {"error": {"code": "upstream_unreachable", "message": "cannot reach", "side": "upstream"}}
        return httpx.Response(502, json=body)
    if path == "/proxy/c1/user":
        return httpx.Response(200, json={"authorization": request.headers.get("authorization")})
    return httpx.Response(401, json={"error": "invalid_token"}, headers={"WWW-Authenticate": "Bearer"})


def test_request_errors_and_answers() -> None:
    """AuthBridge's refusals raise; the upstream's answers (errors included) come back as they are."""
    transport = httpx.MockTransport(proxy_answers)
    with AuthBridgeClient("http://authbridge.test", "abk_test", transport=transport) as client:
        own = client.request("c1", "GET", "/user", headers={"Authorization": "Bearer the-callers-own"})
        assert own.json() == {"authorization": "Bearer the-callers-own"}
        assert client.request("c1", "GET", "/other").status_code == 401
        assert client.request("c1", "GET", "unreachable").status_code == 502
        with pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection gone") as caught:
            client.request("gone", "GET", "user")
        assert (caught.value.status, caught.value.code) == (404, "not_found")
        with client.stream("c1", "GET", "/user") as streamed:
            assert streamed.status_code == 200
        with (
            pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection gone"),
            client.stream("gone", "GET", "/user"),
        ):
            pass
        with pytest.raises(ValueError, match=r"'\.\.' segments"):
            client.request("c1", "GET", "/a/../../connections")


async def test_async_request_errors_and_answers() -> None:
    """The async client's ``request`` and ``stream`` treat refusals and upstream answers the same way."""
    transport = httpx.MockTransport(proxy_answers)
    async with AsyncAuthBridgeClient("http://authbridge.test", "abk_test", transport=transport) as client:
        assert (await client.request("c1", "GET", "/other")).status_code == 401
        with pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection gone"):
            await client.request("gone", "GET", "/user")
        async with client.stream("c1", "GET", "/other") as streamed:
            assert streamed.status_code == 401 and (await streamed.aread())
        with pytest.raises(AuthBridgeAPIError, match="404 not_found: no connection gone"):
            async with client.stream("gone", "GET", "/user"):
                pass


def test_answer_not_from_authbridge() -> None:
    """An error answer not in AuthBridge's shape (a gateway's HTML page) raises with its status alone."""
    transport = httpx.MockTransport(lambda _request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with AuthBridgeClient("http://authbridge.test", "abk_test", transport=transport) as client:
        with pytest.raises(AuthBridgeAPIError, match="502 http_502: AuthBridge answered Bad Gateway") as caught:
            client.connections.list()
    assert (caught.value.status, caught.value.code) == (502, "http_502")
    assert "html" not in str(caught.value)


# -- through the proxy, end to end ----------------------------------------------------------------


def test_request_through_the_proxy(client: AuthBridgeClient, oauth: OAuthServer) -> None:
    """``request`` reaches the API with the token injected and the API key left behind; a 401 is refreshed."""
    client.integrations.create(spec(oauth))
    created = client.connections.create("idp", "DEV")
    me = client.request(created.id, "GET", "/api/me")
    assert me.status_code == 200 and me.json()["client_id"] == oauth.CONFIDENTIAL_ID
    echoed = client.request(created.id, "POST", "api/echo/x", params={"q": "1"}, json={"a": 1}).json()
    assert (echoed["path"], echoed["query"], echoed["body"]) == ("/api/echo/x", {"q": ["1"]}, '{"a":1}')
    assert echoed["headers"]["authorization"] == f"Bearer {client.connections.token(created.id).access_token}"
    assert "x-authbridge-key" not in echoed["headers"]

    oauth.expire_tokens()
    assert client.request(created.id, "GET", "/api/me").status_code == 200
    assert oauth.stats()["token_calls"]["client_credentials"] == 2

    assert client.request(created.id, "GET", "/api/nowhere").status_code == 404  # the upstream's own 404
    with pytest.raises(AuthBridgeAPIError, match="no connection with id 'no-such-connection'") as caught:
        client.request("no-such-connection", "GET", "/api/me")
    assert (caught.value.status, caught.value.side) == (404, "authbridge")


async def test_async_request_through_the_proxy(served: Served, oauth: OAuthServer) -> None:
    """The async client's ``request`` and ``stream`` go through the proxy too."""
    async with AsyncAuthBridgeClient(served.base_url, served.api_key) as client:
        await client.integrations.create(spec(oauth))
        created = await client.connections.create("idp", "DEV")
        assert (await client.request(created.id, "GET", "/api/me")).status_code == 200
        async with client.stream(created.id, "GET", "/api/me") as streamed:
            assert streamed.status_code == 200
            assert b"client_id" in b"".join([chunk async for chunk in streamed.aiter_bytes()])
        with pytest.raises(AuthBridgeAPIError, match="no connection with id 'no-such-connection'"):
            await client.request("no-such-connection", "GET", "/api/me")
