"""A misbehaving token endpoint for tests, run as its own process (plain asyncio, no framework).

Run it from the repository root::

    python -m tests.servers.bad_upstream --port 0

It prints ``READY http://127.0.0.1:<port>`` once listening. Every path answers according to the
current *mode*, set with ``POST /_mode/<mode>`` (``ok`` at start):

- ``ok``: a valid JSON token answer (a new access token each time).
- ``bomb``: a gzip bomb: about 1 MB on the wire that inflates to 1 GiB of JSON whitespace.
- ``trickle``: a 200 whose headers promise 10 kB, then four bytes a second (about 40 minutes).
- ``trickle-head``: the status line itself, four bytes a second, for hours.

A trickle is faster than any per-read timeout a client would set: only a total deadline ends it.
- ``not-utf8``: a JSON token answer whose access token holds a byte that is not UTF-8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from queue import Queue

#: The bomb's inflated size and its compressed body (built once, on first use).
BOMB_SIZE = 1024 * 1024 * 1024
_bomb: bytes | None = None
MODES = ("ok", "bomb", "trickle", "trickle-head", "not-utf8")


def gzip_bomb() -> bytes:
    """``{"access_token": "x"`` followed by 1 GiB of spaces, gzip-compressed (about 1 MB)."""
    global _bomb
    if _bomb is None:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = [compressor.compress(b'{"access_token": "x"')]
        spaces = b" " * (1024 * 1024)
        parts += [compressor.compress(spaces) for _ in range(BOMB_SIZE // len(spaces))]
        parts.append(compressor.compress(b"}") + compressor.flush())
        _bomb = b"".join(parts)
    return _bomb


class Upstream:
    """The server's state: the mode, and how many tokens it issued."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.issued = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            try:
                await self._handle(reader, writer)
            finally:
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        _method, path, _version = request_line.split(" ", 2)
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        if path.startswith("/_mode/"):
            mode = path.removeprefix("/_mode/")
            if mode not in MODES:
                await self._send(writer, 404, b'{"error": "unknown mode"}')
                return
            if mode == "bomb":
                await asyncio.get_running_loop().run_in_executor(None, gzip_bomb)
            self.mode = mode
            await self._send(writer, 200, b'{"ok": true}')
            return
        if self.mode == "ok":
            self.issued += 1
            answer = {"access_token": f"good-token-{self.issued}", "token_type": "bearer", "expires_in": 3600}
            await self._send(writer, 200, json.dumps(answer).encode())
        elif self.mode == "bomb":
            await self._send(writer, 200, gzip_bomb(), encoding="gzip")
        elif self.mode == "not-utf8":
            await self._send(writer, 200, b'{"access_token": "tok\xff\xfeen", "token_type": "bearer"}')
        elif self.mode == "trickle":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n")
            await self._trickle(writer, b"{" + b" " * 9998 + b"}")
        else:
            await self._trickle(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" + b" " * 100_000)

    @staticmethod
    async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.25)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, *, encoding: str | None = None) -> None:
        head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}", "Content-Type: application/json"]
        head += [f"Content-Encoding: {encoding}"] if encoding else []
        head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(head).encode("latin-1") + body)
        await writer.drain()


@dataclass(frozen=True)
class BadUpstream:
    """A running ``tests.servers.bad_upstream`` process, seen from a test."""

    base_url: str

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def mode(self, mode: str) -> None:
        """Switch how every later request is answered (one of MODES)."""
        import httpx  # the server process itself needs no httpx

        httpx.post(f"{self.base_url}/_mode/{mode}", timeout=60.0).raise_for_status()


@contextlib.contextmanager
def run_bad_upstream() -> Iterator[BadUpstream]:
    """Start ``python -m tests.servers.bad_upstream --port 0`` (answering ``ok``); stop it on exit."""
    from tests.servers.fixtures import REPO_ROOT, _pump, _wait_ready

    command = [sys.executable, "-m", "tests.servers.bad_upstream", "--port", "0"]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert process.stdout is not None
        lines: Queue[str] = Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
        try:
            yield BadUpstream(_wait_ready(process, lines, stderr))
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()


async def main(port: int) -> None:
    upstream = Upstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
