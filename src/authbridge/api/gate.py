"""The raw ASGI gate in front of every route but the proxy: the key before the body, the body's size, a Date.

```
gate = Gate(app, max_body=1024 * 1024)     # app: the FastAPI app (its routes, its broker in app.state)
await gate(scope, receive, send, inner)    # inner: the app's own ASGI entry (Starlette's middleware and routing)
```

FastAPI reads and parses a body before it runs any dependency, so the API-key dependency alone would
let an anonymous caller make the server read a body of any size. Before ``inner`` sees a request that
announces a body (``Content-Length`` or ``Transfer-Encoding``), the gate

- authenticates it when its route needs an API key (401 without reading a byte of the body);
- answers 413 when its ``Content-Length`` is over the limit.

Bodies without a length (chunked) are counted as they are read by FastAPI's own limit
(``FastAPI(max_body_size=...)``, Starlette's ``RequestBodyLimitMiddleware``), which raises a 413 that the
error handlers render in the usual shape. The proxy never comes here: it has its own streaming limit.
"""

from __future__ import annotations

import html
import typing

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authbridge.api import ROUTERS
from authbridge.api.deps import require_api_key
from authbridge.api.errors import error_response, too_large_message
from authbridge.broker import Broker
from authbridge.errors import AuthenticationError
from authbridge.proxy.headers import caller_key, http_date

__all__ = ["CALLBACK_PATH", "Gate"]

#: Every answer of the OAuth callback carries these (it follows a one-time code in the URL).
CALLBACK_PATH = "/oauth/callback"
#: Pages people use in a browser: a body over the limit gets a page there, not the API's JSON.
_BROWSER_PATHS = ("/console", "/connect/", CALLBACK_PATH)
_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Too large · AuthBridge</title></head>'
    "<body><main><h1>The form was too large</h1><p>{message}</p><p>Go back, shorten it and try again.</p>"
    "</main></body></html>"
)
_CALLBACK_HEADERS = ((b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"))


def _announced(headers: list[tuple[bytes, bytes]]) -> tuple[bool, int | None]:
    """Whether the request announces a body (RFC 9112 §6.3), and its Content-Length when it gives a valid one."""
    has_body, length = False, None
    for name, value in headers:
        if name == b"transfer-encoding":
            has_body = True
        elif name == b"content-length":
            text = value.strip()
            if text.isdigit():
                length = int(text)
                has_body = has_body or length > 0
            else:
                has_body = True
    return has_body, length


def _needs_key(dependant: Dependant) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call is require_api_key:
            return True
        pending.extend(current.dependencies)
    return False


class Gate:
    """Checks done on the raw request, before the framework reads anything."""

    def __init__(self, app: FastAPI, *, max_body: int, routers: typing.Iterable[APIRouter] = ROUTERS) -> None:
        self.app = app
        self.max_body = max_body
        #: The routes that authenticate with an API key (``require_api_key`` among their dependencies).
        self.keyed = [
            route
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and _needs_key(route.dependant)
        ]

    def _route_needs_key(self, scope: Scope) -> bool:
        """Whether ``scope``'s path and method are those of a route that authenticates with an API key."""
        return any(route.matches(scope)[0] is Match.FULL for route in self.keyed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, inner: ASGIApp) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        has_body, length = _announced(scope["headers"])
        if has_body and self._route_needs_key(scope):
            broker = typing.cast(Broker, self.app.state.broker)
            try:
                await broker.authenticate(caller_key(scope["headers"])[0])
            except AuthenticationError as exc:
                response = error_response(401, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, _dated(send, scope["path"]))
                return
        if length is not None and length > self.max_body:
            message = too_large_message(self.max_body)
            page: Response = (
                HTMLResponse(_PAGE.format(message=html.escape(message)), status_code=413)
                if scope["path"].startswith(_BROWSER_PATHS)
                else error_response(413, "body_too_large", message)
            )
            await page(scope, receive, _dated(send, scope["path"]))
            return
        await inner(scope, receive, _dated(send, scope["path"]))


def _dated(send: Send, path: str) -> Send:
    """``send`` that gives each answer a Date (the server adds none) and the callback's answers their headers."""
    extra = _CALLBACK_HEADERS if path == CALLBACK_PATH else ()

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if extra:
                headers = [(k, v) for k, v in headers if k.lower() not in {name for name, _ in extra}]
                headers.extend(extra)
            headers.append((b"date", http_date()))
            message = {**message, "headers": headers}
        await send(message)

    return dated
