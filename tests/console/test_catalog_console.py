"""The console's "Add from catalog": search, categories, the setup notes beside the form, then the integration page."""

from __future__ import annotations

import html
import typing
from pathlib import Path

import pytest

from authbridge.spec import OAuth2Auth
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _client, _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

SECRET = "cs-console-catalog-71be"


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """A signed-in console on a fresh SQLite service."""
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    return client


def test_the_integrations_page_links_to_the_catalog(client: TestClient) -> None:
    assert 'href="/console/catalog">Add from catalog</a>' in client.get("/console/integrations").text


def test_search_and_category(client: TestClient) -> None:
    page = client.get("/console/catalog")
    assert page.status_code == 200
    assert 'href="/console/catalog/github">GitHub</a>' in page.text and "Stripe" in page.text
    crm = client.get("/console/catalog", params={"category": "crm", "q": "sales"}).text
    assert 'href="/console/catalog/salesforce"' in crm and 'href="/console/catalog/github"' not in crm
    assert '<option value="crm" selected>' in crm
    none = client.get("/console/catalog", params={"q": "<script>"}).text
    assert "No catalog entry matches" in none and "<script>" not in none.split("<main", 1)[1].split("</main>")[0]


def test_the_entry_page_shows_the_setup_notes_beside_the_form(client: TestClient) -> None:
    page = client.get("/console/catalog/hubspot")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Redirect URI to register:" in text and "/oauth/callback" in text
    assert "In your HubSpot developer account create an app" in text
    assert 'name="scopes" value="oauth crm.objects.contacts.read"' in text
    assert "crm.objects.deals.read" in text
    assert client.get("/console/catalog/nope").status_code == 404


def test_creating_from_the_catalog_opens_the_integration_page(client: TestClient) -> None:
    page = client.get("/console/catalog/github")
    form = {"csrf": _csrf(page.text), "key": "gh", "client_id": "Iv1.c", "client_secret": SECRET, "scopes": "repo"}
    created = client.post("/console/catalog/github", data=form)
    assert created.status_code == 303 and created.headers["location"] == "/console/integrations/gh/edit?saved=1"
    record = portal(client).call(store_of(client).integrations.get, "gh")
    assert isinstance(record.spec.auth, OAuth2Auth)
    assert record.spec.auth.client_id == "Iv1.c" and record.spec.client_secret == SECRET
    assert record.spec.auth.scopes == ["repo"]
    edit = client.get("/console/integrations/gh/edit?saved=1")
    assert edit.status_code == 200 and SECRET not in edit.text


def test_a_missing_secret_is_shown_and_nothing_is_stored(client: TestClient) -> None:
    page = client.get("/console/catalog/github")
    form = {"csrf": _csrf(page.text), "key": "gh", "client_id": "Iv1.c", "client_secret": "", "scopes": "repo"}
    refused = client.post("/console/catalog/github", data=form)
    assert refused.status_code == 422
    assert "GitHub needs the client secret of your OAuth app" in html.unescape(refused.text)
    assert 'value="Iv1.c"' in refused.text
    assert portal(client).call(store_of(client).integrations.list) == []


def test_a_token_entry_needs_no_oauth_app(client: TestClient) -> None:
    page = client.get("/console/catalog/stripe")
    assert 'name="client_secret"' not in page.text
    created = client.post("/console/catalog/stripe", data={"csrf": _csrf(page.text), "key": "stripe"})
    assert created.status_code == 303 and created.headers["location"] == "/console/integrations/stripe/edit?saved=1"
    assert 'name="scopes"' not in page.text


def test_a_service_account_entry_takes_scopes_but_no_oauth_app(client: TestClient) -> None:
    """The JWT bearer grant has scopes and no OAuth app: the form asks for the scopes only, and keeps those typed."""
    page = client.get("/console/catalog/googlecloudserviceaccount")
    assert 'name="client_secret"' not in page.text
    assert 'name="scopes" value="https://www.googleapis.com/auth/cloud-platform.read-only"' in page.text
    form = {"csrf": _csrf(page.text), "key": "gcp", "scopes": "https://www.googleapis.com/auth/devstorage.read_only"}
    created = client.post("/console/catalog/googlecloudserviceaccount", data=form)
    assert created.status_code == 303, created.text
    record = portal(client).call(store_of(client).integrations.get, "gcp")
    assert record.spec.auth.scopes == ["https://www.googleapis.com/auth/devstorage.read_only"]  # type: ignore[union-attr]
    assert 'name="scopes"' not in client.get("/console/catalog/trellooauth").text  # OAuth 1.0a has none


def test_the_form_needs_the_csrf_token(client: TestClient) -> None:
    refused = client.post("/console/catalog/stripe", data={"key": "stripe"})
    assert refused.status_code in (400, 403)
    assert portal(client).call(store_of(client).integrations.list) == []


def test_every_entry_opens_in_the_integration_form(client: TestClient) -> None:
    """The normal integration page renders every entry the catalog can create (no field the form cannot show)."""
    from authbridge.catalog import entries

    for entry in entries():
        page = client.get(f"/console/catalog/{entry.key}")
        form = {"csrf": _csrf(page.text), "key": entry.key}
        if entry.needs_client:
            form |= {"client_id": "cid", "client_secret": SECRET, "scopes": " ".join(entry.default_scopes)}
        created = client.post(f"/console/catalog/{entry.key}", data=form)
        assert created.status_code == 303, (entry.key, created.text[:2000])
        edit = client.get(created.headers["location"])
        assert edit.status_code == 200, entry.key
        assert SECRET not in edit.text
