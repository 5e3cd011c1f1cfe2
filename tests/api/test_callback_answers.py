"""Every answer of ``/oauth/callback`` is ``no-store`` and ``no-referrer``, and its redirect carries no code or state.

The authorization server is the real test OAuth server process; AuthBridge runs in a TestClient (one
test checks a real ``authbridge run`` process).
"""

from __future__ import annotations

import typing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.api.test_connections_e2e import (
    APP_ORIGIN,
    PUBLIC_URL,
    add_integration,
    auto_approve,
    callback,
    code_spec,
    connect,
    consent,
)
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of
from tests.servers.authbridge import exchange, running_authbridge
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


@pytest.fixture
def client(make_client: ClientFactory, tmp_path: Path) -> TestClient:
    """AuthBridge on SQLite that may call the loopback server and send browsers back to APP_ORIGIN."""
    return make_client(
        sqlite_env(
            tmp_path,
            AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true",
            AUTHBRIDGE_PUBLIC_URL=PUBLIC_URL,
            AUTHBRIDGE_ALLOWED_RETURN_ORIGINS=APP_ORIGIN,
            AUTHBRIDGE_BACKGROUND_TASKS="false",
        )
    )


@pytest.fixture
def headers(client: TestClient, oauth: OAuthServer) -> dict[str, str]:
    """An API key of ``client``, with the code-flow integration ``idp`` created."""
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, code_spec(oauth))
    return headers


def _private(response: httpx.Response) -> None:
    """The answer is neither cached nor leaked through Referer, and a redirect carries no code or state."""
    assert response.headers.get_list("cache-control") == ["no-store"], response.headers
    assert response.headers.get_list("referrer-policy") == ["no-referrer"], response.headers
    if "location" in response.headers:
        params = httpx.URL(response.headers["location"]).params
        assert "code" not in params and "state" not in params, response.headers["location"]


def test_the_success_page(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """Without return_to the browser gets the "Connected" page."""
    created = connect(client, headers)
    page = callback(client, auto_approve(oauth, created["authorize_url"]))
    assert page.status_code == 200 and "Connected" in page.text
    _private(page)


def test_the_redirect_to_return_to(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """With return_to the browser goes there with the connection's id and status, and nothing of the provider's."""
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done?tab=crm")
    back = auto_approve(oauth, created["authorize_url"])
    assert {"code", "state"} <= set(back)
    answer = callback(client, back)
    assert answer.status_code == 303
    _private(answer)
    location = httpx.URL(answer.headers["location"])
    assert dict(location.params) == {"tab": "crm", "connection_id": created["id"], "status": "active"}


def test_the_provider_refusing(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """``error=access_denied``: a 400 page without return_to, a redirect carrying the error with it."""
    plain = connect(client, headers)
    page = callback(client, consent(oauth, plain["authorize_url"], approve=False))
    assert page.status_code == 400 and "access_denied" in page.text
    _private(page)

    returning = connect(client, headers, return_to=f"{APP_ORIGIN}/done")
    back = consent(oauth, returning["authorize_url"], approve=False)
    assert "state" in back
    answer = callback(client, back)
    assert answer.status_code == 303
    _private(answer)
    params = httpx.URL(answer.headers["location"]).params
    assert params["status"] == "error" and "access_denied" in params["error"]


def test_a_failed_code_exchange(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """The token endpoint refusing the code: the redirect says so, without the code it refused."""
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done")
    back = auto_approve(oauth, created["authorize_url"])
    oauth.configure(fail_next={"status": 400, "content_type": "application/json", "body": '{"error":"invalid_grant"}'})
    answer = callback(client, back)
    assert answer.status_code == 303
    _private(answer)
    assert "invalid_grant" in httpx.URL(answer.headers["location"]).params["error"]
    assert back["code"] not in answer.headers["location"]


def test_unknown_and_used_states(client: TestClient, headers: dict[str, str], oauth: OAuthServer) -> None:
    """A state AuthBridge never issued, none at all, or one already used: a 400 page each time."""
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done")
    back = auto_approve(oauth, created["authorize_url"])
    assert callback(client, back).status_code == 303
    for query in (back, {**back, "state": "x" * 43}, {"code": back["code"]}, {}):
        page = callback(client, query)
        assert page.status_code == 400 and "unknown" in page.text
        _private(page)


def test_an_expired_flow(make_client: ClientFactory, tmp_path: Path, oauth: OAuthServer) -> None:
    """A flow older than its ten minutes: the same 400 page, private too."""
    client = make_client(
        sqlite_env(tmp_path, AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS="true", AUTHBRIDGE_PUBLIC_URL=PUBLIC_URL)
    )
    headers = {"Authorization": f"Bearer {create_api_key(client)}"}
    add_integration(client, headers, code_spec(oauth))
    created = connect(client, headers)
    back = auto_approve(oauth, created["authorize_url"])

    async def age() -> None:
        async with store_of(client).engine.begin() as conn:
            await conn.execute(text("UPDATE oauth_flows SET expires_at = '2000-01-01 00:00:00'"))

    portal(client).call(age)
    page = callback(client, back)
    assert page.status_code == 400 and "expired" in page.text
    _private(page)


def test_other_answers_of_the_path(client: TestClient) -> None:
    """Answers the route itself does not make (a wrong method) carry the same headers."""
    answer = client.post("/oauth/callback", content=b"x")
    assert answer.status_code == 405
    _private(answer)


def test_return_to_may_not_carry_code_or_state(client: TestClient, headers: dict[str, str]) -> None:
    """A return_to with its own code or state parameter is refused (422), and no connection is made."""
    for query in ("state=mine", "code=1", "a=1&state="):
        response = client.post(
            "/connections",
            json={"integration": "idp", "name": "DEV", "return_to": f"{APP_ORIGIN}/done?{query}"},
            headers=headers,
        )
        assert response.status_code == 422
        assert response.json()["error"]["errors"] == [
            {
                "path": "return_to",
                "message": "must not carry a code or state parameter: the callback never passes them on",
            }
        ]
    assert client.get("/connections", headers=headers).json()["items"] == []


def test_a_stored_return_to_with_code_or_state_loses_them(
    client: TestClient, headers: dict[str, str], oauth: OAuthServer
) -> None:
    """A flow stored before the rule above, whose return_to has code and state: the redirect drops both."""
    created = connect(client, headers, return_to=f"{APP_ORIGIN}/done")
    back = auto_approve(oauth, created["authorize_url"])

    async def legacy() -> None:
        async with store_of(client).engine.begin() as conn:
            stored = f"{APP_ORIGIN}/done?code=old&state=old&x=1"
            await conn.execute(text("UPDATE oauth_flows SET return_to = :url"), {"url": stored})

    portal(client).call(legacy)
    answer = callback(client, back)
    assert answer.status_code == 303
    _private(answer)
    assert dict(httpx.URL(answer.headers["location"]).params) == {
        "x": "1",
        "connection_id": created["id"],
        "status": "active",
    }


def test_a_real_server_answers_the_same(tmp_path: Path) -> None:
    """Through ``authbridge run``: the unknown-state page and a wrong method, read from the wire."""
    with running_authbridge(tmp_path) as server:
        for method, path, status in (
            ("GET", "/oauth/callback?state=x&code=y", 400),
            ("DELETE", "/oauth/callback", 405),
        ):
            answer = exchange(server.url, method, path, {})
            assert answer.status == status
            assert answer.header_list("cache-control") == ["no-store"]
            assert answer.header_list("referrer-policy") == ["no-referrer"]
