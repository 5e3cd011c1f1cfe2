"""Request bodies are bounded before anything reads them: a real ``authbridge run`` process, raw HTTP/1.1.

The limit is AUTHBRIDGE_MAX_BODY (default 1 MiB). A route that needs an API key answers 401 to a
request without one before reading its body; any other route answers 413 once a body is over the
limit, whether it announced its length or streams it chunked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.servers.authbridge import MiB, Running, chunked, exchange, running_authbridge, zeros

LIMIT = 1024 * 1024  # the default
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One AuthBridge with the default limit for the module."""
    with running_authbridge(tmp_path_factory.mktemp("limits")) as running:
        yield running


def _console_cookie(server: Running) -> str:
    """Sign in to the console with the API key; the session cookie as a Cookie header value."""
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        signed = client.post("/console/sign-in", data={"csrf": csrf[1], "secret": server.key})
        assert signed.status_code == 303, signed.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_anonymous_huge_body_gets_401_before_it_is_read(server: Running, framing: str) -> None:
    """200 MB to POST /connections without a key: 401 while the client still sends; server memory stays put."""
    total = 200 * MiB
    if framing == "chunked":
        headers, body = {**JSON, "Transfer-Encoding": "chunked"}, chunked(zeros(total))
    else:
        headers, body = {**JSON, "Content-Length": str(total)}, zeros(total)
    before = server.rss_kib()
    answer = exchange(server.url, "POST", "/connections", headers, body)
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert answer.header_list("www-authenticate") == ["Bearer"]
    assert answer.sent < total // 4, f"the client sent {answer.sent} bytes before the answer"
    assert server.rss_kib() - before < 20 * 1024


def test_a_wrong_key_is_refused_like_a_missing_one(server: Running) -> None:
    """A forged key on a body-carrying management request is a 401 too, the body unread."""
    headers = {**JSON, "Authorization": "Bearer forged", "Content-Length": str(50 * MiB)}
    answer = exchange(server.url, "PUT", "/integrations/x", headers, zeros(50 * MiB))
    assert answer.status == 401 and answer.sent < 50 * MiB


def test_a_long_content_length_gets_413_before_the_body_is_read(server: Running) -> None:
    """With a valid key, a Content-Length over the limit is refused at once, in the API's error shape."""
    headers = {**JSON, **server.headers, "Content-Length": str(LIMIT + 1)}
    answer = exchange(server.url, "POST", "/connections", headers)  # no body sent at all
    assert answer.status == 413
    error = answer.json()["error"]
    assert error["code"] == "body_too_large" and str(LIMIT) in error["message"]
    assert "AUTHBRIDGE_MAX_BODY" in error["message"]


@pytest.mark.parametrize("path", ["/connections", "/integrations:import"])
def test_a_chunked_body_over_the_limit_gets_413_while_it_streams(server: Running, path: str) -> None:
    """A chunked body with a valid key is counted as it arrives: 413 once over, not after the whole upload."""
    total = 100 * MiB
    headers = {**JSON, **server.headers, "Transfer-Encoding": "chunked"}
    before = server.rss_kib()
    answer = exchange(server.url, "POST", path, headers, chunked(zeros(total)))
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "body_too_large"
    assert answer.sent < total // 4
    assert server.rss_kib() - before < 20 * 1024


def test_a_body_at_the_limit_is_read(server: Running) -> None:
    """A body of exactly the limit is read and judged on its content (422: not a valid connection)."""
    body = b'{"integration": "x", "name": "' + b"a" * (LIMIT - 32) + b'"}'
    assert len(body) == LIMIT
    headers = {**JSON, **server.headers, "Content-Length": str(len(body))}
    answer = exchange(server.url, "POST", "/connections", headers, [body])
    assert answer.status in {404, 422}, answer.body[:300]


def test_the_console_caps_a_signed_in_form(server: Running) -> None:
    """A signed-in console POST streaming more than the limit is refused with 413."""
    headers = {
        "Cookie": _console_cookie(server),
        "Content-Type": "application/x-www-form-urlencoded",
        "Transfer-Encoding": "chunked",
    }
    answer = exchange(server.url, "POST", "/console/import", headers, chunked(zeros(50 * MiB)))
    assert answer.status == 413 and answer.sent < 50 * MiB
    assert b"AUTHBRIDGE_MAX_BODY" in answer.body


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_anonymous_routes_cap_bodies_too(server: Running, framing: str) -> None:
    """The callback and the sign-in page are anonymous; a body over the limit is still refused with 413."""
    total = 50 * MiB
    for method, path in (("GET", "/oauth/callback?state=x&code=y"), ("POST", "/console/sign-in")):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if framing == "chunked":
            answer = exchange(
                server.url, method, path, {**headers, "Transfer-Encoding": "chunked"}, chunked(zeros(total))
            )
        else:
            answer = exchange(server.url, method, path, {**headers, "Content-Length": str(total)}, zeros(total))
        if method == "GET" and framing == "chunked":
            # The callback reads no body: it answers (a 400 page, unknown state) without taking in the upload.
            assert answer.status == 400
        else:
            assert answer.status == 413, (path, answer.status)
        assert answer.sent < total // 4
