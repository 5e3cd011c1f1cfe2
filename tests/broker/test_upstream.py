"""Unit tests of reading one upstream answer: the cap counted while inflating, content codings, the deadline.

The same limits end to end, against a real misbehaving server process: ``tests/api/test_outbound_limits_e2e.py``.
"""

from __future__ import annotations

import gzip
import json
import typing
import zlib
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from authbridge.broker.upstream import UpstreamLimits, bounded_client, exchange
from authbridge.errors import UpstreamError

URL = "https://id.example/token"
LIMITS = UpstreamLimits(max_body=64 * 1024, timeout=0.5)


def client(handler: typing.Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def read(handler: typing.Callable[[httpx.Request], httpx.Response], limits: UpstreamLimits = LIMITS) -> bytes:
    async with client(handler) as http:
        answer = await exchange(http, httpx.Request("POST", URL), limits=limits, integration="acme", endpoint=URL)
    assert "content-encoding" not in answer.headers
    return answer.content


def encoded(body: bytes, coding: str) -> httpx.Response:
    """An answer as a network transport returns it: its body still to be read, as sent."""
    return httpx.Response(200, headers={"Content-Encoding": coding}, stream=httpx.ByteStream(body))


def deflate(body: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(body) + compressor.flush()


async def test_plain_gzip_and_deflate_answers_are_read() -> None:
    """gzip, x-gzip, zlib and raw deflate, several gzip members and stacked codings decode to the body."""
    body = json.dumps({"access_token": "t" * 1000}).encode()
    assert await read(lambda _r: httpx.Response(200, content=body)) == body
    assert await read(lambda _r: encoded(gzip.compress(body), "gzip")) == body
    assert await read(lambda _r: encoded(gzip.compress(body), "x-gzip")) == body
    assert await read(lambda _r: encoded(deflate(body, zlib.MAX_WBITS), "deflate")) == body
    assert await read(lambda _r: encoded(deflate(body, -zlib.MAX_WBITS), "deflate")) == body
    two = gzip.compress(body[:500]) + gzip.compress(body[500:])
    assert await read(lambda _r: encoded(two, "gzip")) == body
    assert await read(lambda _r: encoded(gzip.compress(gzip.compress(body)), "gzip, gzip")) == body


async def test_accept_encoding_names_only_what_is_read() -> None:
    """The request asks for gzip or deflate only (servers would otherwise answer br or zstd)."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, content=b"{}")

    await read(handler)
    assert seen == ["gzip, deflate"]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "gzip, gzip"])
async def test_bomb_is_refused_while_inflating(coding: str) -> None:
    """64 MiB of zeros, compressed to a few KiB, stop at the cap: error names the cap after decompression."""
    bomb = b"\0" * (64 * 1024 * 1024)
    body = deflate(bomb, 16 + zlib.MAX_WBITS if coding.startswith("gzip") else zlib.MAX_WBITS)
    if coding == "gzip, gzip":
        body = gzip.compress(body)
    with pytest.raises(UpstreamError, match=r"^acme: https://id.example/token answered more than 65536 bytes after"):
        await read(lambda _r: encoded(body, coding))


async def test_identity_over_the_cap_is_refused() -> None:
    """An uncompressed answer one byte over the cap is refused; one at the cap is read."""
    assert len(await read(lambda _r: httpx.Response(200, content=b"x" * LIMITS.max_body))) == LIMITS.max_body
    with pytest.raises(UpstreamError, match="answered more than 65536 bytes after decompression"):
        await read(lambda _r: httpx.Response(200, content=b"x" * (LIMITS.max_body + 1)))


async def test_one_mib_reads_as_such_in_messages() -> None:
    """The default cap (1 MiB) is named in MiB."""
    with pytest.raises(UpstreamError, match="answered more than 1 MiB after decompression"):
        await read(lambda _r: httpx.Response(200, content=b"x" * (2 << 20)), UpstreamLimits(timeout=5.0))


async def test_unknown_coding_and_corrupt_gzip_are_refused() -> None:
    """br, zstd or a body that does not inflate is a clear upstream error."""
    with pytest.raises(UpstreamError, match=r"content coding AuthBridge does not read \(br\)"):
        await read(lambda _r: encoded(b"whatever", "br"))
    with pytest.raises(UpstreamError, match="a compressed body that does not decompress"):
        await read(lambda _r: encoded(b"not gzip at all", "gzip"))


class _Stalling(httpx.AsyncByteStream):
    """A body that sends one byte and then nothing, ever (a server trickling slower than the deadline)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"{"
        await anyio.Event().wait()


async def test_total_deadline_covers_the_body() -> None:
    """An answer whose body never completes fails at the total deadline with a clear message."""
    with pytest.raises(UpstreamError, match=r"^acme: https://id.example/token sent no complete answer within 0.5 s$"):
        await read(lambda _r: httpx.Response(200, stream=_Stalling()))


async def test_transport_failures_are_upstream_errors() -> None:
    """A connection failure names the endpoint and the failure's kind, never its text."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused with secret-ish details", request=request)

    with pytest.raises(UpstreamError, match=r"^acme: https://id.example/token cannot be reached \(ConnectError\)$"):
        await read(refuse)


async def test_bounded_client_for_hooks() -> None:
    """Hooks' client goes through the same cap (and decodes as usual for the hook)."""
    body = json.dumps({"ok": True}).encode()
    bomb = deflate(b"\0" * (16 * 1024 * 1024), 16 + zlib.MAX_WBITS)

    def handler(request: httpx.Request) -> httpx.Response:
        return encoded(bomb, "gzip") if request.url.path == "/bomb" else encoded(gzip.compress(body), "gzip")

    async with client(handler) as http:
        hooks = bounded_client(http, LIMITS)
        assert (await hooks.get("https://id.example/ok")).json() == {"ok": True}
        with pytest.raises(UpstreamError, match=r"https://id.example/bomb answered more than 65536 bytes"):
            await hooks.get("https://id.example/bomb?q=1")
        await hooks.aclose()


async def test_the_client_s_timeouts_go_with_the_request_and_redirects_are_not_followed() -> None:
    """Sent straight to the transport, a request still carries the client's per-phase timeouts; a 302 is the answer."""
    seen: list[dict[str, typing.Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/token"})

    timeout = httpx.Timeout(7.0, connect=2.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=timeout) as http:
        answer = await exchange(http, httpx.Request("POST", URL), limits=LIMITS, integration="acme", endpoint=URL)
    assert answer.status_code == 302
    assert seen == [timeout.as_dict()]


async def test_a_token_endpoint_s_cookies_are_not_kept_by_the_client() -> None:
    """A Set-Cookie of one exchange is neither stored in the shared client nor sent on the next exchange."""
    cookies: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, content=b"{}")

    async with client(handler) as http:
        for _ in range(2):
            await exchange(http, httpx.Request("POST", URL), limits=LIMITS, integration="acme", endpoint=URL)
        assert not http.cookies
    assert cookies == [None, None]


async def test_what_the_client_s_own_layers_do_still_happens() -> None:
    """Credentials in the URL become Basic auth, and a client that follows redirects follows them (``client.send``)."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization")))
        if request.url.path == "/old":
            return httpx.Response(307, headers={"Location": "https://id.example/token"})
        return httpx.Response(200, content=b"{}")

    async with client(handler) as http:
        request = httpx.Request("POST", "https://user:pw@id.example/token")
        await exchange(http, request, limits=LIMITS, integration="acme", endpoint=URL)
    assert seen == [("/token", "Basic dXNlcjpwdw==")]
    seen.clear()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True) as http:
        answer = await exchange(
            http, httpx.Request("POST", "https://id.example/old"), limits=LIMITS, integration="acme", endpoint=URL
        )
    assert answer.status_code == 200
    assert [path for path, _ in seen] == ["/old", "/token"]


async def test_an_answer_reads_as_a_read_response_does() -> None:
    """The answer is made as ``read()`` leaves a response (not through it): every way of reading it still works."""
    body = json.dumps({"access_token": "t", "n": "é"}).encode()
    answer = await exchange(
        client(lambda _r: encoded(gzip.compress(body), "gzip")),
        httpx.Request("POST", URL),
        limits=LIMITS,
        integration="acme",
        endpoint=URL,
    )
    reference = httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)
    assert answer.is_closed and answer.is_stream_consumed
    assert answer.content == reference.content == body
    assert answer.read() == body and await answer.aread() == body
    assert answer.json() == reference.json() and answer.text == body.decode()
    assert b"".join(answer.iter_bytes()) == body
    assert answer.headers["content-length"] == str(len(body))
    assert answer.request.url == URL
