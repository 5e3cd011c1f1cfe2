"""``jwt_bearer``: RFC 7523 §2.1, a JWT signed by AuthBridge exchanged for an access token (Google, Salesforce).

The assertion is signed when the account connects and again at each refresh (there is no refresh
token). Its claims default to RFC 7523's: ``aud`` the token endpoint, ``iat``/``exp`` from
``assertion.ttl``, a random ``jti``, and, when the key is a service-account key file, ``iss`` its
``client_email``; the spec's ``assertion.claims`` override any of them.
"""

from __future__ import annotations

import secrets
import typing

import httpx

from authbridge.auth.base import AuthContext, Deferred, TokenSet
from authbridge.auth.form import KV_HELP, TEMPLATE_HELP, Field, jwt_fields
from authbridge.auth.jwt import mint_jwt, signing_key
from authbridge.auth.plugin import AuthPlugin, Input, TokenExchange, TokenFlow
from authbridge.auth.requests import assertion_request, assertion_url
from authbridge.spec import Integration
from authbridge.spec.models import JwtBearerAuth

__all__ = ["JwtBearerPlugin"]


def _auth(spec: Integration) -> JwtBearerAuth:
    auth = spec.auth
    if not isinstance(auth, JwtBearerAuth):
        raise TypeError(f"integration {spec.key} is not a JWT bearer integration")
    return auth


class JwtBearerPlugin(AuthPlugin):
    """A signed assertion for a token, again to refresh."""

    type = "jwt_bearer"
    label = "JWT Bearer (RFC 7523)"
    model = JwtBearerAuth
    form_title = "JWT Bearer Grant"
    form_intro = (
        "AuthBridge signs a JWT (the assertion) with the account's private key and exchanges it for an access "
        "token, again at each refresh: Google service accounts, Salesforce's JWT flow."
    )
    form_fields = (
        Field("jwt_bearer.token_url", "auth.token_url", "Access Token Endpoint", "url", TEMPLATE_HELP, templated=True),
        Field("jwt_bearer.scopes", "auth.scopes", "Scopes", "list", "Separated by spaces.", sep=" "),
        Field(
            "jwt_bearer.scope_claim",
            "auth.scope_claim",
            "Send the scopes in the assertion's scope claim (Google)",
            "checkbox",
        ),
        *jwt_fields("jwt_bearer", "auth.assertion"),
        Field("jwt_bearer.token_params", "auth.token_params", "Access Token Parameters", "kv", KV_HELP),
        Field("jwt_bearer.token_headers", "auth.token_headers", "Access token request headers", "kv", KV_HELP),
    )
    form_sections = ("token_response", "token", "refresh")

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        auth = _auth(spec)
        return self._referenced_inputs(spec, [*auth.token_params.values(), *auth.token_headers.values()])

    def refreshable(self, spec: Integration) -> bool:
        return True

    def scopes(self, spec: Integration) -> list[str]:
        return list(_auth(spec).scopes)

    def begin(self, ctx: AuthContext) -> TokenExchange:
        return TokenExchange(self._flow(ctx), hookable=False)

    def refresh(self, ctx: AuthContext) -> TokenExchange:
        return TokenExchange(self._flow(ctx), hookable=False)

    def _flow(self, ctx: AuthContext) -> TokenFlow:
        auth = _auth(ctx.integration)
        url = assertion_url(ctx, auth)
        key = signing_key(ctx, auth.assertion, field="auth.assertion")
        claims: dict[str, typing.Any] = {"aud": url, "jti": secrets.token_urlsafe(24)}
        if key.key_file.get("client_email"):
            claims["iss"] = key.key_file["client_email"]
        if auth.scope_claim and auth.scopes:
            claims["scope"] = auth.scope_separator.join(auth.scopes)
        minted = mint_jwt(ctx, auth.assertion, field="auth.assertion", claims=claims, key=key)
        return self._one_request(ctx, lambda: assertion_request(ctx, auth, minted.token, url), minted.token)

    def read_token(
        self,
        ctx: AuthContext,
        response: httpx.Response,
        *,
        endpoint: Deferred[str],
        secrets: Deferred[tuple[str, ...]],
    ) -> TokenSet:
        return self._parse(ctx, response, endpoint, secrets)
