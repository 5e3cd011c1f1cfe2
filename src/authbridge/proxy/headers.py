"""Header and path rules of the proxy: hop-by-hop filtering, the caller's key, paths that stay inside the base URL."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from email.utils import formatdate
from urllib.parse import unquote

__all__ = ["HOP_BY_HOP", "caller_key", "forward_headers", "http_date", "response_headers", "safe_path"]

#: RFC 9110 §7.6.1 hop-by-hop headers, plus ones a proxy must set itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:.*")
_NOT_FORWARDED = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-authbridge-key",
    b"x-authbridge-retries",
    b"x-authbridge-max-wait",
    b"x-authbridge-next",
}


def caller_key(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The caller's AuthBridge key, and whether it came in ``Authorization`` (which is then not forwarded)."""
    bearer = None
    for name, value in headers:
        if name == b"x-authbridge-key":
            return value.decode("latin-1").strip(), False
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
    return bearer, bearer is not None


def forward_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    drop_authorization: bool,
    injected: dict[str, str],
    injected_names: frozenset[bytes] | None = None,
) -> dict[str, str]:
    """The caller's headers to send upstream: no hop-by-hop, no AuthBridge key, injected ones win.

    Names are compared case-insensitively (ASGI gives them lower-cased); an injected header
    replaces a caller's header of the same name. ``injected_names`` (lower-cased, encoded) may be
    passed precomputed: this runs on every proxied request (one pass over the headers; the names a
    ``Connection`` header lists are taken out afterwards, in the rare request that has one).
    """
    if injected_names is None:
        injected_names = frozenset(k.lower().encode("latin-1") for k in injected)
    out: dict[str, str] = {}
    listed: list[bytes] | None = None
    for name, value in headers:
        if name in _NOT_FORWARDED or name in injected_names:
            if name == b"connection":
                listed = (listed or []) + [part.strip().lower() for part in value.split(b",")]
            continue
        if drop_authorization and name == b"authorization":
            continue
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    if listed:
        for gone in listed:
            out.pop(gone.decode("latin-1"), None)
    out.update(injected)
    return out


_date: list[tuple[int, bytes]] = [(0, b"")]


def http_date() -> bytes:
    """The current time as an HTTP ``Date`` value (RFC 9110 §5.6.7), formatted once a second."""
    now = int(time.time())
    second, value = _date[0]
    if second != now:
        value = formatdate(now, usegmt=True).encode("ascii")
        _date[0] = (now, value)
    return value


def response_headers(
    items: Sequence[tuple[bytes, bytes]], request_id: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers to pass back, minus hop-by-hop ones.

    The upstream's ``Date`` and ``Server`` pass through (the server adds neither); an answer without
    a ``Date`` gets one (RFC 9110 §6.6.1: a recipient with a clock that forwards such a message adds it).
    With ``request_id``, the answer carries it as ``X-Request-ID`` and the upstream's own, if any, as
    ``X-Upstream-Request-ID``. One pass over the headers (this runs on every proxied request).
    """
    out: list[tuple[bytes, bytes]] = []
    listed: set[bytes] | None = None
    dated = False
    for name, value in items:
        lower = name.lower()
        if lower in HOP_BY_HOP:
            if lower == b"connection":
                listed = (listed or set()) | {part.strip().lower() for part in value.split(b",")}
            continue
        if lower == b"date":
            dated = True
        elif lower == b"x-request-id" and request_id is not None:
            name = b"x-upstream-request-id"
        out.append((name, value))
    if listed:
        out = [(k, v) for k, v in out if k.lower() not in listed]
        dated = any(k.lower() == b"date" for k, _ in out)
    if not dated:
        out.append((b"date", http_date()))
    if request_id is not None:
        out.append((b"x-request-id", request_id))
    return out


#: Paths made only of these characters need no decoding to check (no ``%``, ``:``, ``\``, space or control).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=@/-]*")


def safe_path(raw: str) -> str | None:
    """The path to append to the base URL, or None when it would leave it (``..``, ``//host``, a URL).

    ``raw`` keeps the caller's percent-encoding; each decoded segment is checked as well, so
    ``%2e%2e`` is caught. A path of plain characters only (the common case) is checked without decoding.
    """
    if _PLAIN_PATH.fullmatch(raw) is not None:
        wrapped = f"/{raw}/"
        return None if raw.startswith("/") or "/./" in wrapped or "/../" in wrapped else raw
    first = unquote(raw.split("/", 1)[0])
    if raw.startswith("/") or "\\" in raw or _SCHEME.fullmatch(first):
        return None
    for segment in raw.split("/"):
        decoded = unquote(segment)
        if decoded in {".", ".."} or ("/" in decoded and any(p in {".", ".."} for p in decoded.split("/"))):
            return None
        if "\\" in decoded or any(ord(c) < 0x20 for c in decoded):
            return None
    return raw
