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

import ipaddress
import socket
import ssl
import typing

import aiohttp
import aiohttp.abc
import anyio
import httpcore
import httpx

from authbridge.errors import OutboundBlockedError

__all__ = ["GuardedBackend", "GuardedResolver", "guarded_transport", "is_public_address"]


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
