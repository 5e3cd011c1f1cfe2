"""``GET /connections/{id}/token`` on the raw ASGI path answers as the FastAPI route does, and never stale.

The fast path serves body-less GETs (``api/token_route.py``); a GET announcing a body goes through the
gate and the framework's route, so sending both shapes side by side compares the two paths. A change
made "by another process" is made here on the store directly (it logs the invalidation and tells no
in-process listener, as another replica would), then the app's invalidation log is read once
(``cache_sync.poll``, which the server does twice a second). The cache's own rules are unit-tested in
tests/broker/test_token_cache.py.
"""

from __future__ import annotations

import json
import typing
from datetime import timedelta

import pytest

from authbridge.api.token_route import token_request
from authbridge.broker import Broker
from authbridge.spec import load_spec
from authbridge.store import CredentialRecord
from tests.conftest import ClientFactory, create_api_key, portal, store_of
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

#: Headers that differ between any two answers.
_PER_ANSWER = {"date", "x-request-id"}


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """A started AuthBridge (both backends) allowed to call the loopback OAuth server."""
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def _spec(oauth: OAuthServer, window: str = "30m") -> dict[str, typing.Any]:
    return {
        "key": "cc",
        "name": "Client credentials",
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": oauth.token_url,
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
            "scopes": ["read"],
        },
        "request": {"base_url": oauth.base_url},
        "refresh": {"window": window},
    }


