"""Add from catalog in real Chromium against a real ``authbridge run``: search, pick, read the setup notes, create."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.console.conftest import shot

SECRET = "cs-browser-catalog-5e0d"


def test_add_from_catalog_to_the_integration_page(console: Page) -> None:
    """From Integrations: Add from catalog, search, open HubSpot, fill the OAuth app, land on the integration page."""
    key = "hubspot" + uuid.uuid4().hex[:8]
    console.goto("/console/integrations")
    console.get_by_role("link", name="Add from catalog").click()
    expect(console.get_by_role("heading", name="Add from catalog", level=1)).to_be_visible()
    console.get_by_label("Search").fill("hub")
    console.get_by_label("Category").select_option("crm")
    console.get_by_role("button", name="Search").click()
    expect(console.get_by_role("link", name="HubSpot")).to_be_visible()
    expect(console.get_by_role("link", name="Salesforce")).to_have_count(0)
    console.get_by_role("link", name="HubSpot").click()

    expect(console.get_by_role("heading", name="Set up HubSpot")).to_be_visible()
    expect(console.get_by_text("Redirect URI to register:")).to_be_visible()
    console.get_by_label("Key").fill(key)
    console.get_by_label("Client ID").fill("hs-client")
    console.get_by_label("Client secret").fill(SECRET)
    expect(console.get_by_label("Scopes")).to_have_value("oauth crm.objects.contacts.read")
    shot(console, "catalog-entry")
    console.get_by_role("button", name="Create integration").click()

    expect(console.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    assert console.url.endswith(f"/console/integrations/{key}/edit?saved=1")
    assert SECRET not in console.content()
