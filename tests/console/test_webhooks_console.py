"""Webhooks in the console over HTTP (TestClient): list, add (secret shown once), remove, hostile URLs, CSRF."""

from __future__ import annotations

import functools
import re
import typing
from pathlib import Path

import pytest

from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _signed_in(make_client: ClientFactory, env: dict[str, str]) -> tuple[TestClient, str]:
    """A started app's client (redirects not followed), signed in; and the page's CSRF token."""
    client = make_client(env)
    client.follow_redirects = False
    page = client.get("/console/sign-in")
    response = client.post(
        "/console/sign-in", data={"csrf": _csrf(page.text), "secret": create_api_key(client), "next": "/console/"}
    )
    assert response.status_code == 303
    return client, _csrf(client.get("/console/webhooks").text)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A SQLite service without background tasks, private networks not allowed (the default)."""
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false")


def test_add_shows_the_secret_once_lists_and_removes(make_client: ClientFactory, env) -> None:
    """Adding redirects (PRG) to a page showing the whsec_ secret once; reloads and the list never show it again."""
    client, csrf = _signed_in(make_client, env)
    empty = client.get("/console/webhooks")
    assert empty.status_code == 200 and "No webhooks yet" in empty.text
    assert 'href="/console/webhooks"' in empty.text  # in the navigation

    response = client.post("/console/webhooks", data={"csrf": csrf, "url": "https://hooks.example.com/ab"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/console/webhooks?created=")

    shown = client.get(location)
    secrets = re.findall(r"whsec_[A-Za-z0-9_\-]+", shown.text)
    assert shown.status_code == 200 and len(secrets) == 1
    secret = secrets[0]
    assert "not shown again" in shown.text and "https://hooks.example.com/ab" in shown.text

    hooks = portal(client).call(store_of(client).webhooks.list)
    assert [h.url for h in hooks] == ["https://hooks.example.com/ab"]
    assert (hooks[0].pending, hooks[0].delivered, hooks[0].failed) == (0, 0, 0)

    reload = client.get(location)  # the same address again: the secret is gone
    assert reload.status_code == 200 and secret not in reload.text and "whsec_" not in reload.text
    listing = client.get("/console/webhooks")
    assert "https://hooks.example.com/ab" in listing.text and "whsec_" not in listing.text
    assert "not shown again" not in listing.text

    removed = client.post(f"/console/webhooks/{hooks[0].id}/remove", data={"csrf": csrf})
    assert removed.status_code == 303 and removed.headers["location"] == "/console/webhooks?removed=1"
    assert portal(client).call(store_of(client).webhooks.list) == []
    after = client.get(removed.headers["location"])
    assert "Webhook removed." in after.text and "hooks.example.com" not in after.text

    missing = client.post(f"/console/webhooks/{hooks[0].id}/remove", data={"csrf": csrf})
    assert missing.status_code == 404


def test_the_list_shows_delivery_counts(make_client: ClientFactory, env) -> None:
    """Each webhook's pending, delivered and failed counts come from the store."""
    client, _csrf_token = _signed_in(make_client, env)
    store = store_of(client)
    portal(client).call(store.webhooks.add, "https://a.example.com/hook")
    portal(client).call(functools.partial(store.events.add, "connection.created", data={}))
    html = client.get("/console/webhooks").text
    row = re.search(r"<tr>\s*<td><code>https://a.example.com/hook</code></td>(.*?)</tr>", html, re.S)
    assert row, html
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    assert cells[1:4] == ["1", "0", "0"] and cells[4] == "active"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("javascript:alert(1)", "must be an http:// or https:// URL"),
        ("http://10.0.0.5/hook", "private or link-local address"),
        ("http://127.0.0.1:8080/hook", "private or link-local address"),
        ("http://[::ffff:192.168.1.1]/hook", "private or link-local address"),
        ("http://localhost/hook", "private or link-local address"),
        ("http://api.localhost./hook", "private or link-local address"),
        ("http://[::1/hook", "cannot be parsed"),
        ("https://example.com/" + "a" * 5000, "longer than 2048 characters"),
        ("https://user:pw@example.com/hook", "may not contain a user name or password"),
        ("http://example.com:99999/", "cannot be parsed"),
        ("   ", "Give the URL"),
    ],
)
def test_hostile_urls_are_refused_with_a_field_error_and_nothing_stored(
    make_client: ClientFactory, env, url: str, message: str
) -> None:
    """A URL that cannot be a webhook comes back 422 with the reason next to the field; no webhook is stored."""
    client, csrf = _signed_in(make_client, env)
    response = client.post("/console/webhooks", data={"csrf": csrf, "url": url})
    assert response.status_code == 422
    assert message in response.text
    assert 'id="f-webhook-url-error"' in response.text and 'aria-invalid="true"' in response.text
    assert 'href="javascript' not in response.text
    assert len(response.text) < 20_000  # a 5,000-character URL is not echoed whole
    assert portal(client).call(store_of(client).webhooks.list) == []


def test_private_addresses_are_accepted_when_private_networks_are_allowed(make_client: ClientFactory, env) -> None:
    """With AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true a loopback receiver (a local test setup) may be added."""
    client, csrf = _signed_in(make_client, {**env, "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true"})
    response = client.post("/console/webhooks", data={"csrf": csrf, "url": "http://127.0.0.1:9000/hook"})
    assert response.status_code == 303
    assert [h.url for h in portal(client).call(store_of(client).webhooks.list)] == ["http://127.0.0.1:9000/hook"]


def test_adding_and_removing_need_the_csrf_token(make_client: ClientFactory, env) -> None:
    """Without the session's CSRF token neither the add nor the remove form does anything."""
    client, csrf = _signed_in(make_client, env)
    for bad in ({}, {"csrf": "forged"}, {"csrf": csrf[:-2] + "AA"}):
        response = client.post("/console/webhooks", data={"url": "https://hooks.example.com/x", **bad})
        assert response.status_code == 403 and "security token" in response.text
    assert portal(client).call(store_of(client).webhooks.list) == []

    record, _secret = portal(client).call(store_of(client).webhooks.add, "https://hooks.example.com/keep")
    response = client.post(f"/console/webhooks/{record.id}/remove", data={"csrf": "forged"})
    assert response.status_code == 403
    assert [h.id for h in portal(client).call(store_of(client).webhooks.list)] == [record.id]


def test_the_secret_is_not_shown_to_another_session(make_client: ClientFactory, env) -> None:
    """The created= id of one session's redirect shows nothing to another session."""
    client, csrf = _signed_in(make_client, env)
    location = client.post("/console/webhooks", data={"csrf": csrf, "url": "https://h.example.com/"}).headers[
        "location"
    ]
    first_session = dict(client.cookies.items())
    client.cookies.clear()
    page = client.get("/console/sign-in")
    client.post("/console/sign-in", data={"csrf": _csrf(page.text), "secret": create_api_key(client, "b")})
    assert "whsec_" not in client.get(location).text  # another session of the same server
    client.cookies.clear()
    for name, value in first_session.items():
        client.cookies.set(name, value, path="/console")
    assert "whsec_" in client.get(location).text  # still waiting for its own session
