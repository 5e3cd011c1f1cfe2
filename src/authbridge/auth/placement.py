"""Put a connection's credentials on an API request: base URL, request parameters and the token."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import httpx

from authbridge.auth.base import AuthContext
from authbridge.errors import ConnectionStateError, TemplateError
from authbridge.spec import BasicAuth, NoneAuth
from authbridge.spec.templating import (
    TemplateSource,
    references_of,
    render_header,
    render_path,
    render_text,
    render_url,
)

__all__ = ["api_request", "base_url", "credential_headers_and_query"]


def base_url(ctx: AuthContext) -> str:
    """The integration's rendered ``request.base_url`` (a whole-URL value may come from credentials)."""
    source = ctx.integration.request.base_url
    if source is None:
        raise TemplateError(f"{ctx.integration.key}: request.base_url is not set, so there is nowhere to send requests")
    values = ctx.values()
    whole = {p.name for p in ctx.integration.parameters if p.format == "url"}
    whole |= {name for name in values if name.startswith("credentials.")}
    return render_url(source, values, field="request.base_url", whole_url_names=whole, allow_http=ctx.allow_http)


def _basic(ctx: AuthContext) -> str:
    username, password = ctx.inputs.get("username"), ctx.inputs.get("password")
    if username is None or password is None:
        raise ConnectionStateError(f"{ctx.integration.key}: the connection has no username and password")
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def credential_headers_and_query(ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query parameters every request carries: the integration's, then the token.

    The token goes where ``token`` says (a header or a URL parameter, any name, ``template`` with
    ``{token}``). A ``basic`` integration whose template does not use ``{username}``/``{password}``
    gets the standard ``Authorization: Basic`` header.
    """
    spec = ctx.integration
    values = ctx.values()
    headers = {
        name: render_header(t, values, field=f"request.headers.{name}") for name, t in spec.request.headers.items()
    }
    query = {name: render_text(t, values, field=f"request.query.{name}") for name, t in spec.request.query.items()}
    placement = spec.token
    if isinstance(spec.auth, NoneAuth):
        return headers, query
    if isinstance(spec.auth, BasicAuth) and not references_of(placement.template) & {"username", "password"}:
        headers["Authorization"] = _basic(ctx)
        return headers, query
    if placement.in_ == "header":
        headers[placement.name] = render_header(placement.template, values, field="token.template")
    else:
        query[placement.name] = render_text(placement.template, values, field="token.template")
    return headers, query


def api_request(
    ctx: AuthContext, method: str, path: str, headers: Mapping[str, TemplateSource] | None = None
) -> httpx.Request:
    """A request to ``base_url + path`` with the integration's parameters and the token in place.

    ``headers`` (``test.headers``) are rendered like request headers (``{token}`` included) and sent
    too; the credential headers win on a clash.

    ``path`` is a template (``test.path``): parameter and credential values in it are
    percent-encoded, so they cannot add path segments or a query, nor be ``.`` or ``..``.
    """
    rendered = render_path(path, ctx.values(), field="test.path", clock=ctx.clock)
    url = httpx.URL(base_url(ctx).rstrip("/") + "/" + rendered.lstrip("/"))
    values = ctx.values()
    extra = {name: render_header(t, values, field=f"test.headers.{name}") for name, t in (headers or {}).items()}
    placed, query = credential_headers_and_query(ctx)
    url = url.copy_merge_params(query)
    return httpx.Request(method, url, headers={**extra, **placed})
