"""Type aliases and Protocols shared across layers. Imports nothing else from AuthBridge."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

__all__ = ["Clock", "JSONDict", "utcnow"]

JSONDict = dict[str, typing.Any]


class Clock(typing.Protocol):
    """Something that tells the time, as an aware UTC datetime. Tests pass a fake one."""

    def __call__(self) -> datetime: ...


def utcnow() -> datetime:
    """The real clock."""
    return datetime.now(UTC)
