"""Connected accounts end to end: the HTTP API against the real test OAuth server process, on both databases.

The browser's part of the authorization-code flow is played with httpx: open the ``authorize_url``
AuthBridge returned, sign in and approve on the server's consent form, then bring the query of the
server's redirect to AuthBridge's ``/oauth/callback``. Nothing is mocked.
"""

from __future__ import annotations

import html
import json
import re
import socket
import typing
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import text

from authbridge.auth import AuthContext, api_request
from authbridge.testing import FakeClock
from tests.conftest import ClientFactory, ClockedClientFactory, create_api_key, portal, store_of
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

PUBLIC_URL = "http://127.0.0.1:8000"
REDIRECT_URI = f"{PUBLIC_URL}/oauth/callback"
APP_ORIGIN = "https://app.example"
Json = dict[str, typing.Any]


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def env(app_env: dict[str, str]) -> dict[str, str]:
    """A service that may call the loopback server over http and send browsers back to APP_ORIGIN."""
    return {
        **app_env,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL,
        "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": APP_ORIGIN,
    }


@pytest.fixture
def client(make_client: ClientFactory, env: dict[str, str]) -> TestClient:
    """A started AuthBridge on a fresh database (both backends)."""
    return make_client(env)


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    """An API key of ``client``."""
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def code_spec(oauth: OAuthServer, key: str = "idp", **auth: typing.Any) -> Json:
    """An authorization-code integration on the test server (confidential client, read write, PKCE)."""
    return {
        "key": key,
        "name": "Test IdP",
        "auth": {
            "type": "oauth2",
            "grant_type": "authorization_code",
            "authorization_url": oauth.authorize_url,
            "token_url": oauth.token_url,
            "revoke_url": oauth.revoke_url,
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
            "scopes": ["read", "write"],
            **auth,
        },
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/me"},
    }


def grant_spec(oauth: OAuthServer, grant_type: str, key: str = "idp", **auth: typing.Any) -> Json:
    """A client-credentials or password integration on the test server."""
    spec = code_spec(oauth, key, grant_type=grant_type, **auth)
    del spec["auth"]["authorization_url"]
    return spec


def custom_spec(oauth: OAuthServer, key: str = "custom") -> Json:
    """A custom-token integration on the server's /custom/login (Airkit style: JSON body, nested answer)."""
    return {
        "key": key,
        "name": "Custom login",
        "auth": {
            "type": "custom_token",
            "token_url": oauth.custom_login_url,
            "token_method": "POST",
            "token_body": "json",
            "token_params": {"user": "{username}", "password": "{password}"},
            "token_response": {"access_token": "data.sessionToken", "expires_in": {"path": "data.validSeconds"}},
        },
        "token": {"in": "header", "name": "X-Session-Token", "template": "{token}"},
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/me"},
    }


def add_integration(client: TestClient, headers: dict[str, str], spec: Json) -> None:
    """Create an integration through the API."""
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 201, response.text


