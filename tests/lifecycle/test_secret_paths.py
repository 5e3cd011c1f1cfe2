"""Secret parameter values in URL paths, and secrets an upstream echoes back, never reach what is shown."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from authbridge.errors import ConnectError
from authbridge.testing import memory_key_ring
from tests.lifecycle.helpers import OffsetClock, apply, env_for, open_broker
from tests.servers.fixtures import OAuthServer

SECRET_PATH = "hook-SECRET-path-77"


async def test_secret_path_values_are_masked(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """A secret parameter in the test request's path is masked in the test result and events."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    spec = f"""
key: hooks
name: Hooks
parameters:
  - {{name: secretPath, secret: true, required: true}}
auth: {{type: api_token}}
token: {{in: header, name: X-Api-Key, template: "{{token}}"}}
request: {{base_url: "{oauth.base_url}/api/echo/{{secretPath}}"}}
test: {{path: /me, expect_status: 201}}
"""
    async with open_broker(env, OffsetClock()) as broker:
        await apply(broker, spec)
        created = await broker.connections.create(
            integration_key="hooks", name="DEV", parameters={"secretPath": SECRET_PATH}, credentials={"token": "tok-x"}
        )
        result = await broker.connections.test(created.connection.id)
        events = await broker.store.events.list(connection_id=created.connection.id)
    assert not result.ok and result.status == 200
    assert "/api/echo/***/me" in result.detail
    assert SECRET_PATH not in result.detail and SECRET_PATH not in str([e.data for e in events])


async def test_echoed_password_is_scrubbed(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """A token endpoint that repeats the password in its error text does not get it into the error."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    async with open_broker(env, OffsetClock()) as broker:
        await apply(
            broker,
            f"""
key: pw
name: PW
auth:
  type: custom_token
  token_url: {oauth.custom_login_url}
  token_body: json
  token_params: {{user: "{{username}}", password: "{{password}}"}}
""",
        )
        oauth.configure(
            fail_next={
                "status": 400,
                "body": '{"error": "bad_credentials", "error_description": "password hunter2-SECRET rejected"}',
                "content_type": "application/json",
            }
        )
        with pytest.raises(ConnectError, match="answered 400 bad_credentials") as info:
            await broker.connections.create(
                integration_key="pw",
                name="DEV",
                parameters={},
                credentials={"username": "alice", "password": "hunter2-SECRET"},
            )
    message = str(info.value)
    assert "bad_credentials" in message and "hunter2-SECRET" not in message
    assert httpx.get(oauth.base_url + "/_admin/stats").status_code == 200
