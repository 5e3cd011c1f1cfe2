"""``oauth1``: OAuth 1.0a (RFC 5849), three-legged or with a token the user enters; every API request is signed.

Three-legged (Trello, Garmin, the old Twitter API):

1. ``begin`` is a :class:`RedirectExchange`: a signed request to ``request_token_url`` with
   ``oauth_callback`` = AuthBridge's callback URL plus ``?state=...``; the answer's ``oauth_token``
   goes in the authorize URL, and the token and its secret are kept (encrypted) with the flow state
   as the Redirect's ``code_verifier``: never in the URL.
2. The provider sends the browser back with ``state``, ``oauth_token`` (which must be the flow's
   request token) and ``oauth_verifier``.
3. ``finish`` signs a request to ``access_token_url`` with the request token, its secret and the
   verifier; the answer's ``oauth_token`` is stored as the access token and ``oauth_token_secret``
   in the (encrypted) refresh-token slot, which an OAuth 1.0a connection never uses to refresh.

Token-based (NetSuite TBA): the user enters ``token_id`` and ``token_secret`` when connecting.

Either way ``sign`` adds the ``oauth_*`` parameters and the signature (HMAC-SHA1/SHA256,
RSA-SHA1/SHA256, PLAINTEXT) to each request, in the Authorization header (with ``realm``) or the
query; a form-encoded body is part of the signature (RFC 5849 §3.4.1.3). Authlib's OAuth 1 client
builds the base string and signs (``auth/_authlib.py``).
"""

from __future__ import annotations

import hmac
import json
import typing
from collections.abc import Mapping
from urllib.parse import parse_qsl

import httpx

from authbridge.auth import _authlib
from authbridge.auth._authlib import new_state
from authbridge.auth.base import AuthContext, TokenSet, endpoint_text
from authbridge.auth.form import KV_HELP, TEMPLATE_HELP, Field
from authbridge.auth.oauth2 import render_endpoint
from authbridge.auth.placement import standard_placement
from authbridge.auth.plugin import AuthPlugin, Callback, Entered, Input, Redirect, RedirectExchange, TokenExchange
from authbridge.errors import (
    CallbackError,
    ConnectionStateError,
    ErrorItem,
    SpecError,
    TokenEndpointError,
    UnsafeValueError,
)
from authbridge.redact import redact, scrub
from authbridge.spec import Integration, OAuth1Auth
from authbridge.spec.models import SignatureMethod
from authbridge.spec.templating import render_header, render_text

__all__ = ["OAuth1Plugin"]

_THREE: typing.Final = "three_legged"
_TOKEN_INPUTS = (Input("token_id", "Token ID", secret=True), Input("token_secret", "Token secret", secret=True))

_FIELDS = (
    Field(
        "oauth1.flow",
        "auth.flow",
        "Flow",
        "select",
        options=((_THREE, "Three-legged (the user authorizes in the browser)"), ("token", "Token entered by the user")),
    ),
    Field(
        "oauth1.request_token_url",
        "auth.request_token_url",
        "Request token URL (temporary credentials)",
        "url",
        TEMPLATE_HELP,
        templated=True,
    ),
    Field(
        "oauth1.authorization_url",
        "auth.authorization_url",
        "User authorization URL",
        "url",
        TEMPLATE_HELP,
        templated=True,
    ),
    Field(
        "oauth1.access_token_url",
        "auth.access_token_url",
        "Access token URL (token credentials)",
        "url",
        TEMPLATE_HELP,
        templated=True,
    ),
    Field("oauth1.authorize_params", "auth.authorize_params", "User authorization parameters", "kv", KV_HELP),
    Field("oauth1.client_id", "auth.client_id", "Consumer Key", templated=True),
    Field(
        "oauth1.client_secret",
        "auth.client_secret",
        "Consumer Secret",
        "secret",
        "The PEM private key with an RSA signature method.",
    ),
    Field(
        "oauth1.signature_method",
        "auth.signature_method",
        "Signature method",
        "select",
        options=tuple((m, m) for m in typing.get_args(SignatureMethod)),
    ),
    Field(
        "oauth1.signature_location",
        "auth.signature_location",
        "Signature location",
        "select",
        options=(("header", "Authorization header"), ("query", "query string")),
    ),
    Field("oauth1.realm", "auth.realm", "Realm", "text", "Optional, e.g. {accountId} for NetSuite.", templated=True),
)


def _auth(spec: Integration) -> OAuth1Auth:
    auth = spec.auth
    if not isinstance(auth, OAuth1Auth):
        raise TypeError(f"integration {spec.key} is not an OAuth 1.0a integration")
    return auth


