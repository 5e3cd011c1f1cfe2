"""``GET /connections/{id}/token`` on the raw ASGI path: the same answer as the FastAPI route, without the framework.

Apps in other languages (and the SDK) read a token through this endpoint before every call, so it is
served like the proxy: dispatched by the app's own ``__call__`` before Starlette's routing, the API
key checked by the broker's in-memory key cache (scope ``token``), the token from the broker's
token cache (``broker.token_cache``: until the refresh window, dropped on any change), and the audit
entry noted in memory (``broker.audit`` writes them in batches). The FastAPI route stays: it is the
OpenAPI document's, and it serves what this path leaves to it (a request announcing a body).
"""

from __future__ import annotations

import json
import logging
import typing

from authbridge.api.errors import error_response
from authbridge.broker import ApiKeyRecord, Broker, FreshToken
from authbridge.errors import AuthBridgeError, AuthenticationError
from authbridge.proxy.headers import http_date

__all__ = ["read_token", "serve_token", "token_request"]

logger = logging.getLogger("authbridge.api")

Scope = typing.MutableMapping[str, typing.Any]
Message = typing.MutableMapping[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]

_PREFIX = "/connections/"
_SUFFIX = "/token"
_NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))


def token_request(scope: Scope) -> str | None:
    """The connection id when ``scope`` is a body-less ``GET /connections/{id}/token``, else None."""
    path: str = scope["path"]
    if scope["method"] != "GET" or not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
        return None
    connection_id = path[len(_PREFIX) : -len(_SUFFIX)]
    if not connection_id or "/" in connection_id:
        return None
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return None  # the gate's rules for bodies apply: the framework's path takes it
    return connection_id


async def read_token(broker: Broker, caller: ApiKeyRecord, connection_id: str) -> FreshToken:
    """A valid token for ``caller``, counted in the metrics and noted in the audit (both token endpoints' rule)."""
    try:
        token = await broker.connections.token(connection_id)
    except AuthBridgeError as exc:
        if broker.metrics is not None:
            broker.metrics.token_read(exc.code)  # a fixed code per error class: bounded
        raise
    if broker.metrics is not None:
        broker.metrics.token_read("ok")
    broker.audit.note("token.read", caller, connection_id, None)
    return token


async def serve_token(broker: Broker, connection_id: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one token request as the FastAPI route does: the same status, JSON and headers."""
    send = _dated(send)
    try:
        caller = await broker.authorize(_api_key(scope["headers"]), "token")
        token = await read_token(broker, caller, connection_id)
    except AuthBridgeError as exc:
        problem_headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else None
        if exc.status_code >= 500:
            logger.error("%s: %s", exc.code, exc.message)
        response = error_response(exc.status_code, exc.code, exc.message, headers=problem_headers)
        await response(scope, receive, send)
        return
    expires_at = token.expires_at.isoformat() if token.expires_at else None
    body = json.dumps(
        {"access_token": token.access_token, "token_type": token.token_type, "expires_at": expires_at},
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    ).encode("utf-8")
    headers = [*_NO_STORE, (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _api_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """``api.deps.api_key_from`` on raw headers: ``X-AuthBridge-Key``, else ``Authorization: Bearer <key>``."""
    key: str | None = None
    authorization: str | None = None
    for name, value in headers:
        if name == b"x-authbridge-key" and key is None:
            key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    if key:
        return key.strip()
    scheme, _, credential = (authorization or "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def _dated(send: Send) -> Send:
    """``send`` that adds a Date to the answer, as the gate does for the framework's routes."""

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"date", http_date())]}
        await send(message)

    return dated
