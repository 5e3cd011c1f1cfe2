"""The proxy's lean upstream client (proxy/upstream_http.py) against real loopback servers that misbehave.

Each server is a scripted asyncio TCP server: it reads a request and writes exactly the bytes the test
gives it, so answers no well-behaved framework would send (both lengths, a header bomb, a second
answer, a cut-off body, an interim 103) reach the client as they would from a broken provider.
The last tests drive a running ``authbridge run`` through the same kind of upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from authbridge.errors import OutboundBlockedError
from authbridge.netguard import GuardedResolver
from authbridge.upstream_http import LeanTransport, UpstreamClient, UpstreamClientError, UpstreamConnectError
from tests.proxy.conftest import Server
from tests.rawhttp import read_request

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A loopback server running ``script`` per connection: its base URL, the requests seen, connections made."""
    seen: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def recorded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        original = reader.readuntil

        async def readuntil(separator: bytes = b"\n") -> bytes:
            data = await original(separator)
            seen.append(data)
            return data

        reader.readuntil = readuntil  # type: ignore[method-assign,assignment]
        await handle(reader, writer)

    server = await asyncio.start_server(recorded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen, connections
    finally:
        server.close()


def _client(**kwargs: typing.Any) -> UpstreamClient:
    return UpstreamClient(GuardedResolver(allow_private=True), **kwargs)


async def get_each(client: UpstreamClient, url: str, times: int, pause: float) -> list[bytes]:
    """``times`` GETs one after the other, each answer read whole and released, ``pause`` s between them."""
    bodies = []
    for _ in range(times):
        response = await client.request("GET", url, {}, b"")
        bodies.append(await response.read())
        response.release()
        await asyncio.sleep(pause)
    return bodies


def answer(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def keep_answering(reply: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(reply)
            await writer.drain()

    return script


async def test_requests_reuse_one_kept_alive_connection_and_send_what_aiohttp_sends() -> None:
    async with scripted(keep_answering(answer())) as (base, seen, connections):
        client = _client()
        for method, body in (("GET", b""), ("POST", b"abc"), ("DELETE", b"")):
            response = await client.request(method, f"{base}/a/b?x=1", {"X-Api-Key": "t"}, body)
            assert (response.status, await response.read()) == (200, b"hello")
            response.release()
        client.close()
    assert len(connections) == 1
    host = base.removeprefix("http://").encode()
    assert seen == [
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: %s\r\nX-Api-Key: t\r\n\r\n" % host,
        b"POST /a/b?x=1 HTTP/1.1\r\nHost: %s\r\nX-Api-Key: t\r\nContent-Length: 3\r\n\r\n" % host,
        b"DELETE /a/b?x=1 HTTP/1.1\r\nHost: %s\r\nX-Api-Key: t\r\nContent-Length: 0\r\n\r\n" % host,
    ]


async def test_a_bare_origin_and_a_query_only_url_get_a_slash_target() -> None:
    async with scripted(keep_answering(answer())) as (base, seen, _):
        client = _client()
        for url in (base, f"{base}?q=1"):
            (await client.request("GET", url, {}, b"")).release()
        client.close()
    assert [line.split(b"\r\n")[0] for line in seen] == [b"GET / HTTP/1.1", b"GET /?q=1 HTTP/1.1"]


async def test_headers_are_read_as_aiohttp_gives_them() -> None:
    reply = answer(b"{}", b"Content-Type: application/json\r\nX-Multi: 1\r\nx-multi: 2\r\n")
    async with scripted(keep_answering(reply)) as (base, _, _):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        assert response.headers.get("content-type") == "application/json"
        assert response.headers.getall("X-MULTI") == ["1", "2"]
        assert response.content_length == 2
        assert (b"Content-Type", b"application/json") in response.raw_headers
        response.release()
        client.close()


async def test_an_interim_103_is_skipped_for_the_real_answer() -> None:
    reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + answer(b"final")
    async with scripted(keep_answering(reply)) as (base, _, _):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        assert (response.status, await response.read()) == (200, b"final")
        assert all(name != b"Link" for name, _ in response.raw_headers)
        response.release()
        client.close()


async def test_a_chunked_answer_and_one_ended_by_closing_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length, ended by closing")
        await writer.drain()

    client = _client()
    async with scripted(keep_answering(chunked)) as (base, _, _):
        response = await client.request("GET", f"{base}/x", {}, b"")
        assert (response.content_length, await response.read()) == (None, b"abcde")
        response.release()
    async with scripted(until_close) as (base, _, _):
        response = await client.request("GET", f"{base}/x", {}, b"")
        assert await response.read() == b"no length, ended by closing"
        response.release()
    client.close()


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "not valid",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "not valid"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Bomb: " + b"a" * 70_000 + b"\r\n\r\n", "too many header bytes"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 300 + b"\r\n", "too many header bytes"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", "switched protocols"),
        (b"SMTP ready\r\n\r\n", "not valid"),
    ],
    ids=["both-lengths", "two-lengths", "header-bomb", "header-count", "upgrade", "not-http"],
)
async def test_a_lying_answer_is_a_clear_error_and_the_connection_is_dropped(reply: bytes, says: str) -> None:
    async with scripted(keep_answering(reply)) as (base, _, connections):
        client = _client()
        with pytest.raises(UpstreamClientError, match=says):
            await client.request("GET", f"{base}/x", {}, b"")
        async with scripted(keep_answering(answer())) as (good, _, _):
            response = await client.request("GET", f"{good}/x", {}, b"")  # the client is fine afterwards
            assert await response.read() == b"hello"
            response.release()
        client.close()
    assert len(connections) == 1


