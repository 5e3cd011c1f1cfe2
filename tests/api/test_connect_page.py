"""The hosted connect page over HTTP, against the real test OAuth server (both databases).

The browser is played by the TestClient (its cookie jar is the browser's); the provider's consent is
the test server's auto-approve. The Playwright tests in tests/console/test_connect_browser.py drive
the same pages in Chromium, popup and postMessage included.
"""

from __future__ import annotations

import html
import re
import typing
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authbridge.testing import FakeClock
from tests.api.test_connections_e2e import code_spec
from tests.conftest import ClientFactory, ClockedClientFactory, portal, store_of
from tests.servers.fixtures import OAuthServer

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient

PUBLIC_URL = "http://127.0.0.1:8000"
APP = "https://app.example/settings/integrations"
TOKEN_SPEC: dict[str, typing.Any] = {
    "key": "giphy",
    "name": "Giphy",
    "description": "GIFs for your workspace",
    "parameters": [
        {"name": "team", "required": True, "pattern": "^[a-z0-9-]+$"},
        {"name": "region", "required": True, "enum": ["eu", "us"]},
    ],
    "auth": {"type": "api_token"},
    "request": {"base_url": "https://{team}.giphy.example/v1"},
}


@pytest.fixture
def env(app_env: dict[str, str]) -> dict[str, str]:
    return {
        **app_env,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_PUBLIC_URL": PUBLIC_URL,
        "AUTHBRIDGE_ALLOWED_RETURN_ORIGINS": "https://app.example",
    }


@pytest.fixture
def client(make_client: ClientFactory, env: dict[str, str], oauth: OAuthServer) -> TestClient:
    started = make_client(env)
    admin = admin_headers(started)
    oauth.configure(auto_approve=True)
    for spec in (TOKEN_SPEC, code_spec(oauth)):
        assert started.post("/integrations", json=spec, headers=admin).status_code == 201
    return started


def admin_headers(client: TestClient) -> dict[str, str]:
    broker = client.app.state.broker  # type: ignore[attr-defined]
    plaintext, _ = portal(client).call(broker.create_api_key, "admin", ["admin"])
    return {"Authorization": f"Bearer {plaintext}"}


