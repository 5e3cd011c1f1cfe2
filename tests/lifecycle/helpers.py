"""Shared set-up for the token-lifecycle tests: a broker on a real database, connected through the real OAuth server."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx

from authbridge.app import http_client, policy_for
from authbridge.broker import Broker
from authbridge.config import Settings
from authbridge.spec import load_spec
from authbridge.store import KeyRing, Store, format_key_ring
from tests.servers.fixtures import OAuthServer


@dataclasses.dataclass
class OffsetClock:
    """The real clock moved by ``offset``: several processes agree on it, and tests can jump ahead."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def spec_text(oauth: OAuthServer, *, key: str = "idp", extra: str = "") -> str:
    """An authorization-code integration on the test server, with a test request to /api/me."""
    return f"""
key: {key}
name: Test IdP
auth:
  type: oauth2
  authorization_url: {oauth.authorize_url}
  token_url: {oauth.token_url}
  revoke_url: {oauth.revoke_url}
  client_id: {oauth.CONFIDENTIAL_ID}
  client_secret: "{oauth.CONFIDENTIAL_SECRET}"
  scopes: [read]
request:
  base_url: {oauth.base_url}
test: {{path: /api/me}}
{extra}
"""


def env_for(db_url: str, keyring: KeyRing, tmp_data: str) -> dict[str, str]:
    """The environment a worker process needs to share the database and key ring."""
    return {
        "AUTHBRIDGE_DATA_DIR": tmp_data,
        "AUTHBRIDGE_DATABASE_URL": db_url,
        "AUTHBRIDGE_ENCRYPTION_KEYS": format_key_ring(keyring).strip().replace("\n", ","),
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_PUBLIC_URL": "http://127.0.0.1:8000",
    }


@contextlib.asynccontextmanager
async def open_broker(
    env: dict[str, str], clock: OffsetClock, *, refresh_deadline: float | None = None
) -> AsyncIterator[Broker]:
    """A broker like the server builds, on the given environment and clock."""
    settings = Settings.from_env(env)
    store = await Store.open(settings.database_url, _ring(settings), clock=clock)
    http = http_client(settings)
    try:
        policy = policy_for(settings)
        if refresh_deadline is not None:
            policy = policy._replace(refresh_deadline=refresh_deadline)
        yield Broker(store, http=http, policy=policy, clock=clock)
    finally:
        await http.aclose()
        await store.close()


def _ring(settings: Settings) -> KeyRing:
    from authbridge.app import open_key_ring

    return open_key_ring(settings)


async def connect(broker: Broker, oauth: OAuthServer, *, key: str = "idp", name: str = "DEV") -> str:
    """Create an authorization-code connection and finish it through the real server (auto-approve)."""
    oauth.configure(auto_approve=True)
    created = await broker.connections.create(integration_key=key, name=name, parameters={}, credentials={})
    assert created.authorize_url is not None
    async with httpx.AsyncClient() as client:
        redirect = await client.get(created.authorize_url)
    location = httpx.URL(redirect.headers["location"])
    result = await broker.connections.callback(dict(location.params))
    assert result.error is None, result.error
    assert result.connection.status == "active"
    return result.connection.id


async def apply(broker: Broker, text: str) -> None:
    """Save an integration from YAML."""
    await broker.save_integration(load_spec(text))
