"""The proxy: forward a request with injected credentials, refresh and retry once on rejection."""

from __future__ import annotations

import typing

from authbridge.proxy.forward import Proxy, ProxyTimeouts

__all__ = ["Proxy", "ProxyMiddleware", "ProxyTimeouts"]

_PREFIX = "/proxy/"


class ProxyMiddleware:
    """Raw ASGI in front of the app: ``/proxy/...`` goes straight to the Proxy, skipping the router.

    (Starlette's router and StreamingResponse halve the proxy's throughput: docs/performance.md.)
    """

    def __init__(self, app: typing.Any) -> None:
        self.app = app

    async def __call__(self, scope: typing.Any, receive: typing.Any, send: typing.Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(_PREFIX):
            proxy: Proxy = scope["app"].state.proxy
            await proxy.handle(scope, receive, send)
            return
        await self.app(scope, receive, send)
