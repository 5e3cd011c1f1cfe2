"""Client authentication methods: every `client_auth` value has its method; client_secret_jwt signs per RFC 7523."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import OctKey

from authbridge.auth import AuthContext, revoke_requests, token_request
from authbridge.auth.client_auth import CLIENT_AUTH_METHODS
from authbridge.spec import Integration, OAuth2Auth

SECRET = "cs-Secr3t-for-hs256-0123456789abcdef"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ctx_of(**auth: typing.Any) -> AuthContext:
    spec = Integration.model_validate(
        {
            "key": "acme",
            "name": "Acme",
            "auth": {
                "type": "oauth2",
                "grant_type": "client_credentials",
                "token_url": "https://acme.example/oauth/token",
                "revoke_url": "https://acme.example/oauth/revoke",
                "client_id": "cid",
                "client_secret": SECRET,
                **auth,
            },
        }
    )
    return AuthContext(spec, clock=lambda: NOW, access_token="at-1")


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def test_every_client_auth_value_of_the_spec_has_its_method() -> None:
    accepted = typing.get_args(OAuth2Auth.model_fields["client_auth"].annotation)
    assert set(accepted) == set(CLIENT_AUTH_METHODS)


def test_client_secret_jwt_sends_an_assertion_for_the_endpoint_and_not_the_secret() -> None:
    request = token_request(ctx_of(client_auth="client_secret_jwt"), grant_type="client_credentials")
    fields = form(request)
    assert fields["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "authorization" not in request.headers
    assert SECRET not in request.content.decode() and "client_secret" not in fields
    token = jwt.decode(fields["client_assertion"], OctKey.import_key(SECRET), algorithms=["HS256"])
    claims = token.claims
    assert token.header["alg"] == "HS256"
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("cid", "cid", "https://acme.example/oauth/token")
    assert claims["iat"] == int(NOW.timestamp()) and claims["exp"] == claims["iat"] + 300
    again = form(token_request(ctx_of(client_auth="client_secret_jwt"), grant_type="client_credentials"))
    assert jwt.decode(again["client_assertion"], OctKey.import_key(SECRET)).claims["jti"] != claims["jti"]
    with pytest.raises(BadSignatureError, match="bad_signature"):
        jwt.decode(fields["client_assertion"], OctKey.import_key("another-secret-0123456789abcdef"))


def test_a_revocation_assertion_names_the_revocation_endpoint() -> None:
    (revoke,) = revoke_requests(ctx_of(client_auth="client_secret_jwt"))
    assertion = form(revoke.request)["client_assertion"]
    assert jwt.decode(assertion, OctKey.import_key(SECRET)).claims["aud"] == "https://acme.example/oauth/revoke"
