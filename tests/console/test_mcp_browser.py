"""Connect an MCP server by its URL in the console (Chromium), then use it through the SDK and the proxy.

Real processes on loopback: ``authbridge run`` (the console), the test OAuth server, and an MCP
server built with the official ``mcp`` SDK that accepts only that server's tokens issued for itself.
The token-expiry → refresh-with-``resource`` path is ``tests/api/test_mcp_e2e.py``'s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import typing
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from authbridge.bridge import Bridge
from authbridge.config import Settings
from tests.api.test_mcp_e2e import use
from tests.console.conftest import ConsoleServer, shot
from tests.servers.fixtures import OAuthServer, run_mcp_server


@pytest.fixture
def mcp_url(oauth: OAuthServer) -> Iterator[str]:
    with run_mcp_server(oauth.base_url) as url:
        yield url


def run(coroutine: typing.Coroutine[typing.Any, typing.Any, tuple[list[str], str, str]]) -> tuple[list[str], str, str]:
    """Run async code on a thread of its own (Playwright's sync API holds this thread's event loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def through_the_bridge(server: ConsoleServer, mcp_url: str, connection_id: str) -> tuple[list[str], str, str]:
    async with Bridge.open(settings=Settings.from_env(server.env)) as bridge:
        return await use(mcp_url, auth=bridge.auth(connection_id))


def test_connect_an_mcp_server_by_url(
    console: Page, console_server: ConsoleServer, oauth: OAuthServer, mcp_url: str
) -> None:
    """Integrations → Connect an MCP server → its URL → the provider's consent → active; tools listed two ways."""
    page = console
    expect(page.get_by_role("row", name=re.compile("MCP server"))).to_contain_text("built-in")
    page.get_by_role("link", name="Connect an MCP server").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("MCP server")
    page.get_by_label("Account name").fill("tools")
    page.get_by_label("MCP server URL").fill(mcp_url)
    shot(page, "mcp-connect")
    page.get_by_role("button", name=re.compile("Continue to")).click()

    # The authorization server the MCP server named, discovered from its URL alone.
    expect(page).to_have_url(re.compile(re.escape(f"{oauth.base_url}/oauth/authorize")))
    page.get_by_label("Username").fill(oauth.USERNAME)
    page.get_by_label("Password").fill(oauth.PASSWORD)
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", name="tools")).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("active")
    shot(page, "mcp-account")
    found = re.search(r"/console/accounts/([A-Za-z0-9]+)", page.url)
    assert found, page.url
    connection_id = found.group(1)
    assert oauth.stats()["registrations"] == 1  # http public URL: a registered client, not a metadata document

    tools, total, caller = run(through_the_bridge(console_server, mcp_url, connection_id))
    assert (tools, total) == (["add", "whoami"], "5") and caller != "nobody"
    proxied = f"{console_server.base_url}/proxy/{connection_id}/"
    headers = {"Authorization": f"Bearer {console_server.api_key}"}
    tools, total, _ = run(use(proxied, headers=headers))
    assert (tools, total) == (["add", "whoami"], "5")

    page.goto("/console/integrations")
    row = page.get_by_role("row", name=re.compile("MCP server"))
    expect(row.get_by_role("link", name="Connect by URL")).to_be_visible()
    expect(row).to_contain_text("1")  # its account
