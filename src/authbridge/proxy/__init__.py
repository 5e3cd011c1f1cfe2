"""The proxy: forward a request with injected credentials, refresh and retry once on rejection."""

from __future__ import annotations

from authbridge.proxy.forward import SKIP_AUTO_HEADERS, Proxy, ProxyTimeouts

__all__ = ["PROXY_PREFIX", "SKIP_AUTO_HEADERS", "Proxy", "ProxyTimeouts"]

#: Requests under this path are the proxy's; the app hands them over before its router.
PROXY_PREFIX = "/proxy/"
