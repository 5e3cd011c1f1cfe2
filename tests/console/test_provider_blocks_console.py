"""The console's integration form has no fields for ``rate_limit`` and ``pagination``: saving it keeps them.

The blocks themselves: tests/spec/test_provider.py.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from authbridge.console.spec_form import spec_to_form
from authbridge.spec import load_spec
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _csrf, _sign_in

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

SPEC = """
key: paged
name: Paged
auth: {type: api_token}
request: {base_url: https://api.paged.example/v1}
rate_limit: {max_concurrent: 2, max_wait: 20s, documented: two at a time}
pagination: {type: link, next_header: Link}
"""


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    client = make_client(sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    client.follow_redirects = False
    _sign_in(client, create_api_key(client))
    portal(client).call(store_of(client).integrations.save, load_spec(SPEC))
    return client


def test_a_form_edit_keeps_the_blocks_it_does_not_show(client: TestClient) -> None:
    """Renaming through the form leaves rate_limit and pagination as they were."""
    values = spec_to_form(portal(client).call(store_of(client).integrations.get, "paged").spec)
    csrf = _csrf(client.get("/console/integrations/paged/edit").text)
    response = client.post("/console/integrations/paged/edit", data={**values, "name": "Renamed", "csrf": csrf})
    assert response.status_code == 303, response.text
    spec = portal(client).call(store_of(client).integrations.get, "paged").spec
    assert spec.name == "Renamed"
    assert spec.rate_limit is not None and spec.rate_limit.max_concurrent == 2
    assert spec.pagination is not None and spec.pagination.next_header == "Link"
