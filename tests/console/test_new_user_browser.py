"""What a new user tripped over (issue 16), in real Chromium against ``authbridge run`` and the test OAuth server.

The pure parts are tested in ``test_drafts.py``; the broker side of the refresh fix in
``tests/broker/test_refresh_unavailable.py``.
"""

from __future__ import annotations

import re
import typing
import uuid

import httpx
from playwright.sync_api import Page, Route, expect

from tests.console.conftest import ConsoleServer, shot
from tests.servers.fixtures import OAuthServer


def _key(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8]


def _fill_oauth_form(page: Page, oauth: OAuthServer, key: str, *, secret: bool = True) -> None:
    page.goto("/console/integrations/new")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Integration Name").fill(f"Test IdP {key}")
    page.get_by_label("Authorization Endpoint").fill(oauth.authorize_url)
    page.locator("#f-oauth2-token_url").fill(oauth.token_url)
    page.get_by_label("OAuth Scope").fill("read write")
    page.get_by_label("Client ID").fill(oauth.CONFIDENTIAL_ID)
    if secret:
        page.get_by_label("Client Secret").fill(oauth.CONFIDENTIAL_SECRET)
    page.get_by_label("Base URL").fill(oauth.base_url)
    page.get_by_label("Path", exact=True).fill("/api/me")


def _connect(page: Page, oauth: OAuthServer, key: str, name: str) -> None:
    page.goto(f"/console/accounts/new?integration={key}")
    page.get_by_label("Account name").fill(name)
    page.get_by_role("button", name=re.compile("Continue to")).click()
    page.get_by_label("Username").fill(oauth.USERNAME)
    page.get_by_label("Password").fill(oauth.PASSWORD)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def test_the_client_secret_survives_a_form_error_without_being_echoed(console: Page, oauth: OAuthServer) -> None:
    """A secret typed before another field's error is kept server-side (not in the page) and saved with the fix."""
    page = console
    key = _key("keep")
    _fill_oauth_form(page, oauth, key)
    page.locator("#s-refresh summary").click()  # the advanced section starts collapsed
    page.get_by_label("Refresh window").fill("soon")  # the other error
    page.get_by_role("button", name="Save integration").click()
    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.get_by_label("Client Secret")).to_have_value("")
    assert oauth.CONFIDENTIAL_SECRET not in page.content()
    expect(page.locator("#f-oauth2-client_secret-help")).to_contain_text("kept")
    # "Add a parameter" is a round-trip too: the secret stays kept through it.
    page.get_by_role("button", name="Add a parameter").click()
    assert oauth.CONFIDENTIAL_SECRET not in page.content()
    page.get_by_label("Refresh window").fill("30m")
    page.get_by_role("button", name="Save integration").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    # The saved secret is the typed one: the provider accepts the client at the token endpoint.
    _connect(page, oauth, key, "kept")
    expect(page.locator("h1 .badge")).to_have_text("active")


def test_a_confidential_client_without_a_secret_is_refused_with_a_field_error(
    console: Page, oauth: OAuthServer
) -> None:
    """Saving an OAuth integration with client authentication by header and no secret shows an error by the field."""
    page = console
    key = _key("nosecret")
    _fill_oauth_form(page, oauth, key, secret=False)
    page.get_by_role("button", name="Save integration").click()
    field = page.locator(".field", has=page.locator("#f-oauth2-client_secret"))
    expect(field.locator(".error-text")).to_contain_text("enter the client secret")
    expect(page.locator("#f-oauth2-client_secret")).to_have_attribute("aria-invalid", "true")
    shot(page, "integration-form-no-secret")
    page.goto("/console/integrations")
    expect(page.locator("main")).not_to_contain_text(key)
    # A public client (no secret, the id in the body, PKCE) is allowed.
    _fill_oauth_form(page, oauth, key, secret=False)
    page.get_by_label("Client ID").fill(oauth.PUBLIC_ID)
    page.get_by_label("Client authentication").select_option("body")
    page.get_by_role("button", name="Save integration").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()


