"""``auth.discovery`` end to end: endpoints from the real test server's RFC 8414 metadata, and lying servers.

AuthBridge runs in-process (the API through a TestClient); the authorization server is the test
OAuth server (``tests.servers.oauth_server``, which serves ``/.well-known/oauth-authorization-server``)
and the misbehaving one is ``tests.servers.bad_upstream``; both are real processes on 127.0.0.1.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_connections_e2e import (
    add_integration,
    connections,
    database_dump,
    stored_credentials,
)
from tests.conftest import ClientFactory, create_api_key, portal, store_of
from tests.servers.bad_upstream import BadUpstream, run_bad_upstream
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def bad_server() -> Iterator[BadUpstream]:
    with run_bad_upstream() as server:
        yield server


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_HTTP_TIMEOUT": "2"})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def discovered_spec(source: str, *, key: str = "found", **auth: typing.Any) -> dict[str, typing.Any]:
    """An authorization-code integration that names only its issuer (or metadata URL) and its client."""
    return {
        "key": key,
        "name": "Discovered",
        "auth": {
            "type": "oauth2",
            "discovery": source,
            "client_id": OAuthServer.CONFIDENTIAL_ID,
            "client_secret": OAuthServer.CONFIDENTIAL_SECRET,
            "scopes": ["read"],
            **auth,
        },
        "request": {"base_url": source},
        "test": {"path": "/api/me"},
    }


def authorize(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, key: str = "found"
) -> dict[str, typing.Any]:
    """Create a connection, follow its authorize URL (auto-approve) and deliver the redirect to the callback."""
    oauth.configure(auto_approve=True)
    created = client.post("/connections", json={"integration": key, "name": "DEV"}, headers=headers)
    assert created.status_code == 201, created.text
    url = created.json()["authorize_url"]
    assert url.startswith(oauth.authorize_url), url  # the endpoint came from the metadata
    redirect = httpx.get(url)
    location = httpx.URL(redirect.headers["location"])
    callback = client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    assert callback.status_code in (200, 302, 303, 400), callback.text
    answer = client.get(f"/connections/{created.json()['id']}", headers=headers)
    body: dict[str, typing.Any] = answer.json()
    return body


def test_issuer_alone_connects_refreshes_and_revokes(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Authorization, token, refresh and revocation endpoints all come from the issuer's metadata."""
    add_integration(client, headers, discovered_spec(oauth.issuer))
    connection = authorize(client, headers, oauth)
    assert connection["status"] == "active", connection
    cid = connection["id"]
    before = stored_credentials(client, cid)
    refreshed = client.post(f"/connections/{cid}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    assert stored_credentials(client, cid).access_token != before.access_token
    test = client.post(f"/connections/{cid}/test", headers=headers)
    assert test.json()["ok"] is True, test.text
    revocations = oauth.stats()["revocations"]
    deleted = client.delete(f"/connections/{cid}", headers=headers).json()
    assert (deleted["deleted"], deleted["revoked"]) == (True, True), deleted
    assert oauth.stats()["revocations"] > revocations


def test_metadata_url_works_too(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A metadata document's own URL is accepted; its issuer is the URL without the well-known part."""
    add_integration(client, headers, discovered_spec(f"{oauth.issuer}/.well-known/oauth-authorization-server"))
    assert authorize(client, headers, oauth)["status"] == "active"


def test_explicit_endpoint_wins(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A URL the spec gives is used as it is; discovery fills only the rest."""
    spec = discovered_spec(oauth.issuer, token_url=f"{oauth.base_url}/nowhere")
    add_integration(client, headers, spec)
    connection = authorize(client, headers, oauth)
    assert connection["status"] == "error"
    assert "/nowhere" in connection["last_error"]


def test_issuer_mismatch_is_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Metadata naming another issuer than the one asked for is refused (RFC 8414 §3.3); nothing is stored."""
    oauth.configure(issuer="https://elsewhere.example")
    try:
        add_integration(client, headers, discovered_spec(oauth.issuer))
        response = client.post("/connections", json={"integration": "found", "name": "DEV"}, headers=headers)
    finally:
        oauth.configure(issuer=None)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "names another issuer" in message and "RFC 8414" in message
    assert connections(client, headers) == []


def test_no_metadata_anywhere(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A server without metadata: the error lists every URL tried, in order."""
    add_integration(client, headers, discovered_spec(f"{oauth.base_url}/tenant"))
    response = client.post("/connections", json={"integration": "found", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    tried = [
        f"{oauth.base_url}/.well-known/oauth-authorization-server/tenant",
        f"{oauth.base_url}/.well-known/openid-configuration/tenant",
        f"{oauth.base_url}/tenant/.well-known/openid-configuration",
    ]
    assert message.index(tried[0]) < message.index(tried[1]) < message.index(tried[2]), message


@pytest.mark.parametrize(("mode", "reason"), [("bomb", "1 MiB"), ("ok", "names another issuer"), ("trickle", "within")])
def test_lying_metadata_server(
    client: TestClient, headers: dict[str, str], bad_server: BadUpstream, mode: str, reason: str
) -> None:
    """A gzip bomb, a trickle, or JSON that is not metadata: a clear error, nothing stored."""
    bad_server.mode(mode)
    try:
        add_integration(client, headers, discovered_spec(bad_server.base_url, key="liar"))
        response = client.post("/connections", json={"integration": "liar", "name": "DEV"}, headers=headers)
    finally:
        bad_server.mode("ok")
    assert response.status_code == 422, response.text
    assert reason in response.json()["error"]["message"]
    assert connections(client, headers) == []


def test_spec_without_endpoints_needs_discovery(client: TestClient, headers: dict[str, str]) -> None:
    """Without ``discovery`` the endpoints are still required, with the field named."""
    spec = discovered_spec("https://login.acme.example")
    del spec["auth"]["discovery"]
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 422
    fields = {item["path"] for item in response.json()["error"]["errors"]}
    assert {"auth.authorization_url", "auth.token_url"} <= fields


def test_hostile_discovery_parameter(client: TestClient, headers: dict[str, str]) -> None:
    """A parameter in the discovery URL's host cannot move it elsewhere."""
    spec = discovered_spec("https://{tenant}.login.acme.example")
    spec["parameters"] = [{"name": "tenant", "required": True}]
    add_integration(client, headers, spec)
    response = client.post(
        "/connections",
        json={"integration": "found", "name": "DEV", "parameters": {"tenant": "evil.example/x?"}},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert connections(client, headers) == []


def registering_spec(oauth: OAuthServer, key: str = "dyn") -> dict[str, typing.Any]:
    """Discovery and dynamic registration: the spec names no client at all."""
    spec = discovered_spec(oauth.issuer, key=key, client_registration="dynamic")
    del spec["auth"]["client_id"], spec["auth"]["client_secret"]
    spec["auth"]["registration_metadata"] = {"client_name": "AuthBridge test", "contacts": ["ops@example.com"]}
    return spec


def test_dynamic_registration_once_then_reused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """The first connection registers a client (RFC 7591); later ones, refreshes and revocation reuse it."""
    add_integration(client, headers, registering_spec(oauth))
    first = authorize(client, headers, oauth, key="dyn")
    assert first["status"] == "active", first
    second = authorize(client, headers, oauth, key="dyn")
    assert second["status"] == "active", second
    refreshed = client.post(f"/connections/{first['id']}/refresh", headers=headers)
    assert refreshed.status_code == 200, refreshed.text
    assert oauth.stats()["registrations"] == 1
    store = store_of(client)
    registered = portal(client).call(store.registrations.get, "dyn", f"{oauth.base_url}/oauth/register")
    assert registered is not None and registered.client_secret
    assert registered.client_secret not in database_dump(client)
    assert registered.client_secret not in repr(registered)
    shown = client.get("/integrations/dyn", headers=headers).text
    assert registered.client_secret not in shown
    events = client.get("/events", headers=headers).json()["items"]
    assert any(e["type"] == "integration.client_registered" for e in events)
    assert client.delete(f"/connections/{second['id']}", headers=headers).json()["revoked"] is True


def test_expiring_registration_is_renewed(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A client secret that expires within a minute is registered again before it is used."""
    oauth.configure(registration_secret_ttl=30)
    add_integration(client, headers, registering_spec(oauth))
    assert authorize(client, headers, oauth, key="dyn")["status"] == "active"
    assert authorize(client, headers, oauth, key="dyn")["status"] == "active"
    assert oauth.stats()["registrations"] == 2


def test_registration_refused(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A server refusing registration: its error and description in the answer, nothing stored."""
    oauth.configure(registration="refuse")
    add_integration(client, headers, registering_spec(oauth))
    response = client.post("/connections", json={"integration": "dyn", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "refused to register a client" in message and "invalid_client_metadata (registration is closed)" in message
    assert connections(client, headers) == []


def test_no_registration_endpoint(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Metadata without a registration endpoint: the error names the field to set."""
    oauth.configure(registration="off")
    add_integration(client, headers, registering_spec(oauth))
    response = client.post("/connections", json={"integration": "dyn", "name": "DEV"}, headers=headers)
    assert response.status_code == 422, response.text
    assert "registration_url" in response.text
    assert connections(client, headers) == []


def test_dynamic_registration_needs_an_endpoint(client: TestClient, headers: dict[str, str]) -> None:
    """Without discovery a registration URL is required, said at save time."""
    spec = discovered_spec("https://login.acme.example", client_registration="dynamic")
    del spec["auth"]["discovery"], spec["auth"]["client_id"]
    spec["auth"].update(authorization_url="https://login.acme.example/a", token_url="https://login.acme.example/t")
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 422
    assert {e["path"] for e in response.json()["error"]["errors"]} == {"auth.registration_url"}


def resource_spec(key: str = "mcpish") -> dict[str, typing.Any]:
    """The shape of the built-in MCP integration: a server URL and nothing else."""
    return {
        "key": key,
        "name": "Protected resource",
        "parameters": [{"name": "server_url", "format": "url", "required": True}],
        "auth": {"type": "oauth2", "protected_resource": "{server_url}", "client_registration": "dynamic"},
        "request": {"base_url": "{server_url}"},
    }


def connect_resource(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, server_url: str, key: str = "mcpish"
) -> httpx.Response:
    oauth.configure(auto_approve=True)
    response: httpx.Response = client.post(
        "/connections",
        json={"integration": key, "name": "DEV", "parameters": {"server_url": server_url}},
        headers=headers,
    )
    return response


def test_connect_a_protected_resource_by_url_alone(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """RFC 9728 from a 401's challenge → RFC 8414 → RFC 7591 → PKCE with resource → the proxy reaches it."""
    add_integration(client, headers, resource_spec())
    server_url = f"{oauth.base_url}/mcp"
    created = connect_resource(client, headers, oauth, server_url)
    assert created.status_code == 201, created.text
    authorize_url = httpx.URL(created.json()["authorize_url"])
    assert authorize_url.params["resource"] == server_url
    assert authorize_url.params["scope"] == "read"  # from the challenge
    assert authorize_url.params["code_challenge_method"] == "S256"
    location = httpx.URL(httpx.get(str(authorize_url)).headers["location"])
    client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    cid = created.json()["id"]
    assert client.get(f"/connections/{cid}", headers=headers).json()["status"] == "active"
    proxied = client.post(f"/proxy/{cid}/", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert proxied.status_code == 200, proxied.text
    assert proxied.json() == {"ok": True, "sub": "alice", "resource": server_url, "method": "POST"}
    # The refreshed token names the resource too (the resource server refuses one that does not).
    assert client.post(f"/connections/{cid}/refresh", headers=headers).status_code == 200
    assert client.get(f"/proxy/{cid}", headers=headers).json()["resource"] == server_url


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"prm_resource": "https://other.example/mcp"}, "for another resource"),
        ({"pkce_methods": ["plain"]}, "does not advertise PKCE with S256"),
        ({"registration": "refuse"}, "refused to register a client"),
    ],
)
def test_protected_resource_refusals(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, settings: dict[str, typing.Any], reason: str
) -> None:
    """A lying resource, an authorization server without S256, a refused registration: clear, nothing stored."""
    add_integration(client, headers, resource_spec())
    oauth.configure(**settings)
    try:
        response = connect_resource(client, headers, oauth, f"{oauth.base_url}/mcp")
    finally:
        oauth.reset()
    assert response.status_code == 422, response.text
    assert reason in response.json()["error"]["message"]
    assert connections(client, headers) == []


def test_a_resource_without_metadata(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A URL that is no protected resource: both well-known URLs tried and named."""
    add_integration(client, headers, resource_spec())
    response = connect_resource(client, headers, oauth, f"{oauth.base_url}/api/echo")
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert "/.well-known/oauth-protected-resource/api/echo" in message
    assert connections(client, headers) == []


def test_private_resource_refused_without_permission(make_client: ClientFactory, app_env: dict[str, str]) -> None:
    """With private networks not allowed, a loopback resource is refused before any request leaves."""
    strict = make_client(app_env)
    key_headers = {"Authorization": f"Bearer {create_api_key(strict)}"}
    add_integration(strict, key_headers, resource_spec())
    response = strict.post(
        "/connections",
        json={"integration": "mcpish", "name": "DEV", "parameters": {"server_url": "https://127.0.0.1:9/mcp"}},
        headers=key_headers,
    )
    assert response.status_code in (400, 422), response.text
    assert connections(strict, key_headers) == []


def test_the_builtin_mcp_integration(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``mcp`` exists without being declared: a server URL is all a connection needs."""
    assert client.get("/integrations", headers=headers).json()["items"] == []
    server_url = f"{oauth.base_url}/mcp"
    created = connect_resource(client, headers, oauth, server_url, key="mcp")
    assert created.status_code == 201, created.text
    location = httpx.URL(httpx.get(created.json()["authorize_url"]).headers["location"])
    client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    cid = created.json()["id"]
    assert client.get(f"/connections/{cid}", headers=headers).json()["status"] == "active"
    assert client.get(f"/proxy/{cid}/", headers=headers).json()["resource"] == server_url
    spec = client.get("/integrations/mcp", headers=headers).json()
    assert spec["auth"]["protected_resource"] == "{server_url}"
    # A second server gets its own client (one registration per registration endpoint and integration).
    assert oauth.stats()["registrations"] == 1
