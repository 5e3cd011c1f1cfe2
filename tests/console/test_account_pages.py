"""The console's account pages over HTTP: badges, the connect form's inputs per auth type, and the test, refresh
and reconnect buttons when the provider fails (a notice on the page, never a crash) or works."""

from __future__ import annotations

import html
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from authbridge.spec import load_spec
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.console.test_http import _client, _csrf, _sign_in
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

#: A token endpoint on loopback while private networks are refused: every call fails before it connects.
BLOCKED = """\
key: blocked
name: Blocked Login
auth:
  type: custom_token
  token_url: https://127.0.0.1:9/token
  token_response: {access_token: token}
test: {path: /me}
request: {base_url: "https://127.0.0.1:9"}
"""
BASIC = "key: basic\nname: Basic API\nauth: {type: basic}\n"
OPEN = "key: open\nname: Open API\nauth: {type: none}\nrequest: {base_url: https://open.example}\n"


def _signed_in(make_client: ClientFactory, env: dict[str, str], *specs: str) -> TestClient:
    client = _client(make_client, env)
    assert _sign_in(client, create_api_key(client)).status_code == 303
    for text in specs:
        portal(client).call(store_of(client).integrations.save, load_spec(text))
    return client


def _post(client: TestClient, path: str, **data: str) -> typing.Any:
    return client.post(path, data={"csrf": _csrf(client.get("/console/import").text), **data})


def _post_then_get(client: TestClient, path: str) -> typing.Any:
    """POST an action, check it redirects to the account page (post-redirect-get), and GET that page."""
    response = _post(client, path)
    assert response.status_code == 303, (path, response.status_code)
    assert response.headers["location"] == path.rsplit("/", 1)[0]
    return client.get(response.headers["location"])


def _page_text(response: typing.Any) -> str:
    return html.unescape(response.text)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false")


def test_badges_show_expired_and_expiring_soon(make_client: ClientFactory, env: dict[str, str]) -> None:
    """An active account past its expiry reads "expired"; one inside its refresh window "expiring soon"."""
    client = _signed_in(make_client, env, BLOCKED)
    store = store_of(client)
    now = datetime.now(UTC)

    async def accounts() -> None:
        for name, expires in (("Old", now - timedelta(minutes=1)), ("Soon", now + timedelta(minutes=5))):
            record = await store.connections.create(integration_key="blocked", name=name, parameters={})
            await store.connections.set_status(record.id, "active", expires_at=expires)

    portal(client).call(accounts)
    page = _page_text(client.get("/console/accounts"))
    assert "expired" in page and "expiring soon" in page


@pytest.mark.parametrize(
    ("spec", "key", "inputs", "absent"),
    [(BASIC, "basic", ["cred.username", "cred.password"], []), (OPEN, "open", [], ["cred."])],
)
def test_the_connect_form_asks_for_what_the_auth_type_needs(
    make_client: ClientFactory, env: dict[str, str], spec: str, key: str, inputs: list[str], absent: list[str]
) -> None:
    """Basic auth asks for a username and password; an integration without credentials asks for none."""
    client = _signed_in(make_client, env, spec)
    page = client.get(f"/console/accounts/new?integration={key}")
    assert page.status_code == 200
    for name in inputs:
        assert f'name="{name}"' in page.text
    for fragment in absent:
        assert f'name="{fragment}' not in page.text


def test_failing_provider_shows_notices(make_client: ClientFactory, env: dict[str, str]) -> None:
    """Test, refresh and reconnect against a token endpoint that cannot be reached: each says it failed, and why."""
    client = _signed_in(make_client, env, BLOCKED)
    store = store_of(client)
    record = portal(client).call(lambda: store.connections.create(integration_key="blocked", name="DEV", parameters={}))
    portal(client).call(lambda: store.connections.set_status(record.id, "active"))
    blocked = "blocked: https://127.0.0.1:9/token cannot be reached (refusing to connect to 127.0.0.1"
    for action, notice, reason in (
        ("test", "Test failed: ", f"connection {record.id} has no credentials"),
        ("refresh", "Refresh failed: ", blocked),
        ("reconnect", "Reconnect failed: ", blocked),
    ):
        response = _post_then_get(client, f"/console/accounts/{record.id}/{action}")
        assert response.status_code == 200, (action, response.status_code)
        assert notice + reason in _page_text(response), action
    assert client.get(f"/console/accounts/{record.id}").status_code == 200  # the account page still works


def test_reconnect_fetches_a_new_token(make_client: ClientFactory, tmp_path: Path, oauth: OAuthServer) -> None:
    """Reconnecting a client-credentials account fetches a new token and says so."""
    env = sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false", AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true")
    spec = f"""
key: partner
name: Partner
auth:
  type: oauth2
  grant_type: client_credentials
  token_url: {oauth.token_url}
  client_id: {oauth.CONFIDENTIAL_ID}
  client_secret: "{oauth.CONFIDENTIAL_SECRET}"
request: {{base_url: "{oauth.base_url}"}}
"""
    client = _signed_in(make_client, env, spec)
    broker = client.app.state.broker  # type: ignore[attr-defined]
    created = portal(client).call(
        lambda: broker.connections.create(integration_key="partner", name="P", parameters={}, credentials={})
    )
    response = _post_then_get(client, f"/console/accounts/{created.connection.id}/reconnect")
    assert response.status_code == 200
    assert "Reconnected: a new token was fetched." in _page_text(response)
    assert oauth.stats()["token_calls"]["client_credentials"] == 2
