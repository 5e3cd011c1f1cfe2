"""OAuth 1.0a end to end: AuthBridge's API against a real provider built from Authlib's OAuth 1 server pieces.

The provider (``tests.servers.oauth1_server``) runs on loopback; it verifies every signature, timestamp
and nonce with Authlib's ``AuthorizationServer`` and ``ResourceProtector``. The browser's part is
played with httpx: open the ``authorize_url``, press Allow on the provider's form, bring the query of
its redirect to AuthBridge's ``/oauth/callback``. The unit tests of the plugin are in
``tests/auth/test_oauth1.py``.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.api.test_connect_page import admin_headers, csrf_of, new_session, open_link
from tests.conftest import ClientFactory, create_api_key
from tests.servers.authbridge import running_authbridge
from tests.servers.oauth1_server import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    RSA_CONSUMER_KEY,
    RSA_PRIVATE_KEY,
    TBA_SECRET,
    TBA_TOKEN,
    OAuth1Server,
    run_oauth1_server,
)

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

PUBLIC_URL = "http://127.0.0.1:8000"
Json = dict[str, typing.Any]
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def provider_server() -> Iterator[OAuth1Server]:
    with run_oauth1_server() as server:
        yield server


@pytest.fixture
def provider(provider_server: OAuth1Server) -> OAuth1Server:
    """The module's provider, reset: no tokens but the pre-issued TBA one, no faults."""
    provider_server.state.reset()
    return provider_server


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def three_legged(provider: OAuth1Server, key: str = "trello", **auth: typing.Any) -> Json:
    return {
        "key": key,
        "name": "OAuth 1 provider",
        "auth": {
            "type": "oauth1",
            "request_token_url": provider.request_token_url,
            "authorization_url": provider.authorize_url,
            "access_token_url": provider.access_token_url,
            "authorize_params": {"name": "AuthBridge", "scope": "read,write"},
            "client_id": CONSUMER_KEY,
            "client_secret": CONSUMER_SECRET,
            **auth,
        },
        "request": {"base_url": provider.base_url},
        "test": {"path": "/api/me"},
    }


def token_based(provider: OAuth1Server, key: str = "netsuite", **auth: typing.Any) -> Json:
    return {
        "key": key,
        "name": "TBA",
        "parameters": [{"name": "accountId", "required": True, "pattern": "^[A-Z0-9_]+$"}],
        "auth": {
            "type": "oauth1",
            "flow": "token",
            "client_id": CONSUMER_KEY,
            "client_secret": CONSUMER_SECRET,
            "signature_method": "HMAC-SHA256",
            "realm": "{accountId}",
            **auth,
        },
        "request": {"base_url": provider.base_url},
        "test": {"path": "/api/me"},
    }


def add(client: TestClient, headers: dict[str, str], spec: Json) -> None:
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 201, response.text


def browser(authorize_url: str, *, allow: bool = True, server_url: str = PUBLIC_URL) -> dict[str, str]:
    """Open the provider's page, press Allow (or Deny), return the query it sends the browser back with."""
    with httpx.Client(follow_redirects=False) as http:
        page = http.get(authorize_url)
        assert page.status_code == 200, page.text
        token = re.search(r'name="oauth_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = http.post(
            f"{authorize_url.split('?')[0]}",
            data={"oauth_token": token.group(1), "confirm": "yes" if allow else "no"},
        )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{server_url}/oauth/callback"
    return dict(parse_qsl(location.query))


def connect_three_legged(client: TestClient, headers: dict[str, str], key: str = "trello") -> tuple[str, Json]:
    created = client.post("/connections", json={"integration": key, "name": "DEV"}, headers=headers)
    assert created.status_code == 201, created.text
    body: Json = created.json()
    assert body["status"] == "pending"
    return body["id"], body


def connect_token_based(
    client: TestClient, headers: dict[str, str], account_id: str, token_secret: str = TBA_SECRET
) -> httpx.Response:
    """``POST /connections`` of a ``token_based`` connection with the provider's pre-issued token."""
    created: httpx.Response = client.post(
        "/connections",
        json={
            "integration": "netsuite",
            "name": "PROD",
            "parameters": {"accountId": account_id},
            "credentials": {"token_id": TBA_TOKEN, "token_secret": token_secret},
        },
        headers=headers,
    )
    return created


