"""Hooks (``module:function``) against the real test server: token data, credentials, refresh, test.

Loading rules (allow-list) are unit-tested below too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authbridge.auth.hooks import load_hook, token_set_from_credentials
from authbridge.errors import ConnectError, SpecError, UpstreamError
from authbridge.testing import FakeClock, memory_key_ring
from tests import hooks_example
from tests.lifecycle.helpers import OffsetClock, apply, env_for, open_broker
from tests.servers.fixtures import OAuthServer


def _spec(oauth: OAuthServer, *, get_token_data: str = "tests.hooks_example:get_token_data") -> str:
    return f"""
key: hooked
name: Hooked
parameters:
  - {{name: loginUrl, default: "{oauth.custom_login_url}"}}
  - {{name: meUrl, default: "{oauth.me_url}"}}
auth:
  type: custom_token
  token_url: {oauth.custom_login_url}
  token_params: {{user: "{{username}}", password: "{{password}}"}}
  hooks:
    get_token_data: {get_token_data}
    credentials_from_token_response: tests.hooks_example:credentials_from_token_response
    refresh_credentials: tests.hooks_example:refresh_credentials
    test: tests.hooks_example:test
token: {{in: header, name: X-Session-Token, template: "{{token}}"}}
request: {{base_url: "{oauth.base_url}"}}
"""


async def test_hooks_run_end_to_end(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """get_token_data fetches, credentials_from_token_response shapes, refresh_credentials refreshes, test tests."""
    env = {**env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data")), "AUTHBRIDGE_HOOK_MODULES": "tests"}
    hooks_example.CALLS.clear()
    async with open_broker(env, OffsetClock()) as broker:
        await apply(broker, _spec(oauth))
        created = await broker.connections.create(
            integration_key="hooked",
            name="DEV",
            parameters={},
            credentials={"username": "alice", "password": "wonderland"},
        )
        cid = created.connection.id
        assert created.connection.status == "active" and created.connection.expires_at is not None
        creds = await broker.store.credentials.load(cid)
        assert creds is not None and creds.extra["userName"] == "alice (from hook)" and creds.extra["tenant"] == "t-42"
        result = await broker.connections.test(cid)
        assert result.ok and result.detail == "hello alice"
        refreshed = await broker.connections.refresh(cid)
        assert refreshed.access_token != creds.access_token
        assert refreshed.extra["userName"] == "alice (from hook)"  # merged over the current credentials
    assert hooks_example.CALLS == [
        "get_token_data",
        "credentials_from_token_response",
        "test",
        "refresh_credentials",
        "get_token_data",
    ]
    assert oauth.stats()["token_calls"]["custom"] == 2


async def test_failing_hook_is_a_clear_error_without_its_message(
    db_url: str, tmp_path: Path, oauth: OAuthServer
) -> None:
    """A hook that raises gives an error naming the hook, not its message (which may hold a secret)."""
    env = {**env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data")), "AUTHBRIDGE_HOOK_MODULES": "tests"}
    async with open_broker(env, OffsetClock()) as broker:
        await apply(broker, _spec(oauth, get_token_data="tests.hooks_example:broken"))
        with pytest.raises(ConnectError, match=r"the get_token_data hook failed \(ValueError\)") as info:
            await broker.connections.create(
                integration_key="hooked",
                name="DEV",
                parameters={},
                credentials={"username": "alice", "password": "pw-SECRET-9"},
            )
        assert "get_token_data hook failed (ValueError)" in str(info.value)
        assert "pw-SECRET-9" not in str(info.value)
        assert await broker.store.connections.list() == []


async def test_hooks_need_the_allow_list(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """A spec naming hooks outside AUTHBRIDGE_HOOK_MODULES is refused when saved."""
    env = env_for(db_url, memory_key_ring("k1"), str(tmp_path / "data"))
    async with open_broker(env, OffsetClock()) as broker:
        with pytest.raises(SpecError, match="not allowed on this server"):
            await apply(broker, _spec(oauth))


def test_load_hook_rules() -> None:
    """Only allowed, importable callables load; each refusal names the field."""
    allowed = lambda ref: ref.startswith("tests.")  # noqa: E731
    assert load_hook("tests.hooks_example:test", allowed=allowed, field="auth.hooks.test") is hooks_example.test
    with pytest.raises(SpecError, match=r"auth\.hooks\.test: hook 'os:system' is not in an allowed module"):
        load_hook("os:system", allowed=allowed, field="auth.hooks.test")
    with pytest.raises(SpecError, match="cannot be loaded"):
        load_hook("tests.nope:x", allowed=allowed, field="auth.hooks.test")
    with pytest.raises(SpecError, match="is not a function"):
        load_hook("tests.hooks_example:CALLS", allowed=allowed, field="auth.hooks.test")


def test_credentials_from_a_hook() -> None:
    """A hook's credentials become a token set; bad shapes are clear errors."""
    clock = FakeClock()
    tokens = token_set_from_credentials(
        {"access_token": "a", "refresh_token": "r", "expires_in": "60", "scope": "read,write", "instance_url": "x"},
        now=clock(),
        integration="i",
    )
    assert tokens.expires_at is not None and (tokens.expires_at - clock()).total_seconds() == 60
    assert tokens.scopes == ["read", "write"] and tokens.extra == {"instance_url": "x"}
    with pytest.raises(UpstreamError, match="no access_token"):
        token_set_from_credentials({"token": "x"}, now=clock(), integration="i")
    with pytest.raises(UpstreamError, match="not a mapping"):
        token_set_from_credentials(["x"], now=clock(), integration="i")
    with pytest.raises(UpstreamError, match="not a positive number"):
        token_set_from_credentials({"access_token": "a", "expires_in": -5}, now=clock(), integration="i")
    with pytest.raises(UpstreamError, match=r"unusable access_token \(it holds a control character\)"):
        token_set_from_credentials({"access_token": "a\r\nX-Evil: 1"}, now=clock(), integration="i")
    with pytest.raises(UpstreamError, match=r"unusable refresh_token \(it holds a control character\)"):
        token_set_from_credentials({"access_token": "a", "refresh_token": "r\0"}, now=clock(), integration="i")
