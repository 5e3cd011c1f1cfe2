"""A test upstream API on loopback (raw ASGI under uvicorn, in a thread): echo, statuses, big bodies, tokens.

Also the start-up the other loopback upstreams share (``signing_upstream.py``, ``limits_upstream.py``):
``asgi`` (uvicorn's lifespan answered), ``read_body``, ``answer``, ``free_port`` and ``serve``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import socket
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

import uvicorn

Scope = dict[str, typing.Any]
Handler = Callable[[Scope, typing.Any, typing.Any], Awaitable[None]]


class UpstreamState:
    """What the test can see and change: the valid token, counters, queued statuses."""

    def __init__(self) -> None:
        self.valid_tokens: set[str] = set()
        self.logins = 0
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.requests = 0
        self.login_status: int | None = None
        #: The path of every request that reached the upstream, in order.
        self.paths: list[str] = []
        #: The size of each request body read by /reject-big.
        self.body_sizes: list[int] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def asgi(handle: Handler) -> Handler:
    """An ASGI app that answers uvicorn's lifespan messages and hands every HTTP request to ``handle``."""

    async def app(scope: Scope, receive: typing.Any, send: typing.Any) -> None:
        if scope["type"] != "lifespan":
            await handle(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


async def read_body(receive: typing.Any) -> bytes:
    """The whole request body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: typing.Any, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Send a JSON answer (``body`` already encoded) with its length and any extra headers."""
    items = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    items += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": items})
    await send({"type": "http.response.body", "body": body})


async def _json(send: typing.Any, status: int, data: object, headers: dict[str, str] | None = None) -> None:
    await answer(send, status, json.dumps(data).encode(), headers)


def make_app(state: UpstreamState) -> Handler:
    """The ASGI app."""

    async def handle(scope: Scope, receive: typing.Any, send: typing.Any) -> None:
        state.requests += 1
        path: str = scope["path"]
        state.paths.append(path)
        query = dict(parse_qsl(scope["query_string"].decode()))
        if path.endswith("/reject-big"):
            # Counts the body without keeping it, then rejects the token as a 401.
            size = 0
            while True:
                message = await receive()
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            state.body_sizes.append(size)
            await _json(send, 401, {"received": size}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        if path.endswith("/cut"):
            # Announces `size` bytes (or none: chunked), sends `sent` of them, then drops the connection.
            size, sent = int(query.get("size", "0")), int(query["sent"])
            items = [(b"content-type", b"application/octet-stream")]
            if size:
                items.append((b"content-length", str(size).encode()))
            await send({"type": "http.response.start", "status": 200, "headers": items})
            await send({"type": "http.response.body", "body": b"x" * sent, "more_body": True})
            raise ConnectionAbortedError("the test upstream cuts its answer short")
        if path.endswith("/redirect"):
            await _json(send, 302, {"redirect": query["to"]}, {"Location": query["to"]})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await read_body(receive)
        if path == "/login":
            state.logins += 1
            if state.login_status is not None:
                await _json(send, state.login_status, {"error": "invalid_grant", "error_description": "revoked"})
                return
            token = "tok-" + secrets.token_hex(8)
            state.valid_tokens = {token}
            await _json(send, 200, {"token": token, "expires_in": 3600})
            return
        if path == "/login-jwt":
            # A token response with no expiry field, whose access token is a JWT: its `exp` is the expiry.
            state.logins += 1
            claims = {"sub": "alice", "exp": int(time.time()) + 600}
            token = (
                ".".join(
                    base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                    for part in ({"alg": "none", "typ": "JWT"}, claims)
                )
                + ".sig"
            )
            state.valid_tokens = {token}
            await _json(send, 200, {"token": token, "exp_claim": claims["exp"]})
            return
        if state.statuses:
            status, extra = state.statuses.pop(0)
            await _json(send, status, {"status": status}, extra)
            return
        if path.startswith("/protected"):
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if token not in state.valid_tokens:
                await _json(send, 401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                return
        if path == "/big":
            size = int(dict(parse_qsl(scope["query_string"].decode())).get("mb", "1")) * 1024 * 1024
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(size).encode()),
                    ],
                }
            )
            chunk = b"\0" * 65536
            sent = 0
            while sent < size:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/slow":
            await asyncio.sleep(float(dict(parse_qsl(scope["query_string"].decode())).get("s", "2")))
        await _json(
            send,
            200,
            {
                "method": scope["method"],
                "path": path,
                "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
                "query": parse_qsl(scope["query_string"].decode(), keep_blank_values=True),
                "headers": headers,
                "body": body.decode("latin-1"),
            },
            {"Set-Cookie": "upstream=1", "X-Upstream": "yes", "Connection": "close, X-Hop", "X-Hop": "drop-me"},
        )

    return asgi(handle)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: typing.Any, port: int) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("the upstream did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
