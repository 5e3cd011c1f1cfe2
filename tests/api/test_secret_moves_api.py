"""The management API refuses updates that send stored secrets somewhere new, on both databases.

The rules: tests/spec/test_destinations.py and tests/spec/test_secret_hosts.py; the store:
tests/store/test_secret_moves.py; a real token endpoint and an attacker's server:
tests/api/test_secret_moves_e2e.py.
"""

from __future__ import annotations

import typing

import yaml
from fastapi.testclient import TestClient

from tests.conftest import portal, store_of

CLIENT_SECRET = "client-SECRET-77aa88"
Json = dict[str, typing.Any]


def spec(**auth: typing.Any) -> Json:
    return {
        "key": "acme",
        "name": "Acme",
        "parameters": [{"name": "tenant", "pattern": "^[a-z]+$"}, {"name": "team"}],
        "auth": {
            "type": "oauth2",
            "authorization_url": "https://{tenant}.acme.example/authorize",
            "token_url": "https://{tenant}.acme.example/oauth/token",
            "revoke_url": "https://{tenant}.acme.example/oauth/revoke",
            "client_id": "abc",
            "client_secret": CLIENT_SECRET,
            **auth,
        },
        "request": {"base_url": "https://{tenant}.acme.example/api", "headers": {"X-Team": "{team}"}},
    }


def read(client: TestClient, headers: dict[str, str]) -> Json:
    response = client.get("/integrations/acme", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    body.pop("redirect_uri", None)
    return body


def created(client: TestClient, headers: dict[str, str], data: Json | None = None) -> Json:
    response = client.post("/integrations", json=data or spec(), headers=headers)
    assert response.status_code == 201, response.text
    return read(client, headers)


def test_a_kept_secret_cannot_follow_a_new_token_host(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """PUT of the spec as read back (secret ``********``) with the token URL on another host: 422, nothing changed."""
    stored = created(api_client, api_headers)
    attack = {**stored, "auth": {**stored["auth"], "token_url": "https://attacker.example/oauth/token"}}
    response = api_client.put("/integrations/acme", json=attack, headers=api_headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["errors"] == [
        {
            "path": "auth.token_url",
            "message": "would send the stored client secret to https://attacker.example, where it did not go "
            "before: give auth.client_secret again (the secret itself, not ********) to make this change",
        }
    ]
    assert CLIENT_SECRET not in response.text
    assert read(api_client, api_headers) == stored
    assert api_client.get("/integrations/acme", headers=api_headers).headers["etag"] == '"v1"'


def test_every_secret_url_and_the_base_url_are_held(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Revocation and refresh URLs with the kept secret, too; a path change on the same host is fine."""
    stored = created(api_client, api_headers)
    for auth in (
        {"revoke_url": "https://attacker.example/revoke"},
        {"token_url": "https://{tenant}.acme.example.attacker.example/token"},
    ):
        response = api_client.put(
            "/integrations/acme", json={**stored, "auth": {**stored["auth"], **auth}}, headers=api_headers
        )
        assert response.status_code == 422, auth
        assert response.json()["error"]["errors"][0]["path"] == f"auth.{next(iter(auth))}"
    refresh = {**stored, "refresh": {"request": {"url": "https://attacker.example/refresh"}}}
    response = api_client.put("/integrations/acme", json=refresh, headers=api_headers)
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["path"] == "refresh.request.url"
    path_only = {**stored, "auth": {**stored["auth"], "token_url": "https://{tenant}.acme.example/v2/token"}}
    assert api_client.put("/integrations/acme", json=path_only, headers=api_headers).status_code == 200


def test_the_secret_given_again_moves_the_host(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Without connected accounts, a PUT that gives the client secret itself may change the host."""
    stored = created(api_client, api_headers)
    moved = {
        **stored,
        "auth": {**stored["auth"], "token_url": "https://login.acme-new.example/token", "client_secret": "new"},
    }
    response = api_client.put("/integrations/acme", json=moved, headers=api_headers)
    assert response.status_code == 200, response.text
    assert response.json()["auth"]["token_url"] == "https://login.acme-new.example/token"


def test_accounts_secrets_cannot_move_through_the_api(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """With a connected account, even a PUT that gives a client secret cannot move the token or base URL host."""
    stored = created(api_client, api_headers)
    connection = api_client.post(
        "/connections", json={"integration": "acme", "name": "DEV", "parameters": {"tenant": "eu"}}, headers=api_headers
    )
    assert connection.status_code == 201, connection.text
    moved = {
        **stored,
        "auth": {**stored["auth"], "token_url": "https://attacker.example/token", "client_secret": "invented"},
        "request": {**stored["request"], "base_url": "https://attacker.example/api"},
    }
    response = api_client.put("/integrations/acme", json=moved, headers=api_headers)
    assert response.status_code == 422, response.text
    errors = response.json()["error"]["errors"]
    assert [e["path"] for e in errors] == ["auth.token_url", "request.base_url"]
    assert all("1 connected account to https://attacker.example" in e["message"] for e in errors)
    assert read(api_client, api_headers) == stored
    imported = api_client.post(
        "/integrations:import",
        content=yaml.safe_dump(moved),
        headers={**api_headers, "Content-Type": "application/yaml"},
    )
    assert imported.status_code == 422, imported.text
    assert imported.json()["error"]["errors"][0]["path"] == "acme.auth.token_url"
    assert read(api_client, api_headers) == stored


def test_a_user_chosen_token_host_is_refused(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A spec whose token URL takes its whole host from a parameter without enum or hosts is invalid."""
    data = spec(token_url="https://{tenant}/oauth/token")
    response = api_client.post("/integrations", json=data, headers=api_headers)
    assert response.status_code == 422
    [error] = response.json()["error"]["errors"]
    assert error["path"] == "auth.token_url" and "{tenant} decides its host" in error["message"]
    data["parameters"][0] = {"name": "tenant", "hosts": ["*.acme.example"]}
    assert api_client.post("/integrations", json=data, headers=api_headers).status_code == 201
    refused = api_client.post(
        "/connections",
        json={"integration": "acme", "name": "DEV", "parameters": {"tenant": "attacker.example"}},
        headers=api_headers,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["errors"] == [
        {"path": "parameters.tenant", "message": "must name one of the allowed hosts: *.acme.example"}
    ]


def test_a_parameter_made_secret_is_no_longer_shown(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """After ``team`` becomes ``secret: true`` the connection views mask its value; the database holds it encrypted."""
    stored = created(api_client, api_headers)
    body = {"integration": "acme", "name": "DEV", "parameters": {"tenant": "eu", "team": "team-VALUE-99"}}
    connection = api_client.post("/connections", json=body, headers=api_headers).json()
    assert connection["parameters"]["team"] == "team-VALUE-99"

    params = [p if p["name"] != "team" else {**p, "secret": True} for p in stored["parameters"]]
    response = api_client.put("/integrations/acme", json={**stored, "parameters": params}, headers=api_headers)
    assert response.status_code == 200, response.text

    shown = api_client.get(f"/connections/{connection['id']}", headers=api_headers).json()
    assert shown["parameters"] == {"tenant": "eu", "team": "********"}
    listed = api_client.get("/connections", headers=api_headers).text
    assert "team-VALUE-99" not in listed
    record = portal(api_client).call(store_of(api_client).connections.get, connection["id"])
    assert record.parameters["team"] == "team-VALUE-99"  # still there for the templates
