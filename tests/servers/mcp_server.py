"""A real MCP server (the official ``mcp`` Python SDK) that requires tokens of the test OAuth server.

Run it from the repository root::

    python -m tests.servers.mcp_server --issuer http://127.0.0.1:<oauth port>

It prints ``READY http://127.0.0.1:<port>/mcp`` once listening. The SDK serves the protected
resource metadata (RFC 9728) and answers 401 with ``WWW-Authenticate: Bearer resource_metadata=...``;
each token is checked by introspection (RFC 7662) at the issuer, as the confidential client, and
must have been issued for this server (``aud`` = its URL, RFC 8707). Tools: ``add`` and ``whoami``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from urllib.parse import quote_plus

import httpx
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import FastMCP

from tests.servers.oauth_server import CONFIDENTIAL_ID, CONFIDENTIAL_SECRET


class IntrospectingVerifier:
    """An MCP ``TokenVerifier``: RFC 7662 introspection at the issuer."""

    def __init__(self, issuer: str) -> None:
        self.endpoint = f"{issuer}/oauth/introspect"

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(
                self.endpoint,
                data={"token": token},
                auth=(quote_plus(CONFIDENTIAL_ID), quote_plus(CONFIDENTIAL_SECRET)),  # RFC 6749 §2.3.1 encoding
            )
        data = answer.json() if answer.status_code == 200 else {}
        if not data.get("active") or data.get("token_type") != "access_token":
            return None
        return AccessToken(
            token=token,
            client_id=data["client_id"],
            scopes=str(data.get("scope", "")).split(),
            expires_at=data.get("exp"),
            resource=data.get("aud"),
        )


def build(issuer: str, port: int) -> FastMCP:
    url = f"http://127.0.0.1:{port}/mcp"
    server = FastMCP(
        "authbridge-test",
        host="127.0.0.1",
        port=port,
        token_verifier=IntrospectingVerifier(issuer),
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=url,
            required_scopes=["read"],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def whoami() -> str:
        """The client the token was issued to."""
        token = get_access_token()
        return token.client_id if token else "nobody"

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issuer", required=True)
    args = parser.parse_args(argv)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = build(args.issuer, port).streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sys.exit("the MCP server did not start")
        time.sleep(0.05)
    print(f"READY http://127.0.0.1:{port}/mcp", flush=True)
    thread.join()


if __name__ == "__main__":
    main()
