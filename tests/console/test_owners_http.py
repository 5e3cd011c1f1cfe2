"""The console's account list and page show whose accounts they are; only admin keys sign in (TestClient)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from authbridge.broker import Owner
from tests.conftest import ClientFactory, portal, sqlite_env

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _key(client: TestClient, *scopes: str) -> str:
    broker = client.app.state.broker  # type: ignore[attr-defined]
    plaintext, _ = portal(client).call(broker.create_api_key, "k", list(scopes))
    return typing.cast(str, plaintext)


def _sign_in(client: TestClient, secret: str) -> int:
    page = client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"csrf": _csrf(page.text), "secret": secret}, follow_redirects=False)
    return int(answer.status_code)


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    started = make_client(sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false"))
    broker = started.app.state.broker  # type: ignore[attr-defined]
    portal(started).call(broker.save_integration, _spec())
    for name, user, org, tag in [
        ("Ann", "u-1", "org-1", "pro"),
        ("Bob", "u-2", "org-1", "free"),
        ("Cy", None, None, None),
    ]:
        owner = Owner(
            end_user={"id": user, "display_name": name} if user else None,
            organization={"id": org, "display_name": "Org One"} if org else None,
            tags={"plan": tag} if tag else None,
        )

        async def create(name: str = name, owner: Owner = owner) -> None:
            await broker.connections.create(
                integration_key="giphy", name=name, parameters={}, credentials={"token": "t"}, owner=owner
            )

        portal(started).call(create)
    return started


def _spec() -> typing.Any:
    from authbridge.spec import load_spec

    return load_spec("key: giphy\nname: Giphy\nauth: {type: api_token}\n")


def test_the_list_filters_by_owner_status_and_tag(client: TestClient) -> None:
    assert _sign_in(client, _key(client, "admin")) == 303
    everyone = client.get("/console/accounts").text
    assert all(name in everyone for name in ("Ann", "Bob", "Cy")) and "Org One" in everyone

    def names(**params: str) -> list[str]:
        page = client.get("/console/accounts", params=params).text
        return re.findall(r'/console/accounts/[0-9a-f]{32}">([^<]+)</a>', page)

    assert names(end_user_id="u-1") == ["Ann"]
    assert names(organization_id="org-1") == ["Ann", "Bob"]
    assert names(tag="plan:free") == ["Bob"]
    assert names(status="needs_reauth") == []
    assert names(cursor="garbage") == []  # a cursor from elsewhere shows nothing rather than failing
    ann = re.search(r'/console/accounts/([0-9a-f]{32})">Ann', everyone)
    assert ann
    page = client.get(f"/console/accounts/{ann.group(1)}").text
    assert "End user" in page and "u-1" in page and "plan:pro" in page


def test_only_admin_keys_sign_in(client: TestClient) -> None:
    """The console is the admin surface: a connect- or proxy-only key is refused like a wrong one."""
    assert _sign_in(client, _key(client, "connect")) == 401
    assert _sign_in(client, _key(client, "proxy", "token")) == 401
    assert _sign_in(client, _key(client, "admin")) == 303


def test_keys_are_made_with_scopes_and_revoked_in_the_console(client: TestClient) -> None:
    """A key made in the console has the ticked scopes, is shown once, works accordingly, and revoking ends it."""
    assert _sign_in(client, _key(client, "admin")) == 303
    page = client.get("/console/keys")
    assert page.status_code == 200 and "connections:write" in page.text
    none = client.post("/console/keys", data={"csrf": _csrf(page.text), "name": "web"})
    assert none.status_code == 422 and "give at least one scope" in none.text
    made = client.post("/console/keys", data={"csrf": _csrf(page.text), "name": "web", "scope.connect": "on"})
    assert made.status_code == 200 and "/console/keys?created=" in str(made.url)  # post-redirect-get
    key = re.search(r'id="f-new-key" value="(ab_[^"]+)"', made.text)
    assert key
    listed = client.get("/console/keys").text
    assert key.group(1) not in listed and "connect" in listed
    headers = {"Authorization": f"Bearer {key.group(1)}"}
    assert client.get("/connections", headers=headers).status_code == 403
    rows = re.findall(r"<tr>\s*<td>web</td>.*?/console/keys/([0-9a-f]{32})/revoke", listed, flags=re.S)
    assert rows, listed
    revoked = client.post(f"/console/keys/{rows[0]}/revoke", data={"csrf": _csrf(listed)}, follow_redirects=False)
    assert revoked.status_code == 303
    assert client.get("/connections", headers=headers).status_code == 401
