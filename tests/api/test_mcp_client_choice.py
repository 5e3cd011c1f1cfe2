"""Which client AuthBridge is at an MCP server's authorization server: a client ID metadata document, else RFC 7591.

The authorization server is the test OAuth server (``tests.servers.oauth_server``), whose ``/mcp`` is
a protected resource in the MCP spec's shape. For a client ID metadata document the server must
fetch AuthBridge's document, so AuthBridge runs as ``authbridge run`` on loopback http with
AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP (see docs/architecture.md, "MCP: what issue 12 still
lacked"); the fallbacks run in-process.
Unit side: ``tests/test_config.py`` (which public URLs qualify).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_connections_e2e import connections
from tests.conftest import ClientFactory, create_api_key
from tests.servers.authbridge import Running, running_authbridge
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_HTTP_TIMEOUT": "2"})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Running]:
    """AuthBridge serving its client ID metadata document at its loopback http public URL."""
    with running_authbridge(tmp_path, AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP="true") as running:
        yield running


def create_mcp(server_url: str, base: str, headers: dict[str, str], **extra: typing.Any) -> httpx.Response:
    return httpx.post(
        f"{base}/connections",
        json={"integration": "mcp", "name": "tools", "parameters": {"server_url": server_url, **extra}},
        headers=headers,
    )


def consent(authorize_url: str) -> httpx.Response:
    """Follow the authorize URL (auto-approve) and deliver the redirect to AuthBridge's callback."""
    answer = httpx.get(authorize_url)
    assert answer.status_code == 302, answer.text
    return httpx.get(answer.headers["location"])


