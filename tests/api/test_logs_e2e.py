"""Structured logs and X-Request-ID through a real ``authbridge run`` process, read from its stderr.

The formatter and the request-id rule alone: tests/test_logs.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers.authbridge import running_authbridge

#: Secrets that must never reach a log line, in any field.
CANARY_TOKEN = "canary-access-tok-9f8e7d6c"
CANARY_QUERY = "canary-query-secret-5a4b3c"
CANARY_KEY_LIKE = "ab_" + "CanaryLooksLikeAnApiKey0123"
HEX_ID = re.compile(r"[0-9a-f]{32}")


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-ID", "upstream-7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _upstream() -> Iterator[str]:
    server = _Upstream()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_json_logs_carry_the_request_context_and_no_secret(tmp_path: Path) -> None:
    """Every stderr line is one JSON object; request, connection and integration are fields; canaries never appear."""
    env = {"AUTHBRIDGE_LOG_FORMAT": "json", "AUTHBRIDGE_LOG_LEVEL": "info"}
    with _upstream() as upstream, running_authbridge(tmp_path, **env) as server:
        spec = {"key": "echo", "name": "Echo", "auth": {"type": "api_token"}, "request": {"base_url": upstream}}
        assert httpx.put(f"{server.url}/integrations/echo", json=spec, headers=server.headers).status_code == 201
        created = httpx.post(
            f"{server.url}/connections",
            json={"integration": "echo", "name": "T", "credentials": {"token": CANARY_TOKEN}},
            headers={**server.headers, "X-Request-ID": "create-1"},
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "create-1"
        cid = created.json()["id"]

        # The proxy: AuthBridge's id in X-Request-ID, the upstream's own passed on as X-Upstream-Request-ID.
        proxied = httpx.get(
            f"{server.url}/proxy/{cid}/things?access_token={CANARY_QUERY}",
            headers={**server.headers, "X-Request-ID": "proxy-1"},
        )
        assert proxied.status_code == 200, proxied.text
        assert proxied.headers.get_list("x-request-id") == ["proxy-1"]
        assert proxied.headers["x-upstream-request-id"] == "upstream-7"

        # Generated when absent or unsafe (too long, or characters that could forge a log line).
        for sent in ({}, {"X-Request-ID": "x" * 129}, {"X-Request-ID": "a b"}, {"X-Request-ID": 'a"b'}):
            answer = httpx.get(f"{server.url}/health", headers=sent)
            assert HEX_ID.fullmatch(answer.headers["x-request-id"]), (sent, answer.headers)
        # The console and the API's errors answer with one too.
        assert httpx.get(f"{server.url}/console/", headers={"X-Request-ID": "console-1"}).headers["x-request-id"] == (
            "console-1"
        )
        missing = httpx.get(f"{server.url}/connections/nope", headers={**server.headers, "X-Request-ID": "api-404"})
        assert (missing.status_code, missing.headers["x-request-id"]) == (404, "api-404")
        # Secrets in the fields the log takes from the request: the request id and the path's connection id.
        httpx.get(f"{server.url}/health", headers={"X-Request-ID": CANARY_KEY_LIKE})
        httpx.get(f"{server.url}/connections/{CANARY_KEY_LIKE}", headers=server.headers)
        proxied_secret = httpx.get(
            f"{server.url}/proxy/{cid}/x?client_secret={CANARY_QUERY}",
            headers={**server.headers, "X-Request-ID": CANARY_KEY_LIKE},
        )
        assert proxied_secret.status_code == 200

    text = (tmp_path / "server.log").read_text()
    for canary in (CANARY_TOKEN, CANARY_QUERY, CANARY_KEY_LIKE, server.key):
        assert canary not in text
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert entries and all(
        {"time", "level", "message", "request_id", "connection_id", "integration"} <= set(e) for e in entries
    )
    proxy_lines = [e for e in entries if e["request_id"] == "proxy-1"]
    assert proxy_lines and all(e["connection_id"] == cid and e["integration"] == "echo" for e in proxy_lines)
    assert any("/things?access_token=***" in e["message"] for e in proxy_lines)
    assert any(e["request_id"] == "create-1" for e in entries)
    assert any(e["request_id"] == "ab_***" for e in entries)
    assert any(e["connection_id"] == "ab_***" for e in entries)