async def test_a_second_answer_to_one_request_is_never_served_to_the_next() -> None:
    async with scripted(keep_answering(answer(b"one") + answer(b"two"))) as (base, _, connections):
        client = _client()
        # The first answer is served; the second one's connection is dropped, not reused.
        assert await get_each(client, f"{base}/x", 2, 0.05) == [b"one", b"one"]
        client.close()
    assert len(connections) == 2


async def test_a_body_cut_short_fails_the_read_after_what_came() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with scripted(cut) as (base, _, _):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        got = []
        with pytest.raises(aiohttp.ClientPayloadError, match="broke off"):
            async for chunk in response.content.iter_any():
                got.append(chunk)
        assert b"".join(got) == b"partial"
        response.release()
        client.close()


async def test_a_connection_closed_while_idle_is_replaced_without_the_caller_noticing() -> None:
    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())  # keep-alive implied, then the server closes the idle connection anyway
        await writer.drain()

    async with scripted(once_then_close) as (base, _, connections):
        client = _client()
        # 50 ms apart: each close reaches the client while its connection is idle.
        assert await get_each(client, f"{base}/x", 3, 0.05) == [b"hello"] * 3
        client.close()
    assert len(connections) == 3


async def test_a_kept_alive_connection_dying_as_it_is_reused_is_retried_once() -> None:
    """The upstream reads the second request and hangs up with no answer: sent again on a new connection."""

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        await read_request(reader)  # the reused connection's request: dropped unanswered

    async with scripted(answer_once) as (base, seen, connections):
        client = _client()
        for _ in range(2):
            response = await client.request("GET", f"{base}/x", {}, b"")
            assert await response.read() == b"hello"
            response.release()
        client.close()
    assert len(connections) == 2 and len(seen) == 3


async def test_an_upstream_that_hangs_up_on_a_new_connection_is_not_retried() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with scripted(hang_up) as (base, _, connections):
        client = _client()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.request("GET", f"{base}/x", {}, b"")
        client.close()
    assert len(connections) == 1


async def test_slow_headers_and_a_stalled_body_time_out() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if b"/body" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
            await writer.drain()
        await asyncio.sleep(5)

    async with scripted(stall) as (base, _, _):
        client = _client(read_timeout=0.2)
        with pytest.raises(TimeoutError):
            await client.request("GET", f"{base}/headers", {}, b"")
        response = await client.request("GET", f"{base}/body", {}, b"")
        with pytest.raises(TimeoutError):
            await response.read()
        response.release()
        client.close()


async def test_a_line_break_in_a_header_is_never_sent() -> None:
    async with scripted(keep_answering(answer())) as (base, seen, connections):
        client = _client()
        for headers in ({"X-Token": "a\r\nX-Evil: 1"}, {"X-Bad\nName": "v"}, {"X-Nul": "a\x00b"}):
            with pytest.raises(UpstreamClientError, match="line break"):
                await client.request("GET", f"{base}/x", headers, b"")
        client.close()
    assert seen == [] and connections == []


