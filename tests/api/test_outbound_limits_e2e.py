"""Bounded answers from token endpoints, end to end: a gzip bomb and a trickling server, each a real process.

AuthBridge runs in-process (the API through a TestClient); the misbehaving token endpoint is
``tests.servers.bad_upstream`` on 127.0.0.1. The unit tests of the reading itself are in
``tests/broker/test_upstream.py``.
"""

from __future__ import annotations

import contextlib
import tracemalloc
import typing
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_connections_e2e import add_integration, connections, stored_credentials
from tests.conftest import ClientFactory, create_api_key
from tests.servers.bad_upstream import BadUpstream, run_bad_upstream

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

#: Generous against 1 MiB of body plus the app's own allocations; the bomb inflates to 1 GiB.
MEMORY_BOUND = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def bad_server() -> Iterator[BadUpstream]:
    """One misbehaving upstream process for the module."""
    with run_bad_upstream() as server:
        yield server


@pytest.fixture
def bad(bad_server: BadUpstream) -> BadUpstream:
    """The misbehaving upstream, answering normally until a test says otherwise."""
    bad_server.mode("ok")
    return bad_server


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """AuthBridge allowed to call loopback, with a 1 s outbound deadline."""
    env = {
        **app_env,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_HTTP_TIMEOUT": "1",
        "AUTHBRIDGE_HOOK_MODULES": "tests",
    }
    return make_client(env)


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def cc_spec(bad: BadUpstream, key: str = "bad") -> dict[str, typing.Any]:
    """A client-credentials integration whose token endpoint is the misbehaving server."""
    return {
        "key": key,
        "name": "Bad upstream",
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": bad.token_url,
            "revoke_url": f"{bad.base_url}/revoke",
            "client_id": "id",
            "client_secret": "secret-value",
        },
        "request": {"base_url": bad.base_url},
        "test": {"path": "/me"},
    }


def hook_spec(bad: BadUpstream) -> dict[str, typing.Any]:
    """A custom-token integration whose ``get_token_data`` hook calls the misbehaving server with ``ctx.http``."""
    return {
        "key": "hooked",
        "name": "Hooked",
        "parameters": [{"name": "loginUrl", "default": bad.token_url}],
        "auth": {
            "type": "custom_token",
            "token_url": bad.token_url,
            "token_params": {"user": "{username}", "password": "{password}"},
            "hooks": {"get_token_data": "tests.hooks_example:get_token_data"},
        },
        "request": {"base_url": bad.base_url},
    }


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python's traced allocations (the app runs in this process) while the block runs."""
    result: list[int] = []
    tracemalloc.start()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def create(client: TestClient, headers: dict[str, str], integration: str = "bad", **body: typing.Any) -> httpx.Response:
    response: httpx.Response = client.post(
        "/connections", json={"integration": integration, "name": "DEV", **body}, headers=headers
    )
    return response


