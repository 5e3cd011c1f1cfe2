"""``GET /oauth/callback``: where providers send the browser back after authorization."""

from __future__ import annotations

import hashlib
import html
import typing

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from authbridge.api.deps import BrokerDep
from authbridge.api.errors import ErrorResponse, errors
from authbridge.errors import AuthBridgeError, CallbackError, NotFoundError

__all__ = ["BINDING_COOKIE", "CLIENT_METADATA_PATH", "router"]

#: The cookie a connect page gives the browser that starts an OAuth flow (see console/hosted.py).
BINDING_COOKIE = "authbridge_binding"
#: Where AuthBridge's client ID metadata document is served (its URL is AuthBridge's client id).
CLIENT_METADATA_PATH = "/oauth/client-metadata.json"

router = APIRouter(tags=["oauth"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · AuthBridge</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}
h1{{font-size:1.4rem}} .ok{{color:#0a6b2b}} .err{{color:#a11}}</style></head>
<body><main><h1 class="{cls}">{title}</h1><p>{message}</p></main></body></html>"""


def page(title: str, message: str, *, ok: bool, status: int = 200) -> HTMLResponse:
    """A small, escaped HTML page; never cached (it follows a one-time code)."""
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), cls="ok" if ok else "err")
    return HTMLResponse(
        body, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


#: Never passed on to ``return_to``: the one-time code and the state belong to AuthBridge's flow alone.
_WITHHELD = frozenset({"code", "state"})


def _return_url(return_to: str, params: dict[str, str]) -> str:
    """``return_to`` with the connection's outcome added, and no ``code`` or ``state`` parameter whatever."""
    url = httpx.URL(return_to)
    kept = [(k, v) for k, v in url.params.multi_items() if k not in _WITHHELD and k not in params]
    return str(url.copy_with(params=httpx.QueryParams([*kept, *params.items()])))


_PAGE_ANSWER = {"text/html": {"schema": {"type": "string"}}}
_CALLBACK_ANSWERS: dict[int | str, dict[str, typing.Any]] = {
    303: {"description": "Connected (or failed): to `return_to`, with `connection_id`, `status` and `error`."},
    "4XX": {
        "description": "A page: the state is unknown, used or expired, or the provider refused.",
        "content": _PAGE_ANSWER,
    },
    "5XX": {"description": "A page: the provider or the database failed.", "content": _PAGE_ANSWER},
    500: {"model": ErrorResponse, "description": "An unexpected error; the server log has the details."},
}


@router.get(
    "/oauth/callback", summary="OAuth 2.0 redirect URI", response_class=HTMLResponse, responses=_CALLBACK_ANSWERS
)
async def oauth_callback(request: Request, broker: BrokerDep) -> Response:
    """Check the state, exchange the code, store the tokens; then redirect to ``return_to`` or show a page.

    Every answer (pages, the redirect, errors) is ``Cache-Control: no-store`` and ``Referrer-Policy:
    no-referrer``: the gate adds both to whatever this path answers (``api/gate.py``).
    """
    query = dict(request.query_params)
    binding = request.cookies.get(BINDING_COOKIE)
    try:
        result = await broker.connections.callback(
            query, browser_binding=hashlib.sha256(binding.encode()).hexdigest() if binding else None
        )
    except CallbackError as exc:
        return page("Authorization failed", exc.message, ok=False, status=400)
    except AuthBridgeError as exc:
        return page("Authorization failed", exc.message, ok=False, status=exc.status_code)
    connection = result.connection
    if result.return_to:
        params = {"connection_id": connection.id, "status": connection.status}
        if result.error:
            params["error"] = result.error
        target = _return_url(result.return_to, params)
        return RedirectResponse(
            target, status_code=303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )
    if result.error:
        return page("Authorization failed", f"{connection.name}: {result.error}", ok=False, status=400)
    return page(
        "Connected", f"{connection.name} ({connection.integration_key}) is connected. You can close this page.", ok=True
    )


@router.get(
    CLIENT_METADATA_PATH,
    summary="AuthBridge's OAuth client ID metadata document",
    responses=errors(404, keyed=False),
)
async def client_metadata(broker: BrokerDep) -> JSONResponse:
    """The client metadata authorization servers read when AuthBridge's ``client_id`` is this URL.

    draft-ietf-oauth-client-id-metadata-document (the MCP authorization spec's preferred client kind):
    a public client (``token_endpoint_auth_method: none``, PKCE) whose only redirect URI is the
    OAuth callback. Served when the public URL is https (or an http loopback URL with
    AUTHBRIDGE_CLIENT_METADATA_LOOPBACK_HTTP); otherwise 404, and servers are never offered it.
    """
    url = broker.policy.client_metadata_url
    if url is None:
        raise NotFoundError("AuthBridge serves its client ID metadata document only at an https AUTHBRIDGE_PUBLIC_URL")
    public_url = broker.policy.public_url
    document = {
        "client_id": url,
        "client_name": "AuthBridge",
        "client_uri": public_url,
        "redirect_uris": [broker.policy.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})
