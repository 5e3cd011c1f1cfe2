"""A provider that returns no refresh token: warned at connect time; the token stays in use until it expires.

The plugin's side (the warning's words) is tested in tests/auth/test_plugin_hints.py; the console's
"Refresh now" of such an account in tests/console/test_new_user_browser.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from authbridge.broker import Broker
from authbridge.errors import AuthBridgeError, ConnectionStateError, RefreshUnavailableError
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, connect, env_for, open_broker, spec_text
from tests.servers.fixtures import OAuthServer


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
async def broker(db_url: str, tmp_path: Path, clock: OffsetClock, oauth: OAuthServer) -> AsyncIterator[Broker]:
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    async with open_broker(env, clock) as opened:
        await apply(opened, spec_text(oauth))
        yield opened


async def test_no_refresh_token_is_warned_and_the_valid_token_keeps_working(
    broker: Broker, oauth: OAuthServer, clock: OffsetClock
) -> None:
    """Refresh now fails clearly but leaves the account active; calls go on until expiry, then needs_reauth."""
    oauth.configure(refresh_tokens=False, token_ttl=600)
    cid = await connect(broker, oauth)
    connection, _ = await broker.connections.view(cid)
    assert connection.warning is not None and "no refresh token" in connection.warning
    assert "prompt=consent" in connection.warning
    first = await broker.connections.token(cid)

    # Five "Refresh now" at once: one attempt (single flight), nothing sent upstream, the account stays active.
    results = await asyncio.gather(
        *(broker.connections.refresh(cid, force=True) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, AuthBridgeError) for r in results)
    assert any(isinstance(r, RefreshUnavailableError) for r in results)
    assert "stays valid until" in str(next(r for r in results if isinstance(r, RefreshUnavailableError)))
    assert oauth.stats()["token_calls"]["refresh_token"] == 0
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active"
    events = [e for e in await broker.store.events.list(connection_id=cid) if e.type == "connection.refresh_failed"]
    assert len(events) == 1 and events[0].data["kind"] == "unavailable"

    # Inside the refresh window (10-minute token: half-life), the token is still handed out and works.
    clock.offset = timedelta(minutes=6)
    assert (await broker.connections.token(cid)).access_token == first.access_token
    result = await broker.connections.test(cid)
    assert result.ok, result.detail
    # Nobody asks the plugin again before the expiry (no event storm on every call).
    events = [e for e in await broker.store.events.list(connection_id=cid) if e.type == "connection.refresh_failed"]
    assert len(events) == 1

    # Past the expiry the account needs the user.
    clock.offset = timedelta(minutes=11)
    with pytest.raises(ConnectionStateError, match="re-authorization"):
        await broker.connections.token(cid)
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "needs_reauth"


async def test_a_provider_that_sends_refresh_tokens_gets_no_warning(broker: Broker, oauth: OAuthServer) -> None:
    """The usual answer (with a refresh token) leaves the warning empty."""
    cid = await connect(broker, oauth)
    connection, _ = await broker.connections.view(cid)
    assert connection.warning is None
