"""Step-up: a 403 ``insufficient_scope`` marks the connection, and the next authorization asks for the wider scopes.

The resource server is the test OAuth server's ``/mcp`` (``/mcp/need/<scope>`` needs one more scope
and answers 403 ``insufficient_scope`` naming the token's scopes and that one). End to end through
``authbridge run`` with AuthBridge's client ID metadata document as its client (the server lets such
a client have every scope it knows); the connect session's reconnect and hostile challenges run
in-process. Unit side: ``tests/auth/test_step_up.py``.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authbridge.bridge import Bridge
from authbridge.config import Settings
from tests.api.test_connect_page import csrf_of, new_session, open_link
from tests.conftest import ClientFactory, create_api_key, portal, store_of
from tests.servers.authbridge import Running, running_authbridge
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

PUBLIC_URL = "http://127.0.0.1:8000"  # what new_session and open_link of test_connect_page expect


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Running]:
    with running_authbridge(tmp_path, AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP="true") as running:
        yield running


def connect(served: Running, oauth: OAuthServer, **parameters: str) -> str:
    created = httpx.post(
        f"{served.url}/connections",
        json={
            "integration": "mcp",
            "name": "tools",
            "parameters": {"server_url": f"{oauth.base_url}/mcp", **parameters},
        },
        headers=served.headers,
    )
    assert created.status_code == 201, created.text
    consent(created.json()["authorize_url"])
    cid: str = created.json()["id"]
    assert view(served, cid)["status"] == "active"
    return cid


def consent(authorize_url: str) -> None:
    answer = httpx.get(authorize_url)
    assert answer.status_code == 302, answer.text
    assert httpx.get(answer.headers["location"]).status_code == 200


def view(served: Running, cid: str) -> dict[str, typing.Any]:
    answer: dict[str, typing.Any] = httpx.get(f"{served.url}/connections/{cid}", headers=served.headers).json()
    return answer


async def test_step_up_through_the_proxy_then_the_bridge(served: Running, oauth: OAuthServer, tmp_path: Path) -> None:
    """403 → marked with the union of scopes → reconnect asks for them → after consent the call succeeds."""
    oauth.configure(auto_approve=True, client_id_metadata_documents=True, cimd_loopback_http=True)
    cid = connect(served, oauth)
    assert view(served, cid)["scopes"] == ["read"]  # the challenge's scope

    denied = httpx.get(f"{served.url}/proxy/{cid}/need/write", headers=served.headers)
    assert denied.status_code == 403  # passed on unchanged
    assert denied.json() == {"error": "insufficient_scope"}
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    marked = view(served, cid)
    assert marked["status"] == "needs_reauth" and marked["wanted_scopes"] == ["read", "write"], marked
    assert "(read write)" in marked["last_error"] and "reconnect" in marked["last_error"]
    assert oauth.stats()["token_calls"]["refresh_token"] == 0  # a refresh would not widen the token
    # Like every needs_reauth: the token is not handed out until the user comes back.
    assert httpx.get(f"{served.url}/proxy/{cid}/", headers=served.headers).status_code == 409

    again = httpx.post(f"{served.url}/connections/{cid}/reconnect", headers=served.headers)
    assert again.status_code == 200, again.text
    assert httpx.URL(again.json()["authorize_url"]).params["scope"] == "read write"
    consent(again.json()["authorize_url"])
    healed = view(served, cid)
    assert healed["status"] == "active" and sorted(healed["scopes"]) == ["read", "write"], healed
    allowed = httpx.get(f"{served.url}/proxy/{cid}/need/write", headers=served.headers)
    assert allowed.status_code == 200 and allowed.json()["scope"] == "read write"

    # The bridge in process sees the same: a second connection asked only for `read` ...
    other = connect(served, oauth, scopes="read")
    settings = Settings.from_env(
        {
            "AUTHBRIDGE_DATA_DIR": str(tmp_path / "data"),
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_PUBLIC_URL": served.url,
            "AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP": "true",
        }
    )
    async with Bridge.open(settings=settings) as bridge, httpx.AsyncClient(auth=bridge.auth(other)) as http:
        answer = await http.post(f"{oauth.base_url}/mcp/need/write", json={"jsonrpc": "2.0", "id": 1})
        assert answer.status_code == 403
    assert view(served, other)["status"] == "needs_reauth"
    assert view(served, other)["wanted_scopes"] == ["read", "write"]
    again = httpx.post(f"{served.url}/connections/{other}/reconnect", headers=served.headers).json()
    assert httpx.URL(again["authorize_url"]).params["scope"] == "read write"


# -- in process: the connect session's reconnect, and challenges not to follow ----------------------


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    env = {**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL}
    return make_client({**env, "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": "https://app.example"})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def connect_in_process(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> str:
    oauth.configure(auto_approve=True)
    created = client.post(
        "/connections",
        json={
            "integration": "mcp",
            "name": "DEV",
            "parameters": {"server_url": f"{oauth.base_url}/mcp"},
            "end_user": {"id": "u-42"},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    location = httpx.URL(httpx.get(created.json()["authorize_url"]).headers["location"])
    client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    cid: str = created.json()["id"]
    assert client.get(f"/connections/{cid}", headers=headers).json()["status"] == "active"
    return cid


def test_a_reconnect_session_asks_for_the_wanted_scopes(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """After a step-up, the hosted page of a ``reconnect`` connect session sends the user for the wider scopes."""
    cid = connect_in_process(client, headers, oauth)
    assert client.get(f"/proxy/{cid}/need/write", headers=headers).status_code == 403
    assert client.get(f"/connections/{cid}", headers=headers).json()["wanted_scopes"] == ["read", "write"]
    session = new_session(client, allowed_integrations=None, reconnect=cid, parameters={})
    open_link(client, session["connect_url"])
    page = client.get("/connect/")
    started = client.post("/connect/i/mcp", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert started.status_code == 303, started.text
    assert httpx.URL(started.headers["location"]).params["scope"] == "read write"


@pytest.mark.parametrize(
    ("challenge", "why"),
    [
        ('Bearer error="insufficient_scope", scope="' + "s" * 5000 + '"', "longer than 4096"),
        ('Bearer error="insufficient_scope", scope="' + " ".join(f"s{i}" for i in range(40)) + '"', "more than 32"),
        ('Bearer error="insufficient_scope", scope="read\\"write"', "not a list of RFC 6749 scope tokens"),
        ('Bearer error="insufficient_scope"', "names no scope"),
    ],
)
def test_hostile_step_up_challenges_change_nothing(
    client: TestClient,
    headers: dict[str, str],
    oauth: OAuthServer,
    challenge: str,
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A huge, overlong, malformed or empty scope: the 403 is passed on, the connection stays active, a log says why."""
    cid = connect_in_process(client, headers, oauth)
    oauth.configure(step_up_challenge=challenge)
    with caplog.at_level("WARNING", logger="authbridge.broker"):
        denied = client.get(f"/proxy/{cid}/need/write", headers=headers)
    assert denied.status_code == 403
    view = client.get(f"/connections/{cid}", headers=headers).json()
    assert view["status"] == "active" and view["wanted_scopes"] == [], view
    assert any(why in record.getMessage() and cid in record.getMessage() for record in caplog.records), caplog.text