def new_session(client: TestClient, **body: typing.Any) -> dict[str, typing.Any]:
    broker = client.app.state.broker  # type: ignore[attr-defined]
    key, _ = portal(client).call(broker.create_api_key, "web", ["connect"])
    request = {
        "end_user": {"id": "u-42", "display_name": "Ann"},
        "organization": {"id": "org-7"},
        "allowed_integrations": ["giphy", "idp"],
        "parameters": {"giphy": {"region": "eu"}},
        "tags": {"plan": "pro"},
        "return_to": APP,
        **body,
    }
    created = client.post("/connect/sessions", json=request, headers={"Authorization": f"Bearer {key}"})
    assert created.status_code == 201, created.text
    return typing.cast(dict[str, typing.Any], created.json())


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def open_link(client: TestClient, connect_url: str) -> httpx.Response:
    """The end user opens the link: the token goes into a cookie and leaves the URL."""
    first: httpx.Response = client.get(path_of(connect_url), follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/connect/"
    return first


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return html.unescape(found.group(1))


def assert_private(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


# -- the whole path ----------------------------------------------------------------------------


def test_an_end_user_connects_an_api_token_account(client: TestClient) -> None:
    """Link → cookie → list → form (only the parameters the backend left open) → connected → back to the app."""
    session = new_session(client)
    token = session["token"]
    first = open_link(client, session["connect_url"])
    assert_private(first)
    cookie = first.headers["set-cookie"]
    assert "authbridge_connect=" in cookie and "HttpOnly" in cookie and "Path=/connect" in cookie
    assert "samesite=lax" in cookie.lower()

    home = client.get("/connect/")
    assert home.status_code == 200 and token not in home.text
    assert_private(home)
    assert "Giphy" in home.text and "Test IdP" in home.text and "GIFs for your workspace" in home.text

    form = client.get("/connect/i/giphy")
    assert 'name="param.team"' in form.text and 'name="cred.token"' in form.text
    assert 'name="param.region"' not in form.text  # fixed by the backend

    refused = client.post("/connect/i/giphy", data={"param.team": "ann", "cred.token": "t"})
    assert refused.status_code == 403  # no CSRF token
    hostile = client.post(
        "/connect/i/giphy", data={"csrf": csrf_of(form), "param.team": "../admin\r\n", "cred.token": "tok-1"}
    )
    assert hostile.status_code == 422 and "The account was not connected" in hostile.text
    assert "tok-1" not in hostile.text
    admin = admin_headers(client)
    assert client.get("/connections", headers=admin).json()["items"] == []

    done = client.post(
        "/connect/i/giphy",
        data={"csrf": csrf_of(form), "param.team": "ann", "param.region": "us", "cred.token": "tok-1"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/connect/done?")
    back = client.get(done.headers["location"], follow_redirects=False)
    assert back.status_code == 303
    target = urlsplit(back.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == APP
    query = parse_qs(target.query)
    assert query["status"] == ["connected"] and "tok-1" not in back.headers["location"]

    (made,) = client.get("/connections", params={"end_user_id": "u-42"}, headers=admin).json()["items"]
    assert made["id"] == query["connection_id"][0]
    assert made["status"] == "active" and made["parameters"] == {"team": "ann", "region": "eu"}  # fixed value won
    assert made["organization"] == {"id": "org-7"} and made["tags"] == {"plan": "pro"}
    assert client.get(f"/connections/{made['id']}/token", headers=admin).json()["access_token"] == "tok-1"

    used = client.get("/connect/")
    assert used.status_code == 410 and "already used" in used.text


def test_an_oauth_flow_finishes_only_in_the_browser_that_started_it(client: TestClient, oauth: OAuthServer) -> None:
    """A forwarded authorize URL completed without the page's cookie fails and changes nothing."""
    session = new_session(client, allowed_integrations=["idp"], parameters={})
    open_link(client, session["connect_url"])
    single = client.get("/connect/", follow_redirects=False)
    assert single.status_code == 303 and single.headers["location"] == "/connect/i/idp"
    form = client.get("/connect/i/idp")
    assert "Continue to Test IdP" in form.text
    started = client.post("/connect/i/idp", data={"csrf": csrf_of(form)}, follow_redirects=False)
    assert started.status_code == 303 and started.headers["location"].startswith(oauth.authorize_url)
    binding = started.headers["set-cookie"]
    assert "authbridge_binding=" in binding and "Path=/oauth/callback" in binding and "HttpOnly" in binding

    approved = httpx.get(started.headers["location"], follow_redirects=False)
    assert approved.status_code in (302, 303)
    callback = path_of(approved.headers["location"])
    assert callback.startswith("/oauth/callback?")

    admin = admin_headers(client)
    (pending,) = client.get("/connections", headers=admin).json()["items"]
    assert pending["status"] == "pending" and pending["end_user"]["id"] == "u-42"

    mine = dict(client.cookies)
    client.cookies.clear()  # another browser: no cookies at all
    stolen = client.get(callback, follow_redirects=False)
    assert stolen.status_code == 400 and "started in another browser" in stolen.text
    client.cookies.set("authbridge_binding", "a-guess", path="/oauth/callback")
    assert client.get(callback, follow_redirects=False).status_code == 400
    assert client.get(f"/connections/{pending['id']}", headers=admin).json()["status"] == "pending"
    assert oauth.stats()["token_calls"]["authorization_code"] == 0  # the code was never exchanged

    client.cookies.clear()
    for name, value in mine.items():
        client.cookies.set(name, value, path="/oauth/callback" if name == "authbridge_binding" else "/connect")
    finished = client.get(callback, follow_redirects=False)
    assert finished.status_code == 303
    back = client.get(path_of(finished.headers["location"]), follow_redirects=False)
    assert back.status_code == 303 and parse_qs(urlsplit(back.headers["location"]).query)["status"] == ["connected"]
    assert client.get(f"/connections/{pending['id']}", headers=admin).json()["status"] == "active"
    record = portal(client).call(store_of(client).connect_sessions.find, session["token"])
    assert record is not None and record.connection_id == pending["id"] and record.used_at is not None


def test_a_denied_consent_comes_back_as_cancelled(client: TestClient, oauth: OAuthServer) -> None:
    session = new_session(client, allowed_integrations=["idp"], parameters={}, return_to=None)
    open_link(client, session["connect_url"])
    form = client.get("/connect/i/idp")
    started = client.post("/connect/i/idp", data={"csrf": csrf_of(form)}, follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    denied = client.get(f"/oauth/callback?error=access_denied&state={state}", follow_redirects=False)
    assert denied.status_code == 303
    page = client.get(path_of(denied.headers["location"]))
    assert page.status_code == 200 and "You did not allow access" in page.text
    # no return_to: a page, and the session stays open for another try
    assert client.get("/connect/", follow_redirects=False).status_code == 303
    admin = admin_headers(client)
    (refused,) = client.get("/connections", headers=admin).json()["items"]
    assert refused["status"] == "error"
    again = client.post("/connect/i/idp", data={"csrf": csrf_of(client.get("/connect/i/idp"))}, follow_redirects=False)
    assert again.status_code == 303
    (retry,) = client.get("/connections", headers=admin).json()["items"]  # the refused one was replaced
    assert retry["id"] != refused["id"] and retry["status"] == "pending"


def test_a_popup_posts_its_result_to_the_opener_origin_only(client: TestClient) -> None:
    session = new_session(client, allowed_integrations=["giphy"])
    first = client.get(path_of(session["connect_url"]) + "?mode=popup", follow_redirects=False)
    assert "authbridge_connect_popup=1" in str(first.headers.get_list("set-cookie"))
    form = client.get("/connect/i/giphy")
    done = client.post(
        "/connect/i/giphy", data={"csrf": csrf_of(form), "param.team": "ann", "cred.token": "t"}, follow_redirects=False
    )
    page = client.get(done.headers["location"])
    assert page.status_code == 200
    assert 'data-origin="https://app.example"' in page.text
    assert "authbridge:connect" in html.unescape(page.text) and '"status": "connected"' in html.unescape(page.text)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


# -- sessions that cannot be used --------------------------------------------------------------


def test_unknown_expired_ended_and_foreign(
    make_clocked_client: ClockedClientFactory, env: dict[str, str], oauth: OAuthServer
) -> None:
    clock = FakeClock()
    client = make_clocked_client(env, clock=clock)
    admin = admin_headers(client)
    assert client.post("/integrations", json=TOKEN_SPEC, headers=admin).status_code == 201

    unknown = client.get("/connect/abcs_" + "x" * 43)
    assert unknown.status_code == 404 and "not valid" in unknown.text
    assert client.get("/connect/").status_code == 404  # no cookie

    expiring = new_session(client, allowed_integrations=["giphy"], ttl="1m")
    clock.advance(minutes=2)
    expired = client.get(path_of(expiring["connect_url"]))
    assert expired.status_code == 410 and "expired" in expired.text

    ended = new_session(client, allowed_integrations=["giphy"])
    open_link(client, ended["connect_url"])
    form = client.get("/connect/i/giphy")
    client.delete(f"/connect/sessions/{ended['token']}", headers=admin)
    late = client.post("/connect/i/giphy", data={"csrf": csrf_of(form), "param.team": "a", "cred.token": "t"})
    assert late.status_code == 410 and "withdrawn" in late.text
    assert client.get("/connections", headers=admin).json()["items"] == []

    # someone else's connection id on the result page tells nothing
    other = client.post(
        "/connections",
        json={
            "integration": "giphy",
            "name": "x",
            "parameters": {"team": "b", "region": "eu"},
            "credentials": {"token": "t"},
        },
        headers=admin,
    ).json()
    mine = new_session(client, allowed_integrations=["giphy"])
    open_link(client, mine["connect_url"])
    assert client.get(f"/connect/done?connection_id={other['id']}&status=active").status_code == 404


def test_a_reconnect_session_keeps_the_connection_id(client: TestClient) -> None:
    admin = admin_headers(client)
    made = client.post(
        "/connections",
        json={
            "integration": "giphy",
            "name": "Ann",
            "parameters": {"team": "ann", "region": "eu"},
            "credentials": {"token": "old-token"},
            "end_user": {"id": "u-42"},
        },
        headers=admin,
    ).json()
    session = new_session(client, allowed_integrations=None, reconnect=made["id"], parameters={})
    open_link(client, session["connect_url"])
    page = client.get("/connect/")
    assert "Reconnect Giphy" in page.text and 'name="param.team"' not in page.text
    done = client.post(
        "/connect/i/giphy", data={"csrf": csrf_of(page), "cred.token": "new-token"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert client.get(f"/connections/{made['id']}/token", headers=admin).json()["access_token"] == "new-token"
    assert [c["id"] for c in client.get("/connections", headers=admin).json()["items"]] == [made["id"]]


def test_connect_js_is_served(client: TestClient) -> None:
    script = client.get("/connect.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "AuthBridgeConnect" in script.text and "postMessage" not in script.text  # it listens, never posts


def test_an_end_user_connects_an_mcp_server_by_its_url(client: TestClient, oauth: OAuthServer) -> None:
    """``allowed_integrations: ["mcp"]``: the built-in needs no declaring; the end user gives the server's URL."""
    session = new_session(client, allowed_integrations=["mcp"], parameters={})
    open_link(client, session["connect_url"])
    form = client.get("/connect/i/mcp")
    assert form.status_code == 200 and 'name="param.server_url"' in form.text, form.text
    hostile = client.post(
        "/connect/i/mcp",
        data={"csrf": csrf_of(form), "param.server_url": "javascript:alert(1)"},
        follow_redirects=False,
    )
    assert hostile.status_code in (200, 400, 422) and "server_url" in hostile.text  # named, nothing started
    admin = admin_headers(client)
    assert client.get("/connections", headers=admin).json()["items"] == []
    server_url = f"{oauth.base_url}/mcp"
    started = client.post(
        "/connect/i/mcp",
        data={"csrf": csrf_of(client.get("/connect/i/mcp")), "param.server_url": server_url},
        follow_redirects=False,
    )
    assert started.status_code == 303 and started.headers["location"].startswith(oauth.authorize_url), started.text
    assert parse_qs(urlsplit(started.headers["location"]).query)["resource"] == [server_url]
    approved = httpx.get(started.headers["location"], follow_redirects=False)
    finished = client.get(path_of(approved.headers["location"]), follow_redirects=False)
    assert finished.status_code == 303
    (made,) = client.get("/connections", headers=admin).json()["items"]
    assert made["status"] == "active" and made["integration"] == "mcp" and made["end_user"]["id"] == "u-42"
    assert client.get(f"/proxy/{made['id']}/", headers=admin).json()["resource"] == server_url
