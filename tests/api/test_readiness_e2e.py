"""``GET /ready`` and graceful shutdown through a real ``authbridge run`` process.

The checks themselves, on both backends: tests/broker/test_readiness.py.
"""

from __future__ import annotations

import contextlib
import http.server
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, _asyncpg_dsn
from tests.servers.authbridge import Running, running_authbridge


def _ready(server: Running) -> httpx.Response:
    return httpx.get(f"{server.url}/ready", timeout=30)


def test_ready_answers_200_when_everything_is_in_order(tmp_path: Path) -> None:
    """A freshly started server is ready; /health stays the liveness answer."""
    with running_authbridge(tmp_path) as server:
        answer = _ready(server)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "ready",
            "checks": {"shutdown": "no", "database": "ok", "migrations": "ok", "keys": "ok"},
        }
        assert httpx.get(f"{server.url}/health").status_code == 200


async def test_ready_answers_503_once_the_postgres_database_is_dropped(tmp_path: Path) -> None:
    """Dropping the database under a running server makes /ready answer 503 naming the database."""
    name = f"ab_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        with running_authbridge(tmp_path, AUTHBRIDGE_DATABASE_URL=url) as server:
            assert _ready(server).status_code == 200
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            answer = _ready(server)
            assert answer.status_code == 503
            assert answer.json()["reason"] == "database_unreachable"
            assert answer.json()["checks"]["database"] == "unreachable"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_ready_answers_503_when_the_schema_is_behind(tmp_path: Path) -> None:
    """A database moved back to an older revision under a running server is not ready."""
    with running_authbridge(tmp_path) as server:
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "authbridge.db")) as db, db:
            db.execute("UPDATE alembic_version SET version_num = '0001'")
        answer = _ready(server)
        assert answer.status_code == 503
        assert answer.json()["reason"] == "migrations_not_at_head"


def test_ready_answers_503_when_a_canary_key_is_missing(tmp_path: Path) -> None:
    """Data encrypted under a key the running server lacks makes it not ready, and the key is named."""
    with running_authbridge(tmp_path) as server:
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "authbridge.db")) as db, db:
            db.execute("INSERT INTO key_canaries (kid, ciphertext, created_at) VALUES ('k-gone', 'x', '2026-01-01')")
        answer = _ready(server)
        assert answer.status_code == 503
        assert answer.json()["reason"] == "key_ring_mismatch"
        assert "'k-gone'" in answer.json()["message"]


class _SlowUpstream(http.server.ThreadingHTTPServer):
    """An upstream whose answers wait until the test lets them go."""

    daemon_threads = True

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _SlowHandler)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    server: _SlowUpstream

    def do_GET(self) -> None:
        self.server.arrived.set()
        self.server.release.wait(60)
        body = b'{"slow": "done"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _slow_upstream() -> Iterator[_SlowUpstream]:
    upstream = _SlowUpstream()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        upstream.release.set()
        upstream.shutdown()
        upstream.server_close()


def _poll(url: str, until: str, deadline: float) -> list[int]:
    """GET ``url`` until it answers 503 (``until="503"``) or refuses connections (``until="refused"``)."""
    seen: list[int] = []
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            if until == "refused":
                return seen
            raise
        seen.append(status)
        if until == "503" and status == 503:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{url}: no {until} before the deadline; saw {seen[-5:]}")


def test_sigterm_lets_a_slow_proxied_request_finish(tmp_path: Path) -> None:
    """On SIGTERM: /ready answers 503, the listener closes, the request in flight completes, the process exits."""
    with _slow_upstream() as upstream, running_authbridge(tmp_path, AUTHBRIDGE_SHUTDOWN_DRAIN="2") as server:
        spec = {
            "key": "slow",
            "name": "Slow",
            "auth": {"type": "api_token"},
            "request": {"base_url": f"http://127.0.0.1:{upstream.server_address[1]}"},
        }
        assert httpx.put(f"{server.url}/integrations/slow", json=spec, headers=server.headers).status_code == 201
        created = httpx.post(
            f"{server.url}/connections",
            json={"integration": "slow", "name": "T", "credentials": {"token": "t0k3n-value"}},
            headers=server.headers,
        )
        assert created.status_code == 201, created.text
        proxied: list[httpx.Response] = []
        caller = threading.Thread(
            target=lambda: proxied.append(
                httpx.get(f"{server.url}/proxy/{created.json()['id']}/things", headers=server.headers, timeout=60)
            )
        )
        caller.start()
        assert upstream.arrived.wait(30)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        seen = _poll(f"{server.url}/ready", "503", deadline)
        assert set(seen) <= {200, 503}
        assert _ready(server).json()["reason"] == "shutting_down"
        _poll(f"{server.url}/health", "refused", deadline)  # stopped accepting, the request still in flight
        assert caller.is_alive() and server.process.poll() is None
        upstream.release.set()
        caller.join(30)
        assert [(r.status_code, r.json()) for r in proxied] == [(200, {"slow": "done"})]
        assert server.process.wait(30) == -signal.SIGTERM  # uvicorn re-raises the signal once it is done


@pytest.mark.parametrize("value", ["-1", "x", "601"])
def test_bad_drain_setting_is_refused(value: str) -> None:
    """AUTHBRIDGE_SHUTDOWN_DRAIN takes whole seconds from 0 to 600."""
    from authbridge.config import Settings
    from authbridge.errors import ConfigError

    with pytest.raises(ConfigError, match="AUTHBRIDGE_SHUTDOWN_DRAIN has value"):
        Settings.from_env({"AUTHBRIDGE_SHUTDOWN_DRAIN": value})


def test_sigterm_cancels_a_request_that_outlives_the_shutdown_timeout(tmp_path: Path) -> None:
    """The wait for requests in flight is bounded: past AUTHBRIDGE_SHUTDOWN_TIMEOUT the process exits anyway."""
    with _slow_upstream() as upstream, running_authbridge(tmp_path, AUTHBRIDGE_SHUTDOWN_TIMEOUT="1") as server:
        spec = {
            "key": "stuck",
            "name": "Stuck",
            "auth": {"type": "api_token"},
            "request": {"base_url": f"http://127.0.0.1:{upstream.server_address[1]}"},
        }
        assert httpx.put(f"{server.url}/integrations/stuck", json=spec, headers=server.headers).status_code == 201
        created = httpx.post(
            f"{server.url}/connections",
            json={"integration": "stuck", "name": "T", "credentials": {"token": "t0k3n-value"}},
            headers=server.headers,
        )
        outcome: list[object] = []

        def call() -> None:
            try:
                outcome.append(
                    httpx.get(f"{server.url}/proxy/{created.json()['id']}/x", headers=server.headers, timeout=60)
                )
            except httpx.TransportError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        assert upstream.arrived.wait(30)
        server.process.send_signal(signal.SIGTERM)
        # The upstream never answers (until the test ends): the process must not wait for it.
        assert server.process.wait(30) == -signal.SIGTERM
        caller.join(30)
        # uvicorn cancels the request and, its answer not started, sends a 500.
        assert [getattr(answer, "status_code", answer) for answer in outcome] == [500]