def test_what_step_up_leaves_alone(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A stale token, a repeat, too many scopes together, a type without the user, a changed row: no new mark."""
    cid = connect_in_process(client, headers, oauth)
    broker = client.app.state.broker  # type: ignore[attr-defined]
    store = store_of(client)
    creds = portal(client).call(store.credentials.load, cid)
    assert creds is not None and creds.access_token is not None
    token = creds.access_token
    challenge = 'Bearer error="insufficient_scope", scope="read write"'
    # A token that is no longer the connection's: a re-authorization already answered it.
    assert portal(client).call(broker.connections.step_up, cid, "an-old-token", 403, challenge) is None
    assert portal(client).call(broker.connections.step_up, cid, token, 403, challenge) == ("read", "write")
    # Said again: nothing new (no second event).
    assert portal(client).call(broker.connections.step_up, cid, token, 403, challenge) == ("read", "write")
    events = client.get("/events", headers=headers).json()["items"]
    assert [e["type"] for e in events].count("connection.reauthorization_needed") == 1
    # Old and new together over 32: refused, the connection keeps what it wanted.
    many = " ".join(f"s{i}" for i in range(31))
    wide = f'Bearer error="insufficient_scope", scope="{many}"'
    assert portal(client).call(broker.connections.step_up, cid, token, 403, wide) is None
    assert client.get(f"/connections/{cid}", headers=headers).json()["wanted_scopes"] == ["read", "write"]
    # A version read before a change: the conditional update keeps the newer row.
    record = portal(client).call(store.connections.get, cid)
    stale = functools.partial(store.connections.want_scopes, cid, ["x"], reason="r", version=record.version - 1)
    assert portal(client).call(stale) is False

    # An entered API token has no user to ask for more: a 403 insufficient_scope changes nothing.
    spec = {
        "key": "tokenapi",
        "name": "Token API",
        "auth": {"type": "api_token"},
        "request": {"base_url": f"{oauth.base_url}/mcp"},
    }
    assert client.post("/integrations", json=spec, headers=headers).status_code == 201
    made = client.post(
        "/connections",
        json={"integration": "tokenapi", "name": "T", "credentials": {"token": "entered"}},
        headers=headers,
    ).json()
    assert portal(client).call(broker.connections.step_up, made["id"], "entered", 403, challenge) is None
    assert client.get(f"/connections/{made['id']}", headers=headers).json()["status"] == "active"
