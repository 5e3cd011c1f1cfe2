"""The refresh rules end to end against the real OAuth server: window, rejections, failures, background, events.

The rules as pure functions are tested in tests/auth/test_lifecycle.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from authbridge.broker import Broker
from authbridge.broker.background import BackgroundRefresher
from authbridge.errors import ConnectionStateError
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, connect, env_for, open_broker, spec_text
from tests.servers.fixtures import OAuthServer


@pytest.fixture
def clock() -> OffsetClock:
    """The real clock, which the test moves forward."""
    return OffsetClock()


@pytest.fixture
async def broker(db_url: str, tmp_path: Path, clock: OffsetClock, oauth: OAuthServer) -> AsyncIterator[Broker]:
    """A broker on a fresh database with the test IdP integration applied."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    async with open_broker(env, clock) as opened:
        await apply(opened, spec_text(oauth))
        yield opened


def _calls(oauth: OAuthServer, grant: str = "refresh_token") -> int:
    return int(oauth.stats()["token_calls"][grant])


async def _events(broker: Broker, connection_id: str) -> list[str]:
    return [e.type for e in reversed(await broker.store.events.list(connection_id=connection_id))]


async def test_five_minute_token_is_refreshed_at_half_life(
    broker: Broker, oauth: OAuthServer, clock: OffsetClock
) -> None:
    """A 5-minute token is refreshed with 2.5 minutes left, not on every call, and carries a TTL warning."""
    oauth.configure(token_ttl=300)
    cid = await connect(broker, oauth)
    connection, _ = await broker.connections.view(cid)
    assert connection.warning is None  # 300 s is not under the 5-minute minimum
    for _ in range(5):
        await broker.connections.token(cid)
    clock.offset = timedelta(minutes=2, seconds=29)
    await broker.connections.token(cid)
    assert _calls(oauth) == 0
    clock.offset = timedelta(minutes=2, seconds=31)
    for _ in range(5):
        await broker.connections.token(cid)
    assert _calls(oauth) == 1


async def test_short_ttl_is_flagged(broker: Broker, oauth: OAuthServer) -> None:
    """A token living under refresh.min_ttl (5 minutes) is accepted and flagged on the connection."""
    oauth.configure(token_ttl=120)
    cid = await connect(broker, oauth)
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active"
    assert connection.warning is not None and "under the 300 s minimum" in connection.warning


async def test_rejection_refreshes_once_and_retries(broker: Broker, oauth: OAuthServer) -> None:
    """A 401 from the upstream triggers one refresh and one retry, which succeeds."""
    cid = await connect(broker, oauth)
    oauth.expire_tokens()  # the server now answers 401 to the stored token
    result = await broker.connections.test(cid)
    assert result.ok, result.detail
    assert _calls(oauth) == 1


