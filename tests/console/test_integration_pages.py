"""The console's integration pages over HTTP: YAML import and edit refusals, download, delete with and without
accounts. Every refusal shows the problem and saves nothing."""

from __future__ import annotations

import html
import typing
from pathlib import Path

import pytest

from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _client, _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

GIPHY = """\
key: giphy
name: Giphy
auth: {type: api_token}
token: {in: query, name: api_key, template: "{token}"}
request: {base_url: https://api.giphy.com/v1}
"""


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """A signed-in console client on SQLite, with the giphy integration imported."""
    client = _client(make_client, sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    assert _sign_in(client, create_api_key(client)).status_code == 303
    imported = _post(client, "/console/import", yaml=GIPHY)
    assert imported.status_code == 303 and imported.headers["location"] == "/console/integrations/giphy/edit?saved=1"
    return client


def _post(client: TestClient, path: str, **data: str) -> typing.Any:
    token = _csrf(client.get("/console/import").text)
    return client.post(path, data={"csrf": token, **data})


def _version(client: TestClient, key: str = "giphy") -> int:
    return int(portal(client).call(store_of(client).integrations.get, key).version)


def test_importing_an_existing_key_or_broken_yaml_is_refused(client: TestClient) -> None:
    """Import never overwrites: an existing key is a conflict; broken YAML lists its problems; both keep the text."""
    again = _post(client, "/console/import", yaml=GIPHY.replace("name: Giphy", "name: Other"))
    assert again.status_code == 422 and "an integration with key 'giphy' exists already" in html.unescape(again.text)
    assert "name: Other" in html.unescape(again.text)  # the pasted text stays in the form
    broken = _post(client, "/console/import", yaml="key: [unclosed\n")
    assert broken.status_code == 422 and "not valid YAML" in html.unescape(broken.text)
    assert _version(client) == 1
    integrations = client.get("/console/integrations").text
    assert "Other" not in integrations


def test_the_yaml_editor_keeps_the_key_and_refuses_broken_yaml(client: TestClient) -> None:
    """Editing as YAML cannot rename the integration, and broken YAML changes nothing; a good edit saves."""
    shown = client.get("/console/integrations/giphy/yaml")
    assert shown.status_code == 200 and "api.giphy.com" in html.unescape(shown.text)
    renamed = _post(client, "/console/integrations/giphy/yaml", yaml=GIPHY.replace("key: giphy", "key: other"))
    assert renamed.status_code == 422 and "must stay 'giphy'" in html.unescape(renamed.text)
    broken = _post(client, "/console/integrations/giphy/yaml", yaml="key: giphy\nname: [\n")
    assert broken.status_code == 422 and "not valid YAML" in html.unescape(broken.text)
    assert _version(client) == 1
    saved = _post(client, "/console/integrations/giphy/yaml", yaml=GIPHY.replace("name: Giphy", "name: Giphy 2"))
    assert saved.status_code == 303 and saved.headers["location"] == "/console/integrations/giphy/yaml?saved=1"
    assert _version(client) == 2


def test_download_is_the_yaml_as_a_file(client: TestClient) -> None:
    """The download is the spec's YAML as an attachment named after the key, never cached."""
    response = client.get("/console/integrations/giphy/download")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="giphy.yaml"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/yaml")
    assert "key: giphy" in response.text and "api.giphy.com" in response.text


def test_delete_asks_first_and_refuses_while_accounts_exist(client: TestClient) -> None:
    """The delete page counts the accounts; with an account the delete is refused (409); without, it goes."""
    created = portal(client).call(
        lambda: store_of(client).connections.create(integration_key="giphy", name="DEV", parameters={})
    )
    confirm = client.get("/console/integrations/giphy/delete")
    assert confirm.status_code == 200 and "Delete Giphy" in html.unescape(confirm.text)
    refused = _post(client, "/console/integrations/giphy/delete")
    assert refused.status_code == 409 and "has 1 connected account(s): delete them first" in html.unescape(refused.text)
    assert _version(client) == 1
    portal(client).call(store_of(client).connections.delete, created.id)
    deleted = _post(client, "/console/integrations/giphy/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/integrations?deleted=giphy"
    assert client.get("/console/integrations/giphy/edit").status_code == 404
