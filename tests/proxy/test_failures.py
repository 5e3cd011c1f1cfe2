"""Proxy failures through a real ``authbridge run``: a bad retries header, a refresh that fails on the way in or
after a rejection, an upstream that hangs up without answering. Each is a JSON error naming the side at fault."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx

from tests.proxy.conftest import Server, Upstream


def _error(response: httpx.Response) -> dict[str, str]:
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


def test_a_bad_retries_header_is_refused_before_anything_is_sent(server: Server, upstream: Upstream) -> None:
    """X-AuthBridge-Retries that is not a number is a 400 saying what it takes; the upstream sees nothing."""
    server.integration({"key": "rtr", "name": "rtr", "auth": {"type": "none"}, "request": {"base_url": upstream.url}})
    cid = server.connect("rtr")
    before = upstream.state.requests
    response = httpx.get(f"{server.url}/proxy/{cid}/x", headers={**server.headers, "X-AuthBridge-Retries": "many"})
    assert response.status_code == 400
    assert _error(response) == {
        "code": "invalid_retries",
        "message": "X-AuthBridge-Retries takes 0 to 5",
        "side": "authbridge",
    }
    assert upstream.state.requests == before


def test_a_refresh_failing_after_a_rejection_returns_the_rejection(server: Server, upstream: Upstream) -> None:
    """The upstream rejects the token and logging in again fails: the caller gets the upstream's own 401 (the
    upstream's answer, never turned into an AuthBridge error), after one login attempt and no second call."""
    server.integration(upstream.login_spec("relogin"))
    cid = server.connect("relogin")
    upstream.state.valid_tokens.clear()
    upstream.state.login_status = 503
    upstream.state.paths.clear()
    response = httpx.get(f"{server.url}/proxy/{cid}/protected/x", headers=server.headers)
    assert response.status_code == 401, response.text
    assert response.json() == {"error": "invalid_token"}
    assert upstream.state.paths == ["/protected/x", "/login"]


@contextlib.contextmanager
def _hang_up_server() -> Iterator[int]:
    """A TCP server on loopback that reads the request and closes the connection without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_an_upstream_that_hangs_up_without_answering_is_a_502(server: Server) -> None:
    """The connection is accepted, then closed with no answer: 502 naming the upstream's origin, server fine."""
    with _hang_up_server() as port:
        base = f"http://127.0.0.1:{port}"
        server.integration({"key": "mute", "name": "mute", "auth": {"type": "none"}, "request": {"base_url": base}})
        cid = server.connect("mute")
        response = httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers)
    assert response.status_code == 502
    error = _error(response)
    assert error["code"] == "upstream_unreachable" and error["side"] == "upstream"
    assert error["message"].startswith(f"{base} failed: ")
    assert httpx.get(f"{server.url}/health").status_code == 200
