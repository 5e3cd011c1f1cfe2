"""What the request-signing auth types share: one strict encoding of the URL, signed as it is sent.

A signature covers the path and query as written on the wire. Callers write them in many ways
(``+`` or ``%20`` for a space, ``%7e`` or ``~``), and HTTP clients re-encode them on the way out. So a
signing type first rewrites the request's URL into one strict form (every byte but the RFC 3986
unreserved ``A-Z a-z 0-9 - _ . ~`` percent-encoded, upper-case hex; ``+`` in a query read as a space,
as form encoding and most servers read it), signs that, and the sender sends exactly that URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

import httpx

__all__ = ["canonical_query", "now_of", "query_string", "set_target", "strict", "strict_path", "strict_query"]

_UNRESERVED = "-_.~"
#: Already strict: unreserved characters and upper-case escapes of anything else (the common case, kept as is).
_STRICT_PATH = re.compile(r"(?:[A-Za-z0-9\-._~/]|%(?!3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]|2[DE])[0-9A-F]{2})*")
_STRICT_QUERY = re.compile(
    r"(?:[A-Za-z0-9\-._~=&]|%(?!3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]|2[DE])[0-9A-F]{2})*"
)


def strict(value: str | bytes) -> str:
    """Percent-encode everything but the RFC 3986 unreserved characters."""
    return quote(value, safe=_UNRESERVED)


def strict_query(raw: str) -> list[tuple[str, str]]:
    """The pairs of a raw query string, in order, each name and value decoded once and strictly re-encoded."""
    pairs: list[tuple[str, str]] = []
    if _STRICT_QUERY.fullmatch(raw):
        for item in raw.split("&"):
            if item:
                name, _, value = item.partition("=")
                pairs.append((name, value))
        if not any("=" in value for _, value in pairs):  # a second '=' is encoded: the slow path
            return pairs
        pairs = []
    for item in raw.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append(
                (strict(unquote_to_bytes(name.replace("+", " "))), strict(unquote_to_bytes(value.replace("+", " "))))
            )
    return pairs


def strict_path(raw: str) -> str:
    """A raw path with each segment decoded once and strictly re-encoded (an encoded ``/`` stays encoded)."""
    if _STRICT_PATH.fullmatch(raw):
        return raw
    return "/".join(strict(unquote_to_bytes(segment)) for segment in raw.split("/"))


def query_string(pairs: Sequence[tuple[str, str]]) -> str:
    """``name=value&...`` of already-encoded pairs, in their order."""
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """The already-encoded pairs sorted by name, then value (AWS SigV4 and most HMAC schemes)."""
    return query_string(sorted(pairs))


def set_target(request: httpx.Request, path: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Put an already-encoded path and query on the request (its host, port and scheme stay)."""
    query = query_string(pairs)
    target = (f"{path}?{query}" if query else path).encode("ascii")
    if target != request.url.raw_path:  # already strict (the common case): no second URL parse
        request.url = request.url.copy_with(raw_path=target)


def now_of(clock: Callable[[], datetime] | None) -> datetime:
    """The signing instant: the connection's clock (tests fix it), else the system clock, in UTC."""
    moment = clock() if clock is not None else datetime.now(UTC)
    return moment.astimezone(UTC)