def test_three_legged_connect_then_signed_get_and_form_post(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A three-legged connection becomes active; a proxied GET and a form POST verify at the provider."""
    caplog.set_level(logging.DEBUG)
    add(client, headers, three_legged(provider))
    connection_id, body = connect_three_legged(client, headers)
    authorize_url = body["authorize_url"]
    query = dict(parse_qsl(urlsplit(authorize_url).query))
    assert query["name"] == "AuthBridge" and query["scope"] == "read,write" and query["oauth_token"]
    assert "secret" not in authorize_url  # the request token's secret stays on the server

    back = browser(authorize_url)
    assert set(back) == {"state", "oauth_token", "oauth_verifier"}
    done = client.get("/oauth/callback", params=back)
    assert done.status_code == 200, done.text
    view = client.get(f"/connections/{connection_id}", headers=headers).json()
    assert view["status"] == "active"

    got = client.get(f"/proxy/{connection_id}/api/echo", params={"q": "a b+c", "list": "1"}, headers=headers)
    assert got.status_code == 200, got.text
    assert got.json()["user"] == "alice" and got.json()["query"] == {"q": "a b+c", "list": "1"}

    posted = client.post(
        f"/proxy/{connection_id}/api/echo?x=1",
        content="name=J%C3%BCrgen+M&amount=3%2F4&empty=",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["form"] == {"name": "Jürgen M", "amount": "3/4", "empty": ""}

    tested = client.post(f"/connections/{connection_id}/test", headers=headers)
    assert tested.json()["ok"] is True, tested.text
    assert provider.state.stats["verified"] == 3

    # The same signed request twice is a replay: each attempt has its own nonce, so both verify.
    for _ in range(2):
        assert client.get(f"/proxy/{connection_id}/api/me", headers=headers).status_code == 200

    secrets = [CONSUMER_SECRET, *(c.oauth_token_secret for c in provider.state.tokens.values())]
    shown = caplog.text + done.text + str(view) + got.text
    assert not [s for s in secrets if s in shown]


@SQLITE_ONLY
@pytest.mark.parametrize("method", ["HMAC-SHA256", "PLAINTEXT", "RSA-SHA1", "RSA-SHA256"])
def test_every_signature_method_verifies(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server, method: str
) -> None:
    """Each signature method signs the request token, access token and API requests the provider accepts."""
    rsa = method.startswith("RSA-")
    spec = three_legged(
        provider,
        signature_method=method,
        client_id=RSA_CONSUMER_KEY if rsa else CONSUMER_KEY,
        client_secret=RSA_PRIVATE_KEY if rsa else CONSUMER_SECRET,
    )
    add(client, headers, spec)
    connection_id, body = connect_three_legged(client, headers)
    assert client.get("/oauth/callback", params=browser(body["authorize_url"])).status_code == 200
    answer = client.post(f"/proxy/{connection_id}/api/echo", data={"a": "1"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["signature_method"] == method
    shown = client.get(f"/integrations/{spec['key']}", headers=headers).text
    assert "PRIVATE KEY" not in shown and CONSUMER_SECRET not in shown


@SQLITE_ONLY
def test_signature_in_the_query(client: TestClient, headers: dict[str, str], provider: OAuth1Server) -> None:
    """With ``signature_location: query`` the oauth parameters ride in the URL and verify."""
    add(client, headers, three_legged(provider, signature_location="query"))
    connection_id, body = connect_three_legged(client, headers)
    assert client.get("/oauth/callback", params=browser(body["authorize_url"])).status_code == 200
    answer = client.get(f"/proxy/{connection_id}/api/echo?x=1", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["authorization"] == "" and "oauth_signature" in answer.json()["query"]


def test_token_based_connection_with_hmac_sha256_and_realm(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server
) -> None:
    """NetSuite-style TBA: the token is entered, every request signed HMAC-SHA256 with the account as realm."""
    add(client, headers, token_based(provider))
    created = connect_token_based(client, headers, "1234567_SB1")
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "active" and TBA_SECRET not in created.text
    connection_id = created.json()["id"]
    answer = client.put(f"/proxy/{connection_id}/api/echo", json={"x": 1}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["signature_method"] == "HMAC-SHA256"
    assert 'realm="1234567_SB1"' in answer.json()["authorization"]
    assert answer.json()["body"] == '{"x":1}'


@SQLITE_ONLY
def test_an_upstream_rejecting_the_signature_is_returned_and_nothing_changes(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server
) -> None:
    """A wrong token secret: the provider's 401 comes back as it is, the connection stays as it was."""
    add(client, headers, token_based(provider))
    created = connect_token_based(client, headers, "ACME", "wrong-secret")
    connection_id = created.json()["id"]
    answer = client.get(f"/proxy/{connection_id}/api/me", headers=headers)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_signature"
    tested = client.post(f"/connections/{connection_id}/test", headers=headers).json()
    assert tested["ok"] is False and "answered 401" in tested["detail"] and "wrong-secret" not in str(tested)
    assert client.get(f"/connections/{connection_id}", headers=headers).json()["status"] == "active"


@SQLITE_ONLY
def test_callback_with_another_request_token_or_replayed_fails_clearly(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server
) -> None:
    """A callback whose oauth_token is not the flow's fails and uses the flow up; a replayed callback is refused."""
    add(client, headers, three_legged(provider))
    connection_id, body = connect_three_legged(client, headers)
    back = browser(body["authorize_url"])
    forged = client.get("/oauth/callback", params={**back, "oauth_token": "attacker-token"})
    assert forged.status_code == 400 and "another request token" in forged.text
    view = client.get(f"/connections/{connection_id}", headers=headers).json()
    assert view["status"] == "error" and "another request token" in view["last_error"]
    assert provider.state.stats.get("access_token", 0) == 0
    replay = client.get("/oauth/callback", params=back)
    assert replay.status_code == 400 and "already used" in replay.text

    # A new authorization of the same connection works, and its callback cannot be replayed either.
    again = client.post(f"/connections/{connection_id}/reconnect", json={}, headers=headers)
    assert again.status_code == 200, again.text
    back = browser(again.json()["authorize_url"])
    assert client.get("/oauth/callback", params=back).status_code == 200
    assert client.get("/oauth/callback", params=back).status_code == 400
    assert client.get(f"/connections/{connection_id}", headers=headers).json()["status"] == "active"
    missing = client.get("/oauth/callback", params={"oauth_token": back["oauth_token"], "oauth_verifier": "x"})
    assert missing.status_code == 400


@SQLITE_ONLY
def test_the_user_denying_access_fails_the_connection(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server
) -> None:
    """Deny on the provider's page: the callback has no verifier, the connection is in error, nothing is asked."""
    add(client, headers, three_legged(provider))
    connection_id, body = connect_three_legged(client, headers)
    back = browser(body["authorize_url"], allow=False)
    answer = client.get("/oauth/callback", params=back)
    assert answer.status_code == 400
    assert client.get(f"/connections/{connection_id}", headers=headers).json()["status"] == "error"
    assert provider.state.stats.get("access_token", 0) == 0


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("garbage", "without oauth_token and oauth_token_secret"),
        ("huge", "more than 1 MiB"),
        ("reject", "answered 401: oauth_problem=signature_invalid"),
        ("unconfirmed", "did not confirm the callback"),
    ],
)
def test_a_broken_request_token_step_stores_nothing(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server, mode: str, expected: str
) -> None:
    """Garbage, a huge body, a refusal or an OAuth 1.0 (not a) answer: 422 with the reason, no connection stored."""
    add(client, headers, three_legged(provider))
    httpx.post(f"{provider.base_url}/_admin/mode", json={"request_token": mode})
    answer = client.post("/connections", json={"integration": "trello", "name": "DEV"}, headers=headers)
    assert answer.status_code == 422, answer.text
    assert expected in answer.text, answer.text
    assert CONSUMER_SECRET not in answer.text
    assert client.get("/connections", headers=headers).json()["items"] == []


