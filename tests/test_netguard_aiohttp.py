"""The outbound client's transports (httpx on aiohttp, httpx on the lean client): the SSRF guard, failures as httpx's.

Each case runs against a real socket server on 127.0.0.1 that answers the way the case needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import typing
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from authbridge.errors import OutboundBlockedError
from authbridge.netguard import AiohttpTransport
from authbridge.upstream_http import LeanTransport
from tests.rawhttp import read_request

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Transport = type[AiohttpTransport] | type[LeanTransport]


@pytest.fixture(params=[AiohttpTransport, LeanTransport], ids=["aiohttp", "lean"])
def transport_type(request: pytest.FixtureRequest) -> Transport:
    """Every case runs on both transports: they must behave alike."""
    return typing.cast(Transport, request.param)


@contextlib.asynccontextmanager
async def server(serve: Serve) -> AsyncIterator[str]:
    """A loopback server running ``serve`` on each connection; yields its base URL; closes every connection after."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await serve(reader, writer)

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    body = b'{"echo": %d, "case_kept": %s}' % (
        len(request),
        b"true" if b"\r\nX-Custom-Case: 1" in request else b"false",
    )
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Seen: yes\r\n")
    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.close()


async def short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()
    writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_request_goes_out_and_its_answer_comes_back_as_httpx_reads_it(transport_type: Transport) -> None:
    """Method, headers and body are sent as given; status, headers and body come back; no redirect is followed."""
    async with server(answer_ok) as base, httpx.AsyncClient(transport=transport_type(allow_private=True)) as client:
        response = await client.post(
            f"{base}/token", data={"grant_type": "client_credentials"}, headers={"X-Custom-Case": "1"}
        )
        again = await client.get(f"{base}/again")  # a second request on the same client
    assert response.status_code == 201 and response.headers["x-seen"] == "yes"
    assert response.json()["echo"] > 0 and response.reason_phrase == "Created"
    assert response.json()["case_kept"] is True  # header names go out as written
    assert again.status_code == 201


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.8", "localhost"])
async def test_private_addresses_are_refused_unless_allowed(host: str, transport_type: Transport) -> None:
    """An IP literal is checked by the transport, a name by the resolver: neither reaches a private address."""
    async with httpx.AsyncClient(transport=transport_type()) as client:
        with pytest.raises(OutboundBlockedError, match="AUTHBRIDGE_ALLOW_PRIVATE_NETWORKS=true"):
            await client.get(f"http://{host}:9/")


async def test_a_refused_connection_is_an_httpx_connect_error(transport_type: Transport) -> None:
    async with httpx.AsyncClient(transport=transport_type(allow_private=True)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{_closed_port()}/")


async def test_a_server_hanging_up_is_a_protocol_error(transport_type: Transport) -> None:
    async with server(hang_up) as base, httpx.AsyncClient(transport=transport_type(allow_private=True)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(base)


async def test_a_body_cut_short_is_a_protocol_error_while_reading(transport_type: Transport) -> None:
    async with server(short_body) as base, httpx.AsyncClient(transport=transport_type(allow_private=True)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(base)


async def test_a_silent_server_is_a_read_timeout(transport_type: Transport) -> None:
    transport = transport_type(allow_private=True)
    async with server(silent) as base, httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(base)


async def test_only_http_and_https_are_sent(transport_type: Transport) -> None:
    transport = transport_type(allow_private=True)
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/file"))
    await transport.aclose()  # never opened: nothing to close


def test_each_event_loop_gets_its_own_session(transport_type: Transport) -> None:
    """A client used from two event loops in turn (tests, the CLI) opens a session in each."""
    transport = transport_type(allow_private=True)

    async def once() -> int:
        async with server(answer_ok) as base:
            response = await transport.handle_async_request(httpx.Request("GET", base))
            await response.aread()
            await response.aclose()
            return response.status_code

    assert asyncio.run(once()) == 201
    assert asyncio.run(once()) == 201

    async def close() -> None:
        await transport.aclose()

    asyncio.run(close())  # from yet another loop: the last session is dropped without a warning
