"""AuthBridge: call third-party APIs on behalf of your users without handling their credentials.

```
from authbridge import AuthBridgeClient, Bridge   # imported on first use: `import authbridge` stays cheap
```
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from authbridge.bridge import Bridge
    from authbridge.client import AsyncAuthBridgeClient, AuthBridgeClient

__version__ = "0.1.0"

__all__ = ["AsyncAuthBridgeClient", "AuthBridgeClient", "Bridge", "__version__"]

_LAZY = {
    "AsyncAuthBridgeClient": "authbridge.client",
    "AuthBridgeClient": "authbridge.client",
    "Bridge": "authbridge.bridge",
}


def __getattr__(name: str) -> typing.Any:
    """Import the SDK classes on first use (the server's modules need none of them)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'authbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
