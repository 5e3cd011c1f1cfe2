"""The console's integration form for the JWT styles over HTTP: the plugin's fields in, the spec out, no key shown."""

from __future__ import annotations

import html
import json
import typing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authbridge.console.spec_form import spec_to_form
from authbridge.spec import validate_spec
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _client, _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
ASC = {
    "key": "asc",
    "name": "App Store Connect",
    "parameters": [{"name": "issuer_id", "required": True}, {"name": "private_key", "secret": True}],
    "auth": {
        "type": "jwt",
        "alg": "ES256",
        "claims": {"iss": "{issuer_id}", "aud": "appstoreconnect-v1"},
        "ttl": "20m",
    },
    "request": {"base_url": "https://api.appstoreconnect.apple.com"},
}


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    return client


def _submit(client: TestClient, path: str, values: dict[str, str]) -> typing.Any:
    token = _csrf(client.get(path).text)
    return client.post(path, data={"csrf": token, **values})


def test_a_self_signed_jwt_integration_through_the_form(client: TestClient) -> None:
    """The jwt section's fields (claims as JSON) make the spec; the edit page shows them back."""
    values = spec_to_form(validate_spec(ASC))
    page = client.get("/console/integrations/new").text
    assert 'name="jwt.claims"' in page and 'name="jwt_bearer.assertion.claims"' not in page
    assert 'name="jwt_bearer.claims"' in page and 'name="oauth2.client_private_key"' in page
    saved = _submit(client, "/console/integrations/new", values)
    assert saved.status_code == 303, saved.text
    stored = portal(client).call(store_of(client).integrations.get, "asc").spec
    assert stored.auth == validate_spec(ASC).auth
    edit = html.unescape(client.get("/console/integrations/asc/edit").text)
    assert '"aud": "appstoreconnect-v1"' in edit


def test_broken_claims_json_is_shown_and_nothing_is_saved(client: TestClient) -> None:
    values = {**spec_to_form(validate_spec(ASC)), "jwt.claims": '{"iss": '}
    refused = _submit(client, "/console/integrations/new", values)
    assert refused.status_code == 422
    assert "is not valid JSON" in refused.text
    assert "asc" not in [r.key for r in portal(client).call(store_of(client).integrations.list)]


def test_the_client_key_is_write_only_in_the_form(client: TestClient) -> None:
    """private_key_jwt: the key is entered once, never shown again, and kept when the form is saved empty."""
    spec = {
        "key": "keyed",
        "name": "Keyed",
        "auth": {
            "type": "oauth2",
            "grant_type": "client_credentials",
            "token_url": "https://idp.example/token",
            "client_id": "cid",
            "client_auth": "private_key_jwt",
            "client_private_key": PEM,
            "client_assertion_alg": "ES256",
        },
    }
    values = {**spec_to_form(validate_spec(spec)), "oauth2.client_private_key": PEM}
    assert _submit(client, "/console/integrations/new", values).status_code == 303
    edit = client.get("/console/integrations/keyed/edit").text
    assert PEM.splitlines()[1] not in edit and "Leave empty to keep the stored secret" in edit
    again = spec_to_form(portal(client).call(store_of(client).integrations.get, "keyed").spec)
    assert _submit(client, "/console/integrations/keyed/edit", {**again, "name": "Keyed 2"}).status_code == 303
    stored = portal(client).call(store_of(client).integrations.get, "keyed").spec
    assert stored.name == "Keyed 2" and stored.client_private_key == PEM
    for path in ("/console/integrations/keyed/yaml", "/console/integrations/keyed/download"):
        exported = client.get(path)
        assert exported.status_code == 200 and "client_private_key: '********'" in html.unescape(exported.text)
        assert PEM.splitlines()[1] not in exported.text and json.dumps(PEM) not in exported.text
