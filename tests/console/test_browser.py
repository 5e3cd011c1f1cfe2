"""The console in real Chromium against a real ``authbridge run`` and the real test OAuth server (nothing mocked).

The HTTP-level checks of the same pages (cookie flags, CSRF, sessions) are in ``test_http.py``.
"""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.console.conftest import ConsoleServer, shot, sign_in
from tests.servers.fixtures import OAuthServer


def _key(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:8]


def _create_oauth_integration(page: Page, oauth: OAuthServer, key: str, *, grant: str = "authorization_code") -> None:
    """Fill the integration form for the test OAuth server and save it."""
    page.goto("/console/integrations/new")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Integration Name").fill(f"Test IdP {key}")
    page.get_by_label("Authentication type").select_option("oauth2")
    page.get_by_label("Authorization Grant Type").select_option(grant)
    if grant == "authorization_code":
        page.get_by_label("Authorization Endpoint").fill(oauth.authorize_url)
    page.locator("#f-oauth2-token_url").fill(oauth.token_url)
    page.get_by_label("Revoke Token Endpoint").fill(oauth.revoke_url)
    page.get_by_label("OAuth Scope").fill("read write")
    page.get_by_label("Client ID").fill(oauth.CONFIDENTIAL_ID)
    page.get_by_label("Client Secret").fill(oauth.CONFIDENTIAL_SECRET)
    page.get_by_label("Base URL").fill(oauth.base_url)
    page.get_by_label("Path", exact=True).fill("/api/me")
    page.get_by_role("button", name="Save integration").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()


def test_sign_in_with_the_keyboard(page: Page, console_server: ConsoleServer) -> None:
    """The sign-in form is reached from / and submitted with Enter; a wrong key is refused with a message."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    shot(page, "sign-in")
    field = page.get_by_label("API key or admin password")
    expect(field).to_be_focused()
    page.keyboard.type("ab_wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    expect(page.get_by_label("API key or admin password")).to_be_focused()
    page.keyboard.type(console_server.api_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.goto("/console/integrations")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/integrations"))


def test_sign_in_with_the_admin_password(page: Page, console_server: ConsoleServer) -> None:
    """The password set by `authbridge admin set-password` signs in, and the page after sign-in is the one asked for."""
    page.goto("/console/events")
    page.get_by_label("API key or admin password").fill(console_server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Events", level=1)).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("admin")


def test_oauth2_integration_connect_test_refresh_delete(console: Page, oauth: OAuthServer) -> None:
    """Create an OAuth2 integration by form, connect via the provider's pages, test, refresh, delete (revoked)."""
    page = console
    key = _key("idp")
    _create_oauth_integration(page, oauth, key)
    expect(page.get_by_label("Redirect URI to register with the provider")).to_have_value(
        re.compile(r"^http://127\.0\.0\.1:\d+/oauth/callback$")
    )
    expect(page.get_by_label("Client Secret")).to_have_value("")
    assert oauth.CONFIDENTIAL_SECRET not in page.content()
    shot(page, "integration-form")
    shot(page, "integration-form-top", height=1900)

    page.goto("/console/integrations")
    page.get_by_role("row", name=re.compile(key)).get_by_role("link", name="Connect an account").click()
    page.get_by_label("Account name").fill("DEV")
    page.get_by_role("button", name=re.compile("Continue to")).click()

    # The provider's own login and consent page, clicked like a person would.
    expect(page).to_have_url(re.compile(re.escape(oauth.authorize_url)))
    page.get_by_label("Username").fill(oauth.USERNAME)
    page.get_by_label("Password").fill(oauth.PASSWORD)
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", name="DEV")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Connected")
    expect(page.locator("h1 .badge")).to_have_text("active")
    expect(page.locator(".details")).to_contain_text("read write")
    shot(page, "account")

    page.get_by_role("button", name="Test").click()
    expect(page.get_by_role("status")).to_contain_text("Test passed")
    expect(page.get_by_role("status")).to_contain_text("answered 200")

    page.get_by_role("button", name="Refresh now").click()
    expect(page.get_by_role("status")).to_contain_text("Token refreshed")
    assert oauth.stats()["token_calls"]["refresh_token"] == 1
    expect(page.locator("table.events")).to_contain_text("connection.refreshed")

    page.goto("/console/accounts")
    expect(page.get_by_role("row", name=re.compile("DEV")).locator(".badge")).to_have_text("active")
    shot(page, "accounts")
    page.get_by_role("row", name=re.compile(key)).get_by_role("link", name="DEV").click()

    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_text("revoked at the provider first")).to_be_visible()
    assert oauth.stats()["revocations"] == 0
    page.get_by_role("button", name="Delete account").click()
    expect(page.locator("#revocation")).to_contain_text("Revoked at the provider")
    stats = oauth.stats()
    assert stats["revocations"] == 2 and stats["revoked_tokens"] >= 2  # refresh token, then access token

    page.goto(f"/console/events?integration={key}&type=connection.revoked")
    expect(page.locator("table.events tbody tr")).to_have_count(1)
    shot(page, "events")


