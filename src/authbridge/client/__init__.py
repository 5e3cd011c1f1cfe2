"""The Python SDK of AuthBridge's HTTP API: integrations, connected accounts and the proxy, sync and async.

```
from authbridge import AuthBridgeClient

with AuthBridgeClient("http://127.0.0.1:8000", api_key) as client:
    client.integrations.import_yaml(open("github.yaml").read())
    connection = client.connections.create("github", "DEV")
    print(connection.authorize_url)          # send the user there to authorize
    response = client.request(connection.id, "GET", "/user")   # through the proxy, token injected
```

``AsyncAuthBridgeClient`` has the same surface with ``await`` (and ``async with``).

How it is written: every API call is a ``Call`` value (method, path, body, and the function
that parses the answer), built once in ``_calls.py``. The two facades only send those values, one
with ``httpx.Client`` (``_sync.py``) and one with ``httpx.AsyncClient`` (``_async.py``); their
methods are one line each. Errors of the API become :class:`AuthBridgeAPIError`; errors of the network stay httpx's.

This module imports nothing from AuthBridge but ``authbridge.errors``: it is usable with only
httpx installed alongside it.
"""

from __future__ import annotations

from authbridge.client._async import AsyncAuthBridgeClient, AsyncConnections, AsyncConnectSessions, AsyncIntegrations
from authbridge.client._calls import (
    AuthBridgeAPIError,
    Connection,
    ConnectionTestResult,
    ConnectSession,
    DeletedConnection,
    ImportResult,
    Token,
)
from authbridge.client._sync import AuthBridgeClient, Connections, ConnectSessions, Integrations

__all__ = [
    "AsyncAuthBridgeClient",
    "AsyncConnectSessions",
    "AsyncConnections",
    "AsyncIntegrations",
    "AuthBridgeAPIError",
    "AuthBridgeClient",
    "ConnectSession",
    "ConnectSessions",
    "Connection",
    "ConnectionTestResult",
    "Connections",
    "DeletedConnection",
    "ImportResult",
    "Integrations",
    "Token",
]

# Public classes say they live here, where users import them from (as httpx does for its own).
for _name in __all__:
    globals()[_name].__module__ = "authbridge.client"
del _name
