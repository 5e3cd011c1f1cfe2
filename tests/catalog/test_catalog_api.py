"""The catalog over HTTP, and one entry per auth style run end to end against local stand-ins (both databases).

The end-to-end cases take an entry as a user would (``integration_from``: their own client ID,
secret and scopes), keep everything the entry says about the provider (client authentication,
scope separator, token placement, token response, parameters), and point only its URLs at the
real test OAuth server process. A change of the spec schema that breaks an entry fails here.
"""

from __future__ import annotations

import base64
import json
import typing

import httpx
import pytest

from authbridge.catalog import CatalogEntry, get_entry, integration_from
from authbridge.spec import spec_to_dict
from tests.api.test_connections_e2e import (
    PUBLIC_URL,
    add_integration,
    auto_approve,
    callback,
    connect,
    database_dump,
    query_of,
    run_test,
    show,
    token_of,
)
from tests.conftest import ClientFactory, create_api_key, portal, store_of
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

Json = dict[str, typing.Any]
SECRET = "cs-catalog-6f1e0c2b9a"


@pytest.fixture
def client(make_client: ClientFactory, app_env: dict[str, str]) -> TestClient:
    """A started AuthBridge on a fresh database (both backends) that may call the loopback server over http."""
    return make_client({**app_env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true", "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL})


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


# -- one entry per auth style, end to end ---------------------------------------------------------


def _on_stand_in(entry: CatalogEntry, oauth: OAuthServer, **user: typing.Any) -> Json:
    """The user's integration from ``entry``, its URLs pointed at the test server (all else as the entry says)."""
    spec = spec_to_dict(integration_from(entry, **user))
    auth = spec["auth"]
    for field, url in (
        ("authorization_url", oauth.authorize_url),
        ("token_url", oauth.token_url),
        ("revoke_url", oauth.revoke_url),
    ):
        if field in auth:
            auth[field] = url
    if "client_secret" in auth:
        auth["client_secret"] = user["client_secret"]
    spec["request"] = {**spec.get("request", {}), "base_url": oauth.base_url}
    return spec


def test_authorization_code_entry_end_to_end(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """GitHub's entry (client secret in the body, JSON answer asked for by Accept, no refresh token)."""
    entry = get_entry("github")
    spec = _on_stand_in(
        entry, oauth, client_id=oauth.CONFIDENTIAL_ID, client_secret=oauth.CONFIDENTIAL_SECRET, scopes=["read", "write"]
    )
    spec["test"] = {"path": "/api/me"}
    add_integration(client, headers, spec)
    created = connect(client, headers, "github")
    query = query_of(created["authorize_url"])
    assert (
        query["scope"] == "read write" and query["client_id"] == oauth.CONFIDENTIAL_ID
    )  # space-delimited (GitHub docs)
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 200, page.text
    assert show(client, headers, created["id"])["status"] == "active"
    token = token_of(client, headers, created["id"])
    assert httpx.get(oauth.me_url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert run_test(client, headers, created["id"])["ok"] is True
    assert oauth.CONFIDENTIAL_SECRET not in database_dump(client)


def test_client_credentials_entry_end_to_end(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Microsoft Graph app-only (tenant parameter, secret in the body): the token is fetched when connecting."""
    entry = get_entry("microsoftgraphapp")
    spec = _on_stand_in(entry, oauth, client_id=oauth.CONFIDENTIAL_ID, client_secret=oauth.CONFIDENTIAL_SECRET)
    spec["auth"]["scopes"] = ["read"]
    spec["test"] = {"path": "/api/me"}
    add_integration(client, headers, spec)
    bad = client.post(
        "/connections",
        json={"integration": "microsoftgraphapp", "name": "DEV", "parameters": {"tenant": "-bad"}},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["path"] == "parameters.tenant"
    created = connect(client, headers, "microsoftgraphapp", parameters={"tenant": "contoso.onmicrosoft.com"})
    assert created["status"] == "active"
    assert oauth.stats()["token_calls"]["client_credentials"] == 1
    assert run_test(client, headers, created["id"])["ok"] is True


def test_api_token_entry_end_to_end(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Stripe's entry (a Bearer API key): the key the test server accepts makes the test pass, another fails it."""
    entry = get_entry("stripe")
    spec = _on_stand_in(entry, oauth)
    spec["test"] = {"path": "/api/me"}
    add_integration(client, headers, spec)
    issued = httpx.post(
        oauth.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": oauth.CONFIDENTIAL_ID,
            "client_secret": oauth.CONFIDENTIAL_SECRET,
        },
    ).json()["access_token"]
    good = connect(client, headers, "stripe", credentials={"token": issued})
    assert run_test(client, headers, good["id"])["ok"] is True
    wrong = connect(client, headers, "stripe", name="QA", credentials={"token": "sk_test_not_issued"})
    report = run_test(client, headers, wrong["id"])
    assert report["ok"] is False and report["status"] == 401


def test_basic_entry_end_to_end(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Twilio's entry (HTTP Basic): the proxy sends the account SID and token as the Basic header."""
    entry = get_entry("twilio")
    spec = _on_stand_in(entry, oauth)
    spec["test"] = {"path": "/api/echo/Accounts.json"}
    add_integration(client, headers, spec)
    created = connect(client, headers, "twilio", credentials={"username": "AC123", "password": "tw-secret-1"})
    assert run_test(client, headers, created["id"])["ok"] is True
    echoed = client.get(f"/proxy/{created['id']}/api/echo/Accounts.json", headers=headers)
    assert echoed.status_code == 200, echoed.text
    sent = echoed.json()["headers"]["authorization"]
    assert sent == "Basic " + base64.b64encode(b"AC123:tw-secret-1").decode()
    assert "tw-secret-1" not in database_dump(client)
