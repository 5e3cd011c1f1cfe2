"""One outbound exchange with a third party: a byte cap counted while inflating, and a total deadline.

Every token, refresh, revocation and test call goes through :func:`exchange`, and a hook's
``ctx.http`` goes through it too (:func:`bounded_client`). A ``gzip`` or ``deflate`` answer is
inflated here, never more than the cap at a time, so a small compressed bomb cannot balloon in
memory; any other content coding is refused. The deadline covers connecting, sending and reading
the whole body, so a server that sends one byte a second is cut off too.

```
limits = UpstreamLimits(max_body=1024 * 1024, timeout=10.0)
response = await exchange(client, request, limits=limits, integration="acme", endpoint="https://acme.example/token")
```
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
import zlib

import httpx

from authbridge.auth.base import Deferred, resolve
from authbridge.auth.tokens import MAX_BODY_BYTES, size_text
from authbridge.errors import OutboundBlockedError, UpstreamError
from authbridge.upstream_http import LeanStream, LeanTransport, UpstreamResponse

__all__ = ["ACCEPT_ENCODING", "UpstreamLimits", "bounded_client", "exchange"]

#: The codings we can inflate with a cap; sent so that servers do not answer ``br`` or ``zstd``.
ACCEPT_ENCODING = "gzip, deflate"


@dataclasses.dataclass(frozen=True)
class UpstreamLimits:
    """How much of an answer is read, and how long a whole exchange may take.

    ```
    UpstreamLimits(max_body=1024 * 1024, timeout=10.0)   # AUTHBRIDGE_MAX_UPSTREAM_BODY, AUTHBRIDGE_HTTP_TIMEOUT
    ```
    """

    #: The largest body read, counted after decompression.
    max_body: int = MAX_BODY_BYTES
    #: Seconds for the whole exchange: connect, send, and read the last byte.
    timeout: float = 10.0


#: The answer's headers that no longer hold once it is read and inflated (Content-Length is set anew).
_REPLACED = frozenset({b"content-encoding", b"content-length"})


class _TooLarge(Exception):
    pass


class _Inflater:
    """One content coding undone with a cap: ``feed`` never returns (or holds) more than the cap in total."""

    def __init__(self, coding: str, cap: int) -> None:
        self.coding, self.cap, self.produced = coding, cap, 0
        self._wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(self._wbits)
        self._first = True

    def feed(self, data: bytes) -> bytes:
        if self.coding == "identity":
            return self._count(data)
        out = bytearray()
        while data:
            try:
                chunk = self._inflater.decompress(data, self.cap - self.produced + 1)
            except zlib.error:
                if not (self._first and self.coding == "deflate"):
                    raise
                # "deflate" is meant to be zlib-wrapped, but some servers send it raw (as httpx tolerates).
                self._wbits = -zlib.MAX_WBITS
                self._inflater = zlib.decompressobj(self._wbits)
                chunk = self._inflater.decompress(data, self.cap - self.produced + 1)
            self._first = False
            out += self._count(chunk)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and self._inflater.unused_data:
                data = self._inflater.unused_data  # a further gzip member
                self._inflater = zlib.decompressobj(self._wbits)
        return bytes(out)

    def _count(self, data: bytes) -> bytes:
        self.produced += len(data)
        if self.produced > self.cap:
            raise _TooLarge
        return data


def _inflaters(header: str | None, cap: int) -> list[_Inflater]:
    """The codings of a ``Content-Encoding`` header, in the order to undo them; ValueError for others."""
    codings = [c.strip().lower() for c in (header or "").split(",") if c.strip()]
    inflaters = []
    for coding in reversed(codings):
        coding = {"x-gzip": "gzip"}.get(coding, coding)
        if coding not in {"gzip", "deflate", "identity"}:
            raise ValueError(coding)
        inflaters.append(_Inflater(coding, cap))
    return inflaters


async def _send(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response | UpstreamResponse:
    """``client.send(request, stream=True)``, straight to the client's transport when that is all it would do.

    The client's own layers are for what an exchange never uses: no client ``auth``, no redirects
    followed (``follow_redirects=False``, as every outbound client here), no event hooks, no
    credentials in the URL (httpx would turn them into Basic auth). Those cases go through
    ``client.send`` as before. Cookies are neither sent (a built request never takes the client's)
    nor kept from the answer (a token endpoint's cookie belongs to no other call). The client's
    per-phase timeouts are set on the request as ``send`` sets them. A ``LeanTransport`` that takes
    the request gives its own answer, body unread (``_read`` reads it: no ``httpx.Response`` in between).
    """
    if (
        client.is_closed
        or client.auth is not None
        or client.follow_redirects
        or any(client.event_hooks.values())
        or request.url.userinfo
    ):
        return await client.send(request, stream=True)
    if "timeout" not in request.extensions:
        request.extensions = {**request.extensions, "timeout": client.timeout.as_dict()}
    transport = client._transport_for_url(request.url)
    if isinstance(transport, LeanTransport):
        lean = await transport.lean_response(request)
        if lean is not None:
            return lean
    response = await transport.handle_async_request(request)
    response.request = request
    return response


async def _read(client: httpx.AsyncClient, request: httpx.Request, limits: UpstreamLimits) -> httpx.Response:
    request.headers["Accept-Encoding"] = ACCEPT_ENCODING
    stream: httpx.AsyncByteStream
    raw_headers: typing.Sequence[tuple[bytes, bytes]]
    response = await _send(client, request)
    if isinstance(response, UpstreamResponse):  # the lean client's answer
        status, raw_headers, stream = response.status, response.raw_headers, LeanStream(response, request)
        coding = next((v.decode("latin-1") for k, v in raw_headers if k.lower() == b"content-encoding"), None)
    else:
        status, raw_headers = response.status_code, response.headers.raw
        coding = response.headers.get("content-encoding")
        # The raw stream itself (not aiter_raw): an in-memory answer (a mock transport) has been read into
        # ``content`` already, inflated without a cap, but its stream still holds the bytes as sent.
        if not isinstance(response.stream, httpx.AsyncByteStream):  # pragma: no cover - AsyncClient streams are async
            raise TypeError("an async client returned a sync stream")
        stream = response.stream
    try:
        try:
            inflaters = _inflaters(coding, limits.max_body)
        except ValueError as exc:
            raise UpstreamError(f"answered in a content coding AuthBridge does not read ({str(exc)[:40]})") from None
        body = bytearray()
        async for raw in stream:
            for inflater in inflaters:
                raw = inflater.feed(raw)
            body += raw
            if len(body) > limits.max_body:
                raise _TooLarge
    finally:
        await stream.aclose()
    content = bytes(body)
    headers = [(k, v) for k, v in raw_headers if k.lower() not in _REPLACED]
    if content:  # what httpx.Response(content=...) adds, set here: its setdefault per header costs more than the rest
        headers.append((b"Content-Length", str(len(content)).encode()))
    return _read_answer(status, headers, content, request)


def _read_answer(
    status: int, headers: list[tuple[bytes, bytes]], content: bytes, request: httpx.Request
) -> httpx.Response:
    """``httpx.Response(status, headers=headers, stream=ByteStream(content))`` after ``read()``, made directly.

    ``read()`` would run the bytes through httpx's content decoders (none apply: the codings were
    undone above and their header dropped) and chunker only to store them: a tenth of a token call's
    CPU. Here they are stored as ``read()`` stores them (``tests/broker/test_upstream.py`` checks the
    result reads as a read response does, should httpx change).
    """
    answer = httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), request=request)
    answer._content = content
    answer.is_stream_consumed = answer.is_closed = True
    return answer


async def exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    limits: UpstreamLimits,
    integration: str | None,
    endpoint: Deferred[str],
) -> httpx.Response:
    """Send ``request`` and read its whole answer, decompressed, into memory, within ``limits``.

    Raises:
        UpstreamError: the endpoint cannot be reached (the SSRF guard included), sent no complete
            answer within ``limits.timeout`` in total, answered more than ``limits.max_body``
            bytes after decompression, or in a content coding other than gzip or deflate. The
            message names ``integration`` and ``endpoint`` (which must hold no secret; it may be the
            function that makes it, called only for a message).
    """

    def failure(what: str) -> UpstreamError:
        prefix = f"{integration}: " if integration else ""
        text = resolve(endpoint)
        return UpstreamError(f"{prefix}{text} {what}", integration=integration, endpoint=text)

    try:
        async with asyncio.timeout(limits.timeout):  # asyncio's own: half the cost of anyio.fail_after
            return await _read(client, request, limits)
    except TimeoutError:
        raise failure(f"sent no complete answer within {limits.timeout:g} s") from None
    except _TooLarge:
        raise failure(f"answered more than {size_text(limits.max_body)} after decompression; refusing it") from None
    except (zlib.error, httpx.DecodingError):
        raise failure("answered a compressed body that does not decompress") from None
    except OutboundBlockedError as exc:
        raise failure(f"cannot be reached ({exc.message})") from None
    except httpx.TimeoutException:  # a per-phase timeout of the client, at most the same
        raise failure(f"sent no complete answer within {limits.timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise failure(f"cannot be reached ({type(exc).__name__})") from None
    except UpstreamError as exc:
        raise failure(exc.message) from None


class _BoundedTransport(httpx.AsyncBaseTransport):
    """A transport that sends through another client via :func:`exchange` (for hooks' ``ctx.http``)."""

    def __init__(self, client: httpx.AsyncClient, limits: UpstreamLimits, integration: str | None) -> None:
        self._client, self._limits, self._integration = client, limits, integration

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}{request.url.path}"
        answer = await exchange(
            self._client, request, limits=self._limits, integration=self._integration, endpoint=endpoint
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def bounded_client(
    client: httpx.AsyncClient, limits: UpstreamLimits, *, integration: str | None = None
) -> httpx.AsyncClient:
    """A client for user code (hooks) whose every request goes through :func:`exchange` on ``client``.

    It adds no connections of its own (closing it is optional): the SSRF guard, the pool and the
    headers are ``client``'s; the cap and the total deadline are ``limits``.
    """
    return httpx.AsyncClient(
        transport=_BoundedTransport(client, limits, integration),
        timeout=client.timeout,
        follow_redirects=False,
        headers=client.headers,
    )
