"""The console's integration form with an OAuth 1.0a spec, over HTTP (the Chromium tests drive the same form).

The plugin's ``form_fields`` make the section; the consumer secret is write-only like OAuth 2.0's client secret.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from tests.conftest import ClientFactory, create_api_key, sqlite_env
from tests.console.test_http import _client, _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

TRELLO = (Path(__file__).resolve().parents[2] / "examples" / "trello.yaml").read_text()


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    return client


def test_an_oauth1_spec_shows_its_section_and_never_its_secret(client: TestClient) -> None:
    """Imported Trello: the edit form has the oauth1 fields filled, the type selectable, the secret empty."""
    token = _csrf(client.get("/console/import").text)
    imported = client.post("/console/import", data={"csrf": token, "yaml": TRELLO})
    assert imported.status_code == 303, imported.text
    page = client.get("/console/integrations/trello/edit").text
    assert re.search(r'<option value="oauth1"[^>]*selected', page)
    assert 'value="https://trello.com/1/OAuthGetRequestToken"' in page
    assert 'name="oauth1.signature_method"' in page and 'name="oauth1.realm"' in page
    assert "your-oauth-secret" not in page
    new = client.get("/console/integrations/new").text
    assert 'name="oauth1.request_token_url"' in new and "OAuth 1.0a" in new