def _needed(ctx: AuthContext, *names: str) -> None:
    auth = _auth(ctx.integration)
    missing = [name for name in names if getattr(auth, name) is None]
    if missing:
        problems = [ErrorItem(f"auth.{name}", f"is required for an oauth1 {auth.flow} integration") for name in missing]
        raise SpecError(problems, source=ctx.integration.key)


class _Client(typing.NamedTuple):
    client_id: str
    client_secret: str
    signature_method: str
    location: str
    realm: str | None


def _client(ctx: AuthContext) -> _Client:
    auth = _auth(ctx.integration)
    _needed(ctx, "client_id", "client_secret")
    assert auth.client_id is not None and auth.client_secret is not None  # checked above
    realm = None if auth.realm is None else render_header(auth.realm, ctx.values(), field="auth.realm", clock=ctx.clock)
    if realm is not None and ('"' in realm or "\\" in realm):
        # Authlib writes realm="..." unescaped: a quote would end it and add parameters of the value's choosing.
        raise UnsafeValueError("auth.realm: the value contains a double quote or backslash")
    client_id = render_text(auth.client_id, ctx.parameters, field="auth.client_id", clock=ctx.clock)
    return _Client(
        client_id, auth.client_secret.get_secret_value(), auth.signature_method, auth.signature_location, realm
    )


def _sign(
    ctx: AuthContext,
    request: httpx.Request,
    *,
    token: str | None = None,
    token_secret: str | None = None,
    callback: str | None = None,
    verifier: str | None = None,
) -> httpx.Request:
    """Sign ``request`` in place (its body read) and return it."""
    client = _client(ctx)
    try:
        url, authorization = _authlib.oauth1_sign(
            request.method,
            str(request.url),
            content_type=request.headers.get("content-type"),
            body=request.content,
            client_id=client.client_id,
            client_secret=client.client_secret,
            signature_method=client.signature_method,
            location=client.location,
            token=token,
            token_secret=token_secret,
            callback=callback,
            verifier=verifier,
            realm=client.realm,
        )
    except ValueError as exc:  # the RSA key cannot be loaded; the message never quotes it
        raise ConnectionStateError(f"integration {ctx.integration.key}: auth.client_secret {exc}") from None
    request.url = httpx.URL(url)
    if authorization is not None:
        request.headers["Authorization"] = authorization
    return request


def _read_form(
    ctx: AuthContext, response: httpx.Response, *, endpoint: str, secrets: tuple[str, ...], what: str
) -> dict[str, str]:
    """The ``oauth_token`` and ``oauth_token_secret`` of a token endpoint's answer (RFC 5849 §2.1, §2.3)."""
    key = ctx.integration.key
    text = response.content[: ctx.max_body].decode("utf-8", errors="replace")
    if not 200 <= response.status_code < 300:
        shown = redact(scrub(text.strip()[:200], secrets))
        raise TokenEndpointError(
            f"{key}: {what} endpoint {endpoint} answered {response.status_code}" + (f": {shown}" if shown else ""),
            integration=key,
            endpoint=endpoint,
            status=response.status_code,
            permanent=400 <= response.status_code < 500,
        )
    fields = dict(parse_qsl(text.strip(), keep_blank_values=True))
    if not fields.get("oauth_token") or "oauth_token_secret" not in fields:
        raise TokenEndpointError(
            f"{key}: {what} endpoint {endpoint} answered {response.status_code} without oauth_token and "
            "oauth_token_secret (a form-encoded body is expected)",
            integration=key,
            endpoint=endpoint,
            status=response.status_code,
        )
    return fields


