"""The console's integration form: an empty secret field keeps the stored secret, so it cannot move it elsewhere.

The same rule through the API: tests/api/test_secret_moves_api.py.
"""

from __future__ import annotations

import html
import typing
from pathlib import Path

import pytest

from authbridge.console.spec_form import spec_to_form
from authbridge.spec import load_spec
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme.yaml"


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """A signed-in console with the acme example saved."""
    client = make_client(sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    client.follow_redirects = False
    _sign_in(client, create_api_key(client))
    portal(client).call(store_of(client).integrations.save, load_spec(EXAMPLE.read_text()))
    return client


def form(client: TestClient, **changes: str) -> dict[str, str]:
    """The edit form of acme as the page fills it (secret field empty), with ``changes``."""
    values = spec_to_form(portal(client).call(store_of(client).integrations.get, "acme").spec)
    assert values["oauth2.client_secret"] == ""
    csrf = _csrf(client.get("/console/integrations/acme/edit").text)
    return {**values, **changes, "csrf": csrf}


def test_an_empty_secret_field_cannot_follow_a_new_token_host(client: TestClient) -> None:
    """Saving the form with the token URL on another host and the secret field empty: 422 at the field."""
    values = form(client, **{"oauth2.token_url": "https://attacker.example/token"})
    response = client.post("/console/integrations/acme/edit", data=values)
    assert response.status_code == 422
    page = html.unescape(response.text)
    assert "would send the stored client secret to https://attacker.example" in page
    assert "give auth.client_secret again" in page
    record = portal(client).call(store_of(client).integrations.get, "acme")
    assert record.version == 1 and record.spec.client_secret == "xyz"

    values["oauth2.client_secret"] = "typed-again"
    assert client.post("/console/integrations/acme/edit", data=values).status_code == 303


def test_the_hosts_field_round_trips(client: TestClient) -> None:
    """The parameter form has an allowed-hosts field, saved as ``hosts``."""
    values = form(client, **{"parameters.0.hosts": "*.acme.example, login.acme.example"})
    assert client.post("/console/integrations/acme/edit", data=values).status_code == 303
    record = portal(client).call(store_of(client).integrations.get, "acme")
    assert record.spec.parameters[0].hosts == ["*.acme.example", "login.acme.example"]
    assert "*.acme.example, login.acme.example" in client.get("/console/integrations/acme/edit").text