def _connection(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> str:
    assert client.post("/integrations", json=_spec(oauth), headers=headers).status_code == 201
    created = client.post("/connections", json={"integration": "cc", "name": "DEV"}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _broker(client: TestClient) -> Broker:
    return typing.cast(Broker, client.app.state.broker)  # type: ignore[attr-defined]


def _both(client: TestClient, path: str, headers: dict[str, str]) -> tuple[typing.Any, typing.Any]:
    """The same GET on the fast path (no body) and on the framework's path (a body announced)."""
    fast = client.get(path, headers=headers)
    framework = client.request("GET", path, headers={**headers, "Content-Type": "application/json"}, content=b"{}")
    return fast, framework


def _shape(answer: typing.Any) -> tuple[int, typing.Any, list[tuple[str, str]]]:
    kept = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _PER_ANSWER]
    assert {"date", "x-request-id"} <= {k.lower() for k in answer.headers}
    return answer.status_code, answer.json(), kept


def test_both_paths_give_the_same_answers(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Status, JSON and headers match for a token, no key, a bad key, a key without scope, an unknown id, a dead one."""
    cid = _connection(client, headers, oauth)
    store = store_of(client)
    proxy_only, _ = portal(client).call(store.api_keys.create, "proxy-only", ["proxy"])
    token_only, _ = portal(client).call(store.api_keys.create, "token-only", ["token"])
    cases = {
        "admin key": (f"/connections/{cid}/token", headers),
        "token scope": (f"/connections/{cid}/token", {"Authorization": f"Bearer {token_only}"}),
        "other header": (f"/connections/{cid}/token", {"X-AuthBridge-Key": token_only}),
        "no key": (f"/connections/{cid}/token", {}),
        "wrong key": (f"/connections/{cid}/token", {"Authorization": "Bearer nope"}),
        "basic scheme": (f"/connections/{cid}/token", {"Authorization": f"Basic {token_only}"}),
        "no token scope": (f"/connections/{cid}/token", {"Authorization": f"Bearer {proxy_only}"}),
        "unknown id": ("/connections/nope/token", headers),
        "huge id": (f"/connections/{'x' * 5000}/token", headers),
    }
    for name, (path, sent) in cases.items():
        fast, framework = _both(client, path, sent)
        assert _shape(fast) == _shape(framework), name
    ok = client.get(f"/connections/{cid}/token", headers=headers)
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert set(ok.json()) == {"access_token", "token_type", "expires_at"}
    assert client.get(f"/connections/{cid}/token", headers={}).headers["www-authenticate"] == "Bearer"

    portal(client).call(store.connections.set_status, cid, "needs_reauth")
    portal(client).call(_broker(client).cache_sync.poll)
    fast, framework = _both(client, f"/connections/{cid}/token", headers)
    assert fast.status_code == 409 and _shape(fast) == _shape(framework)


def test_only_a_bodyless_get_of_one_connection_takes_the_fast_path() -> None:
    """Other methods, deeper or shorter paths, and requests announcing a body go to the framework."""

    def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, typing.Any]:
        return {"type": "http", "method": method, "path": path, "headers": headers or []}

    assert token_request(scope("GET", "/connections/abc/token")) == "abc"
    assert token_request(scope("GET", "/connections/abc/token", [(b"content-length", b"0")])) == "abc"
    assert token_request(scope("GET", "/connections/abc/token", [(b"content-length", b"2")])) is None
    assert token_request(scope("GET", "/connections/abc/token", [(b"transfer-encoding", b"chunked")])) is None
    assert token_request(scope("POST", "/connections/abc/token")) is None
    assert token_request(scope("HEAD", "/connections/abc/token")) is None
    assert token_request(scope("GET", "/connections/a/b/token")) is None
    assert token_request(scope("GET", "/connections//token")) is None
    assert token_request(scope("GET", "/connections/abc/token/")) is None
    assert token_request(scope("GET", "/connections/abc")) is None


def test_an_encoded_slash_in_the_id_finds_nothing(client: TestClient, headers: dict[str, str]) -> None:
    """``%2F`` in the id is not a way around the path rules: a clear 404 like any unknown id."""
    answer = client.get("/connections/a%2Fb/token", headers=headers)
    assert answer.status_code == 404 and answer.json()["error"]["side"] == "authbridge"


def test_a_refresh_anywhere_is_never_served_stale(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """A refresh in this process shows at once; one by another process once the log is read."""
    cid = _connection(client, headers, oauth)
    first = client.get(f"/connections/{cid}/token", headers=headers).json()["access_token"]
    assert client.get(f"/connections/{cid}/token", headers=headers).json()["access_token"] == first  # cached

    assert client.post(f"/connections/{cid}/refresh", headers=headers).status_code == 200
    second = client.get(f"/connections/{cid}/token", headers=headers).json()["access_token"]
    assert second != first

    store = store_of(client)
    creds = portal(client).call(store.credentials.load, cid)
    assert creds is not None
    elsewhere = CredentialRecord(access_token="from-another-replica", token_type="Bearer", expires_at=creds.expires_at)
    portal(client).call(store.credentials.save, cid, elsewhere)
    portal(client).call(_broker(client).cache_sync.poll)
    assert client.get(f"/connections/{cid}/token", headers=headers).json()["access_token"] == "from-another-replica"


def test_a_deletion_anywhere_ends_the_token(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Deleted through the API: 404 at once; deleted by another process: 404 once the log is read."""
    here = _connection(client, headers, oauth)
    created = client.post("/connections", json={"integration": "cc", "name": "QA"}, headers=headers)
    there = created.json()["id"]
    for cid in (here, there):
        assert client.get(f"/connections/{cid}/token", headers=headers).status_code == 200
    assert client.delete(f"/connections/{here}", headers=headers).status_code == 200
    assert client.get(f"/connections/{here}/token", headers=headers).status_code == 404

    portal(client).call(store_of(client).connections.delete, there)
    portal(client).call(_broker(client).cache_sync.poll)
    assert client.get(f"/connections/{there}/token", headers=headers).status_code == 404


def test_an_integration_change_anywhere_drops_its_tokens(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An integration saved by another process drops its connections' tokens (only theirs: the unit tests)."""
    cid = _connection(client, headers, oauth)
    other = {**_spec(oauth), "key": "other"}
    assert client.post("/integrations", json=other, headers=headers).status_code == 201
    kept = client.post("/connections", json={"integration": "other", "name": "DEV"}, headers=headers).json()["id"]
    for connection_id in (cid, kept):
        assert client.get(f"/connections/{connection_id}/token", headers=headers).status_code == 200
    tokens = _broker(client).connections.tokens

    changed = load_spec(json.dumps(_spec(oauth, window="10m")))
    portal(client).call(store_of(client).integrations.save, changed)
    portal(client).call(_broker(client).cache_sync.poll)
    assert cid not in tokens
    assert client.get(f"/connections/{cid}/token", headers=headers).status_code == 200  # read from the store again


def test_a_failing_refresh_answers_alike_and_keeps_the_tokens(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An expired token whose endpoint is unreachable: the same clear 502 on both paths, the stored token kept."""
    cid = _connection(client, headers, oauth)
    unreachable = {**_spec(oauth), "auth": {**_spec(oauth)["auth"], "token_url": "http://127.0.0.1:9/token"}}
    assert client.put("/integrations/cc", json=unreachable, headers=headers).status_code == 200
    store = store_of(client)
    creds = portal(client).call(store.credentials.load, cid)
    assert creds is not None
    assert creds.expires_at is not None
    past = creds.expires_at - timedelta(days=1)
    expired = CredentialRecord(access_token="stored-token-0451", token_type="Bearer", expires_at=past)
    portal(client).call(store.credentials.save, cid, expired)
    portal(client).call(_broker(client).cache_sync.poll)
    fast, framework = _both(client, f"/connections/{cid}/token", headers)
    assert fast.status_code == 502 and _shape(fast) == _shape(framework)
    assert "stored-token-0451" not in fast.text and fast.json()["error"]["code"] == "upstream_error"
    kept = portal(client).call(store.credentials.load, cid)
    assert kept is not None and kept.access_token == "stored-token-0451"
