"""A refresh's error messages (both backends; the token endpoint is an ``httpx.MockTransport``).

The endpoint's text and the secrets to mask are worked out only when a message is raised (a success needs
neither): the messages still name the endpoint with secret values in its path masked, and quote nothing
secret the answer echoed. Unit tests of the reading itself: ``tests/auth/test_tokens.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from authbridge.broker import Broker
from authbridge.errors import TokenEndpointError, UpstreamError
from authbridge.spec import load_spec
from authbridge.store import Store
from authbridge.testing import FakeClock

PATH_SECRET = "tenant-PATH-secret-8812"
SPEC = """
key: login
name: Login API
parameters:
  - {name: tenant, secret: true, required: true}
auth:
  type: custom_token
  token_url: https://login.example/{tenant}/token
  token_params: {tenant: "{tenant}"}
  token_response: {access_token: token}
"""


class Endpoint:
    """One-hour tokens, until the test sets a failure: unreachable, or a refusal echoing what it was sent."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "ok"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "refuse":
            echoed = f"tenant {PATH_SECRET} with token tok-{self.calls - 1}-LONG-VALUE"
            return httpx.Response(400, json={"error": "invalid_request", "error_description": echoed})
        return httpx.Response(200, json={"token": f"tok-{self.calls}-LONG-VALUE", "expires_in": 3600})


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
async def broker(store: Store, clock: FakeClock, endpoint: Endpoint) -> AsyncIterator[Broker]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        broker = Broker(store, http=http, clock=clock)
        await broker.save_integration(load_spec(SPEC))
        yield broker


async def _connected(broker: Broker) -> str:
    created = await broker.connections.create(
        integration_key="login", name="DEV", parameters={"tenant": PATH_SECRET}, credentials={}
    )
    return created.connection.id


async def test_an_unreachable_endpoint_is_named_with_its_secret_path_masked(broker: Broker, endpoint: Endpoint) -> None:
    """The failure names the token endpoint as called, the secret in its path as ***; the connection records it."""
    cid = await _connected(broker)
    endpoint.mode = "down"
    with pytest.raises(UpstreamError) as caught:
        await broker.connections.refresh(cid)
    message = str(caught.value)
    assert message == "login: https://login.example/***/token cannot be reached (ConnectError)"
    assert caught.value.endpoint == "https://login.example/***/token"
    connection = await broker.store.connections.get(cid)
    assert connection.last_error == message
    assert PATH_SECRET not in repr(caught.value)


async def test_a_refusal_names_the_endpoint_and_quotes_nothing_secret(broker: Broker, endpoint: Endpoint) -> None:
    """A 400 whose description echoes the secret parameter and the current token: both masked, endpoint named."""
    cid = await _connected(broker)
    endpoint.mode = "refuse"
    with pytest.raises(TokenEndpointError) as caught:
        await broker.connections.refresh(cid)
    message = str(caught.value)
    assert message.startswith("login: token endpoint https://login.example/***/token answered 400 invalid_request: ")
    assert "tenant *** with token ***" in message
    assert PATH_SECRET not in message and "tok-1-LONG-VALUE" not in message
    assert caught.value.endpoint == "https://login.example/***/token"