def test_actions_redirect_so_reloading_repeats_nothing(console: Page, oauth: OAuthServer) -> None:
    """Test, Refresh now and Reconnect end on the account page (GET); a reload shows the page, not 405."""
    page = console
    key = _key("prg")
    _fill_oauth_form(page, oauth, key)
    page.get_by_role("button", name="Save integration").click()
    _connect(page, oauth, key, "PRG")
    account_url = page.url.split("?")[0]
    for button, words in (("Test", "Test passed"), ("Refresh now", "Token refreshed")):
        page.get_by_role("button", name=button).click()
        expect(page.get_by_role("status").filter(has_text=words)).to_be_visible()
        expect(page).to_have_url(account_url)
        page.reload()
        expect(page.get_by_role("heading", name="PRG")).to_be_visible()
        expect(page.get_by_text(words)).to_have_count(0)  # the outcome is shown once
    assert oauth.stats()["token_calls"]["refresh_token"] == 1  # the reload refreshed nothing
    oauth.configure(auto_approve=True)
    page.get_by_role("button", name="Reconnect").click()
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="PRG")).to_be_visible()


def test_refresh_now_without_a_refresh_token_leaves_the_account_active(console: Page, oauth: OAuthServer) -> None:
    """The missing refresh token is warned about with its fix; Refresh now explains and the account stays active."""
    page = console
    key = _key("norefresh")
    _fill_oauth_form(page, oauth, key)
    page.get_by_role("button", name="Save integration").click()
    oauth.configure(refresh_tokens=False)
    _connect(page, oauth, key, "NoRefresh")
    expect(page.locator(".details")).to_contain_text("prompt=consent")
    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_role("alert")).to_contain_text("stays valid until")
    expect(page.locator("h1 .badge")).to_have_text("active")
    page.get_by_role("button", name="Test").click()
    expect(page.get_by_role("status").filter(has_text="Test passed")).to_be_visible()


def test_a_new_api_key_is_shown_once_after_a_redirect(console: Page) -> None:
    """Creating a key redirects; the key is shown on that page only, and a reload creates no other key."""
    page = console
    page.goto("/console/keys")
    page.get_by_label("Name").fill("prg-key")
    page.get_by_role("button", name="Create key").click()
    expect(page).to_have_url(re.compile(r"/console/keys\?created="))
    created = page.get_by_label("The new key").input_value()
    assert created.startswith("ab_")
    page.reload()
    expect(page.get_by_label("The new key")).to_have_count(0)
    assert created not in page.content()
    expect(page.get_by_role("row", name=re.compile("prg-key"))).to_have_count(1)


