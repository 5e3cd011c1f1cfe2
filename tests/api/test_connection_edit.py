"""``PATCH /connections/{id}``: an account changed in place, fed hostile values; the SDK's ``update`` over a served app.

The console's edit page over the same broker call is tested in ``tests/console/test_new_user_browser.py``.
"""

from __future__ import annotations

import typing
from pathlib import Path

from tests.conftest import ClientFactory, create_api_key, sqlite_env

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.servers.fixtures import OAuthServer

TOKEN_SPEC = {
    "key": "tok",
    "name": "Token API",
    "parameters": [
        {"name": "host", "required": True, "format": "hostname", "hosts": ["*.acme.example"]},
        {"name": "apiSecret", "secret": True},
    ],
    "auth": {"type": "api_token"},
    "request": {"base_url": "https://{host}/v1", "headers": {"X-Key": "{apiSecret}"}},
}
OLD, NEW, PARAM_SECRET = "tok-OLD-4f1c9e", "tok-NEW-8d2a7b", "param-S3CRET-77"


def _create(client: TestClient, headers: dict[str, str]) -> str:
    assert client.post("/integrations", json=TOKEN_SPEC, headers=headers).status_code == 201
    body = {
        "integration": "tok",
        "name": "DEV",
        "parameters": {"host": "eu.acme.example", "apiSecret": PARAM_SECRET},
        "credentials": {"token": OLD},
    }
    created = client.post("/connections", json=body, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _token(client: TestClient, headers: dict[str, str], cid: str) -> str:
    return str(client.get(f"/connections/{cid}/token", headers=headers).json()["access_token"])


def test_rename_and_rotate_in_place(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """A new name and a new token keep the id; no secret is in any answer; an event records what changed."""
    cid = _create(api_client, api_headers)
    renamed = api_client.patch(f"/connections/{cid}", json={"name": "PROD"}, headers=api_headers)
    assert renamed.status_code == 200 and renamed.json()["id"] == cid and renamed.json()["name"] == "PROD"
    rotated = api_client.patch(f"/connections/{cid}", json={"credentials": {"token": NEW}}, headers=api_headers)
    assert rotated.status_code == 200, rotated.text
    for response in (renamed, rotated):
        assert OLD not in response.text and NEW not in response.text and PARAM_SECRET not in response.text
    assert _token(api_client, api_headers, cid) == NEW
    events = api_client.get("/events", headers=api_headers, params={"type": "connection.updated"}).json()["items"]
    assert [e["data"]["fields"] for e in events] == [["credentials"], ["name"]]
    assert NEW not in str(events)


def test_hostile_values_are_refused_and_change_nothing(api_client: TestClient, api_headers: dict[str, str]) -> None:
    """Parameter values are checked as on create; new values need the token again; nothing changes on a refusal."""
    cid = _create(api_client, api_headers)
    before = api_client.get(f"/connections/{cid}", headers=api_headers).json()
    for body, field in (
        ({"parameters": {"host": "evil.example"}, "credentials": {"token": NEW}}, "host"),
        ({"parameters": {"host": "eu.acme.example/#"}, "credentials": {"token": NEW}}, "host"),
        ({"parameters": {"host": "a\r\nX-Evil: 1"}, "credentials": {"token": NEW}}, "host"),
        ({"parameters": {"nope": "x"}}, "nope"),
        ({"parameters": {"host": "us.acme.example"}}, "credentials"),  # the old token would follow the new host
        ({"name": "   "}, "name"),
        ({"credentials": {"token": ""}}, "token"),
        ({"credentials": {"password": "x"}}, "password"),
    ):
        response = api_client.patch(f"/connections/{cid}", json=body, headers=api_headers)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text, (body, response.text)
        assert NEW not in response.text and PARAM_SECRET not in response.text
    assert api_client.patch(f"/connections/{cid}", json={"id": "x"}, headers=api_headers).status_code == 422
    assert api_client.patch(f"/connections/{cid}", json={"name": "x" * 201}, headers=api_headers).status_code == 422
    assert api_client.patch("/connections/nope", json={"name": "x"}, headers=api_headers).status_code == 404
    assert api_client.get(f"/connections/{cid}", headers=api_headers).json() == before
    assert _token(api_client, api_headers, cid) == OLD
    # With the token given again, the new host is accepted; the secret parameter left out is kept.
    moved = api_client.patch(
        f"/connections/{cid}",
        json={"parameters": {"host": "us.acme.example"}, "credentials": {"token": NEW}},
        headers=api_headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parameters"] == {"host": "us.acme.example", "apiSecret": "********"}


def test_new_parameters_set_a_provider_token_aside(
    make_client: ClientFactory, tmp_path: Path, oauth: OAuthServer
) -> None:
    """A client-credentials account whose parameters change needs re-authorization; Reconnect makes it active."""
    api_client = make_client(sqlite_env(tmp_path, AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true"))
    api_headers = {"Authorization": f"Bearer {create_api_key(api_client)}"}
    spec = {
        "key": "cc",
        "name": "CC",
        "parameters": [{"name": "tenant", "pattern": "^[a-z]+$"}],
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": oauth.token_url,
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
        },
        "request": {"base_url": oauth.base_url, "headers": {"X-Tenant": "{tenant}"}},
    }
    assert api_client.post("/integrations", json=spec, headers=api_headers).status_code == 201
    body = {"integration": "cc", "name": "P", "parameters": {"tenant": "one"}}
    cid = api_client.post("/connections", json=body, headers=api_headers).json()["id"]
    same = api_client.patch(f"/connections/{cid}", json={"parameters": {"tenant": "one"}}, headers=api_headers)
    assert same.json()["status"] == "active"  # the same values change nothing
    changed = api_client.patch(f"/connections/{cid}", json={"parameters": {"tenant": "two"}}, headers=api_headers)
    assert changed.status_code == 200 and changed.json()["status"] == "needs_reauth"
    refused = api_client.patch(f"/connections/{cid}", json={"credentials": {"token": "x"}}, headers=api_headers)
    assert refused.status_code == 422 and "provider" in refused.text
    assert api_client.post(f"/connections/{cid}/reconnect", json={}, headers=api_headers).json()["status"] == "active"
