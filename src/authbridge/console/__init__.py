"""The web console: server-rendered pages at ``/console`` that call the broker directly (never the HTTP API).

```
app = FastAPI(...)
install_console(app, secret=console_secret)   # after app.state.settings is set; the lifespan sets the broker
```
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from authbridge.console import accounts, auth, catalog, integrations, keys, webhooks
from authbridge.console.hosted import install_connect_pages
from authbridge.console.pages import PREFIX, Console, Ctx, Handler, page

__all__ = ["PREFIX", "install_console"]

_GET, _BOTH = ["GET"], ["GET", "POST"]


def _routes(console: Console) -> list[Route | Mount]:
    def route(path: str, handler: Handler, methods: list[str], *, signed_in: bool = True) -> Route:
        return Route(path, page(console, handler, signed_in=signed_in), methods=methods)

    return [
        route("/", auth.home, _GET),
        route("/sign-in", auth.sign_in, _BOTH, signed_in=False),
        route("/sign-out", auth.sign_out, ["POST"]),
        route("/integrations", integrations.integrations_list, _GET),
        route("/integrations/new", integrations.integration_new, _BOTH),
        route("/import", integrations.import_yaml, _BOTH),
        route("/catalog", catalog.catalog_list, _GET),
        route("/catalog/{key}", catalog.catalog_entry, _BOTH),
        route("/integrations/{key}/edit", integrations.integration_edit, _BOTH),
        route("/integrations/{key}/yaml", integrations.integration_yaml, _BOTH),
        route("/integrations/{key}/download", integrations.integration_download, _GET),
        route("/integrations/{key}/delete", integrations.integration_delete, _BOTH),
        route("/accounts", accounts.accounts_list, _GET),
        route("/accounts/new", accounts.connect, _BOTH),
        route("/accounts/returned", accounts.account_returned, _GET),
        route("/accounts/{connection_id}", accounts.account_page, _GET),
        route("/accounts/{connection_id}/test", accounts.account_test, ["POST"]),
        route("/accounts/{connection_id}/refresh", accounts.account_refresh, ["POST"]),
        route("/accounts/{connection_id}/reconnect", accounts.account_reconnect, ["POST"]),
        route("/accounts/{connection_id}/edit", accounts.account_edit, _BOTH),
        route("/accounts/{connection_id}/delete", accounts.account_delete, _BOTH),
        route("/events", auth.events_page, _GET),
        route("/keys", keys.keys_page, _BOTH),
        route("/keys/{key_id}/revoke", keys.key_revoke, ["POST"]),
        route("/webhooks", webhooks.webhooks_page, _BOTH),
        route("/webhooks/{webhook_id}/remove", webhooks.webhook_remove, ["POST"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]


def install_console(app: FastAPI, *, secret: bytes) -> None:
    """Mount the console at ``/console`` and send ``/`` there.

    ``secret`` signs the session cookies and CSRF tokens (at least 32 bytes); the broker and settings
    are read from ``app.state`` at request time.
    """
    console = Console(app, secret)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        ctx = Ctx(console, request, None)
        if exc.status_code == 413:
            limit = console.settings.max_body
            message = f"The form is larger than {limit} bytes, the most this server reads (AUTHBRIDGE_MAX_BODY)."
            return ctx.error(413, "Too large", message)
        heading = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return ctx.error(exc.status_code, heading, "There is no such page in the console.")

    async def server_error(request: Request, _exc: Exception) -> Response:
        # The server logs the traceback; the page says nothing about the exception (its text could hold anything).
        return Ctx(console, request, None).error(500, "Something failed", "An unexpected error occurred.")

    sub = Starlette(routes=_routes(console), exception_handlers={HTTPException: http_error, Exception: server_error})
    app.mount(PREFIX, sub, name="console")

    async def root(_request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    app.add_route("/", root, methods=["GET"], include_in_schema=False)
    install_connect_pages(app, console)