def test_api_docs_render_without_internet(page: Page, console_server: ConsoleServer) -> None:
    """/docs shows Swagger UI, the proxy included, while every request off loopback is refused."""
    outside: list[str] = []

    def only_loopback(route: Route) -> None:
        if route.request.url.startswith(console_server.base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AuthBridge")
    expect(page.locator("#operations-tag-proxy")).to_be_visible()
    expect(page.get_by_text("/proxy/{connection_id}/{path}").first).to_be_visible()
    assert outside == []
    shot(page, "api-docs", height=900)


def _api(server: ConsoleServer, method: str, path: str, **kwargs: typing.Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return httpx.request(method, server.base_url + path, headers=headers, timeout=10, **kwargs)


def test_long_lists_page_count_and_search(console: Page, console_server: ConsoleServer) -> None:
    """Events page with a count and Older/Newest links, ids never break mid-word; accounts and integrations search."""
    page = console
    key = _key("many")
    spec = {"key": key, "name": f"Many {key}", "auth": {"type": "none"}, "request": {"base_url": "https://x.example"}}
    assert _api(console_server, "POST", "/integrations", json=spec).status_code == 201
    headers = {"Authorization": f"Bearer {console_server.api_key}"}
    with httpx.Client(base_url=console_server.base_url, headers=headers, timeout=10) as client:
        for n in range(105):
            body = {"integration": key, "name": f"acct-{n:03d}", "parameters": {}}
            assert client.post("/connections", json=body).status_code == 201

    page.goto(f"/console/events?integration={key}&type=connection.created")
    expect(page.locator("#events-count")).to_contain_text("105 events; showing 100")
    expect(page.locator("table.events tbody tr")).to_have_count(100)
    account_cell = page.locator("table.events tbody tr").first.locator("td[data-label=Account]")
    assert account_cell.evaluate("el => getComputedStyle(el).whiteSpace") == "nowrap"
    header = page.locator("table.events th").nth(1)
    assert header.evaluate("el => getComputedStyle(el).whiteSpace") == "nowrap"
    shot(page, "events-paged", height=700)
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("table.events tbody tr")).to_have_count(5)
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_role("link", name="← Newest").click()
    expect(page.locator("table.events tbody tr")).to_have_count(100)
    # A time range in the future selects nothing; a malformed one is said to be ignored.
    page.goto(f"/console/events?integration={key}&since=2999-01-01T00:00")
    expect(page.locator("#events-count")).to_contain_text("0 events")
    page.goto(f"/console/events?integration={key}&until=yesterday")
    expect(page.get_by_text("Not a time: ignored.")).to_be_visible()

    page.goto(f"/console/accounts?integration={key}")
    expect(page.locator("#accounts-count")).to_contain_text("105 accounts; showing 100")
    page.get_by_label("Name or id").fill("ACCT-10")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#accounts-count")).to_contain_text("5 accounts")  # acct-100 to acct-104
    page.goto(f"/console/integrations?q={key.upper()}")
    expect(page.locator("#integrations-count")).to_contain_text("1 integration")
    expect(page.get_by_role("row", name=re.compile(key))).to_contain_text("105")


def test_an_account_is_edited_in_place(console: Page, console_server: ConsoleServer) -> None:
    """Rename and rotate an API token from the account page; a bad parameter is refused by its field, unechoed."""
    page = console
    key = _key("edit")
    spec = {
        "key": key,
        "name": f"Edit {key}",
        "parameters": [{"name": "host", "required": True, "format": "hostname", "hosts": ["*.acme.example"]}],
        "auth": {"type": "api_token"},
        "request": {"base_url": "https://{host}"},
    }
    assert _api(console_server, "POST", "/integrations", json=spec).status_code == 201
    body = {
        "integration": key,
        "name": "DEV",
        "parameters": {"host": "eu.acme.example"},
        "credentials": {"token": "t1"},
    }
    cid = _api(console_server, "POST", "/connections", json=body).json()["id"]
    page.goto(f"/console/accounts/{cid}")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Account name").fill("PROD")
    page.locator("#f-param-host").fill("evil.example")
    page.get_by_label("API token").fill("rotated-SECRET-9")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".field", has=page.locator("#f-param-host")).locator(".error-text")).to_be_visible()
    assert "rotated-SECRET-9" not in page.content()
    page.locator("#f-param-host").fill("us.acme.example")
    page.get_by_label("API token").fill("rotated-SECRET-9")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status").filter(has_text="Changes saved")).to_be_visible()
    expect(page).to_have_url(re.compile(f"/console/accounts/{cid}$"))
    expect(page.get_by_role("heading", name="PROD")).to_be_visible()
    token = _api(console_server, "GET", f"/connections/{cid}/token").json()["access_token"]
    assert token == "rotated-SECRET-9"


def test_how_to_call_favicon_dark_theme_and_connect_after_save(
    console: Page, oauth: OAuthServer, console_server: ConsoleServer
) -> None:
    """The account page says how to call it (no token or key in it, copy buttons); the integration page offers
    to connect right after saving; the console has a favicon and follows a dark system theme."""
    page = console
    key = _key("call")
    _fill_oauth_form(page, oauth, key)
    page.get_by_role("button", name="Save integration").click()
    page.get_by_role("status").filter(has_text="Saved").get_by_role("link", name="Connect an account").click()
    expect(page.get_by_label("Account name")).to_be_visible()
    _connect(page, oauth, key, "Callable")
    cid = page.url.split("/accounts/")[1].split("?")[0]
    expect(page.locator("#call-id")).to_have_value(cid)
    proxy = f"{console_server.base_url}/proxy/{cid}/"
    expect(page.locator("#call-proxy")).to_have_value(proxy)
    curl = page.locator("#call-curl").input_value()
    assert curl.endswith(f"/proxy/{cid}/api/me") and "$AUTHBRIDGE_API_KEY" in curl
    expect(page.locator("#call-sdk")).to_contain_text(f'client.request("{cid}", "GET", "/api/me")')
    expect(
        page.get_by_role("button", name="Copy: curl (an API key with the proxy scope in AUTHBRIDGE_API_KEY)")
    ).to_be_visible()
    token = _api(console_server, "GET", f"/connections/{cid}/token").json()["access_token"]
    assert token not in page.content() and console_server.api_key not in page.content()
    # The curl line works as written, with the key from the environment.
    answer = httpx.get(curl.split()[-1], headers={"Authorization": f"Bearer {console_server.api_key}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    shot(page, "account")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and httpx.get(console_server.base_url + icon, timeout=5).headers["content-type"].startswith("image/svg")
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    shot(page, "account-dark", height=900)
