"""The SSRF guard: outbound connections to loopback, private or link-local addresses are refused.

The check runs in the network backend, on the address actually connected to, so a host name that
resolves to a public address at check time and a private one at connect time (DNS rebinding) is
still caught. Allowing private networks (``AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true``) turns it off.

```
transport = guarded_transport(allow_private=False)
client = httpx.AsyncClient(transport=transport)
```
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import typing
from collections.abc import AsyncIterator

import aiohttp
import aiohttp.abc
import anyio
import httpcore
import httpx

from authbridge.errors import OutboundBlockedError

__all__ = [
    "AiohttpTransport",
    "GuardedBackend",
    "GuardedResolver",
    "check_literal",
    "guarded_transport",
    "is_public_address",
]


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64) or ip in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally routable (not loopback, private, link-local, reserved...).

    IPv6 addresses that carry an IPv4 one (mapped, NAT64, 6to4, IPv4-compatible) are judged by it.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return inner.is_global and not inner.is_multicast
    return ip.is_global and not ip.is_multicast


def _blocked(host: str, address: str) -> OutboundBlockedError:
    return OutboundBlockedError(
        f"refusing to connect to {host}: it resolves to {address}, a loopback, private or link-local "
        "address; set AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true to allow calls to private networks"
    )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves names itself and connects only to public addresses."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = host
        if not self._allow_private:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
            for candidate in addresses:
                if not is_public_address(candidate):
                    raise _blocked(host, candidate)
            if not addresses:  # pragma: no cover - getaddrinfo raises instead
                raise OutboundBlockedError(f"cannot resolve {host}")
            address = addresses[0]
        return await self._inner.connect_tcp(
            address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundBlockedError("unix sockets are not allowed for outbound calls")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *,
    allow_private: bool = False,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections pass through :class:`GuardedBackend`."""
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify)
    ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
    # httpx offers no public hook for the network backend; replace its pool with one that has ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_private=allow_private),
    )
    return transport


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """The same guard for aiohttp (the proxy's client): names resolving to private addresses are refused.

    aiohttp connects to the addresses this returns, so rebinding between check and connect does not
    get through. IP literals never reach a resolver: the proxy checks those itself.
    """

    def __init__(self, *, allow_private: bool = False) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                if not is_public_address(result["host"]):
                    raise _blocked(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp answer's body as httpx reads it: chunks as they come; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response, self._request = response, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class _mapped_errors:
    """aiohttp's failures raised as the httpx exceptions callers handle (the guard's refusal passes as it is)."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: typing.Any) -> None:
        if exc is None or isinstance(exc, OutboundBlockedError):
            return
        mapped: httpx.TransportError | None = None
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            mapped = httpx.ConnectTimeout(str(exc) or "connect timeout", request=self._request)
        elif isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError and aiohttp's other timeouts
            mapped = httpx.ReadTimeout(str(exc) or "read timeout", request=self._request)
        elif isinstance(exc, aiohttp.ClientConnectorError):
            mapped = httpx.ConnectError(str(exc), request=self._request)
        elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            mapped = httpx.RemoteProtocolError(str(exc), request=self._request)
        elif isinstance(exc, aiohttp.ClientError):
            mapped = httpx.ReadError(str(exc), request=self._request)
        if mapped is not None:
            raise mapped from None


@functools.lru_cache(maxsize=1024)
def _is_private_literal(host: str) -> bool:
    """Whether ``host`` is an IP literal that is not public (a name: False, the resolver checks what it resolves to).

    Kept per host: parsing it (and failing to, for a name) on every request costs more than the request's guard.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return not is_public_address(host)


def check_literal(host: str, *, allow_private: bool) -> None:
    """Refuse ``host`` if it is an IP literal that is not public (names are left to the resolver).

    The transports' check: aiohttp and the lean client never resolve IP literals.
    """
    if not allow_private and _is_private_literal(host):
        raise _blocked(host, host)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through aiohttp, behind the same SSRF guard as :func:`guarded_transport`.

    httpcore's connection pool scans every pooled connection on each request: at 32 concurrent
    token calls it served 140 requests/s where aiohttp served 6,000 (docs/architecture.md, "Refresh
    storm (issue 14, target 3)"). httpx stays the interface (requests, answers, the sans-IO flows,
    ``MockTransport`` in tests); only the sending changes. Names are checked by
    :class:`GuardedResolver`, IP literals here (aiohttp never resolves them). The session is made on
    first use, in the running event loop, one per loop. Since the fourth session the server's client
    uses :class:`~authbridge.upstream_http.LeanTransport`, which falls back to this one.

    ```
    client = httpx.AsyncClient(transport=AiohttpTransport(allow_private=False))
    ```
    """

    def __init__(self, *, allow_private: bool = False, max_connections: int = 100) -> None:
        self._allow_private = allow_private
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _drop(self) -> None:
        """Forget a session made in an event loop that is gone (its connections died with it), without a warning."""
        session, self._session, self._loop = self._session, None, None
        if session is None or session.closed:
            return
        connector = typing.cast(aiohttp.BaseConnector, session.connector)  # an open session has one
        session.detach()  # closed, its connector ours to close: nothing left for __del__ to warn about
        connector._close()  # the sync close: the public one needs the (gone) loop

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            self._drop()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                ttl_dns_cache=60,
                resolver=GuardedResolver(allow_private=self._allow_private),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
            self._loop = loop
        return self._session

    def _check_literal(self, host: str) -> None:
        check_literal(host, allow_private=self._allow_private)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in {"http", "https"}:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {request.url.scheme!r}", request=request)
        self._check_literal(request.url.host)
        session = self._open()
        timeouts = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeouts.get("connect"),
            connect=(timeouts.get("connect") or 0) + (timeouts.get("pool") or 0) or None,
            sock_read=timeouts.get("read"),
        )
        body = await request.aread()
        with _mapped_errors(request):
            response = await session.request(
                request.method,
                str(request.url),
                # As written (httpx keeps the case; a few servers still read headers case-sensitively).
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            )
        return httpx.Response(
            response.status,
            headers=[(k, v) for k, v in response.raw_headers],
            stream=_AiohttpStream(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._drop()
