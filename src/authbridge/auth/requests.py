"""Token, refresh and revocation requests of OAuth 2.0 and custom token integrations, built but never sent."""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx

from authbridge.auth import _authlib
from authbridge.auth.base import AuthContext
from authbridge.auth.client_auth import CLIENT_AUTH_METHODS, KEY_METHODS, Client
from authbridge.auth.oauth2 import render_endpoint, scope_string
from authbridge.errors import ConnectionStateError, ErrorItem, ParameterError, SpecError, UnsafeValueError
from authbridge.spec import CustomTokenAuth, OAuth2Auth
from authbridge.spec.models import JwtBearerAuth, RefreshRequest, TokenStep, compile_pattern
from authbridge.spec.templating import TemplateSource, render_header, render_text

__all__ = [
    "JWT_BEARER_GRANT",
    "GrantType",
    "RevokeRequest",
    "assertion_request",
    "assertion_url",
    "check_captures",
    "revocation_problem",
    "revoke_requests",
    "step_request",
    "token_request",
]

#: RFC 7523 §2.1: the ``grant_type`` of a JWT bearer assertion.
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

GrantType = typing.Literal["authorization_code", "client_credentials", "password", "refresh_token"]
BodyKind = typing.Literal["form", "json", "query"]
#: Fields a ``token_params`` entry cannot replace: they carry the grant itself.
_PROTECTED = frozenset({"grant_type", "code", "code_verifier", "redirect_uri", "refresh_token"})


FieldValue = str | bool | int | float


def _render_fields(
    ctx: AuthContext,
    sources: Mapping[str, TemplateSource | bool | int | float],
    field: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, FieldValue]:
    """Render each template; booleans and numbers stay as they are (JSON types in a JSON body)."""
    values = {**ctx.values(), **(extra or {})}
    return {
        name: src
        if isinstance(src, bool | int | float)
        else render_text(src, values, field=f"{field}.{name}", clock=ctx.clock)
        for name, src in sources.items()
    }


