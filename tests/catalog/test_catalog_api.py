"""The catalog over HTTP (both databases): list, search, show, and create an integration from an entry.

One entry per auth style runs end to end against local stand-ins in ``test_catalog_styles.py``.
"""

from __future__ import annotations

import json
import typing

import pytest

from authbridge.catalog import integration_from
from authbridge.spec import spec_to_dict
from tests.api.test_connections_e2e import PUBLIC_URL
from tests.conftest import ClientFactory, create_api_key, portal, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]
SECRET = "cs-catalog-6f1e0c2b9a"


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """A started AuthBridge on a fresh database (both backends)."""
    return make_client({**app_env, "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL})


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(client)}"}


def integrations(client: TestClient, headers: dict[str, str]) -> list[str]:
    response = client.get("/integrations", headers=headers)
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["items"]]


# -- GET /catalog ---------------------------------------------------------------------------------


def test_list_search_and_categories(client: TestClient, headers: dict[str, str]) -> None:
    everything = client.get("/catalog", headers=headers).json()
    assert len(everything["items"]) >= 89 and "crm" in everything["categories"]
    github = next(i for i in everything["items"] if i["key"] == "github")
    assert github == {
        "key": "github",
        "name": "GitHub",
        "description": github["description"],
        "categories": ["developer-tools"],
        "auth": "oauth2 (authorization_code)",
        "docs_url": "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps",
        "icon": "github",
    }
    crm = client.get("/catalog", params={"category": "crm", "q": "sales"}, headers=headers).json()["items"]
    assert [i["key"] for i in crm] == ["salesforce", "salesforcejwt"]


def test_unknown_category_is_a_422(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/catalog", params={"category": "toys"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["path"] == "category"


def test_show_an_entry(client: TestClient, headers: dict[str, str]) -> None:
    body = client.get("/catalog/zohocrm", headers=headers).json()
    assert body["default_scopes"] == ["ZohoCRM.users.READ", "ZohoCRM.modules.READ"]
    assert body["needs_client"] is True
    assert body["spec"]["pagination"]["type"] == "page"
    assert body["spec"]["rate_limit"]["documented"]
    assert body["spec"]["auth"]["client_secret"] == "********"
    assert any("Redirect" in step for step in body["catalog"]["setup"])


def test_unknown_entry_is_a_404(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/catalog/nope", headers=headers)
    assert response.status_code == 404
    assert "no catalog entry 'nope'" in response.json()["error"]["message"]


def test_the_catalog_needs_an_admin_key(client: TestClient) -> None:
    assert client.get("/catalog").status_code == 401
    plaintext, _ = portal(client).call(store_of(client).api_keys.create, "reader", ["connections:read"])
    response = client.get("/catalog/github", headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 403


# -- POST /integrations {"from_catalog": ...} -----------------------------------------------------


def test_create_from_catalog(client: TestClient, headers: dict[str, str]) -> None:
    body = {"from_catalog": "github", "client_id": "Iv1.abc", "client_secret": SECRET, "scopes": ["repo"], "key": "gh"}
    response = client.post("/integrations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"] == "gh" and created["name"] == "GitHub"
    assert created["auth"]["client_id"] == "Iv1.abc" and created["auth"]["scopes"] == ["repo"]
    assert created["auth"]["client_secret"] == "********"
    assert created["redirect_uri"] == f"{PUBLIC_URL}/oauth/callback"
    assert created["auth"]["token_url"] == "https://github.com/login/oauth/access_token"
    assert SECRET not in response.text
    again = client.post("/integrations", json=body, headers=headers)
    assert again.status_code == 409


def test_create_from_catalog_for_a_token_entry(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/integrations", json={"from_catalog": "stripe"}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["auth"] == {"type": "api_token"} and "redirect_uri" not in response.json()


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"from_catalog": "github", "client_id": "x"}, "client_secret", "GitHub needs the client secret"),
        ({"from_catalog": "github", "client_id": "x", "client_secret": "y", "auth": {}}, "auth", "is not taken"),
        ({"from_catalog": 3}, "from_catalog", "must be the key of a catalog entry"),
        ({"from_catalog": "github", "client_id": "x", "client_secret": "y", "scopes": [1]}, "scopes", "list of"),
        ({"from_catalog": "github", "client_id": "x", "client_secret": "y", "key": "a-b"}, "key", "letters and digits"),
        ({"from_catalog": "stripe", "client_id": "x"}, "client_id", "takes no OAuth app"),
        ({"from_catalog": "stripe", "scopes": ["read"]}, "scopes", "Stripe (api_token) has no scopes to give"),
    ],
)
def test_create_from_catalog_refused(
    client: TestClient, headers: dict[str, str], body: Json, path: str, message: str
) -> None:
    """Every bad request is a 422 naming the field; nothing is stored and no secret is echoed."""
    response = client.post("/integrations", json=body, headers=headers)
    assert response.status_code == 422, response.text
    errors = response.json()["error"]["errors"]
    assert any(e["path"] == path and message in e["message"] for e in errors), errors
    assert "y" not in [e.get("value") for e in errors]
    assert integrations(client, headers) == []


def test_create_from_an_unknown_entry(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/integrations", json={"from_catalog": "nope"}, headers=headers)
    assert response.status_code == 404
    assert integrations(client, headers) == []


# -- every entry applies and exports unchanged ----------------------------------------------------


def test_every_entry_applies_and_exports_unchanged(client: TestClient, headers: dict[str, str]) -> None:
    """All entries, filled with an OAuth app where needed, import as YAML and read back as the same specs."""
    from authbridge.catalog import entries
    from authbridge.spec import dump_spec

    specs = [
        integration_from(e, client_id="cid", client_secret=SECRET) if e.needs_client else e.spec for e in entries()
    ]
    stream = "\n---\n".join(dump_spec(s).replace("'********'", SECRET).replace("********", SECRET) for s in specs)
    response = client.post(
        "/integrations:import", content=stream.encode(), headers={**headers, "Content-Type": "application/yaml"}
    )
    assert response.status_code == 200, response.text
    assert sorted(response.json()["created"]) == sorted(s.key for s in specs)
    for spec in specs:
        exported = client.get(f"/integrations/{spec.key}", headers=headers).json()
        exported.pop("redirect_uri", None)
        assert exported == spec_to_dict(spec), spec.key
    assert SECRET not in json.dumps(client.get("/integrations", headers=headers).json())
