"""``/docs``: Swagger UI served from AuthBridge itself (no CDN: works air-gapped); the proxy in the OpenAPI document.

The proxy is dispatched before FastAPI's router (``app.py``), so it has no route to describe it:
its path item is added to the generated document here.
"""

from __future__ import annotations

import typing
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from authbridge.proxy import PROXY_PREFIX

__all__ = ["DOCS_STATIC", "PROXY_PATH", "install_docs"]

#: Where the vendored Swagger UI files are served.
DOCS_STATIC = "/docs/static"
_FILES = Path(__file__).parent / "static" / "swagger-ui"
#: The proxy's path in the OpenAPI document.
PROXY_PATH = PROXY_PREFIX + "{connection_id}/{path}"
_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


def _problem(description: str) -> dict[str, typing.Any]:
    schema = {"$ref": "#/components/schemas/ErrorResponse"}  # the shape every AuthBridge error has
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(method: str) -> dict[str, typing.Any]:
    return {
        "tags": ["proxy"],
        "summary": f"{method.upper()} the provider's API as a connected account",
        "operationId": f"proxy_{method}",
        "description": (
            "Forwards the request to the integration's base URL + `path`, with the connection's credentials "
            "put on (header, query or signature, as its auth type says) and the integration's headers and query "
            "added. The token is refreshed first when it is inside its refresh window, and once after the "
            "provider answers one of `refresh.on_status` (401, 403), then the request is retried once. "
            "`path` may contain slashes (`/proxy/{id}/v1/users/me`); the query string and body go upstream as "
            "they are. Needs an API key with the `proxy` scope."
        ),
        "parameters": [
            {
                "name": "connection_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The connected account's id.",
            },
            {
                "name": "path",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The provider's API path below the base URL (slashes allowed).",
            },
        ],
        "security": _SECURITY,
        "responses": {
            "200": {"description": "The provider's answer, status, headers and body as they came (any status)."},
            "400": _problem(
                "The path leaves the base URL (`..`, an encoded slash), a bad X-AuthBridge-Retries or "
                "X-AuthBridge-Max-Wait, or a next-page URL outside the base URL."
            ),
            "401": _problem("No or a wrong AuthBridge API key (a provider's own 401 comes back as it came)."),
            "403": _problem("The API key lacks the `proxy` scope."),
            "404": _problem("No connection with this id."),
            "409": _problem("The connection cannot be used now (needs re-authorization, pending, revoked)."),
            "413": _problem("The request body is larger than AUTHBRIDGE_MAX_BODY."),
            "422": _problem("A template of the integration could not be rendered with this connection's values."),
            "429": _problem("The connection's `rate_limit.max_concurrent` queue is full (AuthBridge's own answer)."),
            "499": _problem("The caller went away before its body was read."),
            "500": _problem("AuthBridge failed (a bug: the message says no more)."),
            "502": _problem("The provider could not be reached, or its token endpoint failed."),
            "504": _problem("The provider did not answer in time."),
        },
    }


def _proxy_path_item() -> dict[str, typing.Any]:
    return {method: _operation(method) for method in ("get", "post", "put", "patch", "delete", "head", "options")}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets from the package; add the proxy to ``/openapi.json``.

    The app must be made with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load from a CDN).
    """
    app.mount(DOCS_STATIC, StaticFiles(directory=_FILES), name="docs-static")
    generate = app.openapi

    def openapi() -> dict[str, typing.Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("paths", {})[PROXY_PATH] = _proxy_path_item()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def docs(_request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
        )

    app.add_route("/docs", docs, methods=["GET"], include_in_schema=False)
