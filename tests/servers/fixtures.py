"""Pytest fixtures that run the test OAuth server (``tests.servers.oauth_server``) as a separate process.

``oauth_server`` (session scope) starts one process for the whole run; ``oauth`` (function scope) resets it
before each test and returns the same :class:`OAuthServer`. The functions are named ``*_fixture`` so that a
test module may import them (``from tests.servers.fixtures import oauth_fixture, oauth_server_fixture``)
without its ``oauth`` parameters shadowing an import; with ``pytest_plugins = ["tests.servers.fixtures"]``
in the root conftest no import is needed. :func:`run_oauth_server` starts another one with
other command-line options when a test needs that.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import httpx
import pytest

from tests.servers import oauth_server as _srv

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class OAuthServer:
    """A running test authorization server and its test controls."""

    base_url: str

    CONFIDENTIAL_ID: ClassVar[str] = _srv.CONFIDENTIAL_ID
    CONFIDENTIAL_SECRET: ClassVar[str] = _srv.CONFIDENTIAL_SECRET
    PUBLIC_ID: ClassVar[str] = _srv.PUBLIC_ID
    USERNAME: ClassVar[str] = _srv.USERNAME
    PASSWORD: ClassVar[str] = _srv.PASSWORD
    SCOPES: ClassVar[str] = _srv.SCOPES
    #: Any port works: the server accepts http://127.0.0.1:*/oauth/callback and http://localhost:*/oauth/callback.
    REDIRECT_URI: ClassVar[str] = "http://127.0.0.1:8765/oauth/callback"

    @property
    def issuer(self) -> str:
        """The issuer to enable with ``configure(issuer=...)`` (off unless configured or ``--issuer`` given)."""
        return self.base_url

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/oauth/revoke"

    @property
    def introspect_url(self) -> str:
        return f"{self.base_url}/oauth/introspect"

    def is_active(self, token: str) -> bool:
        """Whether the server still honours this access or refresh token (RFC 7662 introspection)."""
        response = httpx.post(
            self.introspect_url,
            data={"token": token, "client_id": self.CONFIDENTIAL_ID, "client_secret": self.CONFIDENTIAL_SECRET},
            timeout=10.0,
        )
        response.raise_for_status()
        return bool(response.json()["active"])

    @property
    def me_url(self) -> str:
        return f"{self.base_url}/api/me"

    @property
    def echo_url(self) -> str:
        return f"{self.base_url}/api/echo"

    @property
    def custom_login_url(self) -> str:
        return f"{self.base_url}/custom/login"

    def _admin(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_admin/{path}", json=json, timeout=10.0)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``{"token_calls": {grant_type: n, ..., "custom": n}, "revocations": n, "revoked_tokens": n,
        "active_access_tokens": n}``; every call to a token endpoint counts, failed or not."""
        result: dict[str, Any] = self._admin("GET", "stats")
        return result

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change ``token_ttl``, ``auto_approve``, ``issuer``, ``fail_next`` (dict: status, body, content_type,
        count), ``revoke_fault`` (the same plus ``kind``: refresh_token | access_token, the token whose
        revocation fails) or ``delay_next`` (seconds) until the next reset; returns the resulting configuration."""
        result: dict[str, Any] = self._admin("POST", "config", settings)
        return result

    def reset(self) -> None:
        """Forget tokens, codes, sessions, counters and faults; configuration back to the startup options."""
        self._admin("POST", "reset")

    def expire_tokens(self) -> int:
        """Expire every access token and session token now (refresh tokens stay usable)."""
        expired: int = self._admin("POST", "expire")["expired"]
        return expired


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Read the child's stdout until EOF, so it never blocks on a full pipe."""
    for line in stream:
        lines.put(line)


@contextlib.contextmanager
def run_oauth_server(*args: str) -> Iterator[OAuthServer]:
    """Start ``python -m tests.servers.oauth_server --port 0 *args``; stop it on exit (kill if it lingers)."""
    command = [sys.executable, "-m", "tests.servers.oauth_server", "--port", "0", *args]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, encoding="utf-8"
        )
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            yield OAuthServer(base_url=_wait_ready(process, lines, stderr))
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(timeout=5)
            process.stdout.close()


@contextlib.contextmanager
def run_mcp_server(issuer: str) -> Iterator[str]:
    """Start ``python -m tests.servers.mcp_server --issuer ISSUER``; its MCP endpoint URL; stop it on exit."""
    command = [sys.executable, "-m", "tests.servers.mcp_server", "--issuer", issuer]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, encoding="utf-8"
        )
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            yield _wait_ready(process, lines, stderr)
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            reader.join(timeout=5)
            process.stdout.close()


def _wait_ready(process: subprocess.Popen[str], lines: queue.Queue[str], stderr: IO[str]) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            if process.poll() is not None and lines.empty():
                break
            continue
        if line.startswith("READY "):
            return line.split()[1]
    stderr.seek(0)
    state = f"exited with {process.returncode}" if process.poll() is not None else "is still starting"
    raise RuntimeError(
        f"test OAuth server did not get ready in {READY_TIMEOUT:.0f}s ({state}); stderr:\n{stderr.read()}"
    )


@pytest.fixture(scope="session", name="oauth_server")
def oauth_server_fixture() -> Iterator[OAuthServer]:
    """One test authorization server process for the whole session."""
    with run_oauth_server() as server:
        yield server


@pytest.fixture(name="oauth")
def oauth_fixture(oauth_server: OAuthServer) -> OAuthServer:
    """The session's server, reset: no tokens, zero counters, no faults, startup configuration."""
    oauth_server.reset()
    return oauth_server
