"""Bodies that do not fit the happy path, through a real ``authbridge run``: past the replay limit, a caller
that hangs up mid-body, an upstream that hangs up mid-answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from authbridge.proxy.forward import REPLAY_LIMIT
from tests.proxy.conftest import Server, Upstream

API_TOKEN = "api-TOKEN-b0d1e5"
MiB = 1024 * 1024


def _token_spec(upstream: Upstream, key: str) -> dict[str, object]:
    return {
        "key": key,
        "name": key,
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "Authorization", "template": "Bearer {token}"},
        "request": {"base_url": upstream.url},
    }


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"b" * piece
        sent += piece


class _PeakRss:
    """Samples the server's resident memory in a thread while the block runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = self.peak = server.rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_kib())
            self._stop.wait(0.005)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.before) / 1024


def test_a_body_past_the_replay_limit_streams_and_is_not_replayed(server: Server, upstream: Upstream) -> None:
    """A 48 MiB upload rejected with 401: streamed through (memory bounded), the 401 returned, no refresh, no retry."""
    server.integration(upstream.login_spec("bigpost"))
    cid = server.connect("bigpost")
    assert upstream.state.logins == 1
    httpx.get(f"{server.url}/proxy/{cid}/warm", headers=server.headers)  # the server's first-request allocations
    # A streamed upload goes through aiohttp, the GET above through the lean client: warm aiohttp's session too
    # (a HEAD takes its path), so its first-use allocations are not counted as the body's.
    httpx.head(f"{server.url}/proxy/{cid}/warm", headers=server.headers)
    upstream.state.paths.clear()
    size = 48 * MiB
    assert size > 4 * REPLAY_LIMIT
    with _PeakRss(server) as rss:
        response = httpx.post(
            f"{server.url}/proxy/{cid}/reject-big", content=_chunks(size), headers=server.headers, timeout=60
        )
    assert response.status_code == 401
    assert response.json() == {"received": size}  # the whole body reached the upstream
    assert upstream.state.paths == ["/reject-big"] and upstream.state.body_sizes == [size]  # exactly one request
    assert upstream.state.logins == 1  # a body that cannot be replayed is not worth a refresh
    # Only the first REPLAY_LIMIT bytes are ever held; the rest passes through.
    assert rss.growth_mib < 24, f"RSS grew by {rss.growth_mib:.1f} MiB for a {size // MiB} MiB body"


def test_a_body_under_the_replay_limit_is_replayed_once(server: Server, upstream: Upstream) -> None:
    """The contrast: a 1 MiB body rejected with 401 is sent again after one refresh (and rejected again here)."""
    server.integration(upstream.login_spec("smallpost"))
    cid = server.connect("smallpost")
    response = httpx.post(f"{server.url}/proxy/{cid}/reject-big", content=b"s" * MiB, headers=server.headers)
    assert response.status_code == 401
    assert upstream.state.body_sizes == [MiB, MiB] and upstream.state.logins == 2


def _hang_up_mid_body(server: Server, path: str, announced: int, sent: int) -> None:
    """Send a request announcing ``announced`` body bytes, send ``sent`` of them, then close the socket."""
    url = httpx.URL(server.url)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {url.host}",
            f"Authorization: Bearer {server.key}",
            f"Content-Length: {announced}",
            "Content-Type: application/octet-stream",
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in _chunks(sent):
            sock.sendall(chunk)


@pytest.mark.parametrize("sent", [64 * 1024, REPLAY_LIMIT + 2 * MiB], ids=["buffered", "streamed"])
def test_a_caller_hanging_up_mid_body(server: Server, upstream: Upstream, sent: int) -> None:
    """The caller announces more than it sends and goes away: the server lives on, logs no secret, serves the next."""
    server.integration(_token_spec(upstream, "hangup"))
    cid = server.connect("hangup", credentials={"token": API_TOKEN})
    _hang_up_mid_body(server, f"/proxy/{cid}/echo", announced=sent * 4, sent=sent)
    after = httpx.post(f"{server.url}/proxy/{cid}/after", content=b"next", headers=server.headers)
    assert after.status_code == 200, after.text
    assert after.json()["body"] == "next" and after.json()["path"] == "/after"
    assert server.process.poll() is None
    log = server.log_text()
    assert API_TOKEN not in log and server.key not in log


@pytest.mark.parametrize(
    ("size", "sent"),
    [(0, 300 * 1024), (4 * MiB, 300 * 1024)],
    ids=["chunked", "with-length"],
)
def test_an_upstream_hanging_up_mid_answer_reaches_the_caller_as_a_broken_answer(
    server: Server, upstream: Upstream, size: int, sent: int
) -> None:
    """The upstream stops after ``sent`` bytes: the caller's read fails (never a complete-looking answer, never a
    hang), and the server serves the next request."""
    server.integration(_token_spec(upstream, "cutoff"))
    cid = server.connect("cutoff", credentials={"token": API_TOKEN})
    received = 0
    with (
        pytest.raises(httpx.RemoteProtocolError, match="peer closed connection without sending complete message body"),
        httpx.stream(
            "GET", f"{server.url}/proxy/{cid}/cut", params={"size": size, "sent": sent}, headers=server.headers
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += len(chunk)
    assert received <= sent
    assert httpx.get(f"{server.url}/proxy/{cid}/next", headers=server.headers).status_code == 200
    assert server.process.poll() is None


def test_an_upstream_hanging_up_in_a_small_answer_is_a_502(server: Server, upstream: Upstream) -> None:
    """A small answer (read whole before it is sent on) that breaks off becomes a clear 502 naming the upstream."""
    server.integration(_token_spec(upstream, "cutsmall"))
    cid = server.connect("cutsmall", credentials={"token": API_TOKEN})
    response = httpx.get(
        f"{server.url}/proxy/{cid}/cut", params={"size": 32 * 1024, "sent": 1000}, headers=server.headers
    )
    assert response.status_code == 502
    assert response.json()["error"] == {
        "code": "upstream_failed",
        "message": "the upstream's answer broke off",
        "side": "upstream",
    }
    assert API_TOKEN not in response.text