def connect(client: TestClient, headers: dict[str, str], integration: str = "idp", **body: typing.Any) -> Json:
    """POST /connections, expecting 201; the connection."""
    response = client.post("/connections", json={"integration": integration, "name": "DEV", **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a URL (each given once)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def consent(oauth: OAuthServer, authorize_url: str, *, approve: bool = True) -> dict[str, str]:
    """Open the authorize URL, sign in as alice and approve (or deny); the query of the redirect to AuthBridge."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page.text, re.S)
    assert form is not None, page.text
    fields = {html.unescape(k): html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form[2])}
    fields |= {"username": oauth.USERNAME, "password": oauth.PASSWORD, "action": "approve" if approve else "deny"}
    answer = httpx.post(httpx.URL(oauth.base_url).join(html.unescape(form[1])), data=fields)
    return redirected(answer)


def auto_approve(oauth: OAuthServer, authorize_url: str) -> dict[str, str]:
    """Open the authorize URL with the server approving at once; the query of its redirect to AuthBridge."""
    oauth.configure(auto_approve=True)
    return redirected(httpx.get(authorize_url))


def redirected(answer: httpx.Response) -> dict[str, str]:
    """The query of the authorization server's redirect, checked to go to AuthBridge's callback."""
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.split("?")[0] == REDIRECT_URI
    return query_of(location)


def callback(client: TestClient, query: dict[str, str]) -> httpx.Response:
    """What the browser gets when the provider sends it back to AuthBridge."""
    response: httpx.Response = client.get("/oauth/callback", params=query, follow_redirects=False)
    return response


def show(client: TestClient, headers: dict[str, str], connection_id: str) -> Json:
    """GET /connections/{id}."""
    response = client.get(f"/connections/{connection_id}", headers=headers)
    assert response.status_code == 200, response.text
    shown: Json = response.json()
    return shown


def token_of(client: TestClient, headers: dict[str, str], connection_id: str) -> str:
    """GET /connections/{id}/token, checked not to be cacheable; the access token."""
    response = client.get(f"/connections/{connection_id}/token", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at"}
    token: str = body["access_token"]
    return token


def me(oauth: OAuthServer, token: str, header: str = "Authorization", template: str = "Bearer {}") -> httpx.Response:
    """The server's protected resource, called with ``token``."""
    return httpx.get(oauth.me_url, headers={header: template.format(token)})


def run_test(client: TestClient, headers: dict[str, str], connection_id: str) -> Json:
    """POST /connections/{id}/test; its report."""
    response = client.post(f"/connections/{connection_id}/test", headers=headers)
    assert response.status_code == 200, response.text
    report: Json = response.json()
    return report


def stored_credentials(client: TestClient, connection_id: str) -> typing.Any:
    """The connection's decrypted credentials as the running app's store holds them (None when there are none)."""
    return portal(client).call(store_of(client).credentials.load, connection_id)


def database_dump(client: TestClient) -> str:
    """Every row of the tables that hold connections, as the database stores them (ciphertext and all)."""

    async def dump() -> str:
        rows: list[str] = []
        async with store_of(client).engine.connect() as conn:
            for table in ("connections", "credentials", "oauth_flows", "events"):
                result = await conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
                rows.extend(repr(tuple(row)) for row in result)
        return "\n".join(rows)

    return portal(client).call(dump)


def connections(client: TestClient, headers: dict[str, str]) -> list[Json]:
    """GET /connections."""
    response = client.get("/connections", headers=headers)
    assert response.status_code == 200, response.text
    items: list[Json] = response.json()["items"]
    return items


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def authorized(client: TestClient, headers: dict[str, str], oauth: OAuthServer, **body: typing.Any) -> Json:
    """A connection through the whole code flow (auto-approved); the connection as the callback left it."""
    created = connect(client, headers, **body)
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 200, page.text
    return show(client, headers, created["id"])


# -- authorization code -------------------------------------------------------------------------


@pytest.mark.parametrize("token_method", ["POST", "GET"])
@pytest.mark.parametrize("client_auth", ["header", "body", "both"])
def test_authorization_code_flow(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, client_auth: str, token_method: str
) -> None:
    """The whole code flow with PKCE works for each client authentication and token verb, and the token is usable."""
    add_integration(client, headers, code_spec(oauth, client_auth=client_auth, token_method=token_method))
    created = connect(client, headers)
    assert created["status"] == "pending"
    assert created["integration"] == "idp" and created["name"] == "DEV"
    url = created["authorize_url"]
    assert url.split("?")[0] == oauth.authorize_url
    query = query_of(url)
    assert query["response_type"] == "code"
    assert query["client_id"] == oauth.CONFIDENTIAL_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["scope"] == "read write"
    assert len(query["state"]) >= 43
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert oauth.CONFIDENTIAL_SECRET not in url

    back = auto_approve(oauth, url)
    assert back["state"] == query["state"] and back["code"]
    page = callback(client, back)
    assert page.status_code == 200, page.text
    assert "is connected" in page.text
    assert page.headers["cache-control"] == "no-store"

    shown = show(client, headers, created["id"])
    assert shown["status"] == "active"
    assert shown["scopes"] == ["read", "write"]
    assert shown["expires_at"] is not None and shown["last_error"] is None
    assert datetime.fromisoformat(shown["expires_at"]) > datetime.now(UTC)
    assert oauth.stats()["token_calls"]["authorization_code"] == 1

    token = token_of(client, headers, created["id"])
    answer = me(oauth, token)
    assert answer.status_code == 200
    assert answer.json()["sub"] == oauth.USERNAME and answer.json()["scope"] == "read write"
    report = run_test(client, headers, created["id"])
    assert report["ok"] is True and report["status"] == 200, report


def test_code_flow_without_pkce_through_the_consent_form_to_return_to(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """With ``pkce: false`` no challenge is sent; after sign-in and consent the browser goes to ``return_to``."""
    add_integration(client, headers, code_spec(oauth, pkce=False))
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done?tab=crm")
    query = query_of(created["authorize_url"])
    assert "code_challenge" not in query and "code_challenge_method" not in query

    page = callback(client, consent(oauth, created["authorize_url"]))
    assert page.status_code == 303, page.text
    location = httpx.URL(page.headers["location"])
    assert f"{location.scheme}://{location.host}{location.path}" == f"{APP_ORIGIN}/done"
    assert dict(location.params) == {"tab": "crm", "connection_id": created["id"], "status": "active"}
    assert show(client, headers, created["id"])["status"] == "active"
    assert me(oauth, token_of(client, headers, created["id"])).status_code == 200


def test_reconnect_issues_a_new_authorization(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``/reconnect`` gives a new state; completing it replaces the tokens of an active connection."""
    add_integration(client, headers, code_spec(oauth))
    first = authorized(client, headers, oauth)
    old_token = token_of(client, headers, first["id"])
    again = client.post(f"/connections/{first['id']}/reconnect", headers=headers)
    assert again.status_code == 200, again.text
    url = again.json()["authorize_url"]
    assert query_of(url)["state"] != ""
    assert callback(client, auto_approve(oauth, url)).status_code == 200
    new_token = token_of(client, headers, first["id"])
    assert new_token != old_token
    assert me(oauth, new_token).status_code == 200


def test_issuer_that_matches_is_accepted(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """When the server sends ``iss`` and it is the configured issuer, the flow completes (RFC 9207)."""
    oauth.configure(issuer=oauth.issuer)
    add_integration(client, headers, code_spec(oauth, issuer=oauth.issuer))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    assert back["iss"] == oauth.issuer
    assert callback(client, back).status_code == 200
    assert show(client, headers, created["id"])["status"] == "active"


# -- authorization code: refused ----------------------------------------------------------------


def test_state_replay_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A second callback with a used state is a 400 page and changes nothing."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    assert callback(client, back).status_code == 200
    before = show(client, headers, created["id"])
    token = token_of(client, headers, created["id"])
    calls = oauth.stats()["token_calls"]["authorization_code"]

    replay = callback(client, back)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert show(client, headers, created["id"]) == before
    assert token_of(client, headers, created["id"]) == token
    assert oauth.stats()["token_calls"]["authorization_code"] == calls


def test_unknown_state_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A callback whose state AuthBridge never issued is a 400 page and calls no token endpoint."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    forged = callback(client, {**back, "state": "x" * 43})
    assert forged.status_code == 400
    assert "unknown" in forged.text
    assert callback(client, {"code": back["code"]}).status_code == 400  # no state at all
    assert oauth.stats()["token_calls"]["authorization_code"] == 0
    assert show(client, headers, created["id"])["status"] == "pending"


def test_expired_state_is_refused(
    make_clocked_client: ClockedClientFactory, env: dict[str, str], oauth: OAuthServer
) -> None:
    """A state older than 10 minutes is refused, even with a valid code."""
    clock = FakeClock(datetime.now(UTC))
    client = make_clocked_client(env, clock=clock)
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    clock.advance(minutes=10, seconds=1)
    late = callback(client, back)
    assert late.status_code == 400
    assert "expired" in late.text
    assert oauth.stats()["token_calls"]["authorization_code"] == 0
    assert show(client, headers, created["id"])["status"] == "pending"


def test_pkce_verifier_mismatch_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A code issued for flow A brought back with the state of flow B fails at the server (verifier mismatch)."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    flow_a = created["authorize_url"]
    again = client.post(f"/connections/{created['id']}/reconnect", headers=headers)
    assert again.status_code == 200, again.text
    flow_b = again.json()["authorize_url"]
    assert query_of(flow_a)["code_challenge"] != query_of(flow_b)["code_challenge"]

    code_a = auto_approve(oauth, flow_a)["code"]
    page = callback(client, {"code": code_a, "state": query_of(flow_b)["state"]})
    assert page.status_code == 400
    assert "invalid_grant" in page.text
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error"
    assert "invalid_grant" in shown["last_error"]
    assert stored_credentials(client, created["id"]) is None
    refused = client.get(f"/connections/{created['id']}/token", headers=headers)
    assert refused.status_code == 409
    assert oauth.stats()["token_calls"]["authorization_code"] == 1


def test_access_denied(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Deny on the consent form: the connection is in error with the provider's message, and no token is asked for."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done")
    back = consent(oauth, created["authorize_url"], approve=False)
    assert back["error"] == "access_denied"
    page = callback(client, back)
    assert page.status_code == 303
    target = httpx.URL(page.headers["location"])
    assert target.params["status"] == "error"
    assert "access_denied" in target.params["error"]
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error"
    assert "access_denied" in shown["last_error"]
    assert back["error_description"] in shown["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 0
    assert stored_credentials(client, created["id"]) is None


def test_issuer_mismatch_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An ``iss`` other than the configured issuer is refused before the code is exchanged (RFC 9207)."""
    oauth.configure(issuer=oauth.issuer)
    add_integration(client, headers, code_spec(oauth, issuer="https://real-idp.example"))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    page = callback(client, back)
    assert page.status_code == 400
    assert "issuer" in page.text
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error" and "issuer" in shown["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 0
    assert stored_credentials(client, created["id"]) is None


@pytest.mark.parametrize("slash_on", ["server", "spec"])
def test_issuer_compared_exactly(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, slash_on: str
) -> None:
    """``iss`` is compared as a plain string (RFC 9207): a trailing slash on either side is another issuer."""
    oauth.configure(issuer=oauth.issuer + ("/" if slash_on == "server" else ""))
    add_integration(client, headers, code_spec(oauth, issuer=oauth.issuer + ("/" if slash_on == "spec" else "")))
    created = connect(client, headers)
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 400
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error" and "unexpected issuer (RFC 9207 iss mismatch)" in shown["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 0
    assert stored_credentials(client, created["id"]) is None


def test_html_page_from_the_token_endpoint(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An HTML page with status 200 from the token endpoint is a clear error naming the integration and endpoint."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    oauth.configure(fail_next={"status": 200, "content_type": "text/html", "body": "<html><p>Sign in</p></html>"})
    page = callback(client, back)
    assert page.status_code == 400
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error"
    assert shown["last_error"].startswith(f"idp: token endpoint {oauth.token_url} answered an HTML page")
    assert "Sign in" not in shown["last_error"]
    assert stored_credentials(client, created["id"]) is None
    assert client.get(f"/connections/{created['id']}/token", headers=headers).status_code == 409


# -- token grants fetched at creation -----------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["header", "body", "both"])
def test_client_credentials(client: TestClient, headers: dict[str, str], oauth: OAuthServer, client_auth: str) -> None:
    """The token is fetched when the connection is created; the connection is active and its token works."""
    add_integration(client, headers, grant_spec(oauth, "client_credentials", client_auth=client_auth))
    created = connect(client, headers)
    assert created["status"] == "active" and "authorize_url" not in created
    assert created["expires_at"] is not None
    assert oauth.stats()["token_calls"]["client_credentials"] == 1
    answer = me(oauth, token_of(client, headers, created["id"]))
    assert answer.status_code == 200 and answer.json()["sub"] == oauth.CONFIDENTIAL_ID
    assert run_test(client, headers, created["id"])["ok"] is True


def test_client_credentials_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A wrong client secret gives 422 with the server's error, the secret redacted, and stores nothing."""
    wrong = "wrong-secret-0a9b8c7d"
    add_integration(client, headers, grant_spec(oauth, "client_credentials", client_secret=wrong))
    response = client.post("/connections", json={"integration": "idp", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "connect_failed"
    assert "invalid_client" in error["message"] and oauth.token_url in error["message"]
    assert wrong not in response.text
    assert connections(client, headers) == []
    assert oauth.stats()["token_calls"]["client_credentials"] == 1


def test_password_grant(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """The password grant takes the user's name and password from ``credentials``; a wrong password stores nothing."""
    add_integration(client, headers, grant_spec(oauth, "password"))
    bad = client.post(
        "/connections",
        json={"integration": "idp", "name": "DEV", "credentials": {"username": "alice", "password": "not-her-pass"}},
        headers=headers,
    )
    assert bad.status_code == 422, bad.text
    assert "invalid_grant" in bad.json()["error"]["message"]
    assert "not-her-pass" not in bad.text
    assert connections(client, headers) == []

    created = connect(client, headers, credentials={"username": oauth.USERNAME, "password": oauth.PASSWORD})
    assert created["status"] == "active"
    assert me(oauth, token_of(client, headers, created["id"])).json()["sub"] == oauth.USERNAME
    assert oauth.PASSWORD not in database_dump(client)
    assert oauth.PASSWORD not in json.dumps(show(client, headers, created["id"]))


def test_custom_token(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A custom token login (JSON body, nested answer) gives an active connection whose header works upstream."""
    add_integration(client, headers, custom_spec(oauth))
    created = connect(client, headers, "custom", credentials={"username": oauth.USERNAME, "password": oauth.PASSWORD})
    assert created["status"] == "active"
    expires = datetime.fromisoformat(created["expires_at"]) - datetime.now(UTC)
    assert 3500 < expires.total_seconds() <= 3600
    assert oauth.stats()["token_calls"]["custom"] == 1
    session = token_of(client, headers, created["id"])
    assert me(oauth, session, "X-Session-Token", "{}").json()["session"] is True
    report = run_test(client, headers, created["id"])
    assert report["ok"] is True, report


def test_custom_token_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A wrong password at the custom login gives 422 with the upstream's error and stores nothing."""
    add_integration(client, headers, custom_spec(oauth))
    response = client.post(
        "/connections",
        json={"integration": "custom", "name": "DEV", "credentials": {"username": "alice", "password": "guess-1234"}},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "bad_credentials" in message and "custom" in message and oauth.custom_login_url in message
    assert "guess-1234" not in response.text
    assert connections(client, headers) == []


def test_custom_token_html_page(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An HTML page with status 200 from the login endpoint is a 422 naming the endpoint; nothing is stored."""
    add_integration(client, headers, custom_spec(oauth))
    oauth.configure(fail_next={"status": 200, "content_type": "text/html", "body": "<html>maintenance</html>"})
    response = client.post(
        "/connections",
        json={"integration": "custom", "name": "DEV", "credentials": {"username": "alice", "password": "wonderland"}},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert (
        f"custom: token endpoint {oauth.custom_login_url} answered an HTML page" in response.json()["error"]["message"]
    )
    assert connections(client, headers) == []


# -- api token and basic ------------------------------------------------------------------------


def sent_to_echo(client: TestClient, connection_id: str, path: str = "/api/echo/x") -> Json:
    """What AuthBridge puts on a request of this connection, as the server's echo endpoint saw it.

    The request is built by the same function ``POST /connections/{id}/test`` uses, from the stored
    credentials, and sent to the real server.
    """
    store = store_of(client)
    record = portal(client).call(store.connections.get, connection_id)
    spec = portal(client).call(store.integrations.get, record.integration_key).spec
    creds = stored_credentials(client, connection_id)
    ctx = AuthContext(
        integration=spec,
        parameters=record.parameters,
        inputs=creds.inputs,
        credentials=creds.extra,
        access_token=creds.access_token,
        allow_http=lambda _host: True,
    )
    echoed: Json = httpx.Client().send(api_request(ctx, "GET", path)).json()
    return echoed


def test_api_token_in_a_custom_header(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An API token is stored encrypted and rides in the configured header with the configured template."""
    api_token = "apitok-3f9a1c77d2e8b5"
    spec = {
        "key": "apitok",
        "name": "API token",
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Api-Key", "template": "Token {token}"},
        "request": {"base_url": oauth.base_url, "headers": {"Accept": "application/json"}},
        "test": {"path": "/api/echo/ping"},
    }
    add_integration(client, headers, spec)
    created = connect(client, headers, "apitok", credentials={"token": api_token})
    assert created["status"] == "active"
    assert api_token not in database_dump(client)
    assert api_token not in json.dumps(connections(client, headers))
    report = run_test(client, headers, created["id"])
    assert report == {"ok": True, "status": 200, "detail": f"GET {oauth.base_url}/api/echo/ping answered 200"}
    echoed = sent_to_echo(client, created["id"])
    assert echoed["headers"]["x-api-key"] == f"Token {api_token}"
    assert "authorization" not in echoed["headers"]


def test_api_token_in_the_query(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """With ``token.in: query`` the token is a URL parameter of every request, next to the integration's own."""
    api_token = "apitok-q-0d1e2f3a4b"
    spec = {
        "key": "apiq",
        "name": "API token in query",
        "auth": {"type": "api_token"},
        "token": {"in": "query", "name": "api_key", "template": "{token}"},
        "request": {"base_url": oauth.base_url, "query": {"format": "json"}},
        "test": {"path": "/api/echo/ping"},
    }
    add_integration(client, headers, spec)
    created = connect(client, headers, "apiq", credentials={"token": api_token})
    assert run_test(client, headers, created["id"])["ok"] is True
    echoed = sent_to_echo(client, created["id"])
    assert echoed["query"] == {"api_key": [api_token], "format": ["json"]}
    assert "authorization" not in echoed["headers"]
    assert api_token not in database_dump(client)


def test_basic(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Basic credentials are stored encrypted and sent as ``Authorization: Basic``."""
    password = "basic-pw-8e7d6c5b4a"
    spec = {
        "key": "basic",
        "name": "Basic",
        "auth": {"type": "basic"},
        "request": {"base_url": oauth.base_url},
        "test": {"path": "/api/echo/ping"},
    }
    add_integration(client, headers, spec)
    created = connect(client, headers, "basic", credentials={"username": "bob", "password": password})
    assert created["status"] == "active"
    assert password not in database_dump(client)
    assert password not in json.dumps(show(client, headers, created["id"]))
    assert run_test(client, headers, created["id"])["ok"] is True
    echoed = sent_to_echo(client, created["id"])
    assert echoed["headers"]["authorization"] == "Basic Ym9iOmJhc2ljLXB3LThlN2Q2YzViNGE="  # bob:basic-pw-...
    assert client.get(f"/connections/{created['id']}/token", headers=headers).status_code == 409


# -- delete and revoke --------------------------------------------------------------------------


def test_delete_revokes_upstream(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """DELETE revokes the refresh and access tokens at the server, then forgets the connection."""
    add_integration(client, headers, code_spec(oauth))
    connection = authorized(client, headers, oauth)
    token = token_of(client, headers, connection["id"])
    assert me(oauth, token).status_code == 200

    deleted = client.delete(f"/connections/{connection['id']}", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "deleted": True,
        "revoked": True,
        "revoke_error": None,
        "revocations": [
            {"token": "refresh_token", "revoked": True, "error": None},
            {"token": "access_token", "revoked": True, "error": None},
        ],
    }
    stats = oauth.stats()
    assert stats["revocations"] == 2  # refresh token, then access token
    assert stats["revoked_tokens"] == 2
    assert me(oauth, token).status_code == 401
    assert client.get(f"/connections/{connection['id']}", headers=headers).status_code == 404
    assert connections(client, headers) == []


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ({"status": 503, "body": "<h1>busy</h1>", "content_type": "text/html"}, "answered 503"),
        (
            {"status": 400, "body": '{"error": "unsupported_token_type"}', "content_type": "application/json"},
            "answered 400 (unsupported_token_type)",
        ),
    ],
)
def test_refused_refresh_token_revocation_still_revokes_the_access_token(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, fault: Json, shown: str
) -> None:
    """The endpoint refuses the refresh token (503, unsupported_token_type): the access token is revoked anyway."""
    add_integration(client, headers, code_spec(oauth))
    connection = authorized(client, headers, oauth)
    access = token_of(client, headers, connection["id"])
    creds = stored_credentials(client, connection["id"])
    assert creds is not None and creds.refresh_token is not None
    oauth.configure(revoke_fault={**fault, "kind": "refresh_token"})

    deleted = client.delete(f"/connections/{connection['id']}", headers=headers)

    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["deleted"] is True and body["revoked"] is False
    refresh_outcome, access_outcome = body["revocations"]
    assert access_outcome == {"token": "access_token", "revoked": True, "error": None}
    assert refresh_outcome["token"] == "refresh_token" and refresh_outcome["revoked"] is False
    assert shown in refresh_outcome["error"] and oauth.revoke_url in refresh_outcome["error"]
    assert body["revoke_error"] == f"refresh token: {refresh_outcome['error']}"
    assert not oauth.is_active(access)  # revoked at the server
    assert me(oauth, access).status_code == 401
    assert oauth.is_active(creds.refresh_token)  # its revocation was refused: reported, not hidden
    assert oauth.stats()["revocations"] == 2
    assert access not in deleted.text and creds.refresh_token not in deleted.text
    assert connections(client, headers) == []


@pytest.mark.parametrize("where", ["closed port", "404 path"])
def test_failing_revoke_still_deletes(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, where: str
) -> None:
    """A revocation that fails is reported in the DELETE answer, and the connection is deleted all the same."""
    revoke_url = f"http://127.0.0.1:{closed_port()}/revoke" if where == "closed port" else f"{oauth.base_url}/nope"
    add_integration(client, headers, grant_spec(oauth, "client_credentials", revoke_url=revoke_url))
    created = connect(client, headers)
    token = token_of(client, headers, created["id"])
    deleted = client.delete(f"/connections/{created['id']}", headers=headers)
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["deleted"] is True and body["revoked"] is False
    assert revoke_url in body["revoke_error"]
    assert token not in body["revoke_error"]
    assert connections(client, headers) == []
    assert stored_credentials(client, created["id"]) is None
    assert me(oauth, token).status_code == 200  # not revoked upstream


# -- refused input: 422 with every problem, nothing stored --------------------------------------


def test_every_input_problem_is_listed(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Missing and unknown parameters, an unsafe host value, misfit credentials and a foreign return_to: one 422."""
    spec = {
        "key": "acme",
        "name": "Acme",
        "parameters": [
            {"name": "serverName", "required": True},
            {"name": "region", "required": True, "enum": ["eu", "us"]},
        ],
        "auth": {"type": "api_token"},
        "request": {"base_url": "https://{serverName}.acme.example/{region}"},
    }
    add_integration(client, headers, spec)
    body = {
        "integration": "acme",
        "name": "DEV",
        "parameters": {"serverName": "evil.example/x", "regoin": "eu"},
        "credentials": {"password": "pw-should-not-echo"},
        "return_to": "https://attacker.example/steal",
    }
    response = client.post("/connections", json=body, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    paths = sorted(item["path"] for item in error["errors"])
    assert paths == [
        "credentials.password",
        "credentials.token",
        "parameters.region",
        "parameters.regoin",
        "parameters.serverName",
        "return_to",
    ]
    assert "did you mean region" in response.text
    assert "pw-should-not-echo" not in response.text
    assert connections(client, headers) == []


def test_code_flow_input_problems(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An authorization-code connection takes no credentials, and an unknown integration is a 404; nothing stored."""
    add_integration(client, headers, code_spec(oauth))
    response = client.post(
        "/connections",
        json={"integration": "idp", "name": "DEV", "credentials": {"token": "t"}, "return_to": "javascript:alert(1)"},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert sorted(e["path"] for e in response.json()["error"]["errors"]) == ["credentials.token", "return_to"]
    unknown = client.post("/connections", json={"integration": "nope", "name": "DEV"}, headers=headers)
    assert unknown.status_code == 404
    extra = client.post("/connections", json={"integration": "idp", "name": "DEV", "colour": "red"}, headers=headers)
    assert extra.status_code == 422
    assert connections(client, headers) == []
    unauthenticated = client.post("/connections", json={"integration": "idp", "name": "DEV"})
    assert unauthenticated.status_code == 401


# -- no token or secret in the management views -------------------------------------------------


def test_views_never_show_tokens_or_secrets(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """GET /connections and /connections/{id} show neither tokens nor secret parameter values."""
    secret_value = "param-secret-6b5a4c3d2e"
    spec = code_spec(oauth)
    spec["parameters"] = [{"name": "tenant"}, {"name": "apiSecret", "secret": True}]
    spec["request"]["headers"] = {"X-Key": "{apiSecret}"}
    add_integration(client, headers, spec)
    connection = authorized(client, headers, oauth, parameters={"tenant": "t1", "apiSecret": secret_value})
    creds = stored_credentials(client, connection["id"])
    secrets = [creds.access_token, creds.refresh_token, secret_value, oauth.CONFIDENTIAL_SECRET]
    assert all(secrets)
    views = [
        client.get("/connections", headers=headers).text,
        client.get(f"/connections/{connection['id']}", headers=headers).text,
        client.post(f"/connections/{connection['id']}/test", headers=headers).text,
    ]
    for view in views:
        for secret in secrets:
            assert secret not in view
    assert connection["parameters"] == {"tenant": "t1", "apiSecret": "********"}
    dump = database_dump(client)
    for secret in secrets:
        assert secret not in dump


# -- more refusals found while testing ----------------------------------------------------------


def test_authorize_param_of_an_absent_optional_parameter_is_left_out(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An ``authorize_params`` entry whose optional parameter is absent is left out (it varies per connection)."""
    spec = code_spec(oauth)
    spec["parameters"] = [{"name": "tenant"}]
    spec["auth"]["authorize_params"] = {"tenant": "{tenant}"}
    add_integration(client, headers, spec)
    assert "tenant=" not in connect(client, headers)["authorize_url"]
    assert "tenant=t1" in connect(client, headers, parameters={"tenant": "t1"})["authorize_url"]


def test_authorize_url_that_cannot_be_built_stores_nothing(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """When the authorize URL cannot be rendered (a value would move its host), no connection is kept."""
    spec = code_spec(oauth)
    spec["parameters"] = [{"name": "tenant"}]
    spec["auth"]["authorization_url"] = "https://{tenant}.login.acme.example/authorize"
    add_integration(client, headers, spec)
    response = client.post(
        "/connections",
        json={"integration": "idp", "name": "DEV", "parameters": {"tenant": "x.evil.example/"}},
        headers=headers,
    )
    assert response.status_code in (400, 422), response.text
    assert connections(client, headers) == []


def test_missing_issuer_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """An integration that names its issuer refuses a response without ``iss`` (RFC 9207 mix-up defence)."""
    add_integration(client, headers, code_spec(oauth, issuer=oauth.issuer))  # the server sends no iss
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    assert "iss" not in back
    assert callback(client, back).status_code == 400
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error" and "issuer" in shown["last_error"]
    assert oauth.stats()["token_calls"]["authorization_code"] == 0


def test_callback_of_a_deleted_connection(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Deleting a pending connection drops its flow: the provider's later redirect is a 400 page."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    assert client.delete(f"/connections/{created['id']}", headers=headers).json()["revoked"] is False
    page = callback(client, back)
    assert page.status_code == 400 and "unknown" in page.text
    assert oauth.stats()["token_calls"]["authorization_code"] == 0


def test_error_body_with_status_200(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A 200 whose JSON body carries ``error`` (GitHub's habit) fails the authorization with the provider's text."""
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])
    body = '{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}'
    oauth.configure(fail_next={"status": 200, "content_type": "application/json", "body": body})
    assert callback(client, back).status_code == 400
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error"
    assert "bad_verification_code: The code passed is incorrect or expired." in shown["last_error"]
    assert stored_credentials(client, created["id"]) is None


def test_outbound_blocked_is_a_connection_error(
    make_client: ClientFactory, app_env: dict[str, str], oauth: OAuthServer
) -> None:
    """Without AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS the guard refuses loopback: a 422 or an error page, nothing kept."""
    env = {**app_env, "AUTHBRIDGE_ALLOW_HTTP_HOSTS": "127.0.0.1", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL}
    client = make_client(env)
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, grant_spec(oauth, "client_credentials", key="cc"))
    refused = client.post("/connections", json={"integration": "cc", "name": "DEV"}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS" in refused.json()["error"]["message"]
    assert connections(client, headers) == []

    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 400
    shown = show(client, headers, created["id"])
    assert shown["status"] == "error" and oauth.token_url in shown["last_error"]
    assert oauth.stats()["token_calls"] == dict.fromkeys(oauth.stats()["token_calls"], 0)


def test_token_endpoint_timeout(make_client: ClientFactory, env: dict[str, str], oauth: OAuthServer) -> None:
    """A token endpoint slower than AUTHBRIDGE_HTTP_TIMEOUT is a 422 saying so; nothing is stored."""
    client = make_client({**env, "AUTHBRIDGE_HTTP_TIMEOUT": "0.5"})
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, grant_spec(oauth, "client_credentials"))
    oauth.configure(delay_next=1.5)
    response = client.post("/connections", json={"integration": "idp", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    assert f"idp: {oauth.token_url} sent no complete answer within 0.5 s" in response.json()["error"]["message"]
    assert connections(client, headers) == []


def test_token_response_over_1_mib(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A token answer over 1 MiB is refused unread; nothing is stored."""
    add_integration(client, headers, custom_spec(oauth))
    big = '{"data": {"sessionToken": "' + "x" * (1024 * 1024) + '"}}'
    oauth.configure(fail_next={"status": 200, "content_type": "application/json", "body": big})
    response = client.post(
        "/connections",
        json={"integration": "custom", "name": "DEV", "credentials": {"username": "alice", "password": "wonderland"}},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert "more than 1 MiB" in response.json()["error"]["message"]
    assert connections(client, headers) == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"access_token": "abc\r\nX-Injected: 1", "token_type": "bearer"}, "an unusable access token"),
        ({"access_token": "abc", "refresh_token": "r\u0000t", "token_type": "Bearer"}, "an unusable refresh token"),
        ({"access_token": "abc", "token_type": "mac"}, "an unusable token_type ('mac' is not one"),
    ],
)
def test_unusable_token_answers_store_nothing(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, answer: Json, reason: str
) -> None:
    """A token with a control character, or of a type the spec does not accept, is refused: on create
    nothing is stored, on refresh the stored credentials stay. Unit tests: tests/auth/test_tokens.py."""
    add_integration(client, headers, grant_spec(oauth, "client_credentials"))
    fault = {"status": 200, "content_type": "application/json", "body": json.dumps(answer)}
    oauth.configure(fail_next=fault)
    refused = client.post("/connections", json={"integration": "idp", "name": "DEV"}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert reason in refused.json()["error"]["message"]
    assert connections(client, headers) == []

    created = connect(client, headers)
    before = stored_credentials(client, created["id"])
    oauth.configure(fail_next=fault)
    failed = client.post(f"/connections/{created['id']}/refresh", headers=headers)
    assert failed.status_code == 502, failed.text
    assert reason in failed.json()["error"]["message"]
    after = stored_credentials(client, created["id"])
    assert (after.access_token, after.refresh_token, after.version) == (
        before.access_token,
        before.refresh_token,
        before.version,
    )


# -- credential fields and refresh ---------------------------------------------------------------


def test_captured_fields_and_instance_url(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``authorize_params`` reach the provider; ``instance_url`` and a captured ``realmId`` fill request templates."""
    spec = code_spec(oauth, authorize_params={"prompt": "consent"}, callback={"capture": ["realmId"]})
    spec["request"] = {"base_url": "{credentials.instance_url}", "headers": {"X-Realm": "{credentials.realmId}"}}
    add_integration(client, headers, spec)
    created = connect(client, headers)
    assert query_of(created["authorize_url"])["prompt"] == "consent"
    back = auto_approve(oauth, created["authorize_url"])
    assert callback(client, {**back, "realmId": "4620816365"}).status_code == 200
    creds = stored_credentials(client, created["id"])
    assert creds.extra["instance_url"] == oauth.base_url
    assert creds.extra["realmId"] == "4620816365"
    report = run_test(client, headers, created["id"])
    assert report["ok"] is True and report["detail"].startswith(f"GET {oauth.base_url}/api/me"), report
    assert sent_to_echo(client, created["id"])["headers"]["x-realm"] == "4620816365"


def test_refresh_rotates_the_refresh_token(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``POST /refresh`` of a code-flow connection uses the refresh token grant and keeps the rotated pair."""
    add_integration(client, headers, code_spec(oauth))
    connection = authorized(client, headers, oauth)
    before = stored_credentials(client, connection["id"])
    refreshed = client.post(f"/connections/{connection['id']}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["status"] == "active"
    after = stored_credentials(client, connection["id"])
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    assert oauth.stats()["token_calls"]["refresh_token"] == 1
    assert me(oauth, token_of(client, headers, connection["id"])).status_code == 200
    assert client.post(f"/connections/{connection['id']}/refresh", headers=headers).status_code == 200
    assert oauth.stats()["token_calls"]["refresh_token"] == 2  # the rotated refresh token was the one sent


def test_custom_token_relogin(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Refreshing a custom-token connection logs in again with the stored (encrypted) username and password."""
    add_integration(client, headers, custom_spec(oauth))
    created = connect(client, headers, "custom", credentials={"username": "alice", "password": "wonderland"})
    first = token_of(client, headers, created["id"])
    oauth.expire_tokens()
    # The upstream's 401 triggers one re-login and one retry (refresh rule 2).
    assert run_test(client, headers, created["id"])["ok"] is True
    assert oauth.stats()["token_calls"]["custom"] == 2
    second = token_of(client, headers, created["id"])
    assert second != first
    assert client.post(f"/connections/{created['id']}/refresh", headers=headers).status_code == 200
    assert token_of(client, headers, created["id"]) not in {first, second}
    assert oauth.stats()["token_calls"]["custom"] == 3
    assert "wonderland" not in database_dump(client)


# -- client assertion (RFC 7523 §2.2, client_secret_jwt) -----------------------------------------


def test_client_secret_jwt_through_code_refresh_and_revocation(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """A client_secret_jwt client gets, refreshes and revokes its tokens with signed assertions, never its secret.

    The test server (Authlib's JWTBearerClientAssertion) checks each assertion's HS256 signature, that its
    ``aud`` is the endpoint it was sent to, and that its ``jti`` was not seen before.
    """
    add_integration(client, headers, code_spec(oauth, client_auth="client_secret_jwt"))
    connection = authorized(client, headers, oauth)
    assert connection["status"] == "active", connection
    first = token_of(client, headers, connection["id"])
    refreshed = client.post(f"/connections/{connection['id']}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    second = token_of(client, headers, connection["id"])
    assert second != first and me(oauth, second).status_code == 200
    assert oauth.stats()["token_calls"]["refresh_token"] == 1

    deleted = client.delete(f"/connections/{connection['id']}", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["revoked"] is True
    assert me(oauth, second).status_code == 401


def test_client_secret_jwt_with_a_wrong_secret_is_refused(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An assertion signed with the wrong secret is refused as invalid_client; the secret appears nowhere."""
    wrong = "wrong-secret-0a9b8c7d"
    spec = grant_spec(oauth, "client_credentials", client_auth="client_secret_jwt", client_secret=wrong)
    add_integration(client, headers, spec)
    response = client.post("/connections", json={"integration": "idp", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    assert "invalid_client" in response.json()["error"]["message"]
    assert wrong not in response.text
    assert connections(client, headers) == []