def test_client_id_metadata_document_end_to_end(served: Running, oauth: OAuthServer) -> None:
    """The server takes AuthBridge's document URL as the client id: no registration, PKCE, resource, refresh."""
    oauth.configure(auto_approve=True, client_id_metadata_documents=True, cimd_loopback_http=True)
    document_url = f"{served.url}/oauth/client-metadata.json"
    document = httpx.get(document_url)
    assert document.status_code == 200
    assert document.json() == {
        "client_id": document_url,
        "client_name": "AuthBridge",
        "client_uri": served.url,
        "redirect_uris": [f"{served.url}/oauth/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    server_url = f"{oauth.base_url}/mcp"
    created = create_mcp(server_url, served.url, served.headers)
    assert created.status_code == 201, created.text
    authorize_url = httpx.URL(created.json()["authorize_url"])
    assert authorize_url.params["client_id"] == document_url
    assert authorize_url.params["resource"] == server_url
    assert authorize_url.params["code_challenge_method"] == "S256"
    assert consent(str(authorize_url)).status_code == 200
    cid = created.json()["id"]
    assert httpx.get(f"{served.url}/connections/{cid}", headers=served.headers).json()["status"] == "active"
    stats = oauth.stats()
    assert stats["registrations"] == 0 and stats["cimd_fetches"] >= 1
    proxied = httpx.get(f"{served.url}/proxy/{cid}/", headers=served.headers)
    assert proxied.status_code == 200, proxied.text
    assert proxied.json()["resource"] == server_url
    # A public client's refresh: the id in the body, no secret, the resource named again.
    refreshed = httpx.post(f"{served.url}/connections/{cid}/refresh", headers=served.headers)
    assert refreshed.status_code == 200, refreshed.text
    assert httpx.get(f"{served.url}/proxy/{cid}/", headers=served.headers).json()["resource"] == server_url


def test_http_public_url_falls_back_to_registration(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """An http public URL (no loopback permission) never offers a document: the server registers a client."""
    oauth.configure(auto_approve=True, client_id_metadata_documents=True, cimd_loopback_http=True)
    assert client.get("/oauth/client-metadata.json").status_code == 404
    server_url = f"{oauth.base_url}/mcp"
    created = client.post(
        "/connections",
        json={"integration": "mcp", "name": "DEV", "parameters": {"server_url": server_url}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    authorize_url = httpx.URL(created.json()["authorize_url"])
    assert not authorize_url.params["client_id"].startswith("http")
    assert oauth.stats()["registrations"] == 1
    location = httpx.URL(httpx.get(str(authorize_url)).headers["location"])
    client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    assert client.get(f"/connections/{created.json()['id']}", headers=headers).json()["status"] == "active"
    assert oauth.stats()["cimd_fetches"] == 0


@pytest.mark.parametrize(
    ("cimd", "says"),
    [
        (True, "takes client ID metadata documents only from an https AuthBridge"),
        (False, "takes no client ID metadata documents"),
    ],
)
def test_no_client_kind_left_asks_for_a_client_id(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, cimd: bool, says: str
) -> None:
    """No registration endpoint and no usable document: a clear 422 asking for a client id; nothing stored."""
    oauth.configure(registration="off", client_id_metadata_documents=cimd)
    response = client.post(
        "/connections",
        json={"integration": "mcp", "name": "DEV", "parameters": {"server_url": f"{oauth.base_url}/mcp"}},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    message = response.text
    assert says in message and "auth.client_id" in message
    assert connections(client, headers) == []


def test_a_configured_client_id_wins(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A pre-registered client id is used as it is, even where documents and registration are offered."""
    oauth.configure(auto_approve=True, client_id_metadata_documents=True)
    spec = {
        "key": "ownmcp",
        "name": "Own MCP client",
        "parameters": [{"name": "server_url", "format": "url", "required": True}],
        "auth": {
            "type": "oauth2",
            "protected_resource": "{server_url}",
            "client_registration": "auto",
            "client_id": OAuthServer.PUBLIC_ID,
            "client_auth": "body",
        },
        "request": {"base_url": "{server_url}"},
    }
    assert client.post("/integrations", json=spec, headers=headers).status_code == 201
    created = client.post(
        "/connections",
        json={"integration": "ownmcp", "name": "DEV", "parameters": {"server_url": f"{oauth.base_url}/mcp"}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert httpx.URL(created.json()["authorize_url"]).params["client_id"] == OAuthServer.PUBLIC_ID
    assert oauth.stats()["registrations"] == 0 and oauth.stats()["cimd_fetches"] == 0


def test_scopes_parameter_replaces_the_servers(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``scopes`` given: asked for instead of the challenge's ``scope``, registered with, granted."""
    oauth.configure(auto_approve=True)
    server_url = f"{oauth.base_url}/mcp"
    created = client.post(
        "/connections",
        json={"integration": "mcp", "name": "DEV", "parameters": {"server_url": server_url, "scopes": "read write"}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    authorize_url = httpx.URL(created.json()["authorize_url"])
    assert authorize_url.params["scope"] == "read write"  # the challenge alone says "read"
    location = httpx.URL(httpx.get(str(authorize_url)).headers["location"])
    client.get(f"/oauth/callback?{location.query.decode()}", follow_redirects=False)
    connection = client.get(f"/connections/{created.json()['id']}", headers=headers).json()
    assert connection["status"] == "active" and sorted(connection["scopes"]) == ["read", "write"], connection
    # Without it, the challenge's scope.
    other = client.post(
        "/connections",
        json={"integration": "mcp", "name": "QA", "parameters": {"server_url": server_url}},
        headers=headers,
    )
    assert httpx.URL(other.json()["authorize_url"]).params["scope"] == "read"


@pytest.mark.parametrize("scopes", ['read"write', "read  write", " read", "r\u00e9ad"])
def test_scopes_parameter_must_be_scope_tokens(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer, scopes: str
) -> None:
    """A scope value outside RFC 6749's scope-token characters, or badly spaced, is refused naming the field."""
    response = client.post(
        "/connections",
        json={
            "integration": "mcp",
            "name": "DEV",
            "parameters": {"server_url": f"{oauth.base_url}/mcp", "scopes": scopes},
        },
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["error"]["errors"]] == ["parameters.scopes"]
    assert connections(client, headers) == []


def test_a_scope_parameter_must_exist(client: TestClient, headers: dict[str, str]) -> None:
    """``auth.scopes: ["{nope}"]`` names no parameter: refused at save time; a secret one too."""
    spec = {
        "key": "scoped",
        "name": "Scoped",
        "parameters": [{"name": "hidden", "secret": True}],
        "auth": {
            "type": "oauth2",
            "authorization_url": "https://login.example.com/a",
            "token_url": "https://login.example.com/t",
            "client_id": "id",
            "client_secret": "secret",
            "scopes": ["base", "{nope}", "{hidden}"],
        },
        "request": {"base_url": "https://api.example.com"},
    }
    response = client.post("/integrations", json=spec, headers=headers)
    assert response.status_code == 422, response.text
    problems = {e["path"]: e["message"] for e in response.json()["error"]["errors"]}
    assert problems == {
        "auth.scopes.1": "{nope} names no parameter of this integration",
        "auth.scopes.2": "{hidden} names a secret parameter (scopes are public)",
    }
