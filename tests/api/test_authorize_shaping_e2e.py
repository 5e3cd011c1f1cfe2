"""Authorization URL shaping through the API and the real test OAuth server (Authlib's authorization endpoint).

The URL building itself is unit-tested in ``tests/auth/test_authorize_shaping.py``.
"""

from __future__ import annotations

import typing

import httpx
import pytest

from tests.api.test_connections_e2e import (
    PUBLIC_URL,
    REDIRECT_URI,
    add_integration,
    auto_approve,
    callback,
    code_spec,
    connect,
    connections,
    query_of,
    show,
)
from tests.conftest import ClientFactory, create_api_key
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

HOSTILE = "alice&redirect_uri=https://evil.example/cb&state=forged#frag"


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    env = {**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL}
    return make_client(env)


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def shaped_spec(oauth: OAuthServer, **auth: typing.Any) -> dict[str, typing.Any]:
    spec = code_spec(oauth, **auth)
    spec["parameters"] = [{"name": "hint", "description": "optional login hint"}]
    return spec


def test_a_raw_plus_separated_scope_is_granted_by_the_server(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """``scope=read+write`` sent raw is read by the server as two scopes; the connection gets both."""
    add_integration(client, headers, shaped_spec(oauth, scope_separator="+", authorize_raw=["scope"]))
    created = connect(client, headers)
    assert "&scope=read+write&" in created["authorize_url"]
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 200, page.text
    assert show(client, headers, created["id"])["scopes"] == ["read", "write"]


def test_a_hostile_parameter_cannot_redirect_the_code(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """A login hint adding ``redirect_uri``, ``state`` and a fragment stays one value: the code comes back to us."""
    add_integration(client, headers, shaped_spec(oauth, authorize_params={"login_hint": "{hint}"}))
    created = connect(client, headers, parameters={"hint": HOSTILE})
    url = created["authorize_url"]
    assert "#" not in url
    assert httpx.URL(url).params.get_list("redirect_uri") == [REDIRECT_URI]
    assert query_of(url)["login_hint"] == HOSTILE
    back = auto_approve(oauth, url)  # asserts the server redirects to AuthBridge's callback
    assert back["state"] != "forged"
    assert callback(client, back).status_code == 200
    assert show(client, headers, created["id"])["status"] == "active"

    without = connect(client, headers)  # the optional hint left out
    assert "login_hint" not in query_of(without["authorize_url"])


def test_a_hostile_value_for_a_raw_parameter_is_refused(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """A raw parameter's value that would end the value is refused when connecting; no authorization starts."""
    spec = shaped_spec(oauth, authorize_params={"login_hint": "{hint}"}, authorize_raw=["login_hint"])
    add_integration(client, headers, spec)
    response = client.post(
        "/connections", json={"integration": "idp", "name": "DEV", "parameters": {"hint": HOSTILE}}, headers=headers
    )
    assert response.status_code in (400, 422), response.text
    message = response.json()["error"]["message"]
    assert "auth.authorize_raw: the value of login_hint" in message and "cannot be sent unencoded" in message
    assert all(item["status"] != "pending" for item in connections(client, headers))


def test_a_shaping_mistake_is_refused_by_the_api(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """Saving a spec whose raw scope holds a space fails with the field named."""
    response = client.post("/integrations", json=shaped_spec(oauth, authorize_raw=["scope"]), headers=headers)
    assert response.status_code == 422, response.text
    assert "scope is sent unencoded but holds ' '" in response.text
