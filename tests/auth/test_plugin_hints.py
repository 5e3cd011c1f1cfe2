"""What a plugin tells the console and the broker about a spec or a token answer: a missing secret, no refresh token.

The browser tests of the same are in ``tests/console/test_new_user_browser.py``.
"""

from __future__ import annotations

import typing

import pytest

from authbridge.auth import PLUGINS, TokenSet, plugin_for
from authbridge.spec import Integration

_CODE = {
    "type": "oauth2",
    "authorization_url": "https://idp.example/authorize",
    "token_url": "https://idp.example/token",
    "client_id": "app",
}


def _spec(**auth: typing.Any) -> Integration:
    return Integration.model_validate(
        {"key": "acme", "name": "Acme", "request": {"base_url": "https://api.example"}, "auth": {**_CODE, **auth}}
    )


@pytest.mark.parametrize(
    ("auth", "missing"),
    [
        ({}, True),  # the default client authentication is a header: a confidential client
        ({"client_secret": "s"}, False),
        ({"client_auth": "body"}, False),  # a public client: id in the body, PKCE on
        ({"client_auth": "body", "pkce": False}, True),
        ({"client_auth": "body", "grant_type": "client_credentials"}, True),
        ({"client_auth": "body", "grant_type": "password"}, False),
        ({"client_auth": "client_secret_jwt"}, True),
    ],
)
def test_a_confidential_client_without_its_secret_is_incomplete(auth: dict[str, typing.Any], missing: bool) -> None:
    """oauth2 names ``auth.client_secret`` when a client that needs a secret has none."""
    problems = plugin_for("oauth2").incomplete(_spec(**auth))
    assert bool(problems) is missing
    if missing:
        assert problems[0].path == "auth.client_secret"
        assert "client secret" in problems[0].message


def test_other_types_are_never_incomplete() -> None:
    """The default answer is nothing missing."""
    spec = Integration.model_validate({"key": "k", "name": "K", "auth": {"type": "none"}})
    assert plugin_for("none").incomplete(spec) == []
    assert plugin_for("none").token_warning(spec, TokenSet(access_token="t")) is None


def test_no_refresh_token_where_one_was_expected_is_warned_with_the_usual_fix() -> None:
    """An authorization code answer without a refresh token says what usually makes the provider send one."""
    oauth2 = PLUGINS["oauth2"]
    warning = oauth2.token_warning(_spec(), TokenSet(access_token="t"))
    assert warning is not None and "prompt=consent" in warning and "offline_access" in warning
    assert oauth2.token_warning(_spec(), TokenSet(access_token="t", refresh_token="r")) is None
    assert oauth2.token_warning(_spec(refresh_token=False), TokenSet(access_token="t")) is None
    assert oauth2.token_warning(_spec(grant_type="client_credentials"), TokenSet(access_token="t")) is None


@pytest.mark.parametrize(
    ("error", "field"),
    [
        ("acme: token endpoint https://idp.example/token answered 401 invalid_client", "oauth2.client_secret"),
        ("acme: token endpoint https://idp.example/token answered 404", "oauth2.token_url"),
        ("acme: token endpoint https://idp.example/token answered 400 invalid_scope", "oauth2.scopes"),
        ("the provider refused the authorization: invalid_request: bad redirect_uri", "redirect-uri"),
        ("acme: token endpoint https://idp.example/token answered 500", None),
    ],
)
def test_provider_errors_get_a_hint_and_the_field_to_fix(error: str, field: str | None) -> None:
    """oauth2 names the usual cause of a refusal and the form field that fixes it; other types say nothing."""
    hint = PLUGINS["oauth2"].error_hint(_spec(), error)
    assert (hint[1] if hint else None) == field
    assert PLUGINS["api_token"].error_hint(_spec(), error) is None
