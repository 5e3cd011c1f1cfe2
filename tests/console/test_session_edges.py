"""Console sessions at their edges: cookies that are signed but malformed, sign-in with nothing or when signed in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from authbridge.console.session import COOKIE, Signer
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
