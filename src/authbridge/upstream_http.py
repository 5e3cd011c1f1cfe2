"""The proxy's own HTTP/1.1 client for the common request: a lean path to the upstream.

aiohttp's client spends ~65 µs of CPU on each proxied request (``ClientRequest`` and
``ClientResponse`` objects, timers, trace hooks, connector keys, per-request header multidicts):
more than all of AuthBridge's own work. This client sends what the proxy sends most — a method
other than HEAD, a body already buffered, a plain request target — over pooled keep-alive
connections, and parses the answer with llhttp (``httptools``, the parser uvicorn and Node use,
strict: a message with both ``Content-Length`` and ``Transfer-Encoding``, a bad chunk or a bad
header is an error). Anything else (streamed uploads, signed requests whose URL must go out
byte for byte, HEAD) still goes through aiohttp. The SSRF guard is the same: host names are
resolved by the proxy's :class:`~authbridge.netguard.GuardedResolver`, IP literals were checked
when the target was built.

```
client = UpstreamClient(resolver, connect_timeout=10, read_timeout=60)
response = await client.request("GET", "https://api.example.com/v1/me", {"Authorization": "Bearer …"}, b"")
response.status, response.raw_headers, await response.read()    # or: async for chunk in response.content.iter_any()
response.release()
```

The answer offers the part of ``aiohttp.ClientResponse`` the proxy uses (``status``, ``headers``,
``raw_headers``, ``content_length``, ``read``, ``content.iter_any``, ``release``), and its failures
are ``aiohttp.ClientError`` subclasses, so the proxy handles both clients' answers alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import re
import socket
import ssl
import time
import typing
from collections.abc import AsyncIterator

import aiohttp
import httptools
import httpx
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

from authbridge.errors import OutboundBlockedError
from authbridge.netguard import AiohttpTransport, GuardedResolver, check_literal

__all__ = ["PLAIN_TARGET", "LeanStream", "LeanTransport", "UpstreamClient", "UpstreamResponse"]

#: URLs sent as they are: RFC 3986 characters only, no fragment (anything else goes through aiohttp, which encodes).
PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]*")
#: Line breaks or NUL in a header name or value would split the request: refused, never sent.
_UNSAFE = re.compile(r"[\r\n\x00]")
#: Methods sent on this path (HEAD answers carry a length and no body: aiohttp knows that, llhttp cannot be told).
FAST_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Header names the client writes itself (a given Host replaces the URL's authority).
_OWN_HEADERS = frozenset(
    {
        "host",
        "Host",
        "HOST",
        "content-length",
        "Content-Length",
        "CONTENT-LENGTH",
        "transfer-encoding",
        "Transfer-Encoding",
    }
)
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
_LENGTH_ZERO = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # aiohttp sends ``Content-Length: 0`` for these
#: Header bytes an answer may carry (aiohttp's default limits are 8 KiB a line; this bounds the whole).
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 256
#: Body bytes waiting for the caller before the upstream connection stops being read.
_HIGH_WATER = 256 * 1024
#: Idle connections kept per origin, and how long an idle one is trusted (aiohttp's keep-alive: 15 s).
MAX_IDLE = 64
IDLE_SECONDS = 15.0
DNS_SECONDS = 60.0


class UpstreamClientError(aiohttp.ClientError):
    """The upstream broke the exchange (connection lost, invalid HTTP, oversized headers)."""


class UpstreamConnectError(UpstreamClientError):
    """No connection could be made to any of the upstream's addresses."""


class UpstreamConnectTimeout(UpstreamConnectError, TimeoutError):
    """No connection within the connect timeout (a ``TimeoutError``, as aiohttp's)."""


class _Origin:
    """Where one ``scheme://authority`` connects: host, port, TLS, the Host header; its idle connections."""

    __slots__ = ("host", "host_header", "idle", "literal", "port", "tls")

    def __init__(self, scheme: str, authority: str) -> None:
        parsed = yarl.URL.build(scheme=scheme, authority=authority)  # yarl: ports, IPv6 brackets
        self.host = parsed.raw_host or ""
        self.port = parsed.port or (443 if scheme == "https" else 80)
        self.tls = scheme == "https"
        self.host_header = authority  # aiohttp sends the authority as given (default port left out)
        if parsed.is_default_port() and ":" in authority.rsplit("]", 1)[-1]:
            self.host_header = authority.rsplit(":", 1)[0]
        try:
            ipaddress.ip_address(self.host)
            self.literal = True
        except ValueError:
            self.literal = False
        self.idle: collections.deque[_Connection] = collections.deque()