@SQLITE_ONLY
def test_the_connect_page_asks_for_the_entered_token_and_runs_the_three_legged_flow(
    make_client: ClientFactory, app_env: dict[str, str], provider: OAuth1Server
) -> None:
    """The hosted page: the TBA form has the plugin's two secret inputs; three-legged goes to the provider and back."""
    client = make_client(
        {
            **app_env,
            "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
            "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL,
            "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": "https://app.example",
        }
    )
    admin = admin_headers(client)
    add(client, admin, three_legged(provider))
    add(client, admin, token_based(provider))

    session = new_session(client, allowed_integrations=["netsuite"], parameters={})
    open_link(client, session["connect_url"])
    form = client.get("/connect/i/netsuite")
    for name in ("cred.token_id", "cred.token_secret"):
        assert re.search(
            rf'<input[^>]*type="password"[^>]*name="{name}"|<input[^>]*name="{name}"[^>]*type="password"', form.text
        )
    done = client.post(
        "/connect/i/netsuite",
        data={
            "csrf": csrf_of(form),
            "param.accountId": "ACME",
            "cred.token_id": TBA_TOKEN,
            "cred.token_secret": TBA_SECRET,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text

    session = new_session(client, allowed_integrations=["trello"], parameters={})
    open_link(client, session["connect_url"])
    form = client.get("/connect/i/trello")
    started = client.post("/connect/i/trello", data={"csrf": csrf_of(form)}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"].startswith(provider.authorize_url)
    finished = client.get("/oauth/callback", params=browser(started.headers["location"]), follow_redirects=False)
    assert finished.status_code == 303, finished.text
    items = client.get("/connections", headers=admin).json()["items"]
    assert sorted((c["integration"], c["status"]) for c in items) == [("netsuite", "active"), ("trello", "active")]
    for connection in items:
        assert client.get(f"/proxy/{connection['id']}/api/me", headers=admin).status_code == 200


@SQLITE_ONLY
def test_a_hostile_realm_value_is_refused_before_anything_is_sent(
    client: TestClient, headers: dict[str, str], provider: OAuth1Server
) -> None:
    """A parameter value that would close realm="..." and add oauth parameters: a clear 4xx, nothing sent upstream."""
    spec = token_based(provider)
    spec["parameters"] = [{"name": "accountId", "required": True}]  # a careless spec: no pattern
    add(client, headers, spec)
    created = connect_token_based(client, headers, 'ACME", oauth_token="other')
    assert created.status_code == 201, created.text
    answer = client.get(f"/proxy/{created.json()['id']}/api/me", headers=headers)
    assert 400 <= answer.status_code < 500 and "auth.realm" in answer.text, answer.text
    assert TBA_SECRET not in answer.text and "verified" not in provider.state.stats


def test_through_authbridge_run_nothing_secret_reaches_the_log(tmp_path: Path, provider: OAuth1Server) -> None:
    """``authbridge run`` at debug level: connect, a forged callback, a real one, a signed call; no secret logged."""
    with (
        running_authbridge(tmp_path, AUTHBRIDGE_LOG_LEVEL="debug") as server,
        httpx.Client(base_url=server.url, headers=server.headers) as api,
    ):
        assert api.post("/integrations", json=three_legged(provider)).status_code == 201
        created = api.post("/connections", json={"integration": "trello", "name": "DEV"})
        assert created.status_code == 201, created.text
        back = browser(created.json()["authorize_url"], server_url=server.url)
        forged = httpx.get(f"{server.url}/oauth/callback", params={**back, "oauth_token": "forged-token"})
        assert forged.status_code == 400
        # The forged callback used the flow up: start again and finish properly.
        again = api.post(f"/connections/{created.json()['id']}/reconnect", json={})
        back = browser(again.json()["authorize_url"], server_url=server.url)
        assert httpx.get(f"{server.url}/oauth/callback", params=back).status_code == 200
        assert api.get(f"/proxy/{created.json()['id']}/api/echo", params={"a": "1"}).status_code == 200
    log = (tmp_path / "server.log").read_text()
    secrets = [CONSUMER_SECRET, *(c.oauth_token_secret for c in provider.state.tokens.values())]
    assert log and not [s for s in secrets if s in log]
    assert "oauth_verifier=" not in log.replace("oauth_verifier=***", "")
