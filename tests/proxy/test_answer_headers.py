"""One ``Date`` and at most one ``Server`` on every answer of a real AuthBridge process, proxied or its own.

Proxied answers carry the upstream's Date and Server (a Date is added when the upstream sent none);
AuthBridge's own answers carry its Date and no Server banner. Read from the raw bytes on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

from tests.proxy.conftest import Server
from tests.servers.authbridge import Answer, exchange


def _spec(key: str, base_url: str) -> dict[str, object]:
    return {
        "key": key,
        "name": key,
        "auth": {"type": "api_token"},
        "token": {"in": "header", "name": "X-Api-Key", "template": "{token}"},
        "request": {"base_url": base_url},
    }


def _get(server: Server, path: str, *, key: bool = True) -> Answer:
    return exchange(server.url, "GET", path, server.headers if key else {})


def _one_date(answer: Answer) -> str:
    dates = answer.header_list("date")
    assert len(dates) == 1, answer.headers
    parsedate_to_datetime(dates[0])  # a valid HTTP date
    return dates[0]


@contextlib.contextmanager
def _bare_upstream(head: bytes) -> Iterator[str]:
    """An upstream that answers every request with 200 "ok" and exactly the header lines ``head``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n" + head + b"\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_a_proxied_answer_has_the_upstreams_date_and_server_once(server: Server) -> None:
    """The upstream's Server and Date pass through unchanged; AuthBridge adds neither of its own."""
    date = "Tue, 01 Dec 2026 10:00:00 GMT"
    with _bare_upstream(f"Date: {date}\r\nServer: upstream-test/1.0\r\n".encode()) as url:
        server.integration(_spec("dated", url))
        cid = server.connect("dated", credentials={"token": "t"})
        answer = _get(server, f"/proxy/{cid}/anything")
    assert answer.status == 200 and answer.body == b"ok"
    assert answer.header_list("server") == ["upstream-test/1.0"]
    assert _one_date(answer) == date


def test_an_upstream_answer_without_a_date_gets_one(server: Server) -> None:
    """RFC 9110 §6.6.1: a recipient with a clock forwarding an answer without Date adds one."""
    with _bare_upstream(b"Server: bare/1\r\n") as url:
        server.integration(_spec("bare", url))
        cid = server.connect("bare", credentials={"token": "t"})
        answer = _get(server, f"/proxy/{cid}/x")
    assert answer.status == 200 and answer.body == b"ok"
    assert answer.header_list("server") == ["bare/1"]
    _one_date(answer)


def test_authbridges_own_answers_have_one_date_and_no_server(server: Server) -> None:
    """The API, its errors, the proxy's errors and the console: one Date each, no Server banner."""
    cases = [
        ("/health", True, 200),
        ("/connections", False, 401),
        ("/connections/nope", True, 404),
        ("/proxy/nope/x", True, 404),
        ("/proxy/nope/x", False, 401),
        ("/console/sign-in", False, 200),
        ("/oauth/callback?state=x&code=y", False, 400),
    ]
    for path, key, status in cases:
        answer = _get(server, path, key=key)
        assert answer.status == status, (path, answer.status)
        _one_date(answer)
        assert answer.header_list("server") == [], (path, answer.headers)