async def test_second_rejection_is_returned_as_is(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """When the retry is rejected too, that answer is returned, after exactly one refresh."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    async with open_broker(env, OffsetClock()) as broker:
        # /api/nope answers 404 whatever the token: with 404 in on_status, it is a rejection every time.
        extra = "refresh: {on_status: [401, 404]}"
        await apply(broker, spec_text(oauth, extra=extra).replace("test: {path: /api/me}", "test: {path: /api/nope}"))
        cid = await connect(broker, oauth)
        result = await broker.connections.test(cid)
    assert not result.ok and result.status == 404
    assert _calls(oauth) == 1


async def test_rejections_are_rate_limited(broker: Broker, oauth: OAuthServer, clock: OffsetClock) -> None:
    """Rejection-triggered refreshes happen at most once per 30 s per connection."""
    cid = await connect(broker, oauth)
    _, creds = await broker.connections.keeper.fresh(cid)
    assert creds.access_token is not None
    first = await broker.connections.keeper.after_rejection(cid, creds.access_token, 401)
    assert first is not None and first.access_token != creds.access_token
    assert _calls(oauth) == 1
    assert first.access_token is not None
    assert await broker.connections.keeper.after_rejection(cid, first.access_token, 401) is None
    assert _calls(oauth) == 1
    clock.offset = timedelta(seconds=31)
    again = await broker.connections.keeper.after_rejection(cid, first.access_token, 401)
    assert again is not None and _calls(oauth) == 2


async def test_someone_else_refreshed_means_no_refresh(broker: Broker, oauth: OAuthServer) -> None:
    """If the stored token already differs from the rejected one, it is used without refreshing again."""
    cid = await connect(broker, oauth)
    _, old = await broker.connections.keeper.fresh(cid)
    newer = await broker.connections.refresh(cid)
    assert _calls(oauth) == 1 and old.access_token is not None
    retry = await broker.connections.keeper.after_rejection(cid, old.access_token, 401)
    assert retry is not None and retry.access_token == newer.access_token
    assert _calls(oauth) == 1


async def test_insufficient_scope_is_no_reason_to_refresh(broker: Broker, oauth: OAuthServer) -> None:
    """A 403 saying insufficient_scope is returned without a refresh."""
    cid = await connect(broker, oauth)
    _, creds = await broker.connections.keeper.fresh(cid)
    assert creds.access_token is not None
    header = 'Bearer error="insufficient_scope", scope="admin"'
    assert await broker.connections.keeper.after_rejection(cid, creds.access_token, 403, header) is None
    assert _calls(oauth) == 0


async def test_transient_failure_keeps_the_token_and_backs_off(
    broker: Broker, oauth: OAuthServer, clock: OffsetClock
) -> None:
    """A 503 from the token endpoint keeps the current token, backs off, and later recovers with an event."""
    cid = await connect(broker, oauth)
    _, before = await broker.connections.keeper.fresh(cid)
    clock.offset = timedelta(minutes=31)
    oauth.configure(fail_next={"status": 503, "body": "down", "content_type": "text/plain"})
    token = await broker.connections.token(cid)
    assert token.access_token == before.access_token  # still valid: used while the refresh failed
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "active" and connection.refresh_failures == 1
    assert connection.last_error is not None and "503" in connection.last_error
    assert connection.next_refresh_at is not None and connection.next_refresh_at > clock()
    await broker.connections.token(cid)
    assert _calls(oauth) == 1  # backing off: no second call yet
    clock.offset += timedelta(minutes=5)
    recovered = await broker.connections.token(cid)
    assert recovered.access_token != before.access_token and _calls(oauth) == 2
    connection, _ = await broker.connections.view(cid)
    assert (connection.refresh_failures, connection.last_error) == (0, None)
    events = await _events(broker, cid)
    assert events[-3:] == ["connection.refresh_failed", "connection.refreshed", "connection.recovered"]
    failed = await broker.store.events.list(connection_id=cid, type="connection.refresh_failed")
    assert failed[0].data["kind"] == "transient"


async def test_revoked_refresh_token_needs_reauth(broker: Broker, oauth: OAuthServer, clock: OffsetClock) -> None:
    """invalid_grant (refresh token revoked upstream) marks the connection needs_reauth with the reason."""
    cid = await connect(broker, oauth)
    creds = await broker.store.credentials.load(cid)
    assert creds is not None and creds.refresh_token is not None
    httpx.post(
        oauth.revoke_url,
        data={
            "token": creds.refresh_token,
            "token_type_hint": "refresh_token",
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
        },
    ).raise_for_status()
    clock.offset = timedelta(minutes=31)
    with pytest.raises(ConnectionStateError, match="needs re-authorization"):
        await broker.connections.token(cid)
    connection, _ = await broker.connections.view(cid)
    assert connection.status == "needs_reauth"
    assert connection.last_error is not None and "invalid_grant" in connection.last_error
    events = await _events(broker, cid)
    assert events[-2:] == ["connection.refresh_failed", "connection.reauthorization_needed"]
    with pytest.raises(ConnectionStateError, match="needs_reauth"):
        await broker.connections.token(cid)
    for event in await broker.store.events.list(connection_id=cid):
        assert creds.refresh_token not in str(event.data) and (creds.access_token or "") not in str(event.data)


async def test_background_refresher_refreshes_unused_tokens(
    broker: Broker, oauth: OAuthServer, clock: OffsetClock
) -> None:
    """Tokens entering their window are refreshed by the background scan, and idle refresh tokens daily."""
    cid = await connect(broker, oauth)
    other = await connect(broker, oauth, name="QA")
    refresher = BackgroundRefresher(broker.store, broker.connections.keeper, clock=clock)
    assert await refresher.run_once() == 0
    clock.offset = timedelta(minutes=31)
    assert await refresher.run_once() == 2
    assert _calls(oauth) == 2
    assert await refresher.run_once() == 0
    # An hour-long window would never fire for a token of unknown expiry: the 24 h idle rule does.
    await broker.store.connections.set_status(other, "active", expires_at=None)
    await broker.store.connections.set_status(cid, "active", expires_at=None)
    creds = await broker.store.credentials.load(cid)
    assert creds is not None
    clock.offset += timedelta(hours=25)
    count = await refresher.run_once()
    assert count == 2 and _calls(oauth) == 4
