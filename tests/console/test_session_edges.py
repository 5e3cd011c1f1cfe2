"""Console sessions at their edges: cookies that are signed but malformed, sign-in with nothing or when signed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from authbridge.app import console_secret
from authbridge.config import Settings
from authbridge.console.session import COOKIE, Signer
from authbridge.errors import ConfigError
from tests.conftest import ClientFactory, create_api_key, sqlite_env
from tests.console.test_http import _client, _sign_in

SECRET = b"s" * 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _signed(payload: bytes) -> str:
    """A cookie value signed with SECRET as the console signs sessions: HMAC-SHA256 over ``session\\0payload``."""
    mac = hmac.new(SECRET, b"session\x00" + payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def test_the_secret_must_be_long_and_is_never_shown() -> None:
    """A console secret under 32 bytes is refused; the signer's repr hides it."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Signer(b"x" * 31)
    assert "s" * 32 not in repr(Signer(SECRET)) and "hidden" in repr(Signer(SECRET))


def test_a_sealed_session_opens_until_it_expires() -> None:
    """The round trip, as the cookie carries it; expired or under another secret, it is no session."""
    signer = Signer(SECRET)
    now = time.time()
    claims = {"sid": "abc", "sub": "key:1", "name": "n", "exp": int(now) + 60}
    value = signer.seal(claims)
    assert value == _signed(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    assert signer.open(value, now=now) == claims
    assert signer.open(value, now=now + 61) is None
    assert Signer(b"t" * 32).open(value, now=now) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "no-dot-at-all",
        "a.b.c",
        "%%%%.%%%%",  # not base64
        "x" * 1100 + ".y",  # too long to be ours
        _signed(b"not json"),
        _signed(b"[1, 2, 3]"),  # JSON, not an object
        _signed(json.dumps({"sid": "abc", "sub": "key:1"}).encode()),  # no expiry
        _signed(json.dumps({"sub": "key:1", "exp": 4102444800}).encode()),  # no session id
        _signed(json.dumps({"sid": "abc", "sub": 7, "exp": 4102444800}).encode()),  # subject not a string
    ],
)
def test_anything_but_a_complete_signed_session_is_no_session(value: str | None) -> None:
    """Malformed values, and correctly signed ones without an expiry, session id or subject, open to None."""
    assert Signer(SECRET).open(value, now=time.time()) is None


def test_purpose_tokens_do_not_stand_in_for_each_other() -> None:
    """A token checks only for its own purpose and value; a missing value or token never checks."""
    signer = Signer(SECRET)
    token = signer.token("csrf", "sid-1")
    assert signer.check("csrf", "sid-1", token)
    assert not signer.check("login", "sid-1", token)
    assert not signer.check("csrf", "sid-2", token)
    assert not signer.check("csrf", None, token) and not signer.check("csrf", "sid-1", None)
    assert not signer.check("csrf", "sid-1", "é" + token[1:])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return sqlite_env(tmp_path, AUTHBRIDGE_BACKGROUND_TASKS="false")


def test_signing_in_with_nothing_fails_politely(make_client: ClientFactory, env: dict[str, str]) -> None:
    """An empty secret is a failed sign-in (401, the form again), never a session."""
    client = _client(make_client, env)
    for secret in ("", "   "):
        response = _sign_in(client, secret)
        assert response.status_code == 401
        assert 'name="secret"' in response.text and COOKIE not in client.cookies


def test_the_sign_in_page_sends_a_signed_in_user_home(make_client: ClientFactory, env: dict[str, str]) -> None:
    """Opening the sign-in page with a live session goes to the console's home instead."""
    client = _client(make_client, env)
    assert _sign_in(client, create_api_key(client)).status_code == 303
    again = client.get("/console/sign-in")
    assert again.status_code == 303 and again.headers["location"].endswith("/console/")


def test_a_signed_session_of_an_unknown_kind_is_no_session(make_client: ClientFactory, env: dict[str, str]) -> None:
    """A cookie signed with the real console secret but whose subject is neither a key nor the admin (or an admin
    with no fingerprint) leads to the sign-in page."""
    client = _client(make_client, env)
    signer = Signer(console_secret(Settings.from_env(env)))
    for subject in ("robot:1", "admin:"):
        claims = {"sid": "s1", "sub": subject, "name": "", "exp": int(time.time()) + 600}
        client.cookies.set(COOKIE, signer.seal(claims), path="/console")
        response = client.get("/console/integrations")
        assert response.status_code == 303 and response.headers["location"].startswith("/console/sign-in")


def test_posts_that_are_not_forms_or_too_large_are_refused(make_client: ClientFactory, env: dict[str, str]) -> None:
    """A POST that is not a urlencoded form is a 400 page, one over the body limit a 413 page; nothing is imported."""
    client = _client(make_client, env)
    _sign_in(client, create_api_key(client))
    as_json = client.post("/console/import", json={"yaml": "key: x\nname: X\n"})
    assert as_json.status_code == 400 and "The form could not be read" in as_json.text
    huge = client.post("/console/import", data={"yaml": "x" * (1024 * 1024 + 10)})
    assert huge.status_code == 413 and huge.headers["content-type"].startswith("text/html")
    assert "The form was too large" in huge.text
    assert "key: x" not in client.get("/console/integrations").text


def test_a_post_without_a_session_goes_to_sign_in_then_home(make_client: ClientFactory, env: dict[str, str]) -> None:
    """Signed out, a POST is not replayed after sign-in: the sign-in page then leads to the console's home."""
    client = _client(make_client, env)
    response = client.post("/console/import", data={"yaml": "key: x\nname: X\n"})
    assert response.status_code == 303 and response.headers["location"] == "/console/sign-in?next=/console/"


def test_a_console_key_file_too_short_is_refused(tmp_path: Path) -> None:
    """A console.key under 32 bytes is refused with what to do (delete it), not used as a weak secret."""
    env = sqlite_env(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "console.key").write_bytes(b"short")
    with pytest.raises(ConfigError, match=r"console\.key is shorter than 32 bytes: delete it to make a new one"):
        console_secret(Settings.from_env(env))
