"""The proxy's pure rules: paths that stay inside the base URL, headers forwarded and dropped.

tests/proxy/test_proxy.py drives the same rules through a real server.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from authbridge.proxy.headers import caller_key, forward_headers, response_headers, safe_path


@pytest.mark.parametrize("path", ["", "a", "a/b/c", "a%2Fb", "v1/items?x", "a//b", "caf%C3%A9", "a..b", "...x"])
def test_paths_kept(path: str) -> None:
    """Ordinary paths (encoded slashes and dots inside names included) are kept as given."""
    assert safe_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "..",
        ".",
        "a/..",
        "../x",
        "a/./b",
        "%2e%2e",
        "%2E%2e/x",
        "a/%2e%2e%2fb",
        "/host",
        "https://x",
        "HTTP:x",
        "a\\b",
        "a%5cb",
        "a%0d%0ab",
        "javascript:alert(1)",
    ],
)
def test_paths_refused(path: str) -> None:
    """Dot segments (also encoded), a leading slash, a scheme, backslashes and control characters are refused."""
    assert safe_path(path) is None


def test_caller_key_sources() -> None:
    """X-AuthBridge-Key wins; a Bearer Authorization is the key otherwise (and is then not forwarded)."""
    assert caller_key([(b"authorization", b"Bearer ab_1")]) == ("ab_1", True)
    assert caller_key([(b"authorization", b"Bearer other"), (b"x-authbridge-key", b"ab_2")]) == ("ab_2", False)
    assert caller_key([(b"authorization", b"Basic xyz")]) == (None, False)


def test_forward_headers_rules() -> None:
    """Hop-by-hop, Host, Content-Length, the key and listed Connection headers go; injected ones replace."""
    headers = [
        (b"host", b"authbridge"),
        (b"connection", b"keep-alive, x-private"),
        (b"x-private", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"5"),
        (b"authorization", b"Bearer ab_key"),
        (b"x-authbridge-retries", b"2"),
        (b"accept", b"a"),
        (b"accept", b"b"),
        (b"x-api-key", b"caller"),
    ]
    out = forward_headers(headers, drop_authorization=True, injected={"X-Api-Key": "injected"})
    assert out == {"accept": "a, b", "X-Api-Key": "injected"}


def test_response_headers_drop_hop_by_hop() -> None:
    """Response headers lose hop-by-hop ones and those named by Connection; repeated ones stay."""
    items = [
        (b"Connection", b"X-Hop"),
        (b"X-Hop", b"1"),
        (b"Set-Cookie", b"a"),
        (b"Set-Cookie", b"b"),
        (b"Upgrade", b"h2"),
        (b"Date", b"Tue, 01 Dec 2026 10:00:00 GMT"),
    ]
    assert response_headers(items) == [
        (b"Set-Cookie", b"a"),
        (b"Set-Cookie", b"b"),
        (b"Date", b"Tue, 01 Dec 2026 10:00:00 GMT"),
    ]


def test_response_headers_get_a_date_when_the_upstream_sent_none() -> None:
    """RFC 9110 §6.6.1: an answer forwarded without a Date gets one (the upstream's is kept when it has one)."""
    added = response_headers([(b"Content-Type", b"text/plain")])
    assert added[0] == (b"Content-Type", b"text/plain")
    assert len(added) == 2 and added[1][0] == b"date"
    assert parsedate_to_datetime(added[1][1].decode()).tzinfo is not None