def test_the_provider_refusing_shows_on_the_account_page_and_reconnect_fixes_it(
    console: Page, oauth: OAuthServer
) -> None:
    """Deny on the consent page comes back as the provider's error on the account page; Reconnect then succeeds."""
    page = console
    key = _key("deny")
    _create_oauth_integration(page, oauth, key)
    page.goto(f"/console/accounts/new?integration={key}")
    page.get_by_label("Account name").fill("QA")
    page.get_by_role("button", name=re.compile("Continue to")).click()
    page.get_by_label("Username").fill(oauth.USERNAME)
    page.get_by_label("Password").fill(oauth.PASSWORD)
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="QA")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("access_denied")
    expect(page.locator("h1 .badge")).to_have_text("error")
    # Reconnect runs the authorization again; approving this time makes the account active.
    page.get_by_role("button", name="Reconnect").click()
    page.get_by_label("Username").fill(oauth.USERNAME)
    page.get_by_label("Password").fill(oauth.PASSWORD)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Connected")
    expect(page.locator("h1 .badge")).to_have_text("active")


def test_form_errors_are_shown_next_to_their_fields(console: Page) -> None:
    """validate_spec's problems appear by the fields they concern, marked invalid, and in a summary."""
    page = console
    page.goto("/console/integrations/new")
    page.get_by_label("Key", exact=True).fill("not a key")
    expect(page.get_by_label("Refresh window")).to_be_hidden()  # the advanced section starts collapsed
    page.locator("#s-refresh summary").click()
    page.get_by_label("Refresh window").fill("soon")
    page.get_by_role("button", name="Save integration").click()
    key_field = page.locator(".field", has=page.locator("#f-key"))
    expect(key_field.locator(".error-text")).to_contain_text("only letters and digits")
    expect(page.locator("#f-key")).to_have_attribute("aria-invalid", "true")
    token_url = page.locator(".field", has=page.locator("#f-oauth2-token_url"))
    expect(token_url.locator(".error-text")).to_contain_text("is required")
    window = page.locator(".field", has=page.locator("#f-refresh-window"))
    expect(window.locator(".error-text")).to_contain_text("duration")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#s-refresh details")).to_have_attribute("open", "")  # its error keeps it open
    expect(page.locator("#s-hooks details")).not_to_have_attribute("open", "")
    page.locator("#error-summary").get_by_role("link", name="Key").click()
    expect(page.locator("#f-key")).to_be_focused()
    shot(page, "integration-form-errors")


def test_fields_follow_the_auth_and_grant_type(console: Page) -> None:
    """Choosing an auth type shows its section only; the client-credentials grant hides the authorization fields."""
    page = console
    page.goto("/console/integrations/new")
    expect(page.locator("#s-oauth2")).to_be_visible()
    expect(page.locator("#s-custom_token")).to_be_hidden()
    expect(page.get_by_label("Authorization Endpoint")).to_be_visible()
    page.get_by_label("Authorization Grant Type").select_option("client_credentials")
    expect(page.get_by_label("Authorization Endpoint")).to_be_hidden()
    expect(page.get_by_label("Redirect URI to register with the provider")).to_be_hidden()
    page.get_by_label("Authentication type").select_option("api_token")
    expect(page.locator("#s-oauth2")).to_be_hidden()
    expect(page.locator("#s-api_token")).to_be_visible()
    expect(page.locator("#s-refresh")).to_be_hidden()
    page.get_by_label("Authentication type").select_option("custom_token")
    expect(page.locator("#s-custom_token")).to_be_visible()


def test_a_wrong_csrf_token_is_refused(console: Page) -> None:
    """A form whose CSRF token was tampered with gets the 403 page and saves nothing."""
    page = console
    key = _key("csrf")
    page.goto("/console/import")
    page.get_by_label("Integration spec (YAML)").fill(f"key: {key}\nname: Forged\n")
    page.locator("input[name=csrf]").last.evaluate("el => el.value = 'forged'")
    page.get_by_role("button", name="Save YAML").click()
    expect(page.get_by_role("heading", name="Forbidden")).to_be_visible()
    response = page.request.post(
        "/console/import", form={"yaml": f"key: {key}\nname: Forged\n"}, max_redirects=0, fail_on_status_code=False
    )
    assert response.status == 403
    page.goto("/console/integrations")
    expect(page.get_by_text(key)).to_have_count(0)


