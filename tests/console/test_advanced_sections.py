"""The integration form's advanced sections (token response, hooks, refresh): collapsed unless needed.

Each is a ``<details>`` closed on a fresh form and on an integration that keeps their defaults, and
open when one of its fields has an error or a value other than the default.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from authbridge.console.spec_form import spec_to_form
from tests.conftest import ClientFactory, create_api_key, sqlite_env
from tests.console.test_http import _client, _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

ADVANCED = ("token_response", "hooks", "refresh")

GIPHY = """\
key: giphy
name: Giphy
auth: {type: api_token}
token: {in: query, name: api_key, template: "{token}"}
request: {base_url: https://api.giphy.com/v1}
"""

TUNED = """\
key: tuned
name: Tuned
auth:
  type: oauth2
  grant_type: client_credentials
  token_url: https://auth.example.com/token
  client_id: abc
  client_secret: s3cr3t
  token_response: {default_ttl: 2h}
request: {base_url: https://api.example.com}
"""


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """A signed-in console client on SQLite."""
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    return client


def _details(page: str) -> dict[str, str]:
    """Each advanced section's opening ``<details ...>`` tag, by section id."""
    found: dict[str, str] = {}
    for section in ADVANCED:
        match = re.search(rf'<fieldset id="s-{section}"[^>]*>\s*<legend>[^<]*</legend>\s*(<details[^>]*>)', page)
        assert match, f"section {section} has no <details>"
        found[section] = match.group(1)
    return found


def _import(client: TestClient, yaml: str) -> None:
    token = _csrf(client.get("/console/import").text)
    assert client.post("/console/import", data={"csrf": token, "yaml": yaml}).status_code == 303


def test_a_fresh_form_has_them_all_collapsed(client: TestClient) -> None:
    """New integration: every advanced section is a closed <details> with a summary to open it."""
    page = client.get("/console/integrations/new").text
    assert all(" open" not in tag for tag in _details(page).values()), _details(page)
    assert page.count("<summary>") >= len(ADVANCED)


def test_an_error_inside_opens_its_section_only(client: TestClient) -> None:
    """A refresh window that is not a duration comes back with the refresh section open, the others closed."""
    page = client.get("/console/integrations/new").text
    form = {**spec_to_form(None), "key": "acme", "name": "Acme", "refresh.window": "banana", "action": "save"}
    response = client.post("/console/integrations/new", data={**form, "csrf": _csrf(page)})
    assert response.status_code == 422
    tags = _details(response.text)
    assert " open" in tags["refresh"]
    assert " open" not in tags["token_response"] and " open" not in tags["hooks"]


def test_a_value_other_than_the_default_opens_its_section(client: TestClient) -> None:
    """Editing an integration whose token response sets a default lifetime shows that section open."""
    _import(client, TUNED)
    tags = _details(client.get("/console/integrations/tuned/edit").text)
    assert " open" in tags["token_response"]
    assert " open" not in tags["hooks"] and " open" not in tags["refresh"]


def test_another_auth_types_defaults_keep_them_collapsed(client: TestClient) -> None:
    """An API token integration (its own defaults, no token response or hooks) opens nothing."""
    _import(client, GIPHY)
    tags = _details(client.get("/console/integrations/giphy/edit").text)
    assert all(" open" not in tag for tag in tags.values()), tags