def test_gzip_bomb_on_create(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """An answer inflating past 1 MiB is refused while inflating: clear error, nothing stored, memory bounded."""
    add_integration(client, headers, cc_spec(bad))
    bad.mode("bomb")
    with peak_memory() as peak:
        response = create(client, headers)
    assert peak[0] < MEMORY_BOUND, f"peak {peak[0] / 2**20:.0f} MiB"
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert f"{bad.token_url} answered more than 1 MiB after decompression" in message
    assert connections(client, headers) == []


def test_gzip_bomb_on_refresh(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """A refresh answered by a gzip bomb fails clearly; the stored credentials stay as they were."""
    add_integration(client, headers, cc_spec(bad))
    created = create(client, headers)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    before = stored_credentials(client, cid)
    bad.mode("bomb")
    with peak_memory() as peak:
        response = client.post(f"/connections/{cid}/refresh", headers=headers)
    assert response.status_code == 502, response.text
    assert "answered more than 1 MiB after decompression" in response.json()["error"]["message"]
    after = stored_credentials(client, cid)
    assert (after.access_token, after.version) == (before.access_token, before.version)
    assert peak[0] < MEMORY_BOUND, f"peak {peak[0] / 2**20:.0f} MiB"


@pytest.mark.parametrize("mode", ["trickle", "trickle-head"])
def test_trickling_token_endpoint_on_create(
    client: TestClient, headers: dict[str, str], bad: BadUpstream, mode: str
) -> None:
    """A server sending one byte a second (body or headers) is cut off at the 1 s total deadline; nothing stored."""
    add_integration(client, headers, cc_spec(bad))
    bad.mode(mode)
    response = create(client, headers)
    assert response.status_code == 422, response.text
    assert f"{bad.token_url} sent no complete answer within 1 s" in response.json()["error"]["message"]
    assert connections(client, headers) == []


def test_trickling_token_endpoint_on_refresh(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """A refresh against a trickling server fails with the deadline's error; the stored credentials stay."""
    add_integration(client, headers, cc_spec(bad))
    created = create(client, headers)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    before = stored_credentials(client, cid)
    bad.mode("trickle")
    response = client.post(f"/connections/{cid}/refresh", headers=headers)
    assert response.status_code == 502, response.text
    assert "sent no complete answer within 1 s" in response.json()["error"]["message"]
    after = stored_credentials(client, cid)
    assert (after.access_token, after.version) == (before.access_token, before.version)


def test_trickling_test_endpoint(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """The connection test's request has the same total deadline: a failed test, with the reason."""
    add_integration(client, headers, cc_spec(bad))
    created = create(client, headers)
    assert created.status_code == 201, created.text
    bad.mode("trickle")
    response = client.post(f"/connections/{created.json()['id']}/test", headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is False
    assert f"{bad.base_url}/me sent no complete answer within 1 s" in result["detail"]


@pytest.mark.parametrize(("mode", "reason"), [("trickle", "sent no complete answer within 1 s"), ("bomb", "1 MiB")])
def test_misbehaving_revocation_endpoint(
    client: TestClient, headers: dict[str, str], bad: BadUpstream, mode: str, reason: str
) -> None:
    """Revocation reads through the same limits: the connection is deleted, the revocation reported failed."""
    add_integration(client, headers, cc_spec(bad))
    created = create(client, headers)
    assert created.status_code == 201, created.text
    bad.mode(mode)
    response = client.delete(f"/connections/{created.json()['id']}", headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["deleted"], result["revoked"]) == (True, False)
    assert f"{bad.base_url}/revoke" in result["revoke_error"] and reason in result["revoke_error"]
    assert connections(client, headers) == []


def test_hook_client_is_bounded(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """A hook's ``ctx.http`` reads through the same cap: a bomb is refused while inflating, nothing stored."""
    add_integration(client, headers, hook_spec(bad))
    bad.mode("bomb")
    credentials = {"username": "alice", "password": "wonderland"}
    with peak_memory() as peak:
        response = create(client, headers, "hooked", credentials=credentials)
    assert response.status_code == 422, response.text
    assert "answered more than 1 MiB after decompression" in response.json()["error"]["message"]
    assert connections(client, headers) == []
    assert peak[0] < MEMORY_BOUND, f"peak {peak[0] / 2**20:.0f} MiB"


def test_token_answer_not_utf8(client: TestClient, headers: dict[str, str], bad: BadUpstream) -> None:
    """A JSON token answer that is not valid UTF-8 is refused; nothing is stored."""
    add_integration(client, headers, cc_spec(bad))
    bad.mode("not-utf8")
    response = create(client, headers)
    assert response.status_code == 422, response.text
    assert "not valid UTF-8" in response.json()["error"]["message"]
    assert connections(client, headers) == []


def test_the_cap_is_the_configured_one(make_client: ClientFactory, app_env: dict[str, str], bad: BadUpstream) -> None:
    """AUTHBRIDGE_MAX_UPSTREAM_BODY reaches the reading: the cap named in the error is the configured one."""
    env = {**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_MAX_UPSTREAM_BODY": "2048"}
    client = make_client(env)
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, cc_spec(bad))
    bad.mode("bomb")
    response = create(client, headers)
    assert response.status_code == 422, response.text
    assert f"{bad.token_url} answered more than 2048 bytes after decompression" in response.json()["error"]["message"]
    assert connections(client, headers) == []
