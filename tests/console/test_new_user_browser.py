"""What a new user tripped over (issue 16), in real Chromium against ``authbridge run`` and the test OAuth server.

The pure parts are tested in ``test_drafts.py``; the broker side of the refresh fix in
``tests/broker/test_refresh_unavailable.py``.
"""

from __future__ import annotations

import re
import uuid

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
