"""``authbridge run`` as its own process, and a raw HTTP/1.1 exchange that sees what a server really sends.

```
with running_authbridge(tmp_path, AUTHBRIDGE_MAX_BODY="65536") as server:
    answer = exchange(server.url, "POST", "/connections", {"Transfer-Encoding": "chunked"}, chunked(body()))
    assert answer.status == 401 and answer.sent < 200 * MiB
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import socket
import subprocess
import sys
import time
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "correct horse battery staple"
MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Running:
    """A running AuthBridge: its base URL, an API key, the admin password, the process."""

    url: str
    key: str
    admin_password: str
    process: subprocess.Popen[bytes]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def rss_kib(self) -> int:
        """The server process's resident memory now, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextlib.contextmanager
def running_authbridge(tmp: Path, **env_extra: str) -> Iterator[Running]:
    """Start ``authbridge run`` on a free port and a fresh SQLite data dir (API key and admin password made)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTHBRIDGE_")},
        "AUTHBRIDGE_DATA_DIR": str(tmp / "data"),
        "AUTHBRIDGE_PUBLIC_URL": url,
        "AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "AUTHBRIDGE_BACKGROUND_TASKS": "false",
        "AUTHBRIDGE_LOG_LEVEL": "warning",
        **env_extra,
    }
    cli = [sys.executable, "-m", "authbridge"]
    key = subprocess.run([*cli, "api-keys", "create", "--name", "t"], env=env, capture_output=True, check=True)
    subprocess.run(
        [*cli, "admin", "set-password", "--password-stdin"],
        env=env,
        input=(ADMIN_PASSWORD + "\n").encode(),
        capture_output=True,
        check=True,
    )
    log = tmp / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen([*cli, "run", "--port", str(port)], env=env, cwd=REPO_ROOT, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"authbridge run did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield Running(url, key.stdout.decode().strip(), ADMIN_PASSWORD, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclasses.dataclass
class Answer:
    """What came back, and how many body bytes the client had sent when it arrived."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    sent: int

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> typing.Any:
        return json.loads(self.body)


def chunked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks in HTTP/1.1 chunked framing, ended by the last chunk."""
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def zeros(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` zero bytes in pieces of ``size``."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b"\0" * piece
        sent += piece


def _parse(data: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The answer once all of it has arrived (its head and Content-Length bytes of body), else None."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    if len(body) < length:
        return None
    return int(lines[0].split(" ", 2)[1]), headers, body[:length]


def exchange(
    url: str, method: str, path: str, headers: Mapping[str, str], body: Iterable[bytes] = (), *, wait: float = 60
) -> Answer:
    """Send the request head, then ``body`` piece by piece until the answer arrives (or the body ends).

    The client stops sending as soon as an answer has come: ``Answer.sent`` says how far it got.
    ``wait`` only bounds a hang; nothing is asserted about time.
    """
    parsed = httpx.URL(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    pieces = iter(body)
    pending, writing, sent, received = b"", True, 0, b""
    with socket.create_connection((parsed.host, parsed.port or 80), timeout=wait) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sock.setblocking(False)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], 1.0)
            if readable:
                data = sock.recv(65536)
                received += data
                answer = _parse(received)
                if answer is not None:
                    return Answer(*answer, sent=sent)
                if not data:
                    raise AssertionError(f"the server closed the connection without a full answer: {received[:200]!r}")
                continue
            if writable:
                if not pending:
                    pending = next(pieces, b"")
                    if not pending:
                        writing = False
                        continue
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    writing = False
                    continue
                sent += count
                pending = pending[count:]
    raise AssertionError(f"no answer within {wait} s; got {received[:200]!r}")
