"""Connected accounts off the main paths (both backends; outbound calls go to an ``httpx.MockTransport``):
bad inputs, refreshes and reconnects that make no sense, a callback without a code, a test that cannot connect.
Each is a clear error, and nothing is stored or changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from authbridge.broker import Broker
from authbridge.errors import ConnectionStateError, ParameterError, TokenEndpointError
from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

STATIC = """
key: static
name: Static
auth: {type: api_token}
request: {base_url: https://api.example}
test: {path: /me}
"""
CODE = """
key: code
name: Code
auth:
  type: oauth2
  authorization_url: https://id.example/authorize
  token_url: https://id.example/token
  client_id: cid
  client_secret: cs-EDGE-secret-77
  refresh_token: false
request: {base_url: https://api.example}
"""
TOKEN = "static-TOKEN-edge-4411"


class Upstream:
    """Every outbound call: counted; the token endpoint answers a token, anything else cannot be reached."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "at-code-1", "expires_in": 3600})
        raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def broker(store: Store, clock: FakeClock, upstream: Upstream) -> AsyncIterator[Broker]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as http:
        broker = Broker(store, http=http, clock=clock)
        for text in (STATIC, CODE):
            await broker.save_integration(load_spec(text))
        yield broker


async def test_bad_inputs_are_all_reported_and_nothing_is_created(broker: Broker) -> None:
    """A blank name and a credential that is not text are reported together; no account is stored."""
    with pytest.raises(ParameterError, match="invalid connection parameters") as caught:
        await broker.connections.create(
            integration_key="static",
            name="  ",
            parameters={},
            credentials={"token": 12345},
        )
    assert {(item.path, item.message) for item in caught.value.errors} == {
        ("name", "is required"),
        ("credentials.token", "must be a string"),
    }
    assert await broker.store.connections.list() == []


async def test_a_static_token_has_nothing_to_refresh_or_reconnect(broker: Broker, upstream: Upstream) -> None:
    """Refreshing or reconnecting an API-token account is refused with what to do instead; nothing is called."""
    created = await broker.connections.create(
        integration_key="static", name="DEV", parameters={}, credentials={"token": TOKEN}
    )
    cid = created.connection.id
    with pytest.raises(ConnectionStateError, match="a api_token connection has no token to refresh"):
        await broker.connections.refresh(cid)
    with pytest.raises(ConnectionStateError, match="has nothing to reconnect: update its credentials instead"):
        await broker.connections.reconnect(cid)
    assert upstream.calls == []
    assert (await broker.connections.token(cid)).access_token == TOKEN


async def test_a_test_request_that_cannot_connect_is_a_failed_test(broker: Broker, upstream: Upstream) -> None:
    """The test request's host cannot be reached: the test fails with the reason, and no token shows."""
    created = await broker.connections.create(
        integration_key="static", name="DEV", parameters={}, credentials={"token": TOKEN}
    )
    result = await broker.connections.test(created.connection.id)
    assert not result.ok and result.status is None
    assert "api.example" in result.detail and TOKEN not in result.detail
    assert upstream.calls == ["https://api.example/me"]


async def test_a_callback_without_a_code_fails_the_flow(broker: Broker, upstream: Upstream) -> None:
    """The provider's redirect comes back with the state but no code: the flow fails saying so; no token call."""
    created = await broker.connections.create(integration_key="code", name="DEV", parameters={}, credentials={})
    assert created.authorize_url is not None
    state = httpx.URL(created.authorize_url).params["state"]
    result = await broker.connections.callback({"state": state})
    assert result.error is not None and "carried no authorization code" in result.error
    assert upstream.calls == []
    connection, _ = await broker.connections.view(created.connection.id)
    assert connection.status != "active"


async def test_without_a_refresh_token_only_the_user_can_renew(broker: Broker, upstream: Upstream) -> None:
    """An authorization-code account without a refresh token cannot be refreshed: a permanent error, reconnect."""
    created = await broker.connections.create(integration_key="code", name="DEV", parameters={}, credentials={})
    assert created.authorize_url is not None
    state = httpx.URL(created.authorize_url).params["state"]
    result = await broker.connections.callback({"state": state, "code": "c-1"})
    assert result.error is None and result.connection.status == "active"
    with pytest.raises(TokenEndpointError, match="cannot be refreshed without the user") as caught:
        await broker.connections.refresh(result.connection.id)
    assert caught.value.permanent
    assert upstream.calls == ["https://id.example/token"]  # the code exchange only