def test_secrets_never_reach_the_page(console: Page, oauth: OAuthServer) -> None:
    """Client secret, secret parameters and tokens are write-only; editing without the secret keeps it."""
    page = console
    key = _key("cc")
    _create_oauth_integration(page, oauth, key, grant="client_credentials")
    # Edit without retyping the secret: the stored one is kept (the token request below needs it).
    expect(page.get_by_text("Leave empty to keep the stored secret")).to_be_visible()
    page.get_by_label("Integration Name").fill("Partner API")
    page.get_by_role("button", name="Save integration").click()
    expect(page.get_by_role("status").filter(has_text="version 2")).to_be_visible()
    page.get_by_role("link", name="YAML").click()
    expect(page.get_by_label("Integration spec (YAML)")).to_have_value(re.compile(r"client_secret: '\*{8}'"))
    with page.expect_download() as download:
        page.get_by_role("link", name=f"Download {key}.yaml").click()
    text = download.value.path().read_text()
    assert f"key: {key}" in text and oauth.CONFIDENTIAL_SECRET not in text

    # A secret integration parameter, pasted as YAML onto the same integration.
    yaml_text = page.get_by_label("Integration spec (YAML)").input_value()
    yaml_text = yaml_text.replace(
        "auth:", "parameters:\n- name: apiSecret\n  secret: true\n  required: true\nauth:", 1
    ).replace("request:", "request:\n  headers:\n    X-Key: '{apiSecret}'", 1)
    page.get_by_label("Integration spec (YAML)").fill(yaml_text)
    page.get_by_role("button", name="Save YAML").click()
    expect(page.get_by_role("status").filter(has_text="version 3")).to_be_visible()

    page.goto(f"/console/accounts/new?integration={key}")
    expect(page.get_by_label(re.compile("apiSecret"))).to_have_attribute("type", "password")
    page.get_by_label("Account name").fill("PROD")
    page.get_by_label(re.compile("apiSecret")).fill("p4ram-s3cret-value")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status")).to_contain_text("Account created")
    expect(page.locator("h1 .badge")).to_have_text("active")
    html = page.content()
    assert "p4ram-s3cret-value" not in html and oauth.CONFIDENTIAL_SECRET not in html
    assert "********" in html
    for path in (f"/console/integrations/{key}/edit", f"/console/integrations/{key}/yaml", "/console/events"):
        page.goto(path)
        assert oauth.CONFIDENTIAL_SECRET not in page.content() and "p4ram-s3cret-value" not in page.content()


def test_connect_form_errors_and_phone_layout(browser, console_server: ConsoleServer) -> None:
    """At 390 px every page fits without horizontal scrolling; connect-form problems show by their fields."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=console_server.base_url)
    try:
        page = context.new_page()
        sign_in(page, console_server.api_key)
        key = _key("phone")
        page.goto("/console/import")
        page.get_by_label("Integration spec (YAML)").fill(
            f"key: {key}\nname: Phone API\nparameters:\n- name: serverName\n  required: true\n"
            '  pattern: "^[a-z]+$"\nauth:\n  type: api_token\nrequest:\n  base_url: https://{serverName}.example.com\n'
        )
        page.get_by_role("button", name="Save YAML").click()
        page.goto(f"/console/accounts/new?integration={key}")
        page.get_by_label("Account name").fill("Phone")
        page.locator("#f-param-serverName").fill("NOT-VALID")
        page.get_by_label("API token").fill("tok-123")
        page.get_by_role("button", name="Connect").click()
        field = page.locator(".field", has=page.locator("#f-param-serverName"))
        expect(field.locator(".error-text")).to_contain_text("does not match ^[a-z]+$")
        assert "tok-123" not in page.content()
        for path in ("/console/integrations", "/console/integrations/new", "/console/accounts", "/console/events"):
            page.goto(path)
            fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert fits, f"{path} scrolls sideways at 390 px"
            shot(page, "phone" + path.replace("/", "-"))
    finally:
        context.close()


def test_the_form_works_without_javascript(browser, console_server: ConsoleServer) -> None:
    """With scripts off every section stays visible, parameters are added by a submit button, and saving works."""
    context = browser.new_context(java_script_enabled=False, base_url=console_server.base_url)
    try:
        page = context.new_page()
        sign_in(page, console_server.api_key)
        page.goto("/console/integrations/new")
        expect(page.locator("#s-oauth2")).to_be_visible()
        expect(page.locator("#s-custom_token")).to_be_visible()
        key = _key("nojs")
        page.get_by_label("Key", exact=True).fill(key)
        page.get_by_label("Integration Name").fill("No JS")
        page.get_by_label("Authentication type").select_option("api_token")
        page.get_by_role("button", name="Add a parameter").click()
        page.locator("#f-parameters-0-name").fill("region")
        page.locator("#f-parameters-0-required").check()
        page.get_by_label("Base URL").fill("https://{region}.example.com")
        page.get_by_role("button", name="Save integration").click()
        expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
        page.get_by_role("link", name="YAML").click()
        text = page.get_by_label("Integration spec (YAML)").input_value()
        assert "type: api_token" in text and "name: region" in text and "required: true" in text
    finally:
        context.close()
