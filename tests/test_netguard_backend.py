"""The guarded network backend's other doors: unix sockets are refused; a loopback name is refused by name."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from authbridge.errors import OutboundBlockedError
from authbridge.netguard import GuardedBackend, GuardedResolver, guarded_transport


@pytest.mark.parametrize("allow_private", [False, True])
async def test_unix_sockets_are_refused_even_with_private_networks_allowed(tmp_path: Path, allow_private: bool) -> None:
    """No outbound call may go to a unix socket: the backend refuses it, whatever the private-network setting."""
    with pytest.raises(OutboundBlockedError, match="unix sockets are not allowed for outbound calls"):
        await GuardedBackend(allow_private=allow_private).connect_unix_socket(str(tmp_path / "docker.sock"))


async def test_a_guarded_transport_refuses_a_loopback_name_before_connecting() -> None:
    """``localhost`` resolves to loopback, so the guard refuses it, naming the address it resolved to."""
    async with httpx.AsyncClient(transport=guarded_transport()) as client:
        with pytest.raises(
            OutboundBlockedError, match=r"refusing to connect to localhost: it resolves to (127\.0\.0\.1|::1)"
        ):
            await client.get("http://localhost:9/")


async def test_the_proxy_resolver_refuses_names_of_private_addresses() -> None:
    """The aiohttp resolver (the proxy's) refuses a name resolving to loopback, naming what it resolved to."""
    resolver = GuardedResolver()
    try:
        with pytest.raises(
            OutboundBlockedError, match=r"refusing to connect to localhost: it resolves to 127\.0\.0\.1"
        ):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_the_proxy_resolver_lets_private_names_through_when_allowed() -> None:
    """With private networks allowed, the same name resolves to its loopback address."""
    resolver = GuardedResolver(allow_private=True)
    try:
        results = await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    assert [(r["host"], r["port"]) for r in results] == [("127.0.0.1", 80)]
