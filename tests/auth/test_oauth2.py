"""Tests of the OAuth 2.0 authorization URL: templated host, kept query, scope, state, PKCE and extras."""

from __future__ import annotations

import re
import typing

import httpx
import pytest

from authbridge.auth import AuthContext, authorization_url
from authbridge.errors import SpecError, UnsafeValueError
from authbridge.spec import Integration

REDIRECT = "https://bridge.example/oauth/callback"


def make_ctx(**auth: typing.Any) -> AuthContext:
    """A connection of an authorization-code integration on server ``eu1``, with ``auth`` fields overridden."""
    block: dict[str, typing.Any] = {
        "type": "oauth2",
        "authorization_url": "https://{serverName}.acme.example/oauth2/authorize?tenant=t1",
        "token_url": "https://{serverName}.acme.example/oauth2/token",
        "client_id": "client-{serverName}",
        "client_secret": "cs-Secr3t-9XKJ",
        "scopes": ["read", "write"],
        **auth,
    }
    integration = Integration.model_validate(
        {
            "key": "acme",
            "name": "Acme",
            "parameters": [{"name": "serverName"}, {"name": "idp", "format": "url"}],
            "auth": block,
        }
    )
    return AuthContext(
        integration, parameters={"serverName": "eu1", "idp": "https://login.idp.example"}, redirect_uri=REDIRECT
    )


def params_of(url: str) -> httpx.QueryParams:
    """The query parameters of ``url``."""
    return httpx.URL(url).params


def test_authorization_url_has_the_standard_parameters() -> None:
    """The URL carries response_type, client_id, redirect_uri, scope, state and the S256 challenge."""
    url = authorization_url(make_ctx(), state="st-123", code_challenge="chal-456")
    parsed = httpx.URL(url)
    assert (parsed.scheme, parsed.host, parsed.path) == ("https", "eu1.acme.example", "/oauth2/authorize")
    assert dict(parsed.params) == {
        "tenant": "t1",
        "response_type": "code",
        "client_id": "client-eu1",
        "redirect_uri": REDIRECT,
        "scope": "read write",
        "state": "st-123",
        "code_challenge": "chal-456",
        "code_challenge_method": "S256",
    }


def test_authorization_url_without_pkce_or_scopes() -> None:
    """No challenge means no PKCE parameters; no scopes means no scope parameter."""
    params = params_of(authorization_url(make_ctx(scopes=[], pkce=False), state="s", code_challenge=None))
    assert "code_challenge" not in params
    assert "code_challenge_method" not in params
    assert "scope" not in params


def test_scope_separator_is_used() -> None:
    """Scopes are joined by the integration's separator."""
    params = params_of(authorization_url(make_ctx(scope_separator=","), state="s", code_challenge=None))
    assert params["scope"] == "read,write"


def test_authorize_params_are_rendered_and_cannot_replace_standard_ones() -> None:
    """authorize_params are rendered; one named like a standard parameter is dropped."""
    ctx = make_ctx(authorize_params={"prompt": "consent", "region": "{serverName}", "state": "evil", "client_id": "x"})
    params = params_of(authorization_url(ctx, state="s", code_challenge=None))
    assert params["prompt"] == "consent"
    assert params["region"] == "eu1"
    assert params.get_list("state") == ["s"]
    assert params.get_list("client_id") == ["client-eu1"]


def test_authorize_params_scope_fills_in_when_no_scopes() -> None:
    """An authorize_params scope is used when the integration declares no scopes."""
    ctx = make_ctx(scopes=[], authorize_params={"scope": "openid email"})
    assert params_of(authorization_url(ctx, state="s", code_challenge=None))["scope"] == "openid email"


def test_whole_url_parameter_fills_the_authorization_url() -> None:
    """A format: url parameter may supply the whole base URL."""
    ctx = make_ctx(authorization_url="{idp}/authorize")
    url = httpx.URL(authorization_url(ctx, state="s", code_challenge=None))
    assert (url.host, url.path) == ("login.idp.example", "/authorize")


def test_unsafe_host_value_is_refused() -> None:
    """A parameter value that would move the host is refused."""
    ctx = make_ctx()
    bad = AuthContext(ctx.integration, parameters={"serverName": "evil.example/x"}, redirect_uri=REDIRECT)
    with pytest.raises(UnsafeValueError, match="the value of serverName is not a valid host name part"):
        authorization_url(bad, state="s", code_challenge=None)


def test_missing_authorization_url_is_a_spec_error() -> None:
    """An integration without an authorization URL cannot start an authorization."""
    with pytest.raises(SpecError, match="authorization_url"):
        authorization_url(make_ctx(authorization_url=None), state="s", code_challenge=None)


def test_not_an_oauth2_integration() -> None:
    """A non-OAuth integration is a TypeError."""
    ctx = AuthContext(Integration.model_validate({"key": "x", "name": "X", "auth": {"type": "api_token"}}))
    with pytest.raises(TypeError, match=re.escape("integration x is not an OAuth 2.0 integration")):
        authorization_url(ctx, state="s", code_challenge=None)
