"""The console over HTTP (TestClient): cookie flags and size, CSRF, sessions ending, the admin password command.

The same pages in a real browser are tested in ``test_browser.py``.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from authbridge.cli import app as cli_app
from authbridge.console.session import COOKIE
from tests.conftest import ClientFactory, create_api_key, portal, sqlite_env, store_of

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _sign_in(client: TestClient, secret: str) -> typing.Any:
    page = client.get("/console/sign-in")
    return client.post("/console/sign-in", data={"csrf": _csrf(page.text), "secret": secret, "next": "/console/events"})


def _client(make_client: ClientFactory, env: dict[str, str]) -> TestClient:
    """A started app whose client shows redirects instead of following them."""
    client = make_client(env)
    client.follow_redirects = False
    return client


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A SQLite service without background tasks."""
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false")


def test_session_cookie_is_small_httponly_lax_and_not_secure_over_http(make_client: ClientFactory, env) -> None:
    """Signing in sets one small HttpOnly, SameSite=Lax cookie scoped to /console, and goes to the page asked for."""
    client = _client(make_client, env)
    response = _sign_in(client, create_api_key(client))
    assert response.status_code == 303 and response.headers["location"] == "/console/events"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie
    assert len(cookie.split(";")[0]) < 300


def test_session_cookie_is_secure_when_the_public_url_is_https(make_client: ClientFactory, env) -> None:
    """Behind an https public URL the session cookie carries Secure."""
    client = _client(make_client, {**env, "AUTHBRIDGE_PUBLIC_URL": "https://auth.example.com"})
    client.base_url = "https://testserver"  # Secure cookies travel over https only
    response = _sign_in(client, create_api_key(client))
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert "Secure" in cookie


def test_every_post_needs_the_session_csrf_token(make_client: ClientFactory, env) -> None:
    """A POST without the token, with a forged one or with another session's is refused with 403."""
    client = _client(make_client, env)
    key = create_api_key(client)
    _sign_in(client, key)
    token = _csrf(client.get("/console/import").text)
    for bad in ({}, {"csrf": "forged"}, {"csrf": token[:-2] + "AA"}):
        response = client.post("/console/import", data={"yaml": "key: x\nname: X\n", **bad})
        assert response.status_code == 403 and "security token" in response.text
    assert client.post("/console/import", data={"yaml": "key: x\nname: X\n", "csrf": token}).status_code == 303

    other = _client(make_client, env)
    _sign_in(other, key)
    response = other.post("/console/import", data={"yaml": "key: y\nname: Y\n", "csrf": token})
    assert response.status_code == 403


def test_sign_in_itself_needs_its_csrf_token(make_client: ClientFactory, env) -> None:
    """The sign-in form is protected too (login CSRF): a POST without the nonce cookie's token is refused."""
    client = _client(make_client, env)
    response = client.post("/console/sign-in", data={"secret": create_api_key(client), "csrf": "x"})
    assert response.status_code == 403
    assert COOKIE not in client.cookies


def test_forged_or_tampered_cookies_are_not_sessions(make_client: ClientFactory, env) -> None:
    """A cookie that is not signed by this server leads back to the sign-in page."""
    client = _client(make_client, env)
    _sign_in(client, create_api_key(client))
    value = client.cookies[COOKIE]
    body, mac = value.split(".")
    for forged in (f"{body}.{mac[:-2]}AA", f"{body[:-2]}AA.{mac}", "garbage"):
        client.cookies.set(COOKIE, forged, path="/console")
        response = client.get("/console/integrations")
        assert response.status_code == 303 and response.headers["location"].startswith("/console/sign-in")


def test_revoking_the_api_key_ends_its_sessions(make_client: ClientFactory, env) -> None:
    """A session signed in with an API key ends as soon as the key is revoked."""
    client = _client(make_client, env)
    _sign_in(client, create_api_key(client, "soon-revoked"))
    assert client.get("/console/integrations").status_code == 200
    portal(client).call(store_of(client).api_keys.revoke, "soon-revoked")
    assert client.get("/console/integrations").status_code == 303


def test_admin_password_from_the_cli_signs_in_and_changing_it_ends_sessions(
    make_client: ClientFactory, env, runner: CliRunner
) -> None:
    """`authbridge admin set-password` stores a password the console accepts; setting another ends old sessions."""
    short = runner.invoke(cli_app, ["admin", "set-password", "--password-stdin"], input="short\n", env=env)
    assert short.exit_code == 2 and "12 characters" in short.stderr
    result = runner.invoke(
        cli_app, ["admin", "set-password"], input="first password 123\nfirst password 123\n", env=env
    )
    assert result.exit_code == 0, result.stderr
    client = _client(make_client, env)
    assert _sign_in(client, "wrong password 123").status_code == 401
    assert _sign_in(client, "first password 123").status_code == 303
    assert client.get("/console/integrations").status_code == 200
    portal(client).call(store_of(client).admin.set_password, "second password 456")
    assert client.get("/console/integrations").status_code == 303


def test_next_only_leads_inside_the_console(make_client: ClientFactory, env) -> None:
    """After sign-in, a `next` outside the console (another site, another path) is replaced by the console's home."""
    client = _client(make_client, env)
    key = create_api_key(client)
    for target in ("https://evil.example/", "//evil.example/console/", "/docs", "/console\\@evil"):
        client.cookies.clear()
        page = client.get("/console/sign-in")
        response = client.post("/console/sign-in", data={"csrf": _csrf(page.text), "secret": key, "next": target})
        assert response.headers["location"] == "/console/"


def test_pages_are_not_cached_and_not_framed(make_client: ClientFactory, env) -> None:
    """Console pages carry no-store, a CSP without inline script, and refuse framing; / leads to the console."""
    client = _client(make_client, env)
    assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
    response = client.get("/console/sign-in")
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text and " style=" not in response.text


def test_unknown_pages_and_objects_render_the_error_page(make_client: ClientFactory, env) -> None:
    """A missing integration or account is a 404 page, not JSON."""
    client = _client(make_client, env)
    _sign_in(client, create_api_key(client))
    for path in ("/console/integrations/nope/edit", "/console/accounts/nope", "/console/nowhere"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
