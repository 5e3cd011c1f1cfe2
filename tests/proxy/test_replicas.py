"""Two ``authbridge run`` replicas on one PostgreSQL database: what one changes, the other's caches drop.

Each replica caches verified API keys and each connection's proxy target in memory. A key revoked, a
connection refreshed or deleted anywhere must stop being served from every replica's cache within 2
seconds (the cache-invalidation log, read by each process: tests/broker/test_cache_sync.py).
"""

from __future__ import annotations

import subprocess
import time
import typing
from pathlib import Path

import httpx
import pytest

from authbridge.store import format_key_ring
from authbridge.testing import memory_key_ring
from tests.proxy.conftest import CLI, ROOT, Server, create_key, run_authbridge, server_env
from tests.servers.fixtures import OAuthServer

#: What the issue asks: a change made through one replica is honoured by every other within this.
DEADLINE = 2.0


def _eventually(check: typing.Callable[[], bool], what: str) -> None:
    """Ask ``check`` until it holds; fail if it does not within DEADLINE seconds of the call."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > DEADLINE:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        time.sleep(0.05)


def _injected(server: Server, connection_id: str, headers: dict[str, str]) -> str:
    """The Authorization header the replica's proxy put on a request to the echo endpoint."""
    response = httpx.get(f"{server.url}/proxy/{connection_id}/probe", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["headers"]["authorization"])


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_change_through_one_replica_reaches_the_others_cache(db_url: str, tmp_path: Path, oauth: OAuthServer) -> None:
    """Refresh via A: B injects the new token; key revoked: B answers 401; connection deleted via A: B answers 404."""
    keys = format_key_ring(memory_key_ring("k1")).strip().replace("\n", ",")
    shared = {"AUTHBRIDGE_DATABASE_URL": db_url, "AUTHBRIDGE_ENCRYPTION_KEYS": keys}
    env_a = server_env(**shared, AUTHBRIDGE_DATA_DIR=str(tmp_path / "a"))
    env_b = server_env(**shared, AUTHBRIDGE_DATA_DIR=str(tmp_path / "b"))
    admin = create_key(env_a, "admin")
    caller = create_key(env_a, "caller")
    as_caller = {"Authorization": f"Bearer {caller}"}
    with run_authbridge(env_a, admin) as a, run_authbridge(env_b, admin) as b:
        a.integration(
            {
                "key": "idp",
                "name": "Test IdP",
                "auth": {
                    "type": "oauth2",
                    "grant_type": "client_credentials",
                    "token_url": oauth.token_url,
                    "client_id": oauth.CONFIDENTIAL_ID,
                    "client_secret": oauth.CONFIDENTIAL_SECRET,
                    "scopes": ["read"],
                },
                "request": {"base_url": f"{oauth.base_url}/api/echo"},
            }
        )
        cid = a.connect("idp")
        first = _injected(b, cid, as_caller)  # B now holds the caller's key and the target in memory
        assert _injected(b, cid, as_caller) == first

        refreshed = httpx.post(f"{a.url}/connections/{cid}/refresh", headers=a.headers)
        assert refreshed.status_code == 200, refreshed.text
        token = httpx.get(f"{a.url}/connections/{cid}/token", headers=a.headers).json()["access_token"]
        assert f"Bearer {token}" != first
        _eventually(lambda: _injected(b, cid, as_caller) == f"Bearer {token}", "B injects A's refreshed token")

        subprocess.run([*CLI, "api-keys", "revoke", "caller"], env=env_a, cwd=ROOT, check=True, capture_output=True)
        _eventually(
            lambda: httpx.get(f"{b.url}/proxy/{cid}/probe", headers=as_caller).status_code == 401,
            "B refuses the revoked key it had cached",
        )
        assert httpx.get(f"{a.url}/proxy/{cid}/probe", headers=as_caller).status_code == 401

        assert _injected(b, cid, b.headers) == f"Bearer {token}"  # B holds the target again, and the admin key
        deleted = httpx.delete(f"{a.url}/connections/{cid}", headers=a.headers)
        assert deleted.status_code == 200, deleted.text
        _eventually(
            lambda: httpx.get(f"{b.url}/proxy/{cid}/probe", headers=b.headers).status_code == 404,
            "B's proxy forgets the deleted connection",
        )


def test_a_key_revoked_by_the_cli_beside_a_server_on_sqlite(tmp_path: Path) -> None:
    """SQLite: ``authbridge api-keys revoke`` (another process on the same file) reaches the server's key cache."""
    env = server_env(AUTHBRIDGE_DATA_DIR=str(tmp_path / "data"))
    admin = create_key(env, "admin")
    caller = create_key(env, "caller")
    as_caller = {"Authorization": f"Bearer {caller}"}
    with run_authbridge(env, admin) as server:
        assert httpx.get(f"{server.url}/connections", headers=as_caller).status_code == 200  # cached now
        subprocess.run([*CLI, "api-keys", "revoke", "caller"], env=env, cwd=ROOT, check=True, capture_output=True)
        _eventually(
            lambda: httpx.get(f"{server.url}/connections", headers=as_caller).status_code == 401,
            "the server refuses the key the CLI revoked",
        )
        assert httpx.get(f"{server.url}/connections", headers=server.headers).status_code == 200
