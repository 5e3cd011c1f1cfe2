"""Integrations that exist without being declared: created the first time their key is used.

``mcp`` connects any remote MCP server from its URL alone (the MCP authorization spec): the server's
protected resource metadata (RFC 9728) names its authorization server, which is discovered
(RFC 8414), AuthBridge becomes its client (its client ID metadata document, else RFC 7591
registration), and the authorization asks for a token for that
server (RFC 8707 ``resource``, PKCE S256). Its proxy base URL is the server URL itself.

```
POST /connections {"integration": "mcp", "name": "Linear", "parameters": {"server_url": "https://mcp.linear.app/mcp"}}
```
"""

from __future__ import annotations

import functools

from authbridge.spec.loader import load_spec
from authbridge.spec.models import Integration

__all__ = ["BUILTIN_KEYS", "builtin_spec"]

_MCP = r"""
key: mcp
name: MCP server
description: >-
  Any remote MCP server, connected by its URL alone: AuthBridge discovers its authorization
  server, becomes its client (a client ID metadata document, else dynamic registration) and asks
  for a token for that server.
parameters:
  - name: server_url
    label: MCP server URL
    description: The server's streamable HTTP endpoint, as its documentation gives it.
    required: true
    format: url
    example: https://mcp.example.com/mcp
  - name: scopes
    label: Scopes
    description: >-
      Optional, separated by spaces: asked for instead of the scopes the server names (its
      WWW-Authenticate challenge, or its metadata's scopes_supported).
    pattern: '^[!#-\[\]-~]+( [!#-\[\]-~]+)*$'
    example: read write
auth:
  type: oauth2
  protected_resource: "{server_url}"
  scopes: ["{scopes}"]
  client_registration: auto
  registration_metadata:
    client_name: AuthBridge
request:
  base_url: "{server_url}"
"""

_SOURCES = {"mcp": _MCP}
#: The keys of the built-in integrations.
BUILTIN_KEYS = frozenset(_SOURCES)


@functools.cache
def builtin_spec(key: str) -> Integration | None:
    """The built-in integration with this key, or None."""
    source = _SOURCES.get(key)
    return load_spec(source) if source is not None else None