def _as_text(value: FieldValue) -> str:
    """A field as form or query text: booleans as JSON writes them (``true``), numbers as their text."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _render_headers(
    ctx: AuthContext, sources: Mapping[str, TemplateSource], field: str, extra: Mapping[str, str] | None = None
) -> httpx.Headers:
    values = {**ctx.values(), **(extra or {})}
    rendered = {
        name: render_header(src, values, field=f"{field}.{name}", clock=ctx.clock) for name, src in sources.items()
    }
    if not any(name.lower() == "accept" for name in rendered):
        rendered["Accept"] = "application/json"
    return httpx.Headers(rendered)


def _client_auth(
    ctx: AuthContext, auth: OAuth2Auth, fields: dict[str, FieldValue], headers: httpx.Headers, audience: str
) -> None:
    """Authenticate the client per ``client_auth`` (``authbridge.auth.client_auth``), in place.

    A public client (no secret) sends only its ``client_id`` as a field. ``audience`` is the URL the
    request goes to (a client assertion names it).
    """
    values = ctx.values()
    client_id, secret = values.get("client_id"), values.get("client_secret")
    if not client_id:
        return
    now = ctx.clock() if ctx.clock is not None else datetime.now(UTC)
    if auth.client_auth in KEY_METHODS:
        key = ctx.client_private_key()
        if not key:
            raise ParameterError(
                [ErrorItem("auth.client_private_key", f"has no value; {auth.client_auth} signs with it")]
            )
        kid = render_text(auth.client_key_id, values, field="auth.client_key_id") if auth.client_key_id else None
        client = Client(client_id, key, audience, now, key_id=kid, alg=auth.client_assertion_alg)
        CLIENT_AUTH_METHODS[auth.client_auth](client, fields, headers)
        return
    if not secret:
        fields["client_id"] = client_id
        return
    CLIENT_AUTH_METHODS[auth.client_auth](Client(client_id, secret, audience, now), fields, headers)


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> httpx.URL:
    """A rendered endpoint, parsed once (httpx's parser costs ~30 µs; every connection of a spec calls the same URL).

    An ``httpx.URL`` is immutable: requests made from it share it safely.
    """
    return httpx.URL(url)


def _build(
    method: str, url: str, body: BodyKind, fields: Mapping[str, FieldValue], headers: httpx.Headers
) -> httpx.Request:
    """Put ``fields`` where the spec says: the query (GET, or ``body: query``), a JSON object or a form.

    Authlib's clients send only form-encoded POST requests; the GET verb (Airkit's "Access Token
    Verb"), JSON bodies and query-only POSTs that token endpoints in the wild require are built here.
    """
    text = {name: _as_text(value) for name, value in fields.items()}
    if method == "GET" or body == "query":
        return httpx.Request(method, _parsed(url).copy_merge_params(text), headers=headers)
    if body == "json":
        return httpx.Request(method, _parsed(url), json=dict(fields), headers=headers)
    if not text:
        return httpx.Request(method, _parsed(url), data=text, headers=headers)
    return _form_request(method, _parsed(url), text, headers)


def _form_request(method: str, url: httpx.URL, fields: dict[str, str], headers: httpx.Headers) -> httpx.Request:
    """``httpx.Request(method, url, data=fields, headers=headers)``, the same request, its headers put in place first.

    httpx would encode the form, then add each default header through ``setdefault`` (a KeyError per
    miss) and rebuild the headers: a third of the cost of building a token request. Same body, same
    headers in the same order: Host first, then ``headers``, then Content-Length and Content-Type
    (each only when ``headers`` has none).
    """
    content = urlencode(list(fields.items()), doseq=True).encode("utf-8")
    raw = list(headers.raw)
    present = {name.lower() for name, _ in raw}
    if b"content-length" not in present:
        raw.append((b"Content-Length", str(len(content)).encode("ascii")))
    if b"content-type" not in present:
        raw.append((b"Content-Type", b"application/x-www-form-urlencoded"))
    if b"host" not in present and url.host:
        raw.insert(0, (b"Host", url.netloc))
    # With every header in place, ``stream=`` (then ``read()``) makes the same request without httpx's
    # encoding and header defaults: half the cost of ``content=``.
    request = httpx.Request(method, url, headers=raw, stream=httpx.ByteStream(content))
    request.read()
    return request


def check_captures(ctx: AuthContext) -> None:
    """Refuse captured callback fields that do not match their ``auth.callback.patterns`` entry.

    Checked before every token request that may use them: a captured field in ``token_url``'s host
    decides where the client secret goes, and the redirect's query passed through the browser.

    Raises:
        UnsafeValueError: a captured value does not match its pattern (the message names the field).
    """
    auth = ctx.integration.auth
    if not isinstance(auth, OAuth2Auth):
        return
    for name, pattern in auth.callback.patterns.items():
        value = ctx.credentials.get(name)
        if value is not None and not compile_pattern(pattern).fullmatch(str(value)):
            raise UnsafeValueError(
                f"auth.callback.patterns.{name}: the callback's {name} does not match {pattern}; "
                "refusing to send the token request"
            )


def _token_url(ctx: AuthContext, auth: OAuth2Auth | CustomTokenAuth) -> str:
    if auth.token_url is None:
        raise SpecError([ErrorItem("auth.token_url", "is required to request a token")], source=ctx.integration.key)
    check_captures(ctx)
    return render_endpoint(ctx, auth.token_url, field="auth.token_url")


def _grant_fields(
    ctx: AuthContext, auth: OAuth2Auth, grant_type: GrantType, code: str | None, code_verifier: str | None
) -> list[tuple[str, str]]:
    """The standard fields of the grant, from the connection's state."""
    if grant_type == "authorization_code":
        if not code:
            raise ValueError("the authorization_code grant needs the code the callback received")
        return _authlib.grant_fields(grant_type, code=code, redirect_uri=ctx.redirect_uri, code_verifier=code_verifier)
    if grant_type == "refresh_token":
        if not ctx.refresh_token:
            raise ConnectionStateError(f"{ctx.integration.key}: the connection has no refresh token; authorize again")
        return _authlib.grant_fields(grant_type, refresh_token=ctx.refresh_token)
    if grant_type == "password":
        absent = [name for name in ("username", "password") if not ctx.inputs.get(name)]
        if absent:
            raise ParameterError([ErrorItem(f"inputs.{name}", "is required by the password grant") for name in absent])
        return _authlib.grant_fields(
            grant_type, username=ctx.inputs["username"], password=ctx.inputs["password"], scope=scope_string(auth)
        )
    return _authlib.grant_fields(grant_type, scope=scope_string(auth))


def _refresh_request(ctx: AuthContext, auth: OAuth2Auth, spec: RefreshRequest) -> httpx.Request:
    """The integration's own refresh request (``refresh.request``), with client authentication on top."""
    if spec.url is not None:
        url = render_endpoint(ctx, spec.url, field="refresh.request.url", credentials=True)
    else:
        url = _token_url(ctx, auth)  # refresh.request without url: the token endpoint
    fields = _render_fields(ctx, spec.params, "refresh.request.params")
    headers = _render_headers(ctx, spec.headers, "refresh.request.headers")
    _client_auth(ctx, auth, fields, headers, url)
    return _build(spec.method, url, spec.body, fields, headers)


def token_request(
    ctx: AuthContext,
    *,
    grant_type: GrantType | None,
    code: str | None = None,
    code_verifier: str | None = None,
) -> httpx.Request:
    """Build the request to the token endpoint; the caller sends it and parses the answer.

    OAuth 2.0 requests carry the grant's standard fields, then the rendered ``token_params`` (which
    cannot replace ``grant_type``, ``code``, ``code_verifier``, ``redirect_uri`` or
    ``refresh_token``), then the client authentication of ``client_auth``. Custom token requests
    carry only ``token_params``. ``token_method`` and ``token_body`` say where the fields go;
    ``token_headers`` are added, with ``Accept: application/json`` unless they set ``Accept``. A
    refresh of an integration with ``refresh.request`` builds that request instead.

    ```
    request = token_request(ctx, grant_type="authorization_code", code=code, code_verifier=verifier)
    token = parse_token_response(ctx.integration, await client.send(request), now=now, endpoint=str(request.url))
    ```

    Args:
        ctx: the connection: values, tokens, inputs, redirect URI.
        grant_type: the OAuth 2.0 grant; None for a custom token integration.
        code: the authorization code the callback received (``authorization_code``).
        code_verifier: the PKCE verifier of the authorization, if one was sent.

    Raises:
        TypeError: the integration is neither OAuth 2.0 nor custom token.
        ValueError: the grant type does not fit the integration, or the code is missing.
        ConnectionStateError: a refresh is asked for, but the connection has no refresh token.
        ParameterError: the password grant lacks the username or password input.
        SpecError: the integration has no ``token_url``.
        TemplateError: a template cannot be rendered (``UnsafeValueError`` for an unsafe value).
    """
    auth = ctx.integration.auth
    if isinstance(auth, CustomTokenAuth):
        if grant_type is not None:
            raise ValueError(f"{ctx.integration.key} is a custom token integration: pass grant_type=None")
        fields = _render_fields(ctx, auth.token_params, "auth.token_params")
        headers = _render_headers(ctx, auth.token_headers, "auth.token_headers")
        return _build(auth.token_method, _token_url(ctx, auth), auth.token_body, fields, headers)
    auth = ctx.oauth2
    if grant_type is None:
        raise ValueError(f"{ctx.integration.key} is an OAuth 2.0 integration: pass a grant_type")
    if grant_type == "refresh_token" and ctx.integration.refresh.request is not None:
        return _refresh_request(ctx, auth, ctx.integration.refresh.request)
    fields = dict[str, FieldValue](_grant_fields(ctx, auth, grant_type, code, code_verifier))
    for name, value in _render_fields(ctx, auth.token_params, "auth.token_params").items():
        if name not in _PROTECTED or name not in fields:
            fields[name] = value
    if auth.resource is not None and "resource" not in fields:  # RFC 8707 §2.2: on every token request
        fields["resource"] = render_endpoint(ctx, auth.resource, field="auth.resource")
    headers = _render_headers(ctx, auth.token_headers, "auth.token_headers")
    url = _token_url(ctx, auth)
    _client_auth(ctx, auth, fields, headers, url)
    return _build(auth.token_method, url, auth.token_body, fields, headers)


def step_request(ctx: AuthContext, step: TokenStep, *, field: str, jwt: str | None = None) -> httpx.Request:
    """Build one request of a multi-step token request (``auth.steps[i]``), rendered with ``ctx``'s captures.

    Like a custom token request: ``params`` go where ``method`` and ``body`` say, ``headers`` are
    added (with ``Accept: application/json`` unless set). ``field`` is the step's spec path;
    ``jwt`` the step's signed JWT, which its headers and params use as ``{jwt}``.

    Raises:
        TemplateError: a template cannot be rendered (``UnsafeValueError`` for an unsafe value).
    """
    extra = {"jwt": jwt} if jwt is not None else None
    url = render_endpoint(ctx, step.url, field=f"{field}.url")
    fields = _render_fields(ctx, step.params, f"{field}.params", extra)
    headers = _render_headers(ctx, step.headers, f"{field}.headers", extra)
    return _build(step.method, url, step.body, fields, headers)


def assertion_url(ctx: AuthContext, auth: JwtBearerAuth) -> str:
    """The rendered ``token_url`` of a JWT bearer integration (the assertion's default audience).

    Raises:
        SpecError: the integration has no ``token_url``.
        TemplateError: the URL cannot be rendered (``UnsafeValueError`` for an unsafe value).
    """
    if auth.token_url is None:
        raise SpecError([ErrorItem("auth.token_url", "is required to request a token")], source=ctx.integration.key)
    return render_endpoint(ctx, auth.token_url, field="auth.token_url")


def assertion_request(ctx: AuthContext, auth: JwtBearerAuth, assertion: str, url: str) -> httpx.Request:
    """The RFC 7523 §2.1 token request: ``grant_type`` jwt-bearer, the signed ``assertion``, the ``scope``.

    ``token_params`` are added (they cannot replace ``grant_type`` or ``assertion``); ``scope`` is
    left out when the scopes ride in the assertion (``scope_claim``) or there are none.
    """
    fields: dict[str, FieldValue] = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    if auth.scopes and not auth.scope_claim:
        fields["scope"] = auth.scope_separator.join(auth.scopes)
    for name, value in _render_fields(ctx, auth.token_params, "auth.token_params").items():
        if name not in ("grant_type", "assertion"):
            fields[name] = value
    headers = _render_headers(ctx, auth.token_headers, "auth.token_headers")
    return _build(auth.token_method, url, auth.token_body, fields, headers)


class RevokeRequest(typing.NamedTuple):
    """One RFC 7009 revocation request and the kind of token it revokes (``refresh_token`` | ``access_token``)."""

    token_type: str
    request: httpx.Request


def revoke_requests(ctx: AuthContext) -> list[RevokeRequest]:
    """Build the RFC 7009 revocation requests: the refresh token first, then the access token.

    Each is a form POST of ``token`` and ``token_type_hint`` to the rendered ``revoke_url`` (which may
    use ``{credentials.x}``), with the client authentication of ``client_auth``. The list is empty
    when the integration has no ``revoke_url`` or the connection holds no token. Each request stands
    alone: the caller sends every one, whatever the others' answers.

    Raises:
        TemplateError: the revocation URL cannot be rendered (``UnsafeValueError`` for an unsafe value).
    """
    auth = ctx.integration.auth
    if not isinstance(auth, OAuth2Auth) or auth.revoke_url is None:
        return []
    pairs = ((ctx.refresh_token, "refresh_token"), (ctx.access_token, "access_token"))
    present = [(token, hint) for token, hint in pairs if token]
    if not present:
        return []
    url = render_endpoint(ctx, auth.revoke_url, field="auth.revoke_url", credentials=True)
    requests: list[RevokeRequest] = []
    for token, hint in present:
        fields: dict[str, FieldValue] = {"token": token, "token_type_hint": hint}
        headers = httpx.Headers({"Accept": "application/json"})
        _client_auth(ctx, auth, fields, headers, url)
        requests.append(RevokeRequest(hint, _build("POST", url, "form", fields, headers)))
    return requests


_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def revocation_problem(response: httpx.Response) -> str | None:
    """What a revocation endpoint's answer says went wrong (``answered 400 (unsupported_token_type)``), or None.

    RFC 7009 answers 200 when the token is revoked (or was already invalid). Only the ``error`` code
    of an error body is shown, and only when it looks like one (the body may echo anything).
    """
    if 200 <= response.status_code < 300:
        return None
    code = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and _ERROR_CODE.fullmatch(body["error"]):
        code = body["error"]
    return f"answered {response.status_code}" + (f" ({code})" if code else "")
