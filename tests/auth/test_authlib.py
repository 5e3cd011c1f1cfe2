"""Tests of the Authlib facade: PKCE, state, client_secret_basic and grant fields."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import unquote_plus

import pytest

from authbridge.auth import create_pkce_pair, new_state
from authbridge.auth._authlib import client_secret_basic, grant_fields


def test_pkce_challenge_is_s256_of_verifier() -> None:
    """The challenge is base64url(sha256(verifier)) without padding, and the verifier fits RFC 7636."""
    verifier, challenge = create_pkce_pair()
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert "=" not in challenge


def test_pkce_pairs_differ() -> None:
    """Each call makes a new verifier."""
    assert create_pkce_pair()[0] != create_pkce_pair()[0]


def test_state_is_long_urlsafe_and_random() -> None:
    """A state carries at least 32 random bytes in URL-safe characters."""
    state = new_state()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", state)
    assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) >= 32
    assert new_state() != state


def test_client_secret_basic_form_encodes_id_and_secret() -> None:
    """The Basic value form-urlencodes id and secret first (RFC 6749 §2.3.1), so ':' and '+' survive."""
    value = client_secret_basic("my:client", "se:cr+et é")
    scheme, _, encoded = value.partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(encoded).decode("ascii").partition(":")
    assert (user, password) == ("my%3Aclient", "se%3Acr%2Bet+%C3%A9")
    assert (unquote_plus(user), unquote_plus(password)) == ("my:client", "se:cr+et é")


def test_grant_fields_order_and_empty_values() -> None:
    """grant_type comes first and empty values are left out."""
    fields = grant_fields("authorization_code", code="c+/é", redirect_uri="https://app/cb", code_verifier=None)
    assert fields[0] == ("grant_type", "authorization_code")
    assert dict(fields) == {"grant_type": "authorization_code", "code": "c+/é", "redirect_uri": "https://app/cb"}


def test_grant_fields_need_a_code() -> None:
    """The authorization_code grant without a code is a ValueError."""
    with pytest.raises(ValueError, match="needs a code"):
        grant_fields("authorization_code")
