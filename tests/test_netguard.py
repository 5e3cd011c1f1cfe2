"""The SSRF guard refuses private addresses at connect time, and lets them through when allowed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from authbridge.errors import OutboundBlockedError
from authbridge.netguard import guarded_transport, is_public_address


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A tiny HTTP server on 127.0.0.1; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "::127.0.0.1",
    ],
)
def test_private_addresses_are_not_public(address: str) -> None:
    """Loopback, private, link-local, shared, multicast and mapped-loopback addresses are not public."""
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::"]
)
def test_public_addresses_are_public(address: str) -> None:
    """Globally routable addresses are public."""
    assert is_public_address(address)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guard_refuses_loopback(loopback_server: int, host: str) -> None:
    """With the guard on, a call to a loopback host fails before connecting, saying how to allow it."""
    async with httpx.AsyncClient(transport=guarded_transport(allow_private=False)) as client:
        with pytest.raises(OutboundBlockedError, match="AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true"):
            await client.get(f"http://{host}:{loopback_server}/")


async def test_guard_allows_loopback_when_told(loopback_server: int) -> None:
    """With private networks allowed, the same call goes through."""
    async with httpx.AsyncClient(transport=guarded_transport(allow_private=True)) as client:
        response = await client.get(f"http://127.0.0.1:{loopback_server}/")
    assert response.status_code == 200 and response.json() == {"ok": True}