async def test_unreachable_and_unresolvable_upstreams_say_so() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
    client = _client()
    with pytest.raises(UpstreamConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
        await client.request("GET", f"http://127.0.0.1:{port}/x", {}, b"")
    with pytest.raises(UpstreamConnectError, match="cannot resolve"):
        await client.request("GET", "http://no-such-host.invalid/x", {}, b"")
    client.close()


async def test_a_name_resolving_to_loopback_is_refused_by_the_guard() -> None:
    client = UpstreamClient(GuardedResolver(allow_private=False))
    with pytest.raises(OutboundBlockedError, match="localhost"):
        await client.request("GET", "http://localhost:9/x", {}, b"")
    client.close()


async def test_a_large_body_is_streamed_with_the_upstream_paused_while_the_reader_lags() -> None:
    size = 8 * 1024 * 1024

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()

    async with scripted(big) as (base, _, _):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        received = 0
        most_buffered = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            most_buffered = max(most_buffered, response._size)
            await asyncio.sleep(0)  # a slow reader
        response.release()
        client.close()
    assert received == size
    assert most_buffered < 2 * 1024 * 1024  # reading stopped near the high-water mark, not the whole body


async def test_an_answer_released_before_its_end_closes_its_connection() -> None:
    async with scripted(keep_answering(answer(b"x" * 1_000_000))) as (base, _, connections):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        response.release()
        response = await client.request("GET", f"{base}/x", {}, b"")
        assert len(await response.read()) == 1_000_000
        response.release()
        client.close()
    assert len(connections) == 2


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_https_upstreams_are_verified(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await read_request(reader)
            writer.write(answer(b"over tls"))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        trusted = _client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        response = await trusted.request("GET", f"https://127.0.0.1:{port}/x", {}, b"")
        assert await response.read() == b"over tls"
        response.release()
        trusted.close()
        untrusted = _client()  # the system's trust store: a self-signed certificate is refused
        with pytest.raises(UpstreamConnectError):
            await untrusted.request("GET", f"https://127.0.0.1:{port}/x", {}, b"")
        untrusted.close()
    finally:
        server.close()


# -- through a running server --------------------------------------------------------------------


@contextlib.contextmanager
def _liar(reply: bytes) -> Iterator[int]:
    """A thread serving ``reply`` to every request on loopback (keep-alive), for the running server's tests."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_each(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while request := conn.recv(65536):
                head_only = reply.split(b"\r\n\r\n")[0] + b"\r\n\r\n"  # a HEAD answer carries no body
                conn.sendall(head_only if request.startswith(b"HEAD") else reply)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer_each, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Bomb: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["smuggling-lengths", "header-bomb"],
)
def test_a_lying_upstream_is_a_502_through_the_proxy(server: Server, reply: bytes) -> None:
    with _liar(reply) as port:
        base = f"http://127.0.0.1:{port}"
        server.integration({"key": "liar", "name": "liar", "auth": {"type": "none"}, "request": {"base_url": base}})
        cid = server.connect("liar")
        response = httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unreachable" and error["side"] == "upstream"
    assert error["message"].startswith(f"{base} failed: ")
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_requests_the_lean_client_does_not_take_still_go_through(server: Server) -> None:
    """HEAD (its answer has a length and no body, which llhttp cannot be told) goes through aiohttp."""
    with _liar(answer(b"ok")) as port:
        base = f"http://127.0.0.1:{port}"
        server.integration({"key": "plain", "name": "plain", "auth": {"type": "none"}, "request": {"base_url": base}})
        cid = server.connect("plain")
        head = httpx.head(f"{server.url}/proxy/{cid}/x", headers=server.headers)
        get = httpx.get(f"{server.url}/proxy/{cid}/x", headers=server.headers)
        assert (get.status_code, get.content) == (200, b"ok")
        assert (head.status_code, head.headers["content-length"], head.content) == (200, "2", b"")


async def test_a_post_on_a_connection_dying_as_it_is_reused_is_not_sent_twice() -> None:
    """The upstream may have acted on a POST before hanging up: the failure is the caller's to see, not retried."""

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        await read_request(reader)

    async with scripted(answer_once) as (base, seen, connections):
        client = _client()
        response = await client.request("POST", f"{base}/x", {}, b"one")
        assert await response.read() == b"hello"
        response.release()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.request("POST", f"{base}/x", {}, b"two")
        client.close()
    assert len(connections) == 1 and len(seen) == 2


@pytest.mark.parametrize(
    ("method", "url", "body", "usable"),
    [
        ("GET", "https://api.example.com/v1/a?b=c%20d&e=[1]", b"", True),
        ("POST", "http://[::1]:8080/a", b"{}", True),
        ("HEAD", "https://api.example.com/a", b"", False),
        ("GET", "https://api.example.com/a b", b"", False),
        ("GET", "https://api.example.com/{a}|b", b"", False),
        ("GET", "https://api.example.com/caf\u00e9", b"", False),
        ("GET", "ftp://api.example.com/a", b"", False),
        ("GET", "https://user:pw@api.example.com/a", b"", False),
        ("GET", "https://api.example.com/users/@me", b"", True),
        ("POST", "https://api.example.com/a", object(), False),
    ],
)
async def test_which_requests_take_the_lean_path(method: str, url: str, body: object, usable: bool) -> None:
    """Targets needing encoding, HEAD, other schemes and streamed bodies go through aiohttp."""
    assert _client().usable(method, url, body) is usable


async def test_bytes_sent_on_an_idle_connection_retire_it() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(answer(b"nobody asked"))  # unsolicited: must never be taken for the next answer
        await writer.drain()
        await read_request(reader)

    async with scripted(chatty) as (base, _, connections):
        client = _client()
        assert await get_each(client, f"{base}/x", 2, 0.1) == [b"hello", b"hello"]
        client.close()
    assert len(connections) == 2


async def test_a_chunk_that_breaks_the_framing_mid_body_fails_the_read() -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
    async with scripted(keep_answering(reply)) as (base, _, _):
        client = _client()
        response = await client.request("GET", f"{base}/x", {}, b"")
        with pytest.raises(UpstreamClientError, match=r"not valid HTTP/1\.1"):
            await response.read()
        response.release()
        client.close()


async def test_a_large_body_goes_out_whole_and_names_resolve_once() -> None:
    body = b"y" * 100_000

    async def sizes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            writer.write(answer(b"%d" % request.index(b"\r\n\r\n")) if request.endswith(body) else answer(b"no"))
            await writer.drain()

    async with scripted(sizes) as (base, _, _):
        port = base.rsplit(":", 1)[1]
        client = _client()
        for _ in range(2):
            response = await client.request("POST", f"http://localhost:{port}/up", {}, body)
            assert (await response.read()).isdigit()  # the whole body arrived after the head
            response.release()
        client.close()
    assert client._addresses[("localhost", int(port))][1]  # resolved through the guard once, then cached


async def test_idle_connections_per_origin_are_capped() -> None:
    async with scripted(keep_answering(answer())) as (base, _, connections):
        client = _client()
        responses = await asyncio.gather(*(client.request("GET", f"{base}/x", {}, b"") for _ in range(70)))
        for response in responses:
            await response.read()
            response.release()
        origin, _ = client._origin(f"{base}/x")
        assert len(origin.idle) == 64 and len(connections) == 70
        client.close()


@pytest.mark.parametrize(
    ("url", "host_header"),
    [
        ("http://api.example.com:80/x", "api.example.com"),
        ("https://api.example.com:443/x", "api.example.com"),
        ("https://api.example.com:8443/x", "api.example.com:8443"),
        ("http://[::1]:80/x", "[::1]"),
    ],
)
async def test_the_host_header_leaves_out_a_default_port(url: str, host_header: str) -> None:
    origin, _ = _client()._origin(url)
    assert origin.host_header == host_header


async def test_the_lean_transport_streams_what_it_cannot_buffer_and_times_out_a_stalled_body() -> None:
    async def echo_or_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request.startswith(b"POST /up"):  # the streamed upload, sent by the fallback (aiohttp)
            writer.write(answer(request.split(b"\r\n\r\n", 1)[1]))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(2)

    async def upload() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    async with (
        scripted(echo_or_stall) as (base, _, _),
        httpx.AsyncClient(transport=LeanTransport(allow_private=True), timeout=httpx.Timeout(0.3)) as client,
    ):
        streamed = await client.post(f"{base}/up", content=upload())
        assert streamed.content == b"part one, part two"
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{base}/stall")


async def test_a_given_host_is_sent_once_and_the_length_is_the_bodys() -> None:
    """A signed request carries the Host it signed: it replaces the URL's; a stale Content-Length is not sent."""
    async with scripted(keep_answering(answer())) as (base, seen, _):
        client = _client()
        headers = {"host": "signed.example", "content-length": "999", "X-Sig": "abc"}
        (await client.request("POST", f"{base}/x", headers, b"abc")).release()
        client.close()
    assert seen == [b"POST /x HTTP/1.1\r\nHost: signed.example\r\nX-Sig: abc\r\nContent-Length: 3\r\n\r\n"]
