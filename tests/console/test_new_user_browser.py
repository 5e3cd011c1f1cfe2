"""What a new user tripped over (issue 16), in real Chromium against ``authbridge run`` and the test OAuth server.

The pure parts are tested in ``test_drafts.py``; the broker side of the refresh fix in
``tests/broker/test_refresh_unavailable.py``.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.console.conftest import shot
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
