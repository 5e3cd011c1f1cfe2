"""AuthBridge: call third-party APIs on behalf of your users without handling their credentials."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