class OAuth1Plugin(AuthPlugin):
    """OAuth 1.0a: a request token authorized in the browser, or a token entered; each request signed."""

    type = "oauth1"
    label = "OAuth 1.0a"
    model = OAuth1Auth
    form_title = "OAuth 1.0a Configuration"
    form_intro = "Three-legged: the user authorizes in the browser. Token: the user enters a token id and secret."
    form_fields = _FIELDS
    form_sections = ("token",)

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        return () if _auth(spec).flow == _THREE else _TOKEN_INPUTS

    def redirects(self, spec: Integration) -> bool:
        return _auth(spec).flow == _THREE

    def entered(self, spec: Integration) -> bool:
        return _auth(spec).flow != _THREE

    def signs(self, spec: Integration) -> bool:
        return True

    def style(self, spec: Integration) -> str:
        auth = _auth(spec)
        return f"oauth1 ({auth.flow}, {auth.signature_method})"

    def client_app(self, spec: Integration) -> tuple[str | list[str] | None, str | None]:
        auth = _auth(spec)
        return auth.client_id, auth.client_secret.get_secret_value() if auth.client_secret is not None else None

    def begin(self, ctx: AuthContext) -> RedirectExchange | Entered:
        """Three-legged: the request-token request, then the authorize URL; token-based: the entered token."""
        auth = _auth(ctx.integration)
        if auth.flow != _THREE:
            return Entered(access_token=ctx.inputs["token_id"], inputs={"token_secret": ctx.inputs["token_secret"]})
        _needed(ctx, "request_token_url", "authorization_url", "access_token_url")
        return RedirectExchange(self._request_token(ctx))

    def _request_token(self, ctx: AuthContext) -> typing.Generator[httpx.Request, httpx.Response, Redirect]:
        auth = _auth(ctx.integration)
        assert auth.request_token_url is not None and auth.authorization_url is not None  # begin checked
        state = new_state()
        callback = str(httpx.URL(ctx.redirect_uri or "").copy_merge_params({"state": state}))
        url = render_endpoint(ctx, auth.request_token_url, field="auth.request_token_url")
        authorize = render_endpoint(ctx, auth.authorization_url, field="auth.authorization_url")
        request = _sign(ctx, httpx.Request("POST", url), callback=callback)
        response = yield request
        secrets = ctx.secrets()
        endpoint = endpoint_text(request.url, secrets)
        fields = _read_form(ctx, response, endpoint=endpoint, secrets=secrets, what="request token")
        if fields.get("oauth_callback_confirmed", "").lower() != "true":  # RFC 5849 §2.1: MUST be "true"
            key = ctx.integration.key
            raise TokenEndpointError(
                f"{key}: request token endpoint {endpoint} did not confirm the callback (OAuth 1.0a expected)",
                integration=key,
                endpoint=endpoint,
            )
        values = ctx.values()
        extra = {
            name: render_text(source, values, field=f"auth.authorize_params.{name}", clock=ctx.clock)
            for name, source in auth.authorize_params.items()
        }
        target = httpx.URL(authorize).copy_merge_params({**extra, "oauth_token": fields["oauth_token"]})
        kept = json.dumps([fields["oauth_token"], fields["oauth_token_secret"]])
        return Redirect(str(target), state, kept)

    def callback(self, ctx: AuthContext, query: Mapping[str, str], code_verifier: str | None) -> Callback:
        """The redirect must bring back the flow's request token and a verifier (RFC 5849 §2.2)."""
        try:
            token, _secret = json.loads(code_verifier or "")
        except (ValueError, TypeError):
            raise CallbackError("this authorization has no request token: start again") from None
        returned = query.get("oauth_token", "")
        if not hmac.compare_digest(returned.encode(), str(token).encode()):
            raise CallbackError("the provider's redirect carried another request token than this authorization's")
        verifier = query.get("oauth_verifier")
        if not verifier:
            raise CallbackError("the provider's redirect carried no oauth_verifier (OAuth 1.0a expected)")
        return Callback(verifier, code_verifier, dict(query))

    def finish(self, ctx: AuthContext, callback: Callback) -> TokenExchange:
        token, token_secret = json.loads(callback.code_verifier or "")
        return TokenExchange(
            self._access_token(ctx, token, token_secret, callback.code),
            hookable=False,
            code=callback.code,
            code_verifier=token_secret,
            query=callback.query,
        )

    def _access_token(
        self, ctx: AuthContext, token: str, token_secret: str, verifier: str
    ) -> typing.Generator[httpx.Request, httpx.Response, TokenSet]:
        auth = _auth(ctx.integration)
        assert auth.access_token_url is not None  # begin checked
        url = render_endpoint(ctx, auth.access_token_url, field="auth.access_token_url")
        request = _sign(ctx, httpx.Request("POST", url), token=token, token_secret=token_secret, verifier=verifier)
        response = yield request
        secrets = ctx.secrets(token, token_secret, verifier)
        endpoint = endpoint_text(request.url, secrets)
        fields = _read_form(ctx, response, endpoint=endpoint, secrets=secrets, what="access token")
        extra = {k: v for k, v in fields.items() if k not in {"oauth_token", "oauth_token_secret"}}
        return TokenSet(
            access_token=fields["oauth_token"],
            refresh_token=fields["oauth_token_secret"],
            token_type="OAuth",  # noqa: S106 - a scheme name
            extra=extra,
        )

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        """The integration's headers and query; the credentials go in the signature."""
        return standard_placement(ctx, token=False)

    def sign(self, ctx: AuthContext, request: httpx.Request) -> httpx.Request:
        """Add the ``oauth_*`` parameters and the signature for the connection's token (in place)."""
        token_secret = ctx.inputs.get("token_secret") or ctx.refresh_token
        if ctx.access_token is None or token_secret is None:
            raise ConnectionStateError(f"a connection of {ctx.integration.key} has no OAuth 1.0a token: connect it")
        return _sign(ctx, request, token=ctx.access_token, token_secret=token_secret)
