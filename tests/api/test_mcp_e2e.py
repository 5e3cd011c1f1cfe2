"""Connect a real MCP server by its URL alone, then use it through the proxy and the bridge.

Three real processes on 127.0.0.1: the test OAuth server (discovery, dynamic registration,
resource-bound tokens, introspection), an MCP server built with the official ``mcp`` SDK that
requires that server's tokens for itself (RFC 8707 audience), and ``authbridge run``. The MCP
client is the SDK's own streamable-HTTP client.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from authbridge.bridge import Bridge
from authbridge.config import Settings
from tests.servers.authbridge import Running, running_authbridge
from tests.servers.fixtures import OAuthServer, run_mcp_server


@pytest.fixture
def mcp_url(oauth: OAuthServer) -> Iterator[str]:
    with run_mcp_server(oauth.base_url) as url:
        yield url


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    with running_authbridge(tmp_path) as running:
        yield running


def connect(server: Running, oauth: OAuthServer, mcp_url: str) -> str:
    """POST /connections with the MCP server's URL, consent at the provider, come back: the connection id."""
    oauth.configure(auto_approve=True)
    created = httpx.post(
        f"{server.url}/connections",
        json={"integration": "mcp", "name": "tools", "parameters": {"server_url": mcp_url}},
        headers=server.headers,
    )
    assert created.status_code == 201, created.text
    consent = httpx.get(created.json()["authorize_url"])
    callback = httpx.get(consent.headers["location"])
    assert callback.status_code == 200, callback.text
    cid: str = created.json()["id"]
    connection = httpx.get(f"{server.url}/connections/{cid}", headers=server.headers).json()
    assert connection["status"] == "active", connection
    return cid


async def use(url: str, **client: typing.Any) -> tuple[list[str], str, str]:
    """Initialize, list the tools, call two of them: (tool names, 2 + 3, who the server saw)."""
    async with httpx.AsyncClient(**client) as http, streamable_http_client(url, http_client=http) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(tool.name for tool in (await session.list_tools()).tools)
            added = await session.call_tool("add", {"a": 2, "b": 3})
            whoami = await session.call_tool("whoami", {})
    first = added.content[0]
    caller = whoami.content[0]
    assert first.type == "text" and caller.type == "text"
    return tools, first.text, caller.text


async def test_mcp_server_through_the_proxy_and_the_bridge(
    server: Running, oauth: OAuthServer, mcp_url: str, tmp_path: Path
) -> None:
    cid = connect(server, oauth, mcp_url)

    # Through the proxy: AuthBridge's key on the request, the MCP server's token injected.
    proxied = f"{server.url}/proxy/{cid}/"
    tools, total, caller = await use(proxied, headers=server.headers)
    assert tools == ["add", "whoami"] and total == "5"
    assert caller != "nobody"

    # The token expires upstream: the next call is refused, refreshed (with `resource`) and retried once.
    refreshes = oauth.stats()["token_calls"]["refresh_token"]
    oauth.expire_tokens()
    tools, total, _ = await use(proxied, headers=server.headers)
    assert (tools, total) == (["add", "whoami"], "5")
    assert oauth.stats()["token_calls"]["refresh_token"] == refreshes + 1

    # In process: the bridge's httpx.Auth is the SDK client's auth.
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_PUBLIC_URL": server.url,
        }
    )
    async with Bridge.open(settings=settings) as bridge:
        tools, total, _ = await use(mcp_url, auth=bridge.auth(cid))
    assert (tools, total) == (["add", "whoami"], "5")


def test_a_token_for_another_server_is_refused(oauth: OAuthServer, mcp_url: str) -> None:
    """The MCP server accepts only tokens issued for itself: a token of the test server's own API is refused."""
    token = httpx.post(
        oauth.token_url,
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=(quote_plus(OAuthServer.CONFIDENTIAL_ID), quote_plus(OAuthServer.CONFIDENTIAL_SECRET)),
    ).json()["access_token"]
    answer = httpx.post(
        mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401
    assert "resource_metadata=" in answer.headers["www-authenticate"]