class UpstreamResponse:
    """One upstream answer: status and headers at once, the body as it arrives."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_headers",
        "_read_timeout",
        "_released",
        "_size",
        "_waiter",
        "content_length",
        "raw_headers",
        "status",
    )

    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout
        self.status = 0
        self.raw_headers: tuple[tuple[bytes, bytes], ...] = ()
        self.content_length: int | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The headers as aiohttp gives them (built on first use: most answers never need them)."""
        if self._headers is None:
            decoded = (
                (k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for k, v in self.raw_headers
            )
            self._headers = CIMultiDictProxy(CIMultiDict(decoded))
        return self._headers

    @property
    def content(self) -> UpstreamResponse:
        """``response.content.iter_any()``, as with aiohttp."""
        return self

    # -- fed by the connection -------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > _HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the proxy -----------------------------------------------------------------------

    async def _wait(self) -> None:
        """Until a chunk or the end arrives, at most the read timeout (between bytes, as aiohttp's ``sock_read``)."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, _expire, waiter) if self._read_timeout else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _take(self) -> bytes:
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size <= _HIGH_WATER // 2 and self._connection is not None:
            self._connection.resume()
        return chunk

    async def iter_any(self) -> AsyncIterator[bytes]:
        """Each piece of the body as it arrives; raises the upstream's failure after what came before it."""
        while True:
            if self._chunks:
                yield self._take()
                continue
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait()

    async def read(self) -> bytes:
        """The whole body (the caller bounds it: the proxy reads whole only answers with a small length)."""
        parts = []
        async for chunk in self.iter_any():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Done with the answer: a connection still carrying its body is closed (it cannot be reused)."""
        if self._released:
            return
        self._released = True
        connection, self._connection = self._connection, None
        self._chunks.clear()
        if connection is not None and not self._done:
            connection.abort()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin; parses each answer as it arrives."""

    __slots__ = (
        "_client",
        "_finished",
        "_header_bytes",
        "_interim",
        "_length",
        "_paused",
        "_raw",
        "_started",
        "closed",
        "idle_since",
        "origin",
        "parser",
        "response",
        "transport",
    )

    def __init__(self, client: UpstreamClient, origin: _Origin) -> None:
        self._client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self._started: asyncio.Future[UpstreamResponse] | None = None
        self._raw: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._length: int | None = None
        self._interim = False
        self._paused = False
        self._finished: bool | None = None  # an answer ended during the last feed: reusable or not
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for (or after an answer ended): the connection is unusable
            self._broken(UpstreamClientError("the upstream sent bytes outside an answer"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(UpstreamClientError("the upstream switched protocols"))
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._broken(
                cause
                if isinstance(cause, UpstreamClientError)
                else UpstreamClientError(f"the upstream's answer is not valid HTTP/1.1 ({exc})")
            )
            return
        finished, self._finished = self._finished, None
        if finished is not None:  # the answer is whole, and nothing followed it in this feed
            if finished and not self.closed:
                self._client._put_back(self)
            else:
                self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is None:
            return
        started = self._started
        if started is not None and not started.done():
            started.set_exception(aiohttp.ServerDisconnectedError())
            return
        # An answer without a length ends with the connection (RFC 9112 §6.3 item 8); any other is cut short.
        if self._length is None and not self._chunked():
            response._finish()
        else:
            response._finish(aiohttp.ClientPayloadError("the upstream's answer broke off"))
        self.response = None

    # -- llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.response is None:  # a second answer to one request: the upstream is not speaking HTTP/1.1 right
            raise UpstreamClientError("the upstream sent more than one answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._raw) >= MAX_HEADERS:
            raise UpstreamClientError("the upstream's answer has too many header bytes")
        if len(name) == 14 and name.lower() == b"content-length":
            self._length = int(value)  # llhttp has checked it is digits
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self._interim = True
            self._raw = []
            self._header_bytes = 0
            self._length = None
            return
        response = self.response
        if response is None:  # pragma: no cover - data_received checks first
            return
        response.status = status
        response.raw_headers = tuple(self._raw)
        response.content_length = self._length
        started = self._started
        if started is not None and not started.done():
            started.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        response = self.response
        self.response = None
        if response is not None:
            response._connection = None  # the connection may serve another request while this body is read
            response._finish()
        if self._paused:
            self.resume()
        self._finished = self.parser.should_keep_alive()

    # -- used by the client ----------------------------------------------------------------------

    def _chunked(self) -> bool:
        return any(k.lower() == b"transfer-encoding" for k, _ in self._raw)

    def send(self, head: bytes, body: bytes, read_timeout: float | None) -> asyncio.Future[UpstreamResponse]:
        """Write one request; the future resolves with the answer once its headers are in."""
        self.response = UpstreamResponse(self, read_timeout)
        self._started = started = asyncio.get_running_loop().create_future()
        self._raw = []
        self._header_bytes = 0
        self._length = None
        transport = typing.cast(asyncio.Transport, self.transport)
        transport.write(head + body if len(body) < 16384 else head)
        if body and len(body) >= 16384:
            transport.write(body)
        return started

    def _broken(self, error: BaseException) -> None:
        started = self._started
        if started is not None and not started.done():
            started.set_exception(error)
        elif self.response is not None:
            self.response._finish(error)
        self.response = None
        self.abort()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamClient:
    """Pooled keep-alive connections per origin; one request at a time on each."""

    def __init__(
        self,
        resolver: aiohttp.abc.AbstractResolver,
        *,
        connect_timeout: float | None = 10.0,
        read_timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._closed = False

    def usable(self, method: str, url: str, body: object) -> bool:
        """Whether this request goes this way (else through aiohttp)."""
        return (
            method in FAST_METHODS
            and isinstance(body, bytes)
            and url.startswith(("http://", "https://"))
            and PLAIN_TARGET.fullmatch(url) is not None
            and url.find("@", 0, url.find("/", 8)) == -1  # user info in the authority: aiohttp's (Basic auth)
        )

    def _origin(self, url: str) -> tuple[_Origin, str]:
        scheme, _, rest = url.partition("://")
        authority, slash, tail = rest.partition("/")
        if not slash:
            authority, mark, query = authority.partition("?")
            tail = f"/?{query}" if mark else ""
        else:
            tail = f"/{tail}"
        key = f"{scheme}://{authority}"
        origin = self._origins.get(key)
        if origin is None:
            if len(self._origins) >= 4096:  # bounded: the oldest origin's idle connections are closed
                gone = self._origins.pop(next(iter(self._origins)))
                for connection in gone.idle:
                    connection.abort()
            origin = self._origins[key] = _Origin(scheme, authority)
        return origin, tail or "/"

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        timeouts: tuple[float | None, float | None] | None = None,
    ) -> UpstreamResponse:
        """Send one request and return the answer once its headers are in (the body follows).

        ``timeouts`` (connect, read) replaces the client's for this request.
        """
        connect_timeout, read_timeout = timeouts or (self.connect_timeout, self.read_timeout)
        origin, target = self._origin(url)
        host = origin.host_header
        lines = [""]
        for name, value in headers.items():
            if name in _OWN_HEADERS:  # a Host given is kept (a signed request's); the length is the body's
                if name.lower() == "host":
                    host = value
                continue
            lines.append(f"{name}: {value}\r\n")
        lines[0] = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
        if body or method in _LENGTH_ZERO:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        if _UNSAFE.search("".join(headers.values())) or _UNSAFE.search("".join(headers)):
            raise UpstreamClientError("a header name or value carries a line break: not sent")
        head = text.encode("utf-8")
        connection, reused = await self._connection(origin, connect_timeout)
        try:
            return await self._exchange(connection, head, body, read_timeout)
        except aiohttp.ServerDisconnectedError:
            if not reused or method not in IDEMPOTENT:
                raise
        # A kept-alive connection the upstream closed just as it was reused, no byte of an answer read:
        # an idempotent request goes once more on a new connection (RFC 9110 §9.2.2; browsers do the same).
        connection, _ = await self._connection(origin, connect_timeout, fresh=True)
        return await self._exchange(connection, head, body, read_timeout)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, read_timeout: float | None
    ) -> UpstreamResponse:
        started = connection.send(head, body, read_timeout)
        if read_timeout is None:
            return await started
        loop = asyncio.get_running_loop()
        timer = loop.call_later(read_timeout, _expire_started, started)
        try:
            return await started
        except BaseException:
            connection.abort()
            raise
        finally:
            timer.cancel()

    async def _connection(
        self, origin: _Origin, connect_timeout: float | None, *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        if not fresh:
            idle = origin.idle
            now = time.monotonic()
            while idle:
                connection = idle.pop()
                if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                    return connection, True
                connection.abort()
        return await self._connect(origin, connect_timeout), False

    async def _connect(self, origin: _Origin, connect_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            addresses = [origin.host] if origin.literal else await self._resolve(origin)
        except OSError as exc:  # the name does not resolve (the guard's refusal is not an OSError: it passes)
            raise UpstreamConnectError(f"cannot resolve {origin.host}") from exc
        last: OSError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(connect_timeout):
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(self, origin),
                        address,
                        origin.port,
                        ssl=self._tls() if origin.tls else None,
                        server_hostname=origin.host if origin.tls else None,
                    )
                return protocol
            except OSError as exc:  # refused, unreachable, a TLS failure, or no answer in time (TimeoutError)
                last = exc
        if isinstance(last, TimeoutError):
            raise UpstreamConnectTimeout(f"connecting to {origin.host}:{origin.port} timed out") from last
        raise UpstreamConnectError(f"cannot connect to {origin.host}:{origin.port}") from last

    async def _resolve(self, origin: _Origin) -> list[str]:
        key = (origin.host, origin.port)
        cached = self._addresses.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        results = await self.resolver.resolve(
            origin.host, origin.port, socket.AF_UNSPEC
        )  # the guard refuses private addresses
        addresses = [str(result["host"]) for result in results]
        if len(self._addresses) >= 4096:
            self._addresses.clear()
        self._addresses[key] = (now + DNS_SECONDS, addresses)
        return addresses

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _put_back(self, connection: _Connection) -> None:
        idle = connection.origin.idle
        if self._closed or len(idle) >= MAX_IDLE:
            connection.abort()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def close(self) -> None:
        """Close every idle connection (answers being read keep theirs until released)."""
        self._closed = True
        for origin in self._origins.values():
            while origin.idle:
                with contextlib.suppress(RuntimeError):  # a transport of an event loop already closed
                    origin.idle.pop().abort()


def _expire_started(started: asyncio.Future[UpstreamResponse]) -> None:
    if not started.done():
        started.set_exception(TimeoutError())


_NOT_SENT = frozenset({b"host", b"content-length", b"transfer-encoding"})  # the client writes these itself


class LeanTransport(httpx.AsyncBaseTransport):
    """An httpx transport over :class:`UpstreamClient`, behind the SSRF guard; the rest through ``fallback``.

    The server's outbound calls (token requests, refreshes, revocations, discovery) are small requests
    with a buffered body: they take the lean path; a streamed body, HEAD or a URL needing encoding
    goes through ``fallback`` (an :class:`~authbridge.netguard.AiohttpTransport` unless given).
    Host names are checked by :class:`~authbridge.netguard.GuardedResolver`, IP literals here. One
    client per event loop (connections belong to the loop that made them).

    ```
    client = httpx.AsyncClient(transport=LeanTransport(allow_private=False))
    ```
    """

    def __init__(self, *, allow_private: bool = False, fallback: httpx.AsyncBaseTransport | None = None) -> None:
        self._allow_private = allow_private
        self._fallback = fallback or AiohttpTransport(allow_private=allow_private)
        self._client: UpstreamClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> UpstreamClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            if self._client is not None:
                self._client.close()
            self._client = UpstreamClient(GuardedResolver(allow_private=self._allow_private))
            self._loop = loop
        return self._client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.lean_response(request)
        if response is None:
            return await self._fallback.handle_async_request(request)
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=LeanStream(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def lean_response(self, request: httpx.Request) -> UpstreamResponse | None:
        """The lean client's answer to ``request``, its body unread (``LeanStream`` reads it and releases it).

        None when the request is not the lean client's (a streamed body, HEAD, a URL needing
        encoding): ``handle_async_request`` sends it through the fallback. For a caller that reads
        every answer whole (``broker.upstream.exchange``), this spares an ``httpx.Response`` per call.

        Raises:
            httpx.HTTPError: as ``handle_async_request`` raises them (connect and read timeouts,
                connection failures, protocol errors); OutboundBlockedError from the SSRF guard.
        """
        url, method = str(request.url), request.method
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:  # a streamed body
            body = None
        client = self._open()
        if body is None or not client.usable(method, url, body):
            return None
        check_literal(request.url.host, allow_private=self._allow_private)
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers.raw:  # as written: httpx keeps the case
            if raw_name.lower() in _NOT_SENT:
                continue
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        timeouts = request.extensions.get("timeout") or {}
        connect = timeouts.get("connect")
        if connect is not None and timeouts.get("pool"):
            connect += timeouts["pool"]
        try:
            return await client.request(method, url, headers, body, timeouts=(connect, timeouts.get("read")))
        except OutboundBlockedError:
            raise
        except UpstreamConnectTimeout as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("read timeout", request=request) from None
        except UpstreamConnectError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from None

    async def aclose(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        await self._fallback.aclose()


class LeanStream(httpx.AsyncByteStream):
    """An answer's body as httpx reads it; closing releases the connection (or closes it, if unread)."""

    def __init__(self, response: UpstreamResponse, request: httpx.Request) -> None:
        self._response, self._request = response, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.iter_any():
                yield chunk
        except TimeoutError:
            raise httpx.ReadTimeout("read timeout", request=self._request) from None
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=self._request) from None

    async def aclose(self) -> None:
        self._response.release()
