"""The Bridge's ``httpx.Auth`` signs each OAuth 1.0a request; the real provider (Authlib's) verifies it.

The proxy's signing is tested end to end in ``tests/api/test_oauth1_e2e.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authbridge import Bridge
from authbridge.spec import validate_spec
from tests.api.test_oauth1_e2e import token_based
from tests.sdk.helpers import open_bridge
from tests.servers.oauth1_server import TBA_SECRET, TBA_TOKEN, OAuth1Server, run_oauth1_server


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuth1Server]:
    with run_oauth1_server() as server:
        yield server


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with open_bridge(tmp_path) as opened:
        yield opened


async def test_each_bridged_request_is_signed_afresh(bridge: Bridge, provider: OAuth1Server) -> None:
    """A GET, a form POST and the same GET again (a new nonce) all verify; the token secret is never sent."""
    await bridge.broker.save_integration(validate_spec(token_based(provider)))
    connected = await bridge.broker.connections.create(
        integration_key="netsuite",
        name="PROD",
        parameters={"accountId": "ACME"},
        credentials={"token_id": TBA_TOKEN, "token_secret": TBA_SECRET},
    )
    connection_id = connected.connection.id
    async with httpx.AsyncClient(auth=bridge.auth(connection_id), base_url=provider.base_url) as api:
        first = await api.get("/api/echo", params={"q": "1"})
        posted = await api.post("/api/echo", data={"name": "a b", "n": "2"})
        again = await api.get("/api/echo", params={"q": "1"})
    assert [r.status_code for r in (first, posted, again)] == [200, 200, 200], posted.text
    assert posted.json()["form"] == {"name": "a b", "n": "2"}
    assert first.json()["authorization"] != again.json()["authorization"]
    assert TBA_SECRET not in first.json()["authorization"]
