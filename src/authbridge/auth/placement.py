"""The pieces that put a connection's credentials on an API request: base URL, request parameters, the token.

Each auth type's plugin (``authbridge.auth.plugins``) decides which pieces it uses."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

import httpx

from authbridge.auth.base import AuthContext
from authbridge.errors import ConnectionStateError, TemplateError
from authbridge.spec.templating import (
    TemplateSource,
    render_header,
    render_path,
    render_text,
    render_url,
)

__all__ = ["base_url", "basic_authorization", "build_api_request", "standard_placement"]


def base_url(ctx: AuthContext) -> str:
    """The integration's rendered ``request.base_url`` (a whole-URL value may come from credentials)."""
    source = ctx.integration.request.base_url
    if source is None:
        raise TemplateError(f"{ctx.integration.key}: request.base_url is not set, so there is nowhere to send requests")
    values = ctx.values()
    whole = {p.name for p in ctx.integration.parameters if p.format == "url"}
    whole |= {name for name in values if name.startswith("credentials.")}
    return render_url(source, values, field="request.base_url", whole_url_names=whole, allow_http=ctx.allow_http)


def basic_authorization(ctx: AuthContext) -> str:
    """The ``Authorization: Basic`` value of the entered username and password."""
    username, password = ctx.inputs.get("username"), ctx.inputs.get("password")
    if username is None or password is None:
        raise ConnectionStateError(f"{ctx.integration.key}: the connection has no username and password")
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def standard_placement(ctx: AuthContext, *, token: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query parameters every request carries: the integration's, then (``token``) the token.

    The token goes where ``token`` says (a header or a URL parameter, any name, ``template`` with
    ``{token}``).
    """
    spec = ctx.integration
    values = ctx.values()
    headers = {
        name: render_header(t, values, field=f"request.headers.{name}") for name, t in spec.request.headers.items()
    }
    query = {name: render_text(t, values, field=f"request.query.{name}") for name, t in spec.request.query.items()}
    if not token:
        return headers, query
    placement = spec.token
    if placement.in_ == "header":
        headers[placement.name] = render_header(placement.template, values, field="token.template")
    else:
        query[placement.name] = render_text(placement.template, values, field="token.template")
    return headers, query


def build_api_request(
    ctx: AuthContext,
    placed: Callable[[AuthContext], tuple[dict[str, str], dict[str, str]]],
    method: str,
    path: str,
    headers: Mapping[str, TemplateSource] | None = None,
) -> httpx.Request:
    """A request to ``base_url + path`` with the placed credential headers and query (see ``api_request``)."""
    rendered = render_path(path, ctx.values(), field="test.path", clock=ctx.clock)
    url = httpx.URL(base_url(ctx).rstrip("/") + "/" + rendered.lstrip("/"))
    values = ctx.values()
    extra = {name: render_header(t, values, field=f"test.headers.{name}") for name, t in (headers or {}).items()}
    credential_headers, query = placed(ctx)
    url = url.copy_merge_params(query)
    return httpx.Request(method, url, headers={**extra, **credential_headers})
