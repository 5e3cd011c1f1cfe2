"""Fixtures of the proxy tests: a test upstream in a thread and AuthBridge itself as a real server process."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.upstream import UpstreamState, free_port, make_app, serve

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "authbridge"]


@dataclasses.dataclass
class Upstream:
    """The test upstream: its URL and state."""

    url: str
    state: UpstreamState

    def login_spec(self, key: str) -> dict[str, object]:
        """A custom-token integration that logs in at ``/login``: a 401 makes the proxy log in again and replay."""
        return {
            "key": key,
            "name": key,
            "auth": {
                "type": "custom_token",
                "token_url": f"{self.url}/login",
                "token_response": {"access_token": "token"},
            },
            "request": {"base_url": self.url},
        }


@dataclasses.dataclass
class Server:
    """A running AuthBridge: base URL, API key, process (for its memory)."""

    url: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """What the server has written to stderr so far."""
        return self.log.read_text(errors="replace")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def rss_kib(self) -> int:
        """The server process's resident memory now, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def integration(self, spec: typing.Mapping[str, object]) -> None:
        response = httpx.put(f"{self.url}/integrations/{spec['key']}", json=spec, headers=self.headers)
        assert response.status_code in (200, 201), response.text

    def connect(self, integration: str, **body: object) -> str:
        response = httpx.post(
            f"{self.url}/connections", json={"integration": integration, "name": "T", **body}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[Upstream]:
    """One upstream for the session."""
    state = UpstreamState()
    with serve(make_app(state), free_port()) as url:
        yield Upstream(url, state)


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The upstream, its state reset."""
    upstream_server.state.reset()
    return upstream_server


def create_key(env: typing.Mapping[str, str], name: str) -> str:
    """``authbridge api-keys create`` on the environment's database; the key itself."""
    done = subprocess.run(
        [*CLI, "api-keys", "create", "--name", name], env=dict(env), capture_output=True, check=True, cwd=ROOT
    )
    return done.stdout.decode().strip()


@contextlib.contextmanager
def run_authbridge(env: typing.Mapping[str, str], key: str) -> Iterator[Server]:
    """``authbridge run`` as its own process on a free port, its stderr in a file; stopped with SIGTERM."""
    port = free_port()
    env = {"AUTHBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}", **env}
    logs = Path(env["AUTHBRIDGE_DATA_DIR"]).parent if "AUTHBRIDGE_DATA_DIR" in env else Path(tempfile.mkdtemp())
    log = logs / f"stderr-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*CLI, "run", "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            process.communicate()
            raise RuntimeError(f"AuthBridge did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    try:
        yield Server(url, key, process, log)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def server_env(**extra: str) -> dict[str, str]:
    """The process environment of a test server: private networks allowed, no background tasks, quiet logs."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_PROXY_READ_TIMEOUT": "1.5",
        "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        "AUTHBRIDGE_LOG_LEVEL": "warning",
        **extra,
    }


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``authbridge run`` as its own process on a free port (SQLite, private networks allowed)."""
    data = tmp_path_factory.mktemp("proxy") / "data"
    env = server_env(AUTHBRIDGE_DATA_DIR=str(data))
    with run_authbridge(env, create_key(env, "proxy-tests")) as running:
        yield running
