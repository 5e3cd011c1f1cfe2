"""The background refresher on a real store (both backends), its token endpoint an ``httpx.MockTransport``.

The happy path against the real OAuth server is tests/lifecycle/test_rules.py; here: what it skips, and that
neither a failing connection nor a failing scan stops it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authbridge.broker import Broker
from authbridge.broker.background import BackgroundRefresher
from authbridge.errors import StoreError
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


class TokenEndpoint:
    """The login endpoint: hands out one-hour tokens, or fails the way it is told to for chosen tokens."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if isinstance(self.failure, Exception):
            raise self.failure
        if isinstance(self.failure, int):
            return httpx.Response(self.failure, json={"error": "server_error"})
        return httpx.Response(200, json={"token": f"tok-{self.calls}", "expires_in": 3600})


@pytest.fixture
def endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
async def broker(store: Store, clock: FakeClock, endpoint: TokenEndpoint) -> AsyncIterator[Broker]:
    """A broker whose outbound calls all go to ``endpoint``."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as http:
        yield Broker(store, http=http, clock=clock)


async def _login_connection(broker: Broker, name: str = "DEV") -> str:
    await broker.save_integration(load_spec(LOGIN))
    created = await broker.connections.create(integration_key="login", name=name, parameters={}, credentials={})
    assert created.connection.status == "active"
    return created.connection.id


def _refresher(broker: Broker, clock: FakeClock) -> BackgroundRefresher:
    return BackgroundRefresher(broker.store, broker.connections.keeper, clock=clock)


async def test_only_token_integrations_with_credentials_are_refreshed(
    broker: Broker, clock: FakeClock, endpoint: TokenEndpoint
) -> None:
    """A static-token connection or one without stored credentials is never sent to a token endpoint."""
    await broker.save_integration(load_spec(STATIC))
    static = await broker.connections.create(
        integration_key="static", name="S", parameters={}, credentials={"token": "t"}
    )
    cid = await _login_connection(broker)
    assert endpoint.calls == 1
    soon = clock() + timedelta(minutes=5)
    # Both look due to the scan (they expire soon); only the login one has a token endpoint to call.
    await broker.store.connections.set_status(static.connection.id, "active", expires_at=soon)
    bare = await broker.store.connections.create(integration_key="login", name="no credentials", parameters={})
    await broker.store.connections.set_status(bare.id, "active", expires_at=soon)
    clock.advance(minutes=31)
    assert await _refresher(broker, clock).run_once() == 1
    assert endpoint.calls == 2
    assert (await broker.connections.token(cid)).access_token == "tok-2"
    assert await broker.store.credentials.load(bare.id) is None


@pytest.mark.parametrize(
    "failure",
    [503, RuntimeError("a bug in the provider's client")],
    ids=["endpoint-error", "unexpected-error"],
)
async def test_one_failing_connection_does_not_stop_the_others(
    broker: Broker,
    clock: FakeClock,
    endpoint: TokenEndpoint,
    failure: Exception | int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refresh that fails (an error answer, or an exception nobody expected) is logged; the scan goes on."""
    first = await _login_connection(broker, "A")
    second = await _login_connection(broker, "B")
    clock.advance(minutes=31)
    endpoint.failure = failure
    with caplog.at_level(logging.INFO, logger="authbridge.refresher"):
        assert await _refresher(broker, clock).run_once() == 0
    assert endpoint.calls == 4  # both were tried
    failed = [r for r in caplog.records if "background refresh of" in r.getMessage()]
    assert sorted(r.getMessage().split()[3] for r in failed) == sorted([first, second])
    endpoint.failure = None
    clock.advance(minutes=10)  # past any back-off
    assert await _refresher(broker, clock).run_once() == 2
    for cid in (first, second):
        assert (await broker.connections.token(cid)).access_token.startswith("tok-")


class _Flaky(BackgroundRefresher):
    """A refresher whose scans fail, then succeed; it stops the loop after ``scans`` scans."""

    def __init__(self, *args: object, outcomes: list[Exception | int], stop: anyio.Event, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.outcomes = outcomes
        self.stop = stop
        self.scans = 0

    async def run_once(self) -> int:
        self.scans += 1
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.stop.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def test_run_forever_survives_failed_scans(
    broker: Broker, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A scan that fails (the database away, or a bug) is logged and the loop scans again; ``stop`` ends it."""
    stop = anyio.Event()
    outcomes: list[Exception | int] = [StoreError("database unavailable"), RuntimeError("bug"), 2, 0]
    refresher = _Flaky(broker.store, broker.connections.keeper, clock=clock, outcomes=outcomes, stop=stop)
    with caplog.at_level(logging.INFO, logger="authbridge.refresher"), anyio.fail_after(30):
        await refresher.run_forever(stop, interval=0)
    assert refresher.scans == 4
    messages = [r.getMessage() for r in caplog.records]
    assert "background refresh scan failed: database unavailable" in messages
    assert "background refresh scan failed unexpectedly" in messages
    assert "background refresher refreshed 2 connection(s)" in messages


async def test_run_forever_with_a_first_delay_waits_for_stop(broker: Broker, clock: FakeClock) -> None:
    """With ``first_delay``, a stop during the first wait ends the loop before any scan."""
    stop = anyio.Event()
    refresher = _Flaky(broker.store, broker.connections.keeper, clock=clock, outcomes=[1], stop=anyio.Event())
    stop.set()
    with anyio.fail_after(30):
        await refresher.run_forever(stop, interval=3600, first_delay=True)
    assert refresher.scans == 0


async def test_a_self_signed_jwt_is_signed_again_by_the_background_refresher(
    broker: Broker, clock: FakeClock, endpoint: TokenEndpoint
) -> None:
    """A ``type: jwt`` connection nobody uses gets a new JWT once inside its window; nothing is sent anywhere."""
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spec = (
        "key: asc\nname: ASC\nparameters: [{name: private_key, secret: true}]\n"
        "auth: {type: jwt, alg: ES256, claims: {iss: team}, ttl: 20m}\n"
    )
    await broker.save_integration(load_spec(spec))
    created = await broker.connections.create(
        integration_key="asc", name="A", parameters={"private_key": key.decode()}, credentials={}
    )
    first = await broker.store.credentials.load(created.connection.id)
    assert first is not None and first.expires_at == clock() + timedelta(minutes=20)
    assert await _refresher(broker, clock).run_once() == 0  # 20 minutes left: outside the 10-minute window
    clock.advance(minutes=11)
    assert await _refresher(broker, clock).run_once() == 1
    again = await broker.store.credentials.load(created.connection.id)
    assert again is not None and again.access_token != first.access_token
    assert again.expires_at == clock() + timedelta(minutes=20)
    assert endpoint.calls == 0
