"""The token keeper when refreshing fails or makes no sense (both backends; the token endpoint is an
``httpx.MockTransport``, the clock a FakeClock): a valid token outlives a transient failure, a permanent one
asks for re-authorization, and rejections of tokens that cannot be refreshed stand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from authbridge.broker import Broker
from authbridge.broker.refresh import TokenKeeper
from authbridge.errors import ConnectionStateError, UpstreamError
from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

LOGIN = """
key: login
name: Login API
auth:
  type: custom_token
  token_url: https://login.example/token
  token_response: {access_token: token}
"""
STATIC = "key: static\nname: Static\nauth: {type: api_token}\n"


class Endpoint:
    """The login endpoint: one-hour tokens, or the failure the test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.refuse = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.refuse:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "account closed"})
        return httpx.Response(200, json={"token": f"tok-{self.calls}", "expires_in": 3600})


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
async def broker(store: Store, clock: FakeClock, endpoint: Endpoint) -> AsyncIterator[Broker]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        broker = Broker(store, http=http, clock=clock)
        await broker.save_integration(load_spec(LOGIN))
        await broker.save_integration(load_spec(STATIC))
        yield broker


async def _login(broker: Broker) -> str:
    created = await broker.connections.create(integration_key="login", name="DEV", parameters={}, credentials={})
    return created.connection.id


async def test_a_valid_token_outlives_an_unreachable_endpoint(
    broker: Broker, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Inside the window with the endpoint down, the current token is still served; once it has expired, the
    failure is the caller's."""
    cid = await _login(broker)
    endpoint.down = True
    clock.advance(minutes=45)  # inside the 30-minute window, 15 minutes left
    _, creds = await broker.connections.keeper.fresh(cid)
    assert creds.access_token == "tok-1"
    clock.advance(minutes=20)  # expired
    with pytest.raises(UpstreamError, match=r"^login: https://login\.example/token cannot be reached"):
        await broker.connections.keeper.fresh(cid)
    assert endpoint.calls >= 3


async def test_a_permanent_refusal_asks_for_re_authorization(
    broker: Broker, clock: FakeClock, endpoint: Endpoint
) -> None:
    """The endpoint refuses for good (invalid_grant): the caller is told the connection needs re-authorization."""
    cid = await _login(broker)
    endpoint.refuse = True
    clock.advance(minutes=45)
    with pytest.raises(ConnectionStateError, match=f"connection {cid} needs re-authorization: "):
        await broker.connections.keeper.fresh(cid)


async def test_rejections_that_no_refresh_can_fix_stand(broker: Broker, endpoint: Endpoint) -> None:
    """A rejected static token, or a rejected token of an account with no stored credentials: no refresh, None."""
    static = await broker.connections.create(
        integration_key="static", name="S", parameters={}, credentials={"token": "static-tok"}
    )
    assert await broker.connections.keeper.after_rejection(static.connection.id, "static-tok", 401) is None
    bare = await broker.store.connections.create(integration_key="login", name="bare", parameters={}, status="active")
    assert await broker.connections.keeper.after_rejection(bare.id, "whatever", 401) is None
    with pytest.raises(ConnectionStateError, match=f"connection {bare.id} has no credentials"):
        await broker.connections.keeper.fresh(bare.id)
    assert endpoint.calls == 0


def test_the_lease_must_outlive_the_deadline(store: Store, clock: FakeClock) -> None:
    """A lease no longer than the refresh deadline could expire mid-call: refused when the keeper is built."""

    async def fetch(*_: object) -> object:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="the refresh lease must outlive the refresh deadline"):
        TokenKeeper(store, fetch=fetch, clock=clock, deadline=10.0, lease=timedelta(seconds=10))  # type: ignore[arg-type]
