"""End users connecting through the hosted connect page, in Debian's Chromium, from the example app's page.

Real parts only: ``authbridge run``, the test OAuth server (login and consent clicked), and
``examples/connect-app/app.py`` serving a page on another origin that uses ``/connect.js``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.console.conftest import REPO_ROOT, _cli, _free_port, shot
from tests.servers.authbridge import running_authbridge
from tests.servers.fixtures import OAuthServer


@dataclasses.dataclass(frozen=True)
class Stack:
    authbridge: str
    app: str
    admin_key: str
    connect_key: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, oauth_server: OAuthServer) -> Iterator[Stack]:
    """AuthBridge with an OAuth integration on the test server, and the example app on another origin."""
    tmp = tmp_path_factory.mktemp("connect")
    app_port = _free_port()
    app = f"http://127.0.0.1:{app_port}"
    with running_authbridge(tmp, AUTHBRIDGE_ALLOWED_RETURN_ORIGINS=app) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
            "AUTHBRIDGE_DATA_DIR": str(tmp / "data"),
        }
        connect_key = _cli(env, "api-keys", "create", "--name", "web", "--scope", "connect")
        spec = {
            "key": "idp",
            "name": "Test IdP",
            "description": "The test authorization server",
            "parameters": [{"name": "workspace", "label": "Workspace", "required": True, "pattern": "^[a-z0-9-]+$"}],
            "auth": {
                "type": "oauth2",
                "authorization_url": oauth_server.authorize_url,
                "token_url": oauth_server.token_url,
                "client_id": oauth_server.CONFIDENTIAL_ID,
                "client_secret": oauth_server.CONFIDENTIAL_SECRET,
                "scopes": ["read"],
            },
            "request": {"base_url": oauth_server.base_url},
        }
        assert httpx.post(f"{server.url}/integrations", json=spec, headers=server.headers).status_code == 201
        token_spec = {"key": "giphy", "name": "Giphy", "auth": {"type": "api_token"}}
        assert httpx.post(f"{server.url}/integrations", json=token_spec, headers=server.headers).status_code == 201
        app_env = {
            **env,
            "AUTHBRIDGE_URL": server.url,
            "AUTHBRIDGE_CONNECT_KEY": connect_key,
            "APP_PORT": str(app_port),
            "APP_INTEGRATIONS": "idp,giphy",
        }
        example = subprocess.Popen([sys.executable, "examples/connect-app/app.py"], env=app_env, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + 30
            while not _answers(f"{app}/done"):
                if example.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the example app did not start")
                time.sleep(0.1)
            yield Stack(server.url, app, server.key, connect_key)
        finally:
            example.terminate()
            example.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _connections(stack: Stack) -> list[dict[str, object]]:
    answer = httpx.get(f"{stack.authbridge}/connections", headers={"Authorization": f"Bearer {stack.admin_key}"})
    return list(answer.json()["items"])


def test_an_end_user_connects_from_the_apps_page_in_a_popup(browser: Browser, stack: Stack, oauth: OAuthServer) -> None:
    """App page → popup → pick the integration → fill a parameter → provider login and consent → the opener hears it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(stack.app + "/")
        with page.expect_popup() as opened:
            page.get_by_role("button", name="Connect an account").click()
        popup = opened.value
        expect(popup.get_by_role("heading", name="Connect an account")).to_be_visible()
        assert "abcs_" not in popup.url  # the token left the address bar
        shot(popup, "connect-page")
        popup.get_by_role("link", name="Test IdP").click()
        popup.get_by_label("Workspace").fill("ann-team")
        popup.get_by_role("button", name="Continue to Test IdP").click()
        popup.get_by_label("Username").fill(oauth.USERNAME)
        popup.get_by_label("Password").fill(oauth.PASSWORD)
        with popup.expect_event("close"):  # registered before the click: the popup may close at once
            popup.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_contain_text("connected")
        result = page.get_by_role("status").inner_text()
        connection_id = result.split()[1]
        (made,) = [c for c in _connections(stack) if c["id"] == connection_id]
        assert made["status"] == "active"
        assert made["end_user"] == {"id": "ann", "display_name": "Ann"}
        assert made["parameters"] == {"workspace": "ann-team"}
    finally:
        context.close()


def test_a_forwarded_authorize_url_fails_in_another_browser(browser: Browser, stack: Stack, oauth: OAuthServer) -> None:
    """The victim's authorize URL, completed in the attacker's browser, does not finish their connection."""
    victim = browser.new_context()
    attacker = browser.new_context()
    victim.set_default_timeout(15_000)
    attacker.set_default_timeout(15_000)
    try:
        page = victim.new_page()
        page.goto(stack.app + "/")
        connect_url = page.get_by_role("button", name="Connect an account").get_attribute("data-connect-url")
        assert connect_url
        page.goto(connect_url)
        page.get_by_role("link", name="Test IdP").click()
        page.get_by_label("Workspace").fill("victim")
        with page.expect_request(lambda r: r.url.startswith(oauth.authorize_url)) as request:
            page.get_by_role("button", name="Continue to Test IdP").click()
        authorize_url = request.value.url
        before = {c["id"]: c["status"] for c in _connections(stack)}

        other = attacker.new_page()
        other.goto(authorize_url)
        other.get_by_label("Username").fill(oauth.USERNAME)
        other.get_by_label("Password").fill(oauth.PASSWORD)
        other.get_by_role("button", name="Approve").click()
        expect(other.get_by_role("heading", name="Authorization failed")).to_be_visible()
        expect(other.locator("body")).to_contain_text("started in another browser")
        after = {c["id"]: c["status"] for c in _connections(stack)}
        assert after == before  # the victim's pending connection is still pending
        assert "pending" in after.values()
    finally:
        victim.close()
        attacker.close()


def test_api_token_at_phone_width_and_expired_link(browser: Browser, stack: Stack) -> None:
    """At 360 px the page fits without sideways scrolling; a link past its time shows the expiry page."""
    context = browser.new_context(viewport={"width": 360, "height": 740})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        created = httpx.post(
            f"{stack.authbridge}/connect/sessions",
            json={"end_user": {"id": "bob"}, "allowed_integrations": ["giphy"], "ttl": "10s"},
            headers={"Authorization": f"Bearer {stack.connect_key}"},
        ).json()
        page.goto(created["connect_url"])
        expect(page.get_by_role("heading", name="Connect Giphy")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.keyboard.press("Tab")
        page.keyboard.type("not-my-real-token")
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("Your Giphy account is connected")
        shot(page, "connect-done-phone")
        assert any(c["end_user"] == {"id": "bob"} for c in _connections(stack))

        late = httpx.post(
            f"{stack.authbridge}/connect/sessions",
            json={"end_user": {"id": "bob"}, "allowed_integrations": ["giphy"], "ttl": "10s"},
            headers={"Authorization": f"Bearer {stack.connect_key}"},
        ).json()
        time.sleep(11)  # the shortest session lives 10 s
        page.goto(late["connect_url"])
        expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    finally:
        context.close()
